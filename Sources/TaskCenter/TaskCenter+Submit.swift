public import EasyRemoteCore
public import Foundation
import NodeComm
import Sandbox

// Submitting, reading, waiting for and cancelling tasks: validation names the field at fault.
extension TaskCenter {
  /// Validates and stores a new task; it is queued (and, if a node is idle, started) at once.
  ///
  /// - Throws: ``TaskCenterError`` `invalidRequest` naming the field, `resourceUnavailable`
  ///   when no node could ever run it, `internalError` when the store fails.
  @discardableResult
  public func submit(_ submission: TaskSubmission) async throws -> TaskRecord {
    let task = try validate(submission)
    try await store.insert(task)
    emit(.taskCreated, TaskView(task: task))
    kick()
    return task
  }

  /// ``submit(_:)`` that a client may repeat safely: the first request with `idempotencyKey`
  /// stores the task; a repeat with the same key and the same submission gets that task
  /// (`replayed`) and stores nothing; the same key with another submission is refused
  /// (`IDEMPOTENCY_CONFLICT`).
  public func submit(_ submission: TaskSubmission, idempotencyKey: String) async throws -> (task: TaskRecord, replayed: Bool) {
    guard !idempotencyKey.isEmpty, idempotencyKey.utf8.count <= 255,
      idempotencyKey.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value <= 0x7e })
    else {
      throw TaskCenterError.invalid("Idempotency-Key", "an idempotency key is 1-255 visible ASCII characters")
    }
    let fingerprint = Self.fingerprint(submission)
    // A repeat gets its task even when it would not be accepted now (its function no longer
    // served, say): the first request was.
    let stored: IdempotentInsert
    if let earlier = try await store.task(idempotencyKey: idempotencyKey) {
      stored = IdempotentInsert(task: earlier.task, fingerprint: earlier.fingerprint, inserted: false)
    } else {
      stored = try await store.insert(try validate(submission), idempotencyKey: idempotencyKey, fingerprint: fingerprint)
    }
    guard stored.fingerprint == fingerprint else {
      throw TaskCenterError(
        code: .idempotencyConflict,
        message: "the Idempotency-Key '\(idempotencyKey)' was used for another request (task \(stored.task.id))",
        details: "task_id: \(stored.task.id)")
    }
    if stored.inserted {
      emit(.taskCreated, TaskView(task: stored.task))
      kick()
    }
    return (stored.task, !stored.inserted)
  }

  /// A stable digest of what a submission asks for (FNV-1a over its canonical JSON).
  static func fingerprint(_ submission: TaskSubmission) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let bytes = (try? encoder.encode(submission)) ?? Data()
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
  }

  func validate(_ submission: TaskSubmission) throws -> TaskRecord {
    let timeout = submission.timeout ?? configuration.defaultTimeout
    guard timeout > 0, timeout <= configuration.maxTimeout, timeout.isFinite else {
      throw TaskCenterError.invalid(
        "timeout", "timeout must be more than 0 and at most \(Int(configuration.maxTimeout)) seconds, got \(timeout)")
    }
    let resources = submission.resources ?? ResourceRequest()
    let maxCores = Double(InputBounds.cores.upperBound)
    guard resources.cpu > 0, resources.cpu <= maxCores, resources.cpu.isFinite else {
      throw TaskCenterError.invalid(
        "resources.cpu", "resources.cpu must be a positive number of cores, at most \(Int(maxCores)), got \(resources.cpu)")
    }
    let maxAttempts = submission.maxAttempts ?? configuration.maxAttempts
    try TaskCenterError.bounded { () throws(InputBoundsError) in
      try InputBounds.check(resources.memoryMB, InputBounds.memoryMB, field: "resources.memory")
      try InputBounds.check(maxAttempts, InputBounds.attempts, field: "max_attempts")
    }
    let now = self.now()
    guard server.withMembership({ scheduler.couldRun(resources, among: $0.members.values, at: now) }) else {
      throw TaskCenterError(
        code: .resourceUnavailable, message: "no node can provide \(resources.cpu) cores and \(resources.memoryMB) MiB",
        details: "resources: cpu \(resources.cpu), memory \(resources.memoryMB)")
    }
    switch (submission.code, submission.function) {
    case (let code?, nil):
      guard !code.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
        throw TaskCenterError.invalid("code", "code is empty")
      }
      guard code.utf8.count <= configuration.maxCodeBytes else {
        throw TaskCenterError.invalid(
          "code", "code is \(code.utf8.count) bytes; the limit is \(configuration.maxCodeBytes)")
      }
      return TaskRecord.code(code, timeout: timeout, resources: resources, maxAttempts: maxAttempts)
    case (nil, let function?):
      // Its nodes may be behind another gateway on the same store: that gateway will start it.
      guard !server.nodes(serving: function).isEmpty || server.peersServe(function) else {
        throw TaskCenterError(
          code: .functionNotFound, message: "no node serves a function named '\(function)'", details: "field: function")
      }
      do {
        return try TaskRecord.function(
          function, args: submission.args ?? [], timeout: timeout, resources: resources, maxAttempts: maxAttempts)
      } catch {
        throw TaskCenterError.invalid("args", "the arguments cannot be encoded: \(error)")
      }
    case (nil, nil):
      throw TaskCenterError.invalid("code", "a task needs either code or a function")
    case (.some, .some):
      throw TaskCenterError.invalid("function", "a task has either code or a function, not both")
    }
  }

  /// The task `id`. - Throws: `taskNotFound`.
  public func task(_ id: String) async throws -> TaskRecord {
    guard let task = try await store.task(id) else { throw TaskCenterError.notFound(id) }
    return task
  }

  public func tasks(status: TaskStatus? = nil, limit: Int = 100, offset: Int = 0) async throws -> [TaskRecord] {
    try await store.tasks(status: status, limit: limit, offset: offset)
  }

  /// Waits until task `id` is final, or `timeout` passes; returns it as it is then.
  public func wait(_ id: String, timeout: Duration) async throws -> TaskRecord {
    let key = UUID()
    let latch = Latch()
    // Registered before the store is read, so a finish in between is not missed.
    state.withLock { $0.waiters[id, default: [:]][key] = latch }
    defer { _ = state.withLock { $0.waiters[id]?.removeValue(forKey: key) } }
    let current = try await task(id)
    if current.status.isFinal { return current }
    await latch.wait(upTo: timeout, on: clock)
    return try await task(id)
  }

  /// Cancels task `id`: a queued task never starts; a running one is killed on its node.
  /// A task already final is returned as it is.
  public func cancel(_ id: String) async throws -> TaskRecord {
    let current = try await task(id)
    guard !current.status.isFinal else { return current }
    let outcome = TaskOutcome(status: .cancelled, errorMessage: "cancelled by request")
    guard let cancelled = try await store.finish(id, with: outcome, by: nil, at: now()) else { return try await task(id) }
    finished(cancelled)
    if current.status == .running, let nodeID = current.nodeID {
      _ = try? await server.call(node: nodeID, TaskMethods.abort, TaskQuery(id: id), as: Empty.self, timeout: .seconds(5))
    }
    return cancelled
  }

  /// Counts of tasks by status.
  public func counts() async throws -> [TaskStatus: Int] { try await store.counts() }

  /// How many tasks have `status` (cheaper than ``counts()`` on a large PostgreSQL store).
  public func count(_ status: TaskStatus) async throws -> Int { try await store.count(status) }
}
