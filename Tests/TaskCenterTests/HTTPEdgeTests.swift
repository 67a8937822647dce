import TestSupport
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

  /// The API in router mode (no socket), or `live` on a free port for the tests whose
  /// subject is the connection: raw bytes, upgrades, keep-alive, slow clients.
  final class Stack: Sendable {
    let fabric: TaskFabric
    let endpoint: APIEndpoint

    init(
      token: String? = HTTPEdgeTests.token, limits: HTTPLimits = HTTPLimits(), databasePath: String = temporaryDatabasePath(),
      live: Bool = false
    ) async throws {
      fabric = try await TaskFabric(databasePath: databasePath, token: token)
      endpoint = try await APIEndpoint.open(
        center: fabric.center, server: fabric.server, configuration: .init(limits: limits), live: live)
    }

    /// The live server (a stack made `live`).
    var http: TaskCenterHTTPServer { endpoint.server }
    var base: String { endpoint.base }

    func send(
      _ method: String, _ path: String, json: Any? = nil, raw: String? = nil, token: Bool = true, headers: [String: String] = [:]
    ) async throws -> HTTPClient.Reply {
      try await endpoint.send(
        method, path, json: json, raw: raw,
        headers: (token ? ["Authorization": "Bearer \(HTTPEdgeTests.token)"] : [:]).merging(headers) { $1 })
    }

    func stop() async {
      await endpoint.close()
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

  @Test("/ws/updates: a plain GET is 426 (401 first without the token); an upgrade without the token is 401 with the error JSON")
  func webSocketEdges() async throws {
    let stack = try await Stack(live: true)
    let plain = try await stack.send("GET", "/ws/updates")
    #expect(plain.status == 426 && plain.errorCode == "UPGRADE_REQUIRED", "\(plain.text)")
    #expect(plain.headers["Upgrade"] == "websocket")
    let anonymous = try await stack.send("GET", "/ws/updates", token: false)
    #expect(anonymous.status == 401 && anonymous.errorCode == "UNAUTHORIZED")

    // A real upgrade request, without the token or with a wrong one: 401 and the error JSON,
    // then the connection closes.
    let address = try #require(stack.http.address)
    for query in ["", "?token=wrong", "?token=" + String(HTTPEdgeTests.token.dropLast()), "?ticket=made-up"] {
      let connection = try RawConnection(address)
      await connection.send(
        "GET /ws/updates\(query) HTTP/1.1\r\nHost: \(address)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
      let answer = await connection.readToClose()
      #expect(answer.text.hasPrefix("HTTP/1.1 401 Unauthorized"), "\(query): \(answer.text)")
      #expect(answer.text.contains("\"code\":\"UNAUTHORIZED\"") && answer.closed, "\(answer.text)")
    }
    // A WebSocket client sees the refusal as a failed connection.
    let url = stack.base.replacingOccurrences(of: "http://", with: "ws://") + "/ws/updates"
    await #expect(throws: (any Error).self) {
      _ = try await WebSocketClient.connect(url: url, logger: Logger(label: "test.ws")) { _, _, _ in }
    }
    #expect(stack.fabric.center.eventSubscriberCount == 0, "no events for a socket without the token")

    // With the token in the query it subscribes.
    let subscribed = Task {
      try await WebSocketClient.connect(url: url + "?token=\(HTTPEdgeTests.token)", logger: Logger(label: "test.ws")) { inbound, _, _ in
        for try await _ in inbound.messages(maxSize: 1 << 20) { return }
      }
    }
    #expect(try await until(stack.fabric.center.eventSubscriberChanges()) { stack.fabric.center.eventSubscriberCount == 1 })
    subscribed.cancel()
    #expect(try await until(stack.fabric.center.eventSubscriberChanges()) { stack.fabric.center.eventSubscriberCount == 0 })

    // The console's way: a ticket from POST /ws/ticket (with the token), no token in the URL.
    #expect(try await stack.send("POST", "/ws/ticket", token: false).status == 401)
    let issued = try await stack.send("POST", "/ws/ticket")
    let ticket = try #require(issued.object["ticket"] as? String, "\(issued.text)")
    #expect(issued.object["expires_in"] as? Int == 30)
    let ticketed = Task {
      try await WebSocketClient.connect(url: url + "?ticket=\(ticket)", logger: Logger(label: "test.ws")) { inbound, _, _ in
        for try await _ in inbound.messages(maxSize: 1 << 20) { return }
      }
    }
    #expect(try await until(stack.fabric.center.eventSubscriberChanges()) { stack.fabric.center.eventSubscriberCount == 1 })
    ticketed.cancel()
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

  @Test("POST /tasks with Idempotency-Key: a repeat gets the same task (also after a restart, also at once), another body 409")
  func idempotencyKey() async throws {
    let database = temporaryDatabasePath()
    var stack = try await Stack(databasePath: database)
    let body: [String: Any] = ["code": "print('once')", "timeout": 30]
    let first = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": "order-17"])
    #expect(first.status == 201, "\(first.text)")
    let id = try #require(first.object["task_id"] as? String)
    #expect(first.headers["Idempotent-Replayed"] == nil)
    let again = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": "order-17"])
    #expect(again.status == 201 && again.object["task_id"] as? String == id, "\(again.text)")
    #expect(again.headers["Idempotent-Replayed"] == "true")
    let other = try await stack.send("POST", "/tasks", json: ["code": "print('twice')"], headers: ["Idempotency-Key": "order-17"])
    #expect(other.status == 409 && other.errorCode == "IDEMPOTENCY_CONFLICT", "\(other.text)")
    for bad in ["has space", String(repeating: "k", count: 256)] {
      let reply = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": bad])
      #expect(reply.status == 400 && reply.errorCode == "INVALID_REQUEST", "\(reply.text)")
    }
    // Ten at once with one key: one task.
    let current = stack
    let ids = try await withThrowingTaskGroup(of: String?.self) { group in
      for _ in 0..<10 {
        group.addTask {
          try await current.send("POST", "/tasks", json: ["code": "print(10)"], headers: ["Idempotency-Key": "burst"]).object["task_id"]
            as? String
        }
      }
      return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
    }
    #expect(ids.count == 1 && ids.first! != nil, "\(ids)")
    #expect(try await stack.fabric.center.tasks(status: nil, limit: 100, offset: 0).count == 2)
    await stack.stop()

    // The key is in the database: after a restart the repeat still gets the first task.
    stack = try await Stack(databasePath: database)
    let afterRestart = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": "order-17"])
    #expect(afterRestart.object["task_id"] as? String == id, "\(afterRestart.text)")
    #expect(try await stack.fabric.center.tasks(status: nil, limit: 100, offset: 0).count == 2)
    await stack.stop()
  }

  @Test("a repeated Idempotency-Key gets its task even when the request would not be accepted now")
  func idempotentReplayAfterTheNodeLeft() async throws {
    let stack = try await Stack(token: nil)
    let (node, worker) = try await stack.fabric.addNode("adder")
    let body: [String: Any] = ["function": "sync_add", "args": [1, 2]]
    let first = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": "add-1"])
    #expect(first.status == 201, "\(first.text)")
    let leaving = stack.fabric.membershipChanges()
    await worker.stop()
    await node.stop()
    #expect(try await until(leaving) { stack.fabric.server.nodeCount == 0 })
    // Asked anew, no node serves sync_add: 404. Repeated, it is the task already made.
    let fresh = try await stack.send("POST", "/tasks", json: body)
    #expect(fresh.status == 404, "\(fresh.text)")
    let repeated = try await stack.send("POST", "/tasks", json: body, headers: ["Idempotency-Key": "add-1"])
    #expect(repeated.status == 201 && repeated.object["task_id"] as? String == first.object["task_id"] as? String, "\(repeated.text)")
    #expect(repeated.headers["Idempotent-Replayed"] == "true")
    await stack.stop()
  }

  // MARK: A hostile client

  /// A raw TCP connection to the server.
  final class RawConnection: Sendable {
    let fd: Int32

    /// Connects to `address` (`host:port`), from `source` (another loopback address: another
    /// client to the server) when given.
    init(_ address: String, from source: String? = nil) throws {
      let parts = address.split(separator: ":")
      fd = try connectedSocket(host: String(parts[0]), port: UInt16(parts[1])!, source: source)
      var time = timeval(tv_sec: 30, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) async { await send(Array(text.utf8)) }

    /// Sends on a thread of its own: a blocking send must not hold one of the few threads of
    /// the cooperative pool (two on this machine).
    func send(_ bytes: [UInt8]) async {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread.detachNewThread {
          self.sendNow(bytes)
          continuation.resume()
        }
      }
    }

    private func sendNow(_ bytes: [UInt8]) {
      var offset = 0
      while offset < bytes.count {
        let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count <= 0 { return }
        offset += count
      }
    }

    /// The indices of `connections` with something to read (data or the end), once at least
    /// one has or `within` has passed.
    static func readable(_ connections: [RawConnection], within timeout: Duration) async -> [Int] {
      await withCheckedContinuation { continuation in
        Thread.detachNewThread {
          var fds = connections.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
          let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
          _ = poll(&fds, nfds_t(fds.count), milliseconds)
          continuation.resume(returning: fds.indices.filter { fds[$0].revents != 0 })
        }
      }
    }

    /// Everything until the server closes (or 30 s pass), off the cooperative pool.
    func readToClose() async -> (text: String, closed: Bool) {
      await withCheckedContinuation { continuation in
        Thread.detachNewThread {
          var data = [UInt8]()
          var buffer = [UInt8](repeating: 0, count: 65536)
          var closed = false
          while true {
            let count = recv(self.fd, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) {
              closed = true
              break
            }
            if count < 0 { break }
            data += buffer[0..<count]
          }
          continuation.resume(returning: (String(decoding: data, as: UTF8.self), closed))
        }
      }
    }

    deinit { close(fd) }
  }

  @Test("malformed, oversized and smuggling requests are answered 400/414/431 with the error JSON and closed")
  func hostileRequests() async throws {
    let stack = try await Stack(token: nil, live: true)
    let address = try #require(stack.http.address)
    let cases: [(String, [UInt8], String, String)] = [
      ("garbage", Array("GARBAGE\r\n\r\n".utf8), "400", "INVALID_REQUEST"),
      ("1 MB URL", Array(("GET /" + String(repeating: "a", count: 1_000_000) + " HTTP/1.1\r\nHost: x\r\n\r\n").utf8), "414", "URI_TOO_LONG"),
      ("1,000 headers", Array(("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<1000).map { "X-H\($0): v\r\n" }.joined() + "\r\n").utf8), "431", "HEADERS_TOO_LARGE"),
      ("an 80 KB header", Array(("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 80_000) + "\r\n\r\n").utf8), "431", "HEADERS_TOO_LARGE"),
      ("Content-Length: abc", Array("POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".utf8), "400", "INVALID_REQUEST"),
      ("Content-Length and Transfer-Encoding", Array("POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8), "400", "INVALID_REQUEST"),
      ("a header without a name", Array("GET / HTTP/1.1\r\n: nameless\r\n\r\n".utf8), "400", "INVALID_REQUEST"),
    ]
    for (name, bytes, status, code) in cases {
      let connection = try RawConnection(address)
      await connection.send(bytes)
      let (text, closed) = await connection.readToClose()
      #expect(text.hasPrefix("HTTP/1.1 \(status) "), "\(name): \(text.prefix(200))")
      #expect(text.contains("\"code\":\"\(code)\""), "\(name): \(text.prefix(300))")
      #expect(closed, "\(name): the connection was left open")
    }
    #expect(try await stack.fabric.center.tasks(status: nil, limit: 10, offset: 0).isEmpty, "nothing was stored")
    await stack.stop()
  }

  @Test("requests kept alive on one connection (a body, then another request in the same write) are each answered")
  func keepAliveFraming() async throws {
    let stack = try await Stack(token: nil, live: true)
    let connection = try RawConnection(try #require(stack.http.address))
    let body = #"{"code": "print(1)"}"#
    await connection.send(
      "POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    let (text, closed) = await connection.readToClose()
    #expect(text.components(separatedBy: "HTTP/1.1 ").count - 1 == 3, "\(text)")
    #expect(text.contains("HTTP/1.1 201 ") && text.contains("\"task_id\"") && text.contains("\"components\"") && text.contains("\"time_period\""), "\(text)")
    #expect(closed)
    await stack.stop()
  }

  @Test("slowloris: heads that trickle get 408 and are closed; silent connections are closed; past the cap, 503")
  func slowClientsAndTheConnectionCap() async throws {
    let stack = try await Stack(
      token: nil, limits: HTTPLimits(headTimeout: .seconds(1), idleTimeout: .seconds(5), maxConnections: 40), live: true)
    let address = try #require(stack.http.address)
    // 30 clients each send a head one byte at a time, far too slowly. Each sends its first
    // byte as soon as it is connected (so on a loaded machine none is taken for a silent one,
    // which the idle timeout closes without an answer), then one every 300 ms.
    let trickle = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
    var slow: [RawConnection] = []
    for _ in 0..<30 {
      let connection = try RawConnection(address)
      await connection.send([trickle[0]])
      slow.append(connection)
    }
    let results = await withTaskGroup(of: (String, Bool).self) { group in
      for connection in slow {
        group.addTask {
          let sender = Task.detached {
            for byte in trickle.dropFirst() {
              await connection.send([byte])
              try? await Task.sleep(for: .milliseconds(300))  // the subject: a client that trickles in real time
            }
          }
          let result = await connection.readToClose()
          sender.cancel()
          return result
        }
      }
      return await group.reduce(into: []) { $0.append($1) }
    }
    #expect(results.allSatisfy { $0.0.hasPrefix("HTTP/1.1 408 ") && $0.1 }, "\(results.map { $0.0.prefix(40) })")
    // A connection that never sends anything is closed after the idle timeout.
    let silent = try RawConnection(address)
    let (silentText, silentClosed) = await silent.readToClose()
    #expect(silentText.isEmpty && silentClosed)

    await stack.stop()

    // Up to the cap connections are taken; when all of them have begun a request, one more is
    // refused. (Long timeouts here: on a loaded machine the held connections must not time out
    // before the extra one arrives.)
    let capped = try await Stack(
      token: nil, limits: HTTPLimits(headTimeout: .seconds(60), idleTimeout: .seconds(60), maxConnections: 40, firstRequestTimeout: .seconds(60)), live: true)
    let cappedAddress = try #require(capped.http.address)
    var held = try (0..<40).map { _ in try RawConnection(cappedAddress) }
    for connection in held { await connection.send("G") }
    try #require(try await until(capped.http.connectionChanges()) { capped.http.connectionCounts == (40, 0) }, "\(capped.http.connectionCounts)")
    held.append(try RawConnection(cappedAddress))
    // The newcomer is answered 503 and closed, the other 40 stay open.
    let answered = await RawConnection.readable(held, within: .seconds(20))
    #expect(answered == [40], "answered: \(answered)")
    if let index = answered.first {
      let (refused, refusedClosed) = await held[index].readToClose()
      #expect(refused.hasPrefix("HTTP/1.1 503 ") && refused.contains("RESOURCE_UNAVAILABLE") && refusedClosed, "\(refused.prefix(200))")
    }
    let later = await RawConnection.readable(held, within: .milliseconds(300))
    #expect(later == answered, "more connections were refused: \(later)")
    held.removeAll()  // closes them, so the server's graceful stop need not wait for them
    await capped.stop()
  }
}
