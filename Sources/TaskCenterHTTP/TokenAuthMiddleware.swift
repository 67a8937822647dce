import Foundation
import Hummingbird
import EasyRemoteMetrics
import Logging
import NodeComm
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
///
/// Guessing is slowed: wrong or missing tokens count against the caller's IP address in the
/// gateway's ``AuthFailureLimiter`` (shared with its links); past the limit the address gets
/// 429 `TOO_MANY_ATTEMPTS` with `Retry-After` for every request that needs the token, until
/// its window ends. The first failure of a window is logged; every one is counted
/// (`easyremote_auth_failures_total{transport="http"}`).
struct TokenAuthMiddleware<Context: RemoteAddressRequestContext>: RouterMiddleware {
  let check: TokenCheck
  let openPaths: Set<String>
  let openPrefixes: [String]
  let instruments: Instruments?
  let logger: Logger

  /// - Parameters:
  ///   - alsoOpen: paths open beside `/health` and `/openapi.yaml` (`/metrics` with
  ///     `metricsPublic`, the console's pages).
  ///   - openPrefixes: paths under these are open (the console's files).
  init(
    check: TokenCheck, alsoOpen: Set<String> = [], openPrefixes: [String] = [],
    instruments: Instruments? = nil, logger: Logger = Logger(label: "easyremote.http")
  ) {
    self.check = check
    openPaths = Set(["/health", "/openapi.yaml"]).union(alsoOpen)
    self.openPrefixes = openPrefixes
    self.instruments = instruments
    self.logger = logger
  }

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    let path = request.uri.path
    let upgrade = path == TokenCheck.webSocketPath && request.headers[.upgrade]?.lowercased() == "websocket"
    let open = openPaths.contains(path) || openPrefixes.contains { path.hasPrefix($0) }
    if upgrade || open { return try await next(request, context) }
    let address = context.remoteAddress?.ipAddress.map(AuthFailureLimiter.client(ip:)) ?? "unknown"
    if let wait = check.limiter?.refusal(for: address) {
      count("limited")
      throw TokenCheck.tooManyAttempts(address: address, retryAfter: wait)
    }
    guard isAuthorized(request) else {
      count("refused")
      if let failure = check.limiter?.failed(address), failure.first {
        logger.warning("a request with a wrong or missing token", metadata: ["address": "\(address)", "path": "\(path)"])
      }
      throw TokenCheck.refusal
    }
    return try await next(request, context)
  }

  private func count(_ outcome: String) {
    instruments?.counter(MetricCatalogue.authFailures, ["transport": "http", "outcome": outcome]).increment()
  }

  /// Whether `request` carries the token.
  func isAuthorized(_ request: Request) -> Bool {
    check.accepts(
      authorization: request.headers[.authorization],
      alternate: request.headers.first(where: { $0.name.canonicalName == TokenCheck.alternateHeader })?.value,
      uri: request.uri)
  }
}

/// The gateway's token and where a request may carry it; for `/ws/updates` also a ticket
/// (``WebSocketTickets``) instead.
struct TokenCheck: Sendable {
  let token: String
  var tickets: WebSocketTickets?
  /// Where wrong tokens are counted (the gateway's, shared with its links).
  var limiter: AuthFailureLimiter?

  static let alternateHeader = "x-easyremote-token"
  static let webSocketPath = "/ws/updates"
  /// An address that made too many wrong guesses, told when to come back.
  static func tooManyAttempts(address: String, retryAfter: Duration) -> APIError {
    let seconds = retryAfter.components.seconds + 1
    var error = APIError(
      code: "TOO_MANY_ATTEMPTS", message: "too many requests with a wrong token from \(address): try again in \(seconds) s")
    error.retryAfter = Int(seconds)
    return error
  }

  static var refusal: APIError {
    APIError(
      code: "UNAUTHORIZED",
      message: "this gateway needs its token: send 'Authorization: Bearer <token>' (or X-EasyRemote-Token; for /ws/updates a ?ticket= from POST /ws/ticket, or ?token=)")
  }

  /// Whether a request with these header values (and, for `/ws/updates`, `?token=`) carries
  /// the token.
  func accepts(authorization: String?, alternate: String?, uri: URI) -> Bool {
    if uri.path == Self.webSocketPath, let ticket = uri.queryParameters.get("ticket"), let tickets, tickets.isValid(ticket) {
      return true
    }
    return presented(authorization: authorization, alternate: alternate, uri: uri).map(matches) == true
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
  private func matches(_ candidate: String) -> Bool { constantTimeEqual(candidate, token) }
}
