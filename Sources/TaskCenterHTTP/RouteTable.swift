import Hummingbird
import Synchronization

/// The routes of the router, by path template, so that a request whose path exists with
/// other methods is answered 405 `METHOD_NOT_ALLOWED` with an `Allow` header, not 404.
final class RouteTable: Sendable {
  private let routes = Mutex<[(method: String, segments: [Substring])]>([])

  /// Takes the router's routes (call once every route is added).
  func record(_ descriptions: [(method: String, path: String)]) {
    routes.withLock { $0 = descriptions.map { ($0.method, $0.path.split(separator: "/")) } }
  }

  /// The methods `path` answers to.
  func methods(for path: String) -> [String] {
    let segments = path.split(separator: "/")
    return routes.withLock { routes in
      routes.filter { route in
        route.segments.count == segments.count
          && zip(route.segments, segments).allSatisfy { template, segment in
            template == segment || (template.hasPrefix("{") && template.hasSuffix("}")) || template == "*"
          }
      }.map(\.method)
    }
  }
}

extension APIRequestContext {
  /// Path parameter `name`, percent-decoded (`/nodes/a%20b%2F%C3%A9` is node `a b/é`).
  func decodedParameter(_ name: String) throws -> String {
    let raw = try parameters.require(name)
    return raw.removingPercentEncoding ?? raw
  }
}
