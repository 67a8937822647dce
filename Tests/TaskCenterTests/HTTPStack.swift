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
  let endpoint: APIEndpoint
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
    endpoint = try await APIEndpoint.open(
      center: fabric.center, server: fabric.server, configuration: configuration, live: live)
  }

  /// The live server (a stack made `live`).
  var http: TaskCenterHTTPServer { endpoint.server }
  var base: String { endpoint.base }

  /// One request, with the token unless `token` is false.
  func send(_ method: String, _ path: String, json: Any? = nil, token: Bool = true, headers: [String: String] = [:])
    async throws -> HTTPClient.Reply
  {
    try await endpoint.send(
      method, path, json: json, headers: (token ? ["Authorization": "Bearer \(self.token)"] : [:]).merging(headers) { $1 })
  }

  func stop() async {
    await endpoint.close()
    await fabric.stop()
  }
}
