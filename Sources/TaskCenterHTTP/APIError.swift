public import Hummingbird
import TaskCenter
import EasyRemoteCore
import Foundation

/// An error as the HTTP API answers it: `{"error": {"code", "message", "details"}}` with the
/// status of its code.
public struct APIError: Error, Sendable, Equatable, Codable {
  public var code: String
  public var message: String
  public var details: String?
  /// Seconds after which to try again (`Retry-After`), for a refusal of load or of guessing.
  public var retryAfter: Int? = nil

  enum CodingKeys: String, CodingKey { case code, message, details }

  public init(code: String, message: String, details: String? = nil) {
    self.code = code
    self.message = message
    self.details = details
  }

  /// The HTTP status of each code.
  public static let statuses: [String: HTTPResponse.Status] = [
    "INVALID_REQUEST": .badRequest,
    "UNAUTHORIZED": .unauthorized,
    "FORBIDDEN": .forbidden,
    "IDEMPOTENCY_CONFLICT": .conflict,
    "TASK_NOT_FOUND": .notFound,
    "NODE_NOT_FOUND": .notFound,
    "FUNCTION_NOT_FOUND": .notFound,
    "NOT_FOUND": .notFound,
    "METHOD_NOT_ALLOWED": .methodNotAllowed,
    "UPGRADE_REQUIRED": HTTPResponse.Status(code: 426, reasonPhrase: "Upgrade Required"),
    "REQUEST_TIMEOUT": .requestTimeout,
    "URI_TOO_LONG": .uriTooLong,
    "HEADERS_TOO_LARGE": .requestHeaderFieldsTooLarge,
    "TASK_TIMEOUT": .requestTimeout,
    "RESOURCE_UNAVAILABLE": .serviceUnavailable,
    "TOO_MANY_ATTEMPTS": .tooManyRequests,
    "TOO_MANY_CONNECTIONS": .tooManyRequests,
    "TOO_MANY_NODES": .tooManyRequests,
    "PAYLOAD_TOO_LARGE": .contentTooLarge,
    "INSUFFICIENT_STORAGE": HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"),
    "INTERNAL_ERROR": .internalServerError,
  ]

  public var status: HTTPResponse.Status { Self.statuses[code] ?? .internalServerError }

  static func invalid(_ field: String, _ message: String) -> APIError {
    APIError(code: "INVALID_REQUEST", message: message, details: "field: \(field)")
  }

  /// The API's view of any error a handler threw.
  init(_ error: any Error) {
    switch error {
    case let error as APIError:
      self = error
    case let error as TaskCenterError:
      self.init(code: error.code.rawValue, message: error.message, details: error.details)
    case let error as EasyRemoteError:
      let code: String =
        switch error.code {
        case .functionNotFound: "FUNCTION_NOT_FOUND"
        case .invalidArguments: "INVALID_REQUEST"
        case .timedOut: "TASK_TIMEOUT"
        case .busy, .nodeLost, .connectionFailed: "RESOURCE_UNAVAILABLE"
        default: "INTERNAL_ERROR"
        }
      self.init(code: code, message: error.message, details: error.remoteType.map { "remote_type: \($0)" })
    case let error as HTTPError:
      switch error.status {
      case .notFound: self.init(code: "NOT_FOUND", message: error.body ?? "no such endpoint")
      case .methodNotAllowed: self.init(code: "METHOD_NOT_ALLOWED", message: error.body ?? "method not allowed")
      case .badRequest, .contentTooLarge: self.init(code: "INVALID_REQUEST", message: error.body ?? "bad request", details: "field: body")
      default: self.init(code: "INTERNAL_ERROR", message: error.body ?? "\(error.status)")
      }
    default:
      self.init(code: "INTERNAL_ERROR", message: "\(error)")
    }
  }

  /// `{"error": {...}}` as text.
  var jsonText: String {
    (try? JSONBody.encoder.encode(Envelope(error: self))).map { String(decoding: $0, as: UTF8.self) } ?? ""
  }

  var response: Response {
    var response = JSONBody.response(Envelope(error: self), status: status)
    if let retryAfter { response.headers[.retryAfter] = "\(retryAfter)" }
    return response
  }

  /// The shape every error goes out in.
  private struct Envelope: Encodable { var error: APIError }
}

/// Turns every error into the API's error JSON; a path that exists with other methods is
/// 405 with `Allow`, not 404.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
  var routes: RouteTable?

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    do {
      return try await next(request, context)
    } catch let error as HTTPError where error.status == .notFound {
      let allowed = routes?.methods(for: request.uri.path) ?? []
      guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { return APIError(error).response }
      var response = APIError(
        code: "METHOD_NOT_ALLOWED",
        message: "\(request.uri.path) answers \(allowed.joined(separator: ", ")), not \(request.method.rawValue)"
      ).response
      response.headers[.allow] = allowed.joined(separator: ", ")
      return response
    } catch {
      return APIError(error).response
    }
  }
}

/// `/ws/updates` is a WebSocket: a plain GET there gets 426 `UPGRADE_REQUIRED`.
struct UpgradeRequiredMiddleware<Context: RequestContext>: RouterMiddleware {
  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    if request.uri.path == "/ws/updates", request.method == .get, request.headers[.upgrade]?.lowercased() != "websocket" {
      var response = APIError(
        code: "UPGRADE_REQUIRED", message: "/ws/updates is a WebSocket: connect with 'Upgrade: websocket' (ws:// or wss://)"
      ).response
      response.headers[.upgrade] = "websocket"
      return response
    }
    return try await next(request, context)
  }
}
