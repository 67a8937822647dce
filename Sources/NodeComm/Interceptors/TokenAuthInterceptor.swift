/// Shared-secret authentication of calls.
///
/// On the outbound path it adds `authorization: Bearer <token>` to the call's metadata; on the
/// inbound path it refuses, with ``NodeError/Code/authFailed``, any call whose token is not one
/// of `accepted`. Install it on both sides with the same token.
///
/// ```swift
/// node.addInterceptor(TokenAuthInterceptor(token: "s3cret"))
/// ```
public struct TokenAuthInterceptor: CallInterceptor {
  public static let metadataKey = "authorization"

  private let token: String?
  private let accepted: Set<String>

  /// - Parameters:
  ///   - token: sent on outbound calls; nil sends none.
  ///   - accepted: tokens accepted on inbound calls; defaults to `[token]`.
  public init(token: String?, accepted: Set<String>? = nil) {
    self.token = token
    self.accepted = accepted ?? (token.map { [$0] } ?? [])
  }

  public func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    switch call.direction {
    case .outbound:
      var call = call
      if let token { call.metadata[Self.metadataKey] = "Bearer \(token)" }
      return try await next(call)
    case .inbound:
      guard let header = call.metadata[Self.metadataKey] else {
        throw NodeError(code: .authFailed, message: "call to '\(call.method)' carries no token", method: call.method)
      }
      let presented = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : header
      guard accepted.contains(presented) else {
        throw NodeError(code: .authFailed, message: "call to '\(call.method)' carries an invalid token", method: call.method)
      }
      return try await next(call)
    }
  }
}
