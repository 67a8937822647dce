public import Foundation

/// Where tasks live. Every method is atomic: a state change either happened completely or
/// not at all, so a gateway killed at any moment loses no acknowledged task.
///
/// ``SQLiteTaskStore`` keeps them in a file (the default); ``MemoryTaskStore`` in memory (for
/// tests and to measure what persistence costs). A PostgreSQL store implements the same
/// protocol.
package protocol TaskStore: Sendable {
  /// Stores a new task (status `queued`). Once this returns, the task survives a crash.
  func insert(_ task: TaskRecord) async throws

  /// Bytes free and in all on the disk the store writes to; nil when it cannot say (a
  /// database server elsewhere).
  func diskSpace() -> DiskSpace?

  /// Inserts `task` under an idempotency key, atomically: if a task was stored under `key`
  /// before, nothing is inserted and that task (as it is now) comes back with the fingerprint
  /// of the request that made it.
  func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert

  /// The task stored under an idempotency key, as it is now, with its request's fingerprint.
  func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)?

  func task(_ id: String) async throws -> TaskRecord?

  /// Tasks newest first, optionally of one status, `limit` at a time from `offset`.
  func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord]

  /// The oldest queued tasks, in the order they should run.
  func queued(limit: Int) async throws -> [TaskRecord]

  /// Marks a queued task as running on `nodeID` and counts the attempt. `nil` when the task is
  /// not queued any more (cancelled meanwhile, or taken by another scheduler).
  func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord?

  /// Records how a running (or queued, for a cancellation) task ended. With `nodeID`, only if
  /// the task is running on that node (a late answer from a node the task was taken from
  /// changes nothing). `nil` when nothing changed.
  func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord?

  /// Puts one task running on `nodeID` back in the queue (or fails it after its last attempt).
  /// `nil` when it is not running there.
  func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord?

  /// Puts running tasks back in the queue — those of one node, or all (at startup, after a
  /// crash). A task that has used all its attempts fails with `reason` instead. Returns the
  /// tasks changed.
  func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord]

  /// How many tasks there are of each status.
  func counts() async throws -> [TaskStatus: Int]

  /// How many tasks have `status` (the queue's length, for an estimate).
  func count(_ status: TaskStatus) async throws -> Int

  /// Records the answer of attempt `attempt` that node `nodeID` hands in late (``TaskRecord/finishingLate(with:attempt:by:at:)``):
  /// the task went back to the queue after that attempt because its gateway died before it
  /// recorded the answer, and has not started again. Returns the record, or `nil` when it does
  /// not apply.
  func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date) async throws
    -> TaskRecord?

  /// Starts queued tasks, oldest first, in one go: `choose` is offered up to `limit` of them
  /// (their code and call may be left out) and names the node for each it starts; the tasks
  /// started come back, complete, started at `now()` (read once the queue was read, so never
  /// before a task it hands over was created). A task that another scheduler starts meanwhile
  /// is not started (on a shared store, tasks another gateway is choosing from are not offered).
  ///
  /// On a shared store the offer also holds the other gateways' nodes that could take a task
  /// now (``PoolNode``), so the choice is fair across gateways; the gateways a choice leaves
  /// tasks to (``QueueChoice/wake``) are woken (a ``TaskNotice/wake(gateway:)`` notice).
  func startQueued(
    limit: Int, now: @escaping @Sendable () -> Date, choose: @escaping @Sendable (QueueOffer) -> QueueChoice
  ) async throws -> [TaskRecord]
}

/// What the dispatcher chooses from: the oldest queued tasks, and (on a shared store) the
/// other gateways' nodes that have a free slot.
package struct QueueOffer: Sendable {
  package var tasks: [TaskRecord]
  package var others: [PoolNode]

  package init(tasks: [TaskRecord], others: [PoolNode] = []) {
    self.tasks = tasks
    self.others = others
  }
}

/// What the dispatcher chose: a node for each task it starts, and the gateways to wake for
/// tasks it left to their nodes (which the seed-004 rules serve first).
package struct QueueChoice: Sendable, Equatable {
  package var picks: [QueuePick]
  package var wake: Set<String>

  package init(picks: [QueuePick] = [], wake: Set<String> = []) {
    self.picks = picks
    self.wake = wake
  }
}

/// A task the dispatcher chose a node for.
package struct QueuePick: Sendable, Equatable {
  package var taskID: String
  package var nodeID: String

  package init(taskID: String, nodeID: String) {
    self.taskID = taskID
    self.nodeID = nodeID
  }
}

/// What an insert under an idempotency key did.
package struct IdempotentInsert: Sendable {
  package var task: TaskRecord
  /// The fingerprint of the request the task was made for.
  package var fingerprint: String
  /// Whether `task` was inserted now (false: it was there from an earlier request).
  package var inserted: Bool

  package init(task: TaskRecord, fingerprint: String, inserted: Bool) {
    self.task = task
    self.fingerprint = fingerprint
    self.inserted = inserted
  }
}

