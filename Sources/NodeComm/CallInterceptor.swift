/// One call as interceptors see it.
public struct InterceptedCall: Sendable {
  public enum Direction: Sendable { case inbound, outbound }

  /// `outbound`: this node is calling; `inbound`: a peer is calling this node.
  public let direction: Direction
  /// The other node: the target of an outbound call, the caller of an inbound one.
  public let peerID: String
  public var method: String
  public var payload: Payload
  /// Metadata travelling with the call; outbound interceptors may add to it.
  public var metadata: [String: String]
  /// True for notifications (no result travels back).
  public let isNotification: Bool
  /// Where an inbound call's link comes from, as its transport describes it
  /// (`ipv4:1.2.3.4:5678`); nil for outbound calls.
  public let remoteAddress: String?

  public init(
    direction: Direction, peerID: String, method: String, payload: Payload, metadata: [String: String],
    isNotification: Bool, remoteAddress: String? = nil
  ) {
    self.remoteAddress = remoteAddress
    self.direction = direction
    self.peerID = peerID
    self.method = method
    self.payload = payload
    self.metadata = metadata
    self.isNotification = isNotification
  }
}

/// Observes, changes or rejects calls on their way out of or into a node.
///
/// Order: interceptors run in the order they were added, the first one outermost, on both
/// paths. An outbound call passes `outbound[0] → outbound[1] → … → the link`; an inbound
/// call passes `inbound[0] → inbound[1] → … → the handler`. Throw a ``NodeError`` to reject
/// (the caller receives its code and message); call `next` to go on.
///
/// ```swift
/// struct Timing: CallInterceptor {
///   func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
///     let start = ContinuousClock.now
///     defer { print(call.method, ContinuousClock.now - start) }
///     return try await next(call)
///   }
/// }
/// ```
public protocol CallInterceptor: Sendable {
  typealias Next = @Sendable (InterceptedCall) async throws -> Payload
  func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload
}

extension Array where Element == any CallInterceptor {
  /// Runs `call` through the interceptors, outermost first, then `terminal`.
  func run(
    _ call: InterceptedCall, terminal: @escaping CallInterceptor.Next
  ) async throws -> Payload {
    if isEmpty { return try await terminal(call) }
    var next = terminal
    for interceptor in reversed() {
      let inner = next
      next = { call in try await interceptor.intercept(call, next: inner) }
    }
    return try await next(call)
  }
}
