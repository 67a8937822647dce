import Foundation
import Hummingbird

/// Refuses requests without the gateway's shared token (`UNAUTHORIZED`, 401), so that the
/// HTTP API is no more open than the gateway's links: with a token set, nobody without it
/// submits code, cancels tasks or calls functions.
///
/// The token goes in `Authorization: Bearer <token>` or `X-EasyRemote-Token: <token>`; a
/// browser's WebSocket cannot set headers, so `/ws/updates` also takes `?token=<token>`.
/// `/health` and `/openapi.yaml` stay open (load balancers, documentation). A WebSocket
/// upgrade is let through and checked by the socket itself (``isAuthorized(_:)``), which
/// then closes with the error (code 1008): a refused upgrade can only be an empty 400.
struct TokenAuthMiddleware<Context: RequestContext>: RouterMiddleware {
  let token: String
  static var openPaths: Set<String> { ["/health", "/openapi.yaml"] }

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    let path = request.uri.path
    let upgrade = path == "/ws/updates" && request.headers[.upgrade]?.lowercased() == "websocket"
    guard upgrade || Self.openPaths.contains(path) || isAuthorized(request) else {
      throw APIError(
        code: "UNAUTHORIZED",
        message: "this gateway needs its token: send 'Authorization: Bearer <token>' (or X-EasyRemote-Token)")
    }
    return try await next(request, context)
  }

  /// Whether `request` carries the token.
  func isAuthorized(_ request: Request) -> Bool { presented(in: request).map(matches) == true }

  private func presented(in request: Request) -> String? {
    if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
      return String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    }
    if let field = request.headers.first(where: { $0.name.canonicalName == "x-easyremote-token" }) { return field.value }
    if request.uri.path == "/ws/updates" { return request.uri.queryParameters.get("token") }
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
