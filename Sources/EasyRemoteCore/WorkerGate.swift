package import NodeComm
import Synchronization

/// At most `limit` holders at once; the rest wait first come, first served, up to
/// `queueLimit` of them; beyond that they are refused. A compute node's `maxWorkers` and the
/// gateway's are each one of these.
package final class WorkerGate: Sendable {
  package let limit: Int
  package let queueLimit: Int

  private struct State {
    var running = 0
    /// Tickets in line, first come first: each taken when its holder was refused a place,
    /// whether or not it has parked yet (a place freed before it parked is kept for it).
    var order: [UInt64] = []
    /// Parked tickets.
    var waiting: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    /// Tickets given a place before they parked: they take it without waiting.
    var granted: Set<UInt64> = []
    var nextTicket: UInt64 = 0
  }

  private let state = Mutex(State())
  private let feed: ChangeFeed
  /// What ``enter(within:refusal:)`` waits on: its owner's clock.
  private let timeline: Timeline

  /// - Parameter feed: told of each change of ``running`` and ``queued`` (its owner's, to
  ///   tell of its other changes on the same feed).
  package init(limit: Int, queueLimit: Int, feed: ChangeFeed = ChangeFeed(), timeline: Timeline = .continuous) {
    self.feed = feed
    self.timeline = timeline
    self.limit = max(1, limit)
    self.queueLimit = max(0, queueLimit)
  }

  /// Holders now.
  package var running: Int { state.withLock { $0.running } }
  /// Waiting now.
  package var queued: Int { state.withLock { $0.order.count } }

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
      if state.running < limit && state.order.isEmpty {
        state.running += 1
        return nil
      }
      guard state.order.count < queueLimit else { throw refusal() }
      state.nextTicket += 1
      state.order.append(state.nextTicket)
      return state.nextTicket
    }
    feed.changed()
    guard let ticket else { return }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        let outcome = state.withLock { state -> Result<Void, any Error>? in
          if state.granted.remove(ticket) != nil { return .success(()) }  // a place was kept for it
          if Task.isCancelled {
            state.order.removeAll { $0 == ticket }
            return .failure(CancellationError())
          }
          state.waiting[ticket] = continuation
          return nil
        }
        if let outcome { continuation.resume(with: outcome) }
      }
    } onCancel: {
      // (A ticket already given its place keeps it: the enter returns, and its leave follows.)
      let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
        guard !state.granted.contains(ticket) else { return nil }
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
      group.addTask { [timeline] in
        try await timeline.sleep(for: timeout)
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
      if state.running < limit && state.order.isEmpty {
        state.running += 1
        return true
      }
      if state.order.count >= queueLimit { throw refusal() }
      return false
    }
    if entered { feed.changed() }
    return entered
  }

  /// Gives a place back: the first in line takes it over (parked, or about to park).
  package func leave() {
    let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
      guard !state.order.isEmpty else {
        state.running -= 1
        return nil
      }
      let ticket = state.order.removeFirst()
      guard let waiter = state.waiting.removeValue(forKey: ticket) else {
        state.granted.insert(ticket)  // it takes the place when it parks
        return nil
      }
      return waiter  // the place passes on
    }
    feed.changed()
    next?.resume()
  }
}
