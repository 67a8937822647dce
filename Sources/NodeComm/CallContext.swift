/// What a handler knows about the call it serves.
public struct CallContext: Sendable {
  /// The id of the node that made the call.
  public let callerID: String
  /// The method being called.
  public let method: String
  /// Metadata sent with the call (interceptors add to it, for example a token).
  public let metadata: [String: String]
  /// When the caller gives up; nil when it set no timeout.
  ///
  /// When the deadline passes the caller sends a cancel and the handler's task is cancelled:
  /// check `Task.isCancelled` or use cancellation-aware awaits.
  public let deadline: ContinuousClock.Instant?
  /// True for notifications: nobody waits for the result.
  public let isNotification: Bool
  /// The deadline on the serving node's `Timeline` (its injected clock), which ``remaining``
  /// reads; nil for a context made without one.
  private let ends: (at: Duration, on: Timeline)?

  public init(
    callerID: String, method: String, metadata: [String: String] = [:],
    deadline: ContinuousClock.Instant? = nil, isNotification: Bool = false
  ) {
    self.callerID = callerID
    self.method = method
    self.metadata = metadata
    self.deadline = deadline
    self.isNotification = isNotification
    ends = nil
  }

  /// A call `timeout` from now on `timeline` (the serving node's clock).
  package init(
    callerID: String, method: String, metadata: [String: String], timeout: Duration?, on timeline: Timeline,
    isNotification: Bool = false
  ) {
    self.callerID = callerID
    self.method = method
    self.metadata = metadata
    deadline = timeout.map { ContinuousClock.now + $0 }
    self.isNotification = isNotification
    ends = timeout.map { (timeline.elapsed() + $0, timeline) }
  }

  /// Time left before the deadline, nil when there is none (on the serving node's clock).
  public var remaining: Duration? {
    if let ends { return ends.at - ends.on.elapsed() }
    return deadline.map { $0 - .now }
  }
}
