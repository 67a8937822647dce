import NodeComm
import EasyRemoteMetrics
public import Foundation
import Synchronization

/// How the task store is doing, as `/health` reports it.
public enum StoreStatus: Sendable, Equatable {
  case healthy
  /// A write failed (a full disk, usually) and none has succeeded since.
  case degraded(reason: String, since: Date)
}

/// A task store that notes whether its writes succeed (a failed call makes it
/// ``StoreStatus/degraded(reason:since:)``, the next successful write healthy again), and
/// counts for the metrics what its writes mean: tasks submitted, attempts started (and the
/// first one's wait in the queue), tasks finished (and how long they ran), requeues, and how
/// long each commit took.
struct ObservedTaskStore: TaskStore {
  let base: any TaskStore
  let health: StoreHealth
  let instruments: Instruments?

  func insert(_ task: TaskRecord) async throws {
    try await write("insert") { try await base.insert(task) }
    submitted(task)
  }

  func diskSpace() -> DiskSpace? { base.diskSpace() }

  func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    let inserted = try await write("insert") { try await base.insert(task, idempotencyKey: key, fingerprint: fingerprint) }
    if inserted.inserted { submitted(task) }
    return inserted
  }

  func task(_ id: String) async throws -> TaskRecord? { try await read { try await base.task(id) } }

  func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
    try await read { try await base.task(idempotencyKey: key) }
  }

  func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    try await read { try await base.tasks(status: status, limit: limit, offset: offset) }
  }

  func queued(limit: Int) async throws -> [TaskRecord] { try await read { try await base.queued(limit: limit) } }

  func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    let started = try await write("start") { try await base.start(id, on: nodeID, at: date) }
    if let started { countStart(started, at: date) }
    return started
  }

  func startQueued(
    limit: Int, now: @escaping @Sendable () -> Date, choose: @escaping @Sendable (QueueOffer) -> QueueChoice
  ) async throws -> [TaskRecord] {
    let started = try await write("start") { try await base.startQueued(limit: limit, now: now, choose: choose) }
    for task in started { countStart(task, at: task.startedAt ?? now()) }
    return started
  }

  private func countStart(_ started: TaskRecord, at date: Date) {
    guard let instruments else { return }
    instruments.counter(MetricCatalogue.taskAttempts, ["kind": started.kind.rawValue]).increment()
    if started.attempts == 1 {
      instruments.record(
        MetricCatalogue.taskQueueWait, ["kind": started.kind.rawValue], seconds: date.timeIntervalSince(started.createdAt))
    }
  }

  func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
    let finished = try await write("finish") { try await base.finish(id, with: outcome, by: nodeID, at: date) }
    if let finished, let instruments {
      let labels: Instruments.Labels = ["kind": finished.kind.rawValue, "status": finished.status.rawValue]
      instruments.counter(MetricCatalogue.tasksFinished, labels).increment()
      if let started = finished.startedAt {
        instruments.record(MetricCatalogue.taskRun, labels, seconds: (finished.finishedAt ?? date).timeIntervalSince(started))
      }
    }
    return finished
  }

  func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date) async throws
    -> TaskRecord?
  {
    try await write("finish") { try await base.finishLate(id, attempt: attempt, with: outcome, by: nodeID, at: date) }
  }

  func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    let requeued = try await write("requeue") { try await base.requeue(id, from: nodeID, reason: reason, at: date) }
    if let requeued { countRequeues([requeued]) }
    return requeued
  }

  func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    let requeued = try await write("requeue") { try await base.requeueRunning(on: nodeID, reason: reason, at: date) }
    countRequeues(requeued)
    return requeued
  }

  func counts() async throws -> [TaskStatus: Int] { try await read { try await base.counts() } }

  func count(_ status: TaskStatus) async throws -> Int { try await read { try await base.count(status) } }

  private func submitted(_ task: TaskRecord) {
    instruments?.counter(MetricCatalogue.tasksSubmitted, ["kind": task.kind.rawValue]).increment()
  }

  /// Tasks that went back to the queue (those past their last attempt failed instead, and
  /// count as finished).
  private func countRequeues(_ tasks: [TaskRecord]) {
    guard let instruments else { return }
    for task in tasks {
      if task.status == .queued {
        instruments.counter(MetricCatalogue.taskRequeues, ["kind": task.kind.rawValue]).increment()
      } else if task.status.isFinal {
        instruments.counter(MetricCatalogue.tasksFinished, ["kind": task.kind.rawValue, "status": task.status.rawValue])
          .increment()
      }
    }
  }

  private func write<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
    let start = ContinuousClock.now
    do {
      let value = try await body()
      health.succeeded()
      instruments?.record(MetricCatalogue.storeCommit, ["operation": operation], since: start)
      return value
    } catch {
      health.failed(error)
      throw error
    }
  }

  private func read<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch {
      health.failed(error)
      throw error
    }
  }
}

/// The store's status, shared by the observed store and the task center.
final class StoreHealth: Sendable {
  private let state = Mutex<StoreStatus>(.healthy)
  /// Told when the status changes.
  let feed = ChangeFeed()

  var status: StoreStatus { state.withLock { $0 } }

  func succeeded() {
    let changed = state.withLock { status in
      defer { status = .healthy }
      return status != .healthy
    }
    if changed { feed.changed() }
  }

  func failed(_ error: any Error) {
    let reason = (error as? TaskCenterError)?.details ?? String(describing: error)
    let changed = state.withLock { status in
      if case .degraded = status { return false }
      status = .degraded(reason: reason, since: Date())
      return true
    }
    if changed { feed.changed() }
  }
}
