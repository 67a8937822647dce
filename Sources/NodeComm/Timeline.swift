/// A clock as a node keeps time on it: how far it moved since the node was made, and sleeping
/// on it. Made from any `Clock` — `ContinuousClock` by default, a clock the test moves in
/// tests — so the loops that wait (link heartbeats, reconnection backoff) can be driven
/// without waiting.
public struct Timeline: Sendable {
  /// How far the clock moved since this timeline was made.
  public let elapsed: @Sendable () -> Duration
  private let sleeper: @Sendable (Duration) async throws -> Void

  public init<C: Clock>(_ clock: C) where C.Duration == Duration {
    let start = clock.now
    elapsed = { start.duration(to: clock.now) }
    sleeper = { try await clock.sleep(for: $0) }
  }

  /// Sleeps for `duration` of the clock's time; throws `CancellationError` when cancelled.
  public func sleep(for duration: Duration) async throws { try await sleeper(duration) }

  /// The real time.
  public static let continuous = Timeline(ContinuousClock())
}
