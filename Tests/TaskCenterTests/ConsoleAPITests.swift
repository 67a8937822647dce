import EasyRemote
import Foundation
import TaskCenter
import TaskCenterHTTP
import Testing

/// What the web console stands on: its pages and files (open, from the module's resources),
/// `GET /snapshot`, the `stats` event, `POST /functions/{name}/stream`, and browsers sent from
/// `/` to `/web`. (The console itself runs in Chromium: `Scripts/console_test.py`.)
@Suite("Console API", .timeLimit(.minutes(2)))
struct ConsoleAPITests {
  static let token = "console-token"

  /// With `stats` events every 100 ms.
  static func stack(live: Bool = false) async throws -> HTTPStack {
    let fabric = try await TaskFabric(
      configuration: TaskCenter.Configuration(
        scheduler: .init(heartbeatTimeout: 3), maxCodeBytes: 10_000, maxTimeout: 600, expiryInterval: .milliseconds(100),
        statsInterval: .milliseconds(100)))
    return try await HTTPStack(token: token, fabric: fabric, live: live)
  }

  @Test("the console's pages and files are served without the token, with a strict CSP; the API stays closed")
  func pages() async throws {
    let stack = try await ConsoleAPITests.stack(live: true)  // a raw path (`..`) a URL client would tidy
    for page in ["/web", "/web/monitor", "/web/tasks", "/web/submit"] {
      let reply = try await stack.send("GET", page, token: false)
      #expect(reply.status == 200, "\(page)")
      #expect(reply.headers["Content-Type"]?.hasPrefix("text/html") == true)
      #expect(reply.text.contains(#"<script type="module" src="/web/static/app.js">"#))
      #expect(reply.headers["Content-Security-Policy"]?.contains("default-src 'self'") == true)
    }
    for file in ["app.js", "api.js", "store.js", "chart.js", "util.js", "style.css", "pages/monitor.js", "pages/tasks.js"] {
      let reply = try await stack.send("GET", "/web/static/\(file)", token: false)
      #expect(reply.status == 200 && !reply.body.isEmpty, "\(file): \(reply.status)")
      // Nothing from elsewhere: no CDN, no remote import (the SVG namespace is a name, not a load).
      #expect(reply.text.firstMatch(of: /(from|src=|href=|url\(|fetch\()\s*["'`]?https?:/) == nil, "\(file) loads from another origin")
    }
    let js = try await stack.send("GET", "/web/static/app.js", token: false)
    #expect(js.headers["Content-Type"]?.hasPrefix("text/javascript") == true)
    #expect(try await stack.send("GET", "/web/static/nothing.js", token: false).status == 404)
    let escape = try await RawHTTP.get(stack.http.address!, "/web/static/../../Package.swift", headers: [:])
    #expect(escape.hasPrefix("HTTP/1.1 404"), "\(escape.prefix(200))")
    #expect(try await stack.send("GET", "/snapshot", token: false).status == 401)
    await stack.stop()
  }

  @Test("GET / sends a browser to /web and answers API clients with JSON")
  func rootRedirect() async throws {
    let stack = try await ConsoleAPITests.stack(live: true)
    let browser = try await RawHTTP.get(stack.http.address!, "/", headers: ["Accept": "text/html,application/xhtml+xml"])
    #expect(browser.hasPrefix("HTTP/1.1 302"), "\(browser)")
    #expect(browser.lowercased().contains("location: /web"))
    let client = try await stack.send("GET", "/", headers: ["Accept": "application/json"])
    #expect(client.status == 200 && client.object["service"] as? String == "EasyRemote task center")
    await stack.stop()
  }

