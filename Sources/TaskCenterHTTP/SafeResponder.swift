package import Hummingbird
import HTTPTypes
import NodeComm

/// The API's router with two rules around it, for every answer: each says
/// `X-Content-Type-Options: nosniff` (a browser never takes a JSON body for HTML) and
/// `Referrer-Policy: no-referrer` (the console's addresses never leak to another site); and
/// a `HEAD` request is answered as its `GET` would be — status and headers, its
/// Content-Length too — without the body; but not under `/internal/`, where a GET changes
/// state (`GET /internal/task/request` hands out a task): there HEAD is 405. (Around the
/// router, not in it: the router picks a route by method before its middleware runs.)
///
/// It also tells the server's connection table when an answer has been written (its last
/// byte): the connection is idle again until its next request, and may give way to a
/// newcomer when the server is full.
struct SafeResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == APIRequestContext {
  typealias Context = APIRequestContext

  static var fields: [(HTTPField.Name, String)] {
    [(HTTPField.Name("X-Content-Type-Options")!, "nosniff"), (HTTPField.Name("Referrer-Policy")!, "no-referrer")]
  }

  let inner: Inner
  let connections: ConnectionTable<ObjectIdentifier>?

  func respond(to request: Request, context: Context) async throws -> Response {
    let connection = context.connection
    let connections = self.connections
    var response: Response
    do {
      response = try await answer(request, context: context)
    } catch {
      connections?.ended(connection)  // (Hummingbird answers the error: a few bytes)
      throw error
    }
    guard let connections else { return response }
    let body = response.body
    response.body = ResponseBody(contentLength: body.contentLength) { writer in
      do {
        try await body.write(writer)
      } catch {
        connections.ended(connection)
        throw error
      }
      connections.ended(connection)
    }
    return response
  }

  private func answer(_ request: Request, context: Context) async throws -> Response {
    let head = request.method == .head && !request.uri.path.hasPrefix("/internal/")
    var forwarded = request
    if head {
      var get = request.head
      get.method = .get
      forwarded = Request(head: get, body: request.body)
    }
    var response = try await inner.respond(to: forwarded, context: context)
    for (name, value) in Self.fields { response.headers[name] = value }
    return head ? response.createHeadResponse() : response
  }
}

/// Builds the router's responder inside a ``SafeResponder``.
struct SafeResponderBuilder<Builder: HTTPResponderBuilder>: HTTPResponderBuilder
where Builder.Responder.Context == APIRequestContext {
  let router: Builder
  let connections: ConnectionTable<ObjectIdentifier>?

  func buildResponder() -> SafeResponder<Builder.Responder> {
    SafeResponder(inner: router.buildResponder(), connections: connections)
  }
}

extension TaskCenterAPI {
  /// The API as the server answers it — its router inside the ``SafeResponder`` rules — for
  /// an application with no socket of its own (HummingbirdTesting's router mode).
  package func application() -> some ApplicationProtocol {
    Application(router: SafeResponderBuilder(router: router(), connections: nil))
  }
}
