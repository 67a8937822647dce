import Hummingbird
import HTTPTypes

/// The API's router with two rules around it, for every answer: each says
/// `X-Content-Type-Options: nosniff` (a browser never takes a JSON body for HTML) and
/// `Referrer-Policy: no-referrer` (the console's addresses never leak to another site); and
/// a `HEAD` request is answered as its `GET` would be — status and headers, its
/// Content-Length too — without the body; but not under `/internal/`, where a GET changes
/// state (`GET /internal/task/request` hands out a task): there HEAD is 405. (Around the
/// router, not in it: the router picks a route by method before its middleware runs.)
struct SafeResponder<Inner: HTTPResponder>: HTTPResponder {
  typealias Context = Inner.Context

  static var fields: [(HTTPField.Name, String)] {
    [(HTTPField.Name("X-Content-Type-Options")!, "nosniff"), (HTTPField.Name("Referrer-Policy")!, "no-referrer")]
  }

  let inner: Inner

  func respond(to request: Request, context: Context) async throws -> Response {
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
struct SafeResponderBuilder<Builder: HTTPResponderBuilder>: HTTPResponderBuilder {
  let router: Builder

  func buildResponder() -> SafeResponder<Builder.Responder> { SafeResponder(inner: router.buildResponder()) }
}
