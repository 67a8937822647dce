public import CoreMetrics
public import Logging

/// Shared-secret authentication of calls.
///
/// On the outbound path it adds `authorization: Bearer <token>` to the call's metadata; on the
/// inbound path it refuses, with ``NodeError/Code/authFailed``, any call whose token is not one
/// of `accepted` (compared in constant time). Install it on both sides with the same token.
///
/// With a `limiter`, an address that presented too many wrong tokens is refused whatever it
/// presents until its window ends; the first failure of a window is logged and every one is
/// counted (`easyremote_auth_failures_total{transport="link"}`).
///
/// ```swift
/// node.addInterceptor(TokenAuthInterceptor(token: "s3cret"))
/// ```
public struct TokenAuthInterceptor: CallInterceptor {
  public static let metadataKey = "authorization"

  private let token: String?
  private let accepted: Set<String>
  private let limiter: AuthFailureLimiter?
  private let logger: Logger?
  private let refused: Counter?
  private let limited: Counter?

  /// - Parameters:
  ///   - token: sent on outbound calls; nil sends none.
  ///   - accepted: tokens accepted on inbound calls; defaults to `[token]`.
  ///   - limiter: counts failures by the caller's address, and refuses an address past its limit.
  ///   - logger: where the first failure of an address's window is told.
  ///   - metricsFactory: where failures are counted.
  public init(
    token: String?, accepted: Set<String>? = nil, limiter: AuthFailureLimiter? = nil, logger: Logger? = nil,
    metricsFactory: (any MetricsFactory)? = nil
  ) {
    self.token = token
    self.accepted = accepted ?? (token.map { [$0] } ?? [])
    self.limiter = limiter
    self.logger = logger
    refused = metricsFactory.map {
      Counter(label: Self.failuresLabel, dimensions: [("transport", "link"), ("outcome", "refused")], factory: $0)
    }
    limited = metricsFactory.map {
      Counter(label: Self.failuresLabel, dimensions: [("transport", "link"), ("outcome", "limited")], factory: $0)
    }
  }

  /// The metric failures are counted under (the gateway's catalogue has its help text).
  public static let failuresLabel = "easyremote_auth_failures_total"

  public func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    switch call.direction {
    case .outbound:
      var call = call
      if let token { call.metadata[Self.metadataKey] = "Bearer \(token)" }
      return try await next(call)
    case .inbound:
      let address = call.remoteAddress.map(AuthFailureLimiter.address(of:)) ?? call.peerID
      if let limiter, let wait = limiter.refusal(for: address) {
        limited?.increment()
        throw NodeError(
          code: .authFailed,
          message: "too many calls with a wrong token from \(address): try again in \(wait.components.seconds + 1) s",
          method: call.method)
      }
      let presented = call.metadata[Self.metadataKey].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
      // Each accepted token compared in constant time (a set lookup would hash and stop early).
      guard let presented, accepted.reduce(false, { $0 || constantTimeEqual(presented, $1) }) else {
        refused?.increment()
        if let failure = limiter?.failed(address), failure.first {
          logger?.warning(
            "a call with a wrong or missing token", metadata: ["address": "\(address)", "peer": "\(call.peerID)", "method": "\(call.method)"])
        }
        let what = presented == nil ? "carries no token" : "carries an invalid token"
        throw NodeError(code: .authFailed, message: "call to '\(call.method)' \(what)", method: call.method)
      }
      return try await next(call)
    }
  }
}
