import Foundation
import Hummingbird
import HummingbirdCore

/// Refuses requests without the gateway's shared token (`UNAUTHORIZED`, 401), so that the
/// HTTP API is no more open than the gateway's links: with a token set, nobody without it
/// submits code, cancels tasks or calls functions.
///
/// The token goes in `Authorization: Bearer <token>` or `X-EasyRemote-Token: <token>`; a
/// browser's WebSocket cannot set headers, so `/ws/updates` also takes `?token=<token>`.
/// `/health` and `/openapi.yaml` stay open (load balancers, documentation). A WebSocket
/// upgrade without the token never gets here: ``HTTPGuardHandler`` answers it 401 with the
/// same check (``TokenCheck``) before Hummingbird takes the connection over.
struct TokenAuthMiddleware<Context: RequestContext>: RouterMiddleware {
  let check: TokenCheck
  let openPaths: Set<String>
  let openPrefixes: [String]

  /// - Parameters:
  ///   - alsoOpen: paths open beside `/health` and `/openapi.yaml` (`/metrics` with
  ///     `metricsPublic`, the console's pages).
  ///   - openPrefixes: paths under these are open (the console's files).
  init(token: String, alsoOpen: Set<String> = [], openPrefixes: [String] = []) {
    check = TokenCheck(token: token)
    openPaths = Set(["/health", "/openapi.yaml"]).union(alsoOpen)
    self.openPrefixes = openPrefixes
  }

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    let path = request.uri.path
    let upgrade = path == TokenCheck.webSocketPath && request.headers[.upgrade]?.lowercased() == "websocket"
    let open = openPaths.contains(path) || openPrefixes.contains { path.hasPrefix($0) }
    guard upgrade || open || isAuthorized(request) else { throw TokenCheck.refusal }
    return try await next(request, context)
  }

  /// Whether `request` carries the token.
  func isAuthorized(_ request: Request) -> Bool {
    check.accepts(
      authorization: request.headers[.authorization],
      alternate: request.headers.first(where: { $0.name.canonicalName == TokenCheck.alternateHeader })?.value,
      uri: request.uri)
  }
}

/// The gateway's token and where a request may carry it.
struct TokenCheck: Sendable {
  let token: String

  static let alternateHeader = "x-easyremote-token"
  static let webSocketPath = "/ws/updates"
  static var refusal: APIError {
    APIError(
      code: "UNAUTHORIZED",
      message: "this gateway needs its token: send 'Authorization: Bearer <token>' (or X-EasyRemote-Token; ?token= for /ws/updates)")
  }

  /// Whether a request with these header values (and, for `/ws/updates`, `?token=`) carries
  /// the token.
  func accepts(authorization: String?, alternate: String?, uri: URI) -> Bool {
    presented(authorization: authorization, alternate: alternate, uri: uri).map(matches) == true
  }

  private func presented(authorization: String?, alternate: String?, uri: URI) -> String? {
    if let authorization, authorization.lowercased().hasPrefix("bearer ") {
      return String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    }
    if let alternate { return alternate }
    if uri.path == Self.webSocketPath { return uri.queryParameters.get("token") }
    return nil
  }

  /// Compares in time that depends on the length only, not on where the first difference is.
  private func matches(_ candidate: String) -> Bool {
    let expected = Array(token.utf8)
    let given = Array(candidate.utf8)
    guard expected.count == given.count else { return false }
    var difference: UInt8 = 0
    for (a, b) in zip(expected, given) { difference |= a ^ b }
    return difference == 0
  }
}
