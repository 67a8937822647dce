import Foundation

/// When and how often a failed outbound call is sent again.
///
/// A call is sent again only when that cannot run it twice: a call that never left this node
/// (no link to the target: `not_connected`) or that the target refused before running it
/// (`busy`) is retried for any method; a call that may have run — it timed out, its link
/// broke, its node stopped under it — is retried only for methods listed in
/// ``idempotentMethods``. Every other error (the handler threw, not found, auth, too large,
/// a bad payload) is final. Notifications are retried only while not connected.
///
/// The wait before attempt *n + 1* is `initialBackoff × multiplier^(n−1)`, at most
/// ``maxBackoff``, less a random part of up to ``jitter`` of it (so callers that failed
/// together do not come back together).
public struct RetryPolicy: Sendable, Equatable {
  /// Attempts in all, the first included (seed 001's `max_retries` + 1).
  public var maxAttempts: Int
  public var initialBackoff: Duration
  public var maxBackoff: Duration
  public var multiplier: Double
  /// The random part of each wait, from 0 (none) to 1 (anywhere between 0 and the wait).
  public var jitter: Double
  /// Methods that may run more than once with the same effect; only these are sent again
  /// after an error that leaves open whether they ran.
  public var idempotentMethods: Set<String>
  /// The methods retried; every method when nil.
  public var methods: Set<String>?

  public init(
    maxAttempts: Int = 4, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(30),
    multiplier: Double = 2, jitter: Double = 0.2, idempotentMethods: Set<String> = [], methods: Set<String>? = nil
  ) {
    self.maxAttempts = max(1, maxAttempts)
    self.initialBackoff = max(.zero, initialBackoff)
    self.maxBackoff = max(self.initialBackoff, maxBackoff)
    self.multiplier = max(1, multiplier)
    self.jitter = min(1, max(0, jitter))
    self.idempotentMethods = idempotentMethods
    self.methods = methods
  }

  /// The wait after failed attempt `attempt` (1 for the first), before its random part.
  public func backoff(after attempt: Int) -> Duration {
    let seconds = Double(initialBackoff.components.seconds) + Double(initialBackoff.components.attoseconds) / 1e18
    let maxSeconds = Double(maxBackoff.components.seconds) + Double(maxBackoff.components.attoseconds) / 1e18
    let grown = seconds * pow(multiplier, Double(max(0, attempt - 1)))
    return .nanoseconds(Int64(min(grown, maxSeconds) * 1e9))
  }

  /// Errors that prove the call did not run: safe to send again whatever the method.
  public static let notRunCodes: Set<NodeError.Code> = [.notConnected, NodeError.Code(wireValue: "busy")]
  /// Errors that leave open whether the call ran: sent again for idempotent methods only.
  public static let mayHaveRunCodes: Set<NodeError.Code> = [.timedOut, .connectionLost, .nodeStopping]
}

/// Sends failed outbound calls again by a ``RetryPolicy`` (seed 001's retry interceptor).
///
/// Add it on the outbound path; interceptors added after it run once per attempt. Each
/// attempt has the call's whole timeout.
///
/// ```swift
/// node.addInterceptor(
///   RetryInterceptor(RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(200), idempotentMethods: ["get"])),
///   paths: .outbound)
/// ```
public struct RetryInterceptor: CallInterceptor {
  /// One attempt that failed and will be made again.
  public struct Retry: Sendable {
    public let method: String
    public let peerID: String
    /// The attempt that failed (1 for the first).
    public let attempt: Int
    public let error: NodeError
    /// How long the interceptor waits before the next attempt.
    public let delay: Duration
  }

  public let policy: RetryPolicy
  private let perMethod: [String: RetryPolicy]
  private let onRetry: (@Sendable (Retry) -> Void)?

  /// - Parameters:
  ///   - policy: the policy of every method not in `perMethod`.
  ///   - perMethod: policies of single methods, over `policy`.
  ///   - onRetry: told before each wait (for logs and tests).
  public init(
    _ policy: RetryPolicy = RetryPolicy(), perMethod: [String: RetryPolicy] = [:],
    onRetry: (@Sendable (Retry) -> Void)? = nil
  ) {
    self.policy = policy
    self.perMethod = perMethod
    self.onRetry = onRetry
  }

  public func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    guard call.direction == .outbound else { return try await next(call) }
    let policy = perMethod[call.method] ?? self.policy
    if let methods = policy.methods, perMethod[call.method] == nil, !methods.contains(call.method) {
      return try await next(call)
    }
    var attempt = 1
    while true {
      do {
        return try await next(call)
      } catch let error as NodeError {
        guard attempt < policy.maxAttempts, Self.mayRetry(error, call: call, policy: policy) else { throw error }
        let wait = policy.backoff(after: attempt)
        let delay = wait - wait * Double.random(in: 0...policy.jitter)
        onRetry?(Retry(method: call.method, peerID: call.peerID, attempt: attempt, error: error, delay: delay))
        do {
          try await Task.sleep(for: delay)
        } catch {
          throw NodeError(
            code: .cancelled, message: "'\(call.method)' was cancelled while waiting to retry", nodeID: call.peerID,
            method: call.method, cause: error)
        }
        attempt += 1
      }
    }
  }

  static func mayRetry(_ error: NodeError, call: InterceptedCall, policy: RetryPolicy) -> Bool {
    if RetryPolicy.notRunCodes.contains(error.code) { return true }
    guard !call.isNotification, RetryPolicy.mayHaveRunCodes.contains(error.code) else { return false }
    return policy.idempotentMethods.contains(call.method)
  }
}
