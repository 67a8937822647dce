import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import EasyRemote
import RemoteHosts
import TaskCenter
import TaskCenterHTTP
import TestSupport

/// The HTTP API with no socket: requests go straight to its responder, in HummingbirdTesting's
/// router mode, and come back as ``HTTPClient/Reply``s — for the tests whose subject is what
/// the API answers, not the socket it answers on.
final class RouterClient: Sendable {
  private let client: any TestClientProtocol
  private let done: Gate
  private let running: Task<Void, any Error>

  private init(client: any TestClientProtocol, done: Gate, running: Task<Void, any Error>) {
    self.client = client
    self.done = done
    self.running = running
  }

  /// `api`'s application in router mode, open until ``close()``.
  static func open(_ api: TaskCenterAPI) async throws -> RouterClient {
    let (clients, handOver) = AsyncStream.makeStream(of: (any TestClientProtocol).self)
    let done = Gate()
    // Unstructured: the test framework hands its client to a closure; the closure is kept
    // open (until `close`) so the client can serve the test's requests from outside it.
    let running = Task {
      try await api.application().test(.router) { client in
        handOver.yield(client)
        handOver.finish()
        try? await done.wait()
      }
    }
    var iterator = clients.makeAsyncIterator()
    guard let client = await iterator.next() else {
      try await running.value
      throw CancellationError()
    }
    return RouterClient(client: client, done: done, running: running)
  }

  func send(
    _ method: String, _ path: String, json: Any? = nil, raw: String? = nil, headers: [String: String] = [:]
  ) async throws -> HTTPClient.Reply {
    var fields = HTTPFields()
    for (name, value) in headers { if let name = HTTPField.Name(name) { fields[name] = value } }
    var body: ByteBuffer?
    if let json {
      body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
      fields[.contentType] = "application/json"
    } else if let raw {
      body = ByteBuffer(string: raw)
      fields[.contentType] = "application/json"
    }
    let response = try await client.executeRequest(
      uri: path, method: HTTPRequest.Method(method) ?? .get, headers: fields, body: body)
    var replyHeaders: [String: String] = [:]
    for field in response.headers { replyHeaders[field.name.rawName] = field.value }
    return HTTPClient.Reply(status: response.status.code, body: Data(buffer: response.body), headers: replyHeaders)
  }

  func close() async {
    done.open()
    _ = try? await running.value
  }
}

/// Where a test stack's requests go: the API's responder with no socket (``RouterClient``),
/// or — `live`, for the tests whose subject is the socket or a program of its own — a server
/// on a free port.
enum APIEndpoint: Sendable {
  case router(RouterClient)
  case live(TaskCenterHTTPServer)

  static func open(
    center: TaskCenter, server: Server, configuration: TaskCenterAPI.Configuration = .init(),
    remoteHosts: RemoteHostManager? = nil, live: Bool
  ) async throws -> APIEndpoint {
    guard live else {
      return .router(
        try await RouterClient.open(
          TaskCenterAPI(center: center, server: server, configuration: configuration, remoteHosts: remoteHosts)))
    }
    let http = TaskCenterHTTPServer(
      center: center, server: server, port: 0, configuration: configuration, remoteHosts: remoteHosts)
    try await http.start()
    return .live(http)
  }

  /// The live server (an endpoint opened `live`).
  var server: TaskCenterHTTPServer {
    guard case .live(let http) = self else { preconditionFailure("a router-mode stack has no server: open it live") }
    return http
  }

  /// `http://host:port` of the live server.
  var base: String { "http://\(server.address ?? "")" }

  func send(
    _ method: String, _ path: String, json: Any? = nil, raw: String? = nil, headers: [String: String] = [:]
  ) async throws -> HTTPClient.Reply {
    switch self {
    case .router(let client): try await client.send(method, path, json: json, raw: raw, headers: headers)
    case .live: try await HTTPClient(base: base).send(method, path, json: json, raw: raw, headers: headers)
    }
  }

  func close() async {
    switch self {
    case .router(let client): await client.close()
    case .live(let http): await http.stop()
    }
  }
}