  @Test("GET /snapshot: nodes with thresholds, functions, and the stats figures (calls, tasks, queue)")
  func snapshot() async throws {
    let stack = try await ConsoleAPITests.stack()
    try await stack.fabric.addNode("s1", slots: 2)
    let client = stack.fabric.client()
    _ = try await client.execute("sync_add", 1, 2) as Double
    let reply = try await stack.send("GET", "/snapshot")
    #expect(reply.status == 200, "\(reply.text)")
    let nodes = try #require(reply.object["nodes"] as? [[String: Any]])
    #expect(nodes.first?["node_id"] as? String == "s1")
    let thresholds = try #require(nodes.first?["thresholds"] as? [String: Any])
    #expect(thresholds["max_cpu_percent"] as? Double == 80 && thresholds["max_memory_percent"] as? Double == 90)
    let functions = try #require(reply.object["functions"] as? [[String: Any]])
    #expect(functions.contains { $0["name"] as? String == "sync_add" })
    let stats = try #require(reply.object["stats"] as? [String: Any])
    #expect(stats["calls_total"] as? Int == 1)
    #expect(((stats["functions"] as? [String: Any])?["sync_add"] as? [String: Any])?["calls"] as? Int == 1)
    #expect((stats["tasks"] as? [String: Int])?["queued"] == 0)
    let queue = try #require(stats["queue"] as? [[String: Any]])
    #expect(queue.first?["node_id"] as? String == "s1" && queue.first?["priority"] as? String == "high")
    #expect((stats["nodes"] as? [[String: Any]])?.first?["slots"] as? Int == 2)
    await stack.stop()
  }

  @Test("the stats event reaches subscribers every statsInterval, with the calls made")
  func statsEvent() async throws {
    let stack = try await ConsoleAPITests.stack()
    try await stack.fabric.addNode("e1")
    let events = stack.fabric.server.events(buffer: 64)
    _ = try await stack.fabric.client().execute("sync_add", 2, 2) as Double
    var seen: [String: Any]?
    for await event in events where event.name == "stats" {
      let object = try JSONSerialization.jsonObject(with: event.json) as? [String: Any]
      let data = object?["data"] as? [String: Any]
      if data?["calls_total"] as? Int == 1 {
        seen = data
        break
      }
    }
    #expect(seen?["queue_length"] as? Int == 0)
    #expect((seen?["nodes"] as? [[String: Any]])?.first?["node_id"] as? String == "e1")
    await stack.stop()
  }

  @Test("POST /functions/{name}/stream: items as NDJSON lines; unknown 404, not streaming 400, a failing stream ends with an error line")
  func stream() async throws {
    let stack = try await ConsoleAPITests.stack()
    try await stack.fabric.addNode("st1")
    let items = try await stack.send("POST", "/functions/sync_number_stream/stream", json: ["args": [5, 3, 0]])
    #expect(items.status == 200 && items.headers["Content-Type"] == "application/x-ndjson", "\(items.text)")
    let lines = items.text.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Int] }
    #expect(lines.map { $0?["value"] } == [5, 6, 7], "\(items.text)")

    let unknown = try await stack.send("POST", "/functions/nope/stream", json: [:])
    #expect(unknown.status == 404 && unknown.errorCode == "FUNCTION_NOT_FOUND")
    let plain = try await stack.send("POST", "/functions/sync_add/stream", json: ["args": [1, 2]])
    #expect(plain.status == 400 && plain.errorCode == "INVALID_REQUEST", "\(plain.text)")
    let badTimeout = try await stack.send("POST", "/functions/sync_number_stream/stream", json: ["timeout": 0])
    #expect(badTimeout.status == 400)
    // Refused before the answer starts: a null where the schema has none, a node that does not serve it.
    let null = try await stack.send("POST", "/functions/sync_number_stream/stream", json: ["timeout": NSNull()])
    #expect(null.status == 400 && null.text.contains("timeout"), "\(null.text)")
    let elsewhere = try await stack.send("POST", "/functions/sync_number_stream/stream", json: ["node": ""])
    #expect(elsewhere.status == 404 && elsewhere.errorCode == "FUNCTION_NOT_FOUND", "\(elsewhere.text)")
    let nullCall = try await stack.send("POST", "/functions/sync_add/call", json: ["args": [1, 2], "timeout": NSNull()])
    #expect(nullCall.status == 400, "\(nullCall.text)")
    // Wrong arguments: refused by the node once the stream is under way, so the body ends
    // with the error as its last line.
    let wrong = try await stack.send("POST", "/functions/sync_number_stream/stream", json: ["args": ["x"]])
    #expect(wrong.status == 200)
    let last = wrong.text.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    #expect((last?["error"] as? [String: Any])?["code"] as? String == "INVALID_REQUEST", "\(wrong.text)")
    await stack.stop()
  }
}

/// A plain HTTP/1.1 GET on its own socket (URLSession follows redirects; this does not).
enum RawHTTP {
  static func get(_ address: String, _ path: String, headers: [String: String]) async throws -> String {
    let connection = try HTTPEdgeTests.RawConnection(address)
    let head = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
    await connection.send("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\(head)\r\n")
    return await connection.readToClose().text
  }
}
