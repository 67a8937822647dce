import EasyRemote
import Foundation
import TaskCenter
import TaskCenterHTTP

/// A task fabric with its HTTP API on a free port, the API guarded by `token` (the fabric's
/// links run without one, so its nodes join as they are).
final class HTTPStack: Sendable {
  let fabric: TaskFabric
  let http: TaskCenterHTTPServer
  let base: String
  let token: String

  init(token: String, fabric: TaskFabric? = nil, configuration: TaskCenterAPI.Configuration = .init()) async throws {
    let made: TaskFabric
    if let fabric { made = fabric } else { made = try await TaskFabric() }
    let fabric = made
    var configuration = configuration
    configuration.token = token
    self.fabric = fabric
    self.token = token
    http = TaskCenterHTTPServer(center: fabric.center, server: fabric.server, port: 0, configuration: configuration)
    try await http.start()
    base = "http://\(http.address ?? "")"
  }

  /// One request, with the token unless `token` is false.
  func send(_ method: String, _ path: String, json: Any? = nil, token: Bool = true, headers: [String: String] = [:])
    async throws -> HTTPClient.Reply
  {
    try await HTTPClient(base: base).send(
      method, path, json: json, headers: (token ? ["Authorization": "Bearer \(self.token)"] : [:]).merging(headers) { $1 })
  }

  func stop() async {
    await http.stop()
    await fabric.stop()
  }
}
