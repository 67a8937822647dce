import Synchronization

// How tests wait: on events, never on the time passing. The one time limit here bounds a wait
// that should end at once, so a broken part fails its test instead of hanging the suite.

/// Returns once `condition` holds, checking it now and again after each event of any of
/// `events` (subscribe before the action whose effect you wait for, so no event is missed);
/// `false` if it still does not hold when they all end or `limit` passes.
public func until<each Events: AsyncSequence & Sendable>(
  _ events: repeat each Events, limit: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws -> Bool {
  if try await condition() { return true }
  let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  let ended = Recorder<Void>()
  var count = 0
  for _ in repeat each events { count += 1 }
  let sources = count
  return try await withThrowingTaskGroup(of: Void.self) { group in
    for source in repeat each events {
      group.addTask {
        do { for try await _ in source { tick.yield() } } catch {}
        ended.append(())
        if ended.all.count == sources { tick.finish() }
      }
    }
    group.addTask {
      await limitPassed(limit)
      tick.finish()
    }
    defer { group.cancelAll() }
    for await _ in ticks where try await condition() { return true }
    return try await condition()
  }
}

/// Suspends until the task is cancelled, then throws `CancellationError`: a function that
/// "never ends" in a test, ended by its caller's cancellation (a timeout, a lost link).
public func hang() async throws -> Never {
  let (stream, continuation) = AsyncStream.makeStream(of: Never.self)
  for await _ in stream {}  // ends when the task is cancelled
  continuation.finish()  // (held until then: a stream whose continuation goes may end)
  throw CancellationError()
}

/// A signal a handler fires and a test awaits, with a limit. Values fired while no one waits
/// are kept, in order; a wait that gives up at its limit takes nothing, and the next wait
/// still gets the next value.
public final class Signal: Sendable {
  private struct State {
    var values: [String] = []
    var waiters: [UInt64: CheckedContinuation<String?, Never>] = [:]
    var abandoned: Set<UInt64> = []
    var next: UInt64 = 0
  }
  private let state = Mutex(State())

  public init() {}

  public func fire(_ value: String = "") {
    let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
      if let first = state.waiters.keys.min() { return state.waiters.removeValue(forKey: first) }
      state.values.append(value)
      return nil
    }
    waiter?.resume(returning: value)
  }

  /// The next value fired, or nil when none comes within `limit`.
  public func wait(upTo limit: Duration = .seconds(30)) async -> String? {
    let id = state.withLock { state in
      state.next += 1
      return state.next
    }
    return await withTaskGroup(of: String?.self) { group in
      group.addTask { await self.take(id) }
      group.addTask {
        await limitPassed(limit)
        if !Task.isCancelled { self.abandon(id) }  // (cancelled: the value came first)
        return nil
      }
      defer { group.cancelAll() }
      return await group.next()!
    }
  }

  private func take(_ id: UInt64) async -> String? {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
        let ready = state.withLock { state -> String?? in
          if state.abandoned.remove(id) != nil { return .some(nil) }
          if !state.values.isEmpty { return .some(state.values.removeFirst()) }
          state.waiters[id] = continuation
          return .none
        }
        if let ready { continuation.resume(returning: ready) }
      }
    } onCancel: {
      abandon(id)
    }
  }

  /// The wait `id` ends without a value (now, or as soon as it registers).
  private func abandon(_ id: UInt64) {
    let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
      if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
      state.abandoned.insert(id)
      return nil
    }
    waiter?.resume(returning: nil)
  }
}

/// Collects values from concurrent code.
public final class Recorder<Value: Sendable>: Sendable {
  private let values = Mutex<[Value]>([])
  public init() {}
  public func append(_ value: Value) { values.withLock { $0.append(value) } }
  public var all: [Value] { values.withLock { $0 } }
}

/// Checks `condition` every 20 ms until it holds or `limit` passes — only for what no event
/// tells: a process outside ours (a child's files, an outside server's readiness, the
/// kernel's process table).
public func eventually(limit: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
  let deadline = ContinuousClock.now + limit
  while ContinuousClock.now < deadline {
    if try await condition() { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return try await condition()
}

/// Closed until a test opens it; what waits on it ends when it opens, or throws
/// `CancellationError` when its task is cancelled first (a function that holds a worker until
/// the test lets it go).
public final class Gate: Sendable {
  private let state = Mutex<(open: Bool, next: UInt64, waiters: [UInt64: CheckedContinuation<Void, any Error>])>((false, 0, [:]))

  public init() {}

  public func open() {
    let waiters = state.withLock { state in
      state.open = true
      defer { state.waiters = [:] }
      return state.waiters.values
    }
    for waiter in waiters { waiter.resume() }
  }

  public func wait() async throws {
    let id = state.withLock { state in
      state.next += 1
      return state.next
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let outcome = state.withLock { state -> Result<Void, any Error>? in
          if state.open { return .success(()) }
          if Task.isCancelled { return .failure(CancellationError()) }
          state.waiters[id] = continuation
          return nil
        }
        if let outcome { continuation.resume(with: outcome) }
      }
    } onCancel: {
      state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
    }
  }
}

/// Returns when `limit` has passed (or the task is cancelled): the one bound on the waits
/// above, so a broken part fails its test instead of hanging the suite. Not a wait itself:
/// what is awaited ends it sooner.
public func limitPassed(_ limit: Duration) async {
  try? await Task.sleep(for: limit)
}
