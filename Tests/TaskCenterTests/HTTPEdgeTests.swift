import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

/// The API's edges over real HTTP: wrong methods, plain GETs of the WebSocket, a WebSocket
/// without the token, percent-encoded ids, numbers out of range and absurd timeouts each get
/// a clear typed answer.
@Suite("HTTP edges", .timeLimit(.minutes(2)))
struct HTTPEdgeTests {
  static let token = "edge-token"

  final class Stack: Sendable {
    let fabric: TaskFabric
    let http: TaskCenterHTTPServer
    let base: String

    init(token: String? = HTTPEdgeTests.token) async throws {
      fabric = try await TaskFabric(token: token)
      http = TaskCenterHTTPServer(center: fabric.center, server: fabric.server, port: 0)
      try await http.start()
      base = "http://\(http.address ?? "")"
    }

    func send(_ method: String, _ path: String, json: Any? = nil, raw: String? = nil, token: Bool = true) async throws
      -> HTTPClient.Reply
    {
      try await HTTPClient(base: base).send(
        method, path, json: json, raw: raw, headers: token ? ["Authorization": "Bearer \(HTTPEdgeTests.token)"] : [:])
    }

    func stop() async {
      await http.stop()
      await fabric.stop()
    }
  }

  @Test("a path that exists with other methods is 405 METHOD_NOT_ALLOWED with Allow, an unknown path 404")
  func methodNotAllowed() async throws {
    let stack = try await Stack()
    for (method, path, allowed) in [
      ("PUT", "/tasks", "GET, POST"), ("POST", "/nodes/some-node", "GET"), ("DELETE", "/stats", "GET"),
      ("GET", "/functions/sync_add/call", "POST"), ("PATCH", "/tasks/task_1", "DELETE, GET"),
    ] {
      let reply = try await stack.send(method, path)
      #expect(reply.status == 405, "\(method) \(path): \(reply.text)")
      #expect(reply.errorCode == "METHOD_NOT_ALLOWED")
      #expect(reply.headers["Allow"] == allowed, "\(method) \(path): \(reply.headers)")
    }
    let unknown = try await stack.send("GET", "/no/such/thing")
    #expect(unknown.status == 404 && unknown.errorCode == "NOT_FOUND")
    await stack.stop()
  }

  @Test("/ws/updates: a plain GET is 426 (401 first without the token); a socket without the token gets the error and close 1008")
  func webSocketEdges() async throws {
    let stack = try await Stack()
    let plain = try await stack.send("GET", "/ws/updates")
    #expect(plain.status == 426 && plain.errorCode == "UPGRADE_REQUIRED", "\(plain.text)")
    #expect(plain.headers["Upgrade"] == "websocket")
    let anonymous = try await stack.send("GET", "/ws/updates", token: false)
    #expect(anonymous.status == 401 && anonymous.errorCode == "UNAUTHORIZED")

    let url = stack.base.replacingOccurrences(of: "http://", with: "ws://") + "/ws/updates"
    let messages = Mutex<[String]>([])
    let close = try await WebSocketClient.connect(url: url, logger: Logger(label: "test.ws")) { inbound, _, _ in
      for try await message in inbound.messages(maxSize: 1 << 20) {
        if case .text(let text) = message { messages.withLock { $0.append(text) } }
      }
    }
    #expect(close?.closeCode == .policyViolation, "\(String(describing: close))")
    #expect(messages.withLock { $0 }.first?.contains("\"code\":\"UNAUTHORIZED\"") == true, "\(messages.withLock { $0 })")
    #expect(stack.fabric.center.eventSubscriberCount == 0, "no events for a socket without the token")

    // With the token in the query it subscribes.
    let subscribed = Task {
      try await WebSocketClient.connect(url: url + "?token=\(HTTPEdgeTests.token)", logger: Logger(label: "test.ws")) { inbound, _, _ in
        for try await _ in inbound.messages(maxSize: 1 << 20) { return }
      }
    }
    #expect(await eventually { stack.fabric.center.eventSubscriberCount == 1 })
    subscribed.cancel()
    await stack.stop()
  }

  @Test("path parameters are percent-decoded: node 'a b/é' is at /nodes/a%20b%2F%C3%A9")
  func percentDecoding() async throws {
    let stack = try await Stack(token: nil)  // (the fabric's nodes join without a token)
    try await stack.fabric.addNode("a b/é")
    let reply = try await stack.send("GET", "/nodes/a%20b%2F%C3%A9")
    #expect(reply.status == 200, "\(reply.text)")
    #expect(reply.object["node_id"] as? String == "a b/é")
    let missing = try await stack.send("GET", "/tasks/task%20nope")
    #expect(missing.status == 404 && (missing.object["error"] as? [String: Any])?["message"] as? String != nil)
    #expect(missing.text.contains("task nope"), "\(missing.text)")
    await stack.stop()
  }

  @Test("numbers out of range name their field; a function call's timeout must be at least 1 ms")
  func numbersOutOfRange() async throws {
    let stack = try await Stack()
    for (body, field) in [
      (#"{"code": "print(1)", "timeout": 1e999}"#, "timeout"),
      (#"{"code": "print(1)", "max_attempts": 99999999999999999999}"#, "max_attempts"),
      (#"{"code": "print(1)", "resources": {"memory": -99999999999999999999}}"#, "memory"),
    ] {
      let reply = try await stack.send("POST", "/tasks", raw: body)
      #expect(reply.status == 400 && reply.errorCode == "INVALID_REQUEST", "\(body): \(reply.text)")
      #expect(reply.errorDetails == "field: \(field)", "\(body): \(reply.text)")
      #expect(reply.text.contains("out of range"), "\(reply.text)")
    }
    for timeout in ["9.9e-211", "0", "-1", "3601"] {
      let reply = try await stack.send("POST", "/functions/sync_add/call", raw: #"{"args": [1, 2], "timeout": \#(timeout)}"#)
      #expect(reply.status == 400 && reply.errorDetails == "field: timeout", "\(timeout): \(reply.text)")
    }
    #expect(try await stack.fabric.center.tasks(status: nil, limit: 10, offset: 0).isEmpty, "nothing was stored")
    await stack.stop()
  }
}
