import Foundation
import Hummingbird
import NIOCore

/// The web console's files (`web/` in the module's resources: HTML, CSS and JavaScript
/// modules, no build step, nothing from a CDN), read once and served from memory.
///
/// `/web`, `/web/submit`, `/web/monitor` and `/web/tasks` are one page (`index.html`) whose
/// script shows the part the path names; `/web/static/…` are its files. The files hold no
/// data: they are open without the token, and the page asks for it before it calls the API.
struct WebConsole: Sendable {
  static let pages: Set<String> = ["/web", "/web/submit", "/web/monitor", "/web/tasks"]
  static let prefix = "/web"

  private let files: [String: (type: String, bytes: ByteBuffer)]

  init() {
    var files: [String: (String, ByteBuffer)] = [:]
    if let root = Bundle.module.url(forResource: "web", withExtension: nil),
      let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
    {
      for case let url as URL in walker {
        guard let data = try? Data(contentsOf: url), !url.hasDirectoryPath else { continue }
        let path = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count))
        files[path] = (Self.contentType(of: url.pathExtension), ByteBuffer(bytes: data))
      }
    }
    self.files = files
  }

  static func contentType(of fileExtension: String) -> String {
    switch fileExtension {
    case "html": "text/html; charset=utf-8"
    case "css": "text/css; charset=utf-8"
    case "js": "text/javascript; charset=utf-8"
    case "svg": "image/svg+xml"
    case "png": "image/png"
    default: "application/octet-stream"
    }
  }

  /// The file at `/web/static/<name>`, or the page for one of ``pages``.
  func response(for path: String) -> Response? {
    let file = Self.pages.contains(path) ? "/index.html" : String(path.dropFirst(Self.prefix.count))
    guard !file.contains(".."), let found = files[file] else { return nil }
    return Response(
      status: .ok,
      headers: [
        .contentType: found.type, .cacheControl: "no-cache",
        // The console loads nothing from elsewhere; a page that tried would be stopped.
        .contentSecurityPolicy:
          "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
      ],
      body: ResponseBody(byteBuffer: found.bytes))
  }

  /// Whether a request for `/` comes from a browser that wants a page, not JSON.
  static func wantsPage(_ request: Request) -> Bool {
    guard request.method == .get, request.uri.path == "/" else { return false }
    let accept = request.headers[.accept] ?? ""
    return accept.contains("text/html")
  }
}

/// Sends a browser asking for `/` to the console; API clients (JSON) still get the root object.
struct ConsoleRedirectMiddleware<Context: RequestContext>: RouterMiddleware {
  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
    -> Response
  {
    guard WebConsole.wantsPage(request) else { return try await next(request, context) }
    return Response(status: .found, headers: [.location: "/web"])
  }
}
