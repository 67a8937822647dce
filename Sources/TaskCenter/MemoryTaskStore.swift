public import Foundation
import Synchronization

/// Tasks in memory: the same behaviour as ``SQLiteTaskStore`` without the file. For tests and
/// to measure what persistence costs; a restart loses everything.
public final class MemoryTaskStore: TaskStore {
  private struct State {
    var tasks: [String: TaskRecord] = [:]
    /// Queued ids in arrival order (may hold ids finished while queued; skipped on read).
    var queue: [String] = []
    var counts: [TaskStatus: Int] = [:]
    /// Idempotency keys: the task each made and its request's fingerprint.
    var idempotencyKeys: [String: (String, String)] = [:]

    /// Stores `task` in place of its previous version, keeping the counts.
    mutating func put(_ task: TaskRecord) {
      if let old = tasks[task.id]?.status { counts[old, default: 0] -= 1 }
      counts[task.status, default: 0] += 1
      tasks[task.id] = task
    }
  }

  private let state = Mutex(State())

  public init() {}

  package func insert(_ task: TaskRecord) async throws {
    try state.withLock { state in
      guard state.tasks[task.id] == nil else { throw TaskCenterError.duplicateTask(task.id) }
      state.put(task)
      if task.status == .queued { state.queue.append(task.id) }
    }
  }

  package func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    try state.withLock { state in
      if let (id, earlier) = state.idempotencyKeys[key], let existing = state.tasks[id] {
        return IdempotentInsert(task: existing, fingerprint: earlier, inserted: false)
      }
      guard state.tasks[task.id] == nil else { throw TaskCenterError.duplicateTask(task.id) }
      state.put(task)
      if task.status == .queued { state.queue.append(task.id) }
      state.idempotencyKeys[key] = (task.id, fingerprint)
      return IdempotentInsert(task: task, fingerprint: fingerprint, inserted: true)
    }
  }

  package func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
    state.withLock { state in
      guard let (id, fingerprint) = state.idempotencyKeys[key], let task = state.tasks[id] else { return nil }
      return (task, fingerprint)
    }
  }

  package func task(_ id: String) async throws -> TaskRecord? {
    state.withLock { $0.tasks[id] }
  }

  package func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    state.withLock { state in
      let matching = state.tasks.values.filter { status == nil || $0.status == status }
      let sorted = matching.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
      return Array(sorted.dropFirst(max(0, offset)).prefix(max(0, limit)))
    }
  }

  package func queued(limit: Int) async throws -> [TaskRecord] {
    state.withLock { state in
      state.queue.removeAll { state.tasks[$0]?.status != .queued }
      let queued = state.queue.compactMap { state.tasks[$0] }
      return Array(queued.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }.prefix(max(0, limit)))
    }
  }

  package func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    state.withLock { state in
      guard let started = state.tasks[id]?.starting(on: nodeID, at: date) else { return nil }
      state.put(started)
      if let index = state.queue.firstIndex(of: id) { state.queue.remove(at: index) }
      return started
    }
  }

  package func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws
    -> TaskRecord?
  {
    state.withLock { state in
      guard let finished = state.tasks[id]?.finishing(with: outcome, by: nodeID, at: date) else { return nil }
      state.put(finished)
      return finished
    }
  }

  package func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date)
    async throws -> TaskRecord?
  {
    state.withLock { state in
      guard let finished = state.tasks[id]?.finishingLate(with: outcome, attempt: attempt, by: nodeID, at: date) else {
        return nil
      }
      state.put(finished)
      return finished
    }
  }

  package func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    state.withLock { state in
      guard let task = state.tasks[id], task.status == .running, task.nodeID == nodeID else { return nil }
      let changed = task.requeued(reason: reason, at: date)
      state.put(changed)
      if changed.status == .queued { state.queue.append(id) }
      return changed
    }
  }

  package func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    state.withLock { state in
      let running = state.tasks.values.filter { $0.status == .running && (nodeID == nil || $0.nodeID == nodeID) }
      return running.sorted { $0.createdAt < $1.createdAt }.map { task in
        let changed = task.requeued(reason: reason, at: date)
        state.put(changed)
        if changed.status == .queued { state.queue.append(task.id) }
        return changed
      }
    }
  }

  package func counts() async throws -> [TaskStatus: Int] {
    state.withLock { $0.counts.filter { $0.value != 0 } }
  }
}
