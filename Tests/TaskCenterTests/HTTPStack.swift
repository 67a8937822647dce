import EasyRemote
import Foundation
import TaskCenter
import TaskCenterHTTP

/// A task fabric with its HTTP API, the API guarded by `token` (the fabric's links run without
/// one, so its nodes join as they are). Requests go to the API's responder with no socket
/// (HummingbirdTesting's router mode), unless `live`: then to a server on a free port (`http`,
/// `base`), for tests whose subject is the socket (the address a request comes from, raw
/// bytes, a scraper in another process).
final class HTTPStack: Sendable {
  let fabric: TaskFabric
  let live: TaskCenterHTTPServer?
  let router: RouterClient?
  let token: String

  init(
    token: String, fabric: TaskFabric? = nil, configuration: TaskCenterAPI.Configuration = .init(), live: Bool = false
  ) async throws {
    let made: TaskFabric
    if let fabric { made = fabric } else { made = try await TaskFabric() }
    let fabric = made
    var configuration = configuration
    configuration.token = token
    self.fabric = fabric
    self.token = token
    if live {
      let http = TaskCenterHTTPServer(center: fabric.center, server: fabric.server, port: 0, configuration: configuration)
      try await http.start()
      self.live = http
      router = nil
    } else {
      self.live = nil
      router = try await RouterClient.open(TaskCenterAPI(center: fabric.center, server: fabric.server, configuration: configuration))
    }
  }

  /// The live server (a stack made `live`).
  var http: TaskCenterHTTPServer { live! }
  var base: String { "http://\(http.address ?? "")" }

  /// One request, with the token unless `token` is false.
  func send(_ method: String, _ path: String, json: Any? = nil, token: Bool = true, headers: [String: String] = [:])
    async throws -> HTTPClient.Reply
  {
    let headers = (token ? ["Authorization": "Bearer \(self.token)"] : [:]).merging(headers) { $1 }
    if let router { return try await router.send(method, path, json: json, headers: headers) }
    return try await HTTPClient(base: base).send(method, path, json: json, headers: headers)
  }

  func stop() async {
    await router?.close()
    await live?.stop()
    await fabric.stop()
  }
}
