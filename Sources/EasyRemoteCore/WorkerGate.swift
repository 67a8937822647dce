import NodeComm
import Synchronization

/// At most `limit` holders at once; the rest wait first come, first served, up to
/// `queueLimit` of them; beyond that they are refused. A compute node's `maxWorkers` and the
/// gateway's are each one of these.
package final class WorkerGate: Sendable {
  package let limit: Int
  package let queueLimit: Int

  private struct State {
    var running = 0
    var waiting: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    var order: [UInt64] = []
    var nextTicket: UInt64 = 0
  }

  private let state = Mutex(State())
  private let feed = ChangeFeed()

  package init(limit: Int, queueLimit: Int) {
    self.limit = max(1, limit)
    self.queueLimit = max(0, queueLimit)
  }

  /// Holders now.
  package var running: Int { state.withLock { $0.running } }
  /// Waiting now.
  package var queued: Int { state.withLock { $0.waiting.count } }

  /// A tick each time ``running`` or ``queued`` changes, from now until the sequence is
  /// dropped (what waits for a count, waits on this).
  package func changes() -> AsyncStream<Void> { feed.changes() }

  /// Takes a place, waiting for one when all are held; every `enter` that returns is
  /// matched by one ``leave()``.
  ///
  /// - Throws: `refusal()` when the queue is full; `CancellationError` when the task is
  ///   cancelled while waiting (it then holds nothing).
  package func enter(refusal: () -> any Error) async throws {
    let ticket: UInt64? = try state.withLock { state in
      if state.running < limit && state.waiting.isEmpty {
        state.running += 1
        return nil
      }
      guard state.waiting.count < queueLimit else { throw refusal() }
      state.nextTicket += 1
      return state.nextTicket
    }
    feed.changed()
    guard let ticket else { return }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let cancelled = state.withLock { state -> Bool in
          if Task.isCancelled { return true }
          state.waiting[ticket] = continuation
          state.order.append(ticket)
          return false
        }
        feed.changed()
        if cancelled { continuation.resume(throwing: CancellationError()) }
      }
    } onCancel: {
      let waiter = state.withLock { state in
        state.order.removeAll { $0 == ticket }
        return state.waiting.removeValue(forKey: ticket)
      }
      feed.changed()
      waiter?.resume(throwing: CancellationError())
    }
  }

  /// Takes a place as ``enter(refusal:)`` does, waiting at most `timeout`.
  ///
  /// - Returns: false when `timeout` passed first (then it holds nothing).
  package func enter(within timeout: Duration, refusal: @escaping @Sendable () -> any Error) async throws -> Bool {
    if try tryEnter(refusal: refusal) { return true }
    return try await withThrowingTaskGroup(of: Bool.self) { group in
      group.addTask {
        try await self.enter(refusal: refusal)
        return true
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        return false
      }
      let entered = try await group.next() ?? false
      group.cancelAll()
      if !entered {
        // A place taken in the same instant the time ran out is given back.
        while let other = try? await group.next() { if other { leave() } }
      }
      return entered
    }
  }

  /// Takes a free place without waiting; false when there is none (or others wait).
  private func tryEnter(refusal: () -> any Error) throws -> Bool {
    let entered = try state.withLock { state in
      if state.running < limit && state.waiting.isEmpty {
        state.running += 1
        return true
      }
      if state.waiting.count >= queueLimit { throw refusal() }
      return false
    }
    if entered { feed.changed() }
    return entered
  }

  /// Gives a place back: the first waiter takes it over.
  package func leave() {
    let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
      while !state.order.isEmpty {
        let ticket = state.order.removeFirst()
        if let waiter = state.waiting.removeValue(forKey: ticket) { return waiter }  // the place passes on
      }
      state.running -= 1
      return nil
    }
    feed.changed()
    next?.resume()
  }
}
