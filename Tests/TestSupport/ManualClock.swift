public import Foundation
import Synchronization

/// A clock that moves only when a test moves it: the loops of the part under test sleep on it,
/// and the test advances it instead of waiting.
///
/// Unlike swift-clocks' `TestClock`, it tells the test when a loop is asleep on it
/// (``sleepers(atLeast:)``): a part under test does real I/O (sockets, SQLite) between its
/// sleeps, so yielding a few times is no proof that a loop went back to sleep, and an advance
/// made before would be lost to it.
///
/// ```swift
/// let clock = ManualClock()
/// let center = TaskCenter(server: server, store: store, clock: clock, now: clock.wallTime)
/// await clock.sleepers(atLeast: 1)
/// await clock.advance(by: .seconds(5))   // every sleep due by then ends now
/// ```
public final class ManualClock: Clock, Sendable {
  public struct Instant: InstantProtocol {
    public let offset: Duration
    public init(offset: Duration) { self.offset = offset }
    public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
    public func duration(to other: Instant) -> Duration { other.offset - offset }
    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
  }

  private struct State {
    var now = Instant(offset: .zero)
    var sleepers: [UInt64: (deadline: Instant, continuation: CheckedContinuation<Void, any Error>)] = [:]
    var nextID: UInt64 = 0
    /// Tests waiting for so many sleepers.
    var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    mutating func watchersMet() -> [CheckedContinuation<Void, Never>] {
      let count = sleepers.count
      let met = watchers.filter { $0.count <= count }.map(\.continuation)
      watchers.removeAll { $0.count <= count }
      return met
    }
  }

  private let state = Mutex(State())
  /// The wall time at the clock's start.
  public let start: Date

  public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { self.start = start }

  public var now: Instant { state.withLock { $0.now } }
  public var minimumResolution: Duration { .zero }

  /// The wall time now: ``start`` plus how far the clock moved.
  public var date: Date {
    let offset = now.offset.components
    return start.addingTimeInterval(Double(offset.seconds) + Double(offset.attoseconds) / 1e18)
  }

  /// ``date`` as a function, for the parts that take one (`now:`).
  public var wallTime: @Sendable () -> Date { { [self] in date } }

  /// How many sleeps are waiting now.
  public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

  public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
    let id = state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        // Parked under the lock, or ended at once: cancelled already, or due already.
        let (outcome, met) = state.withLock { state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
          if Task.isCancelled { return (.failure(CancellationError()), []) }
          if deadline <= state.now { return (.success(()), []) }
          state.sleepers[id] = (deadline, continuation)
          return (nil, state.watchersMet())
        }
        for watcher in met { watcher.resume() }
        if let outcome { continuation.resume(with: outcome) }
      }
    } onCancel: {
      state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
    }
  }

  /// Moves the clock on by `duration`: every sleep due by then ends (each once, however far
  /// the clock jumps; a loop that sleeps again sleeps from the new time).
  public func advance(by duration: Duration) async {
    let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      state.now = state.now.advanced(by: duration)
      let now = state.now
      let ids = state.sleepers.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }.map(\.key)
      return ids.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
    }
    for continuation in due { continuation.resume() }
    await Task.yield()
  }

  /// Returns once at least `count` sleeps wait on this clock (an advance wakes them).
  public func sleepers(atLeast count: Int) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let met = state.withLock { state -> Bool in
        if state.sleepers.count >= count { return true }
        state.watchers.append((count, continuation))
        return false
      }
      if met { continuation.resume() }
    }
  }
}