/// Free and total bytes of a disk.
package struct DiskSpace: Sendable, Equatable {
  package var free: Int64
  package var total: Int64

  package init(free: Int64, total: Int64) {
    self.free = free
    self.total = total
  }

  /// Too little left to write safely: under 64 MiB, or under 5 % of a small disk.
  package var isLow: Bool { free < min(64 << 20, total / 20) }

  /// The space free on the disk holding `path` (a file or a folder).
  package static func of(_ path: String) -> DiskSpace? {
    var folder = path
    var isFolder: ObjCBool = false
    if !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
      folder = (path as NSString).deletingLastPathComponent
    }
    guard let attributes = try? FileManager.default.attributesOfFileSystem(forPath: folder.isEmpty ? "." : folder),
      let free = (attributes[.systemFreeSize] as? NSNumber)?.int64Value, let total = (attributes[.systemSize] as? NSNumber)?.int64Value
    else { return nil }
    return DiskSpace(free: free, total: total)
  }
}

extension TaskStore {
  /// For stores that cannot say.
  package func diskSpace() -> DiskSpace? { nil }

  /// For stores that keep no keys: none.
  package func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? { nil }

  /// For stores that keep no keys: refuses, rather than insert twice.
  package func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    throw TaskCenterError(code: .internalError, message: "this task store does not keep idempotency keys")
  }

  package func tasks(status: TaskStatus? = nil, limit: Int = 100) async throws -> [TaskRecord] {
    try await tasks(status: status, limit: limit, offset: 0)
  }

  package func count(_ status: TaskStatus) async throws -> Int { try await counts()[status] ?? 0 }

  /// ``queued(limit:)``, then each pick's ``start(_:on:at:)`` at once (in the SQLite store they
  /// share one group commit). Throws only when no start succeeded and one failed.
  package func startQueued(
    limit: Int, now: @escaping @Sendable () -> Date, choose: @escaping @Sendable (QueueOffer) -> QueueChoice
  ) async throws -> [TaskRecord] {
    let queued = try await queued(limit: limit)
    let date = now()
    let picks = choose(QueueOffer(tasks: queued)).picks
    return try await withThrowingTaskGroup(of: TaskRecord?.self) { group in
      for pick in picks {
        group.addTask { try await self.start(pick.taskID, on: pick.nodeID, at: date) }
      }
      var started: [TaskRecord] = []
      var failure: (any Error)?
      while let result = await group.nextResult() {
        switch result {
        case .success(let record): if let record { started.append(record) }
        case .failure(let error): failure = failure ?? error
        }
      }
      if let failure, started.isEmpty { throw failure }
      return started
    }
  }
}

extension TaskRecord {
  /// The record after `outcome`, if the task may still end (not final).
  package func finishing(with outcome: TaskOutcome, by nodeID: String? = nil, at date: Date) -> TaskRecord? {
    guard !status.isFinal else { return nil }
    if let nodeID, status != .running || self.nodeID != nodeID { return nil }
    var task = self
    task.status = outcome.status
    task.output = outcome.output
    task.stderr = outcome.stderr
    task.exitStatus = outcome.exitStatus
    task.errorMessage = outcome.errorMessage
    task.executionTime = outcome.executionTime
    task.finishedAt = date
    return task
  }

  /// The record once the answer of attempt `attempt`, run on `nodeID`, arrives late: the task
  /// was put back in the queue after that attempt (its gateway went away before recording the
  /// answer) and has not started again. `nil` otherwise — ended, running, or started again.
  package func finishingLate(
    with outcome: TaskOutcome, attempt: Int, by nodeID: String, at date: Date
  ) -> TaskRecord? {
    guard status == .queued, attempts == attempt, outcome.status != .cancelled else { return nil }
    var task = self
    task.status = .running
    task.nodeID = nodeID
    return task.finishing(with: outcome, by: nodeID, at: date)
  }

  /// The record when its node went away: queued again, or failed after its last attempt.
  package func requeued(reason: String, at date: Date) -> TaskRecord {
    var task = self
    if attempts >= maxAttempts {
      task.status = .failed
      task.errorMessage = "\(reason) (after \(attempts) attempt\(attempts == 1 ? "" : "s"))"
      task.finishedAt = date
    } else {
      task.status = .queued
      task.errorMessage = reason
      task.nodeID = nil
      task.startedAt = nil
    }
    return task
  }

  /// The record once `nodeID` starts it.
  package func starting(on nodeID: String, at date: Date) -> TaskRecord? {
    guard status == .queued else { return nil }
    var task = self
    task.status = .running
    task.nodeID = nodeID
    task.startedAt = date
    task.attempts += 1
    return task
  }
}
