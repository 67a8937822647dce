import TestSupport
import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The HTTP API over real sockets (URLSession on one side, Hummingbird on the other), every
/// response checked against `openapi.yaml`.
@Suite("Task center HTTP API", .timeLimit(.minutes(3)))
struct HTTPAPITests {
  /// A gateway with its task center and HTTP server; `client` checks every reply against the
  /// OpenAPI document.
  ///
  /// Its requests go to the API's responder with no socket (HummingbirdTesting's router
  /// mode), unless `live`: then over a real socket to a server on a free port (`http`,
  /// `base`) — for the tests whose subject is the connection (WebSockets, a slow reader).
  final class Stack {
    let fabric: TaskFabric
    let endpoint: APIEndpoint
    let validator: OpenAPIValidator
    let problems = Mutex<[String]>([])

    init(
      configuration: TaskCenter.Configuration = TaskFabric.configuration, databasePath: String = temporaryDatabasePath(),
      live: Bool = false
    ) async throws {
      fabric = try await TaskFabric(databasePath: databasePath, configuration: configuration)
      validator = try OpenAPIValidator()
      endpoint = try await APIEndpoint.open(center: fabric.center, server: fabric.server, live: live)
    }

    /// The live server (a stack made `live`).
    var http: TaskCenterHTTPServer { endpoint.server }
    var base: String { endpoint.base }

    func send(
      _ method: String, _ path: String, json: Any? = nil, raw: String? = nil, headers: [String: String] = [:]
    ) async throws -> HTTPClient.Reply {
      let reply = try await endpoint.send(method, path, json: json, raw: raw, headers: headers)
      let found = validator.problems(method: method, path: path, status: reply.status, body: reply.body)
      problems.withLock { $0 += found }
      return reply
    }

    func get(_ path: String) async throws -> HTTPClient.Reply { try await send("GET", path) }
    func post(_ path: String, _ json: Any) async throws -> HTTPClient.Reply { try await send("POST", path, json: json) }

    /// `GET /tasks/{id}` once the task is final (the task center says when).
    func finished(_ id: String) async throws -> [String: Any] {
      _ = try await fabric.center.wait(id, timeout: .seconds(60))
      return try await get("/tasks/\(id)").object
    }

    func stop() async {
      await endpoint.close()
      await fabric.stop()
    }
  }

  @Test("every endpoint answers as documented")
  func endpoints() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("n1", slots: 2)

    let root = try await stack.get("/")
    #expect(root.status == 200)
    #expect(root.object["status"] as? String == "running")
    #expect(root.object["idle_nodes"] as? Int == 1)
    let health = try await stack.get("/health")
    #expect(health.status == 200 && health.object["status"] as? String == "healthy")

    let created = try await stack.post("/tasks", ["code": "print(1 + 1)", "timeout": 30, "resources": ["cpu": 1, "memory": 256]])
    #expect(created.status == 201)
    #expect(created.object["status"] as? String == "queued")
    let id = try #require(created.object["task_id"] as? String)
    let task = try await stack.finished(id)
    #expect(task["status"] as? String == "completed")
    #expect(task["result"] as? String == "2")
    #expect(task["stdout"] as? String == "2\n", "stdout stays whole beside the result")
    #expect(task["executed_on"] as? String == "n1")
    #expect(task["completed_at"] is String)

    let function = try await stack.post("/tasks", ["function": "sync_add", "args": [20, 22]])
    let functionTask = try await stack.finished(try #require(function.object["task_id"] as? String))
    #expect(functionTask["result"] as? Int == 42, "a function task's result is the JSON value itself")
    #expect(functionTask["arguments"] as? [Int] == [20, 22])

    let list = try await stack.get("/tasks?status=completed&limit=1")
    #expect(list.object["total"] as? Int == 2)
    #expect((list.object["tasks"] as? [Any])?.count == 1)
    let page = try await stack.get("/tasks?limit=1&offset=1")
    #expect(((page.object["tasks"] as? [[String: Any]])?.first?["task_id"] as? String) == id)

    let nodes = try await stack.get("/nodes")
    #expect(nodes.object["total_nodes"] as? Int == 1)
    let node = try await stack.get("/nodes/n1")
    #expect(node.object["completed_tasks"] as? Int == 2)
    #expect((node.object["resources"] as? [String: Any])?["cpu_cores"] as? Int == 4)
    let stats = try await stack.get("/stats")
    #expect((stats.object["tasks"] as? [String: Any])?["completed"] as? Int == 2)
    #expect((stats.object["nodes"] as? [String: Any])?["idle"] as? Int == 1)
    let top = try await stack.get("/stats/nodes/top?limit=5")
    #expect(((top.object["nodes"] as? [[String: Any]])?.first?["node_id"] as? String) == "n1")
    let queue = try await stack.get("/stats/nodes/queue")
    #expect(queue.object["scheduling_policy"] as? String == "fair_queue_with_priority")
    let entry = (queue.object["nodes"] as? [[String: Any]])?.first
    #expect(entry?["priority"] as? String == "high" && entry?["reason"] as? String == "new_node_priority")

    let functions = try await stack.get("/functions")
    #expect((functions.object["functions"] as? [[String: Any]])?.contains { $0["name"] as? String == "sync_add" } == true)
    let call = try await stack.post("/functions/sync_add/call", ["args": [2, 3]])
    #expect(call.status == 200)
    #expect(call.object["result"] as? Double == 5)
    let keywords = try await stack.post("/functions/sync_add/call", ["kwargs": ["a": 1, "b": 2]])
    #expect(keywords.object["result"] as? Double == 3)

    let long = try await stack.post("/tasks", ["code": "import time\ntime.sleep(60)"])
    let longID = try #require(long.object["task_id"] as? String)
    #expect(try await stack.fabric.waitFor(longID, .running))
    let cancelled = try await stack.send("DELETE", "/tasks/\(longID)")
    #expect(cancelled.status == 200 && cancelled.object["status"] as? String == "cancelled")

    let spec = try await stack.get("/openapi.yaml")
    #expect(spec.status == 200 && spec.text.hasPrefix("openapi: 3"))
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("bad input is INVALID_REQUEST naming the field; unknown ids and functions are typed 404s")
  func errors() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("n1")
    let cases: [(String, String, Any?, String?, Int, String, String?)] = [
      ("POST", "/tasks", nil, "{not json", 400, "INVALID_REQUEST", "field: body"),
      ("POST", "/tasks", nil, "", 400, "INVALID_REQUEST", "field: body"),
      ("POST", "/tasks", ["code": 5], nil, 400, "INVALID_REQUEST", "field: code"),
      ("POST", "/tasks", ["code": "print(1)", "timeout": "soon"], nil, 400, "INVALID_REQUEST", "field: timeout"),
      ("POST", "/tasks", ["code": "print(1)", "timeout": 0], nil, 400, "INVALID_REQUEST", "field: timeout"),
      ("POST", "/tasks", ["code": "print(1)", "timeout": 100_000], nil, 400, "INVALID_REQUEST", "field: timeout"),
      ("POST", "/tasks", ["code": "print(1)", "resources": ["cpu": "lots"]], nil, 400, "INVALID_REQUEST", "field: resources.cpu"),
      ("POST", "/tasks", ["code": "print(1)", "resources": ["memory": 0]], nil, 400, "INVALID_REQUEST", "field: resources.memory"),
      ("POST", "/tasks", ["timeout": 5], nil, 400, "INVALID_REQUEST", "field: code"),
      ("POST", "/tasks", ["code": String(repeating: "#", count: 10_001)], nil, 400, "INVALID_REQUEST", "field: code"),
      ("POST", "/tasks", ["function": "nope"], nil, 404, "FUNCTION_NOT_FOUND", "field: function"),
      ("POST", "/tasks", ["code": "print(1)", "resources": ["cpu": 64]], nil, 503, "RESOURCE_UNAVAILABLE", nil),
      ("GET", "/tasks/task_nope", nil, nil, 404, "TASK_NOT_FOUND", "task_id: task_nope"),
      ("DELETE", "/tasks/task_nope", nil, nil, 404, "TASK_NOT_FOUND", nil),
      ("GET", "/tasks?status=bogus", nil, nil, 400, "INVALID_REQUEST", "field: status"),
      ("GET", "/tasks?limit=0", nil, nil, 400, "INVALID_REQUEST", "field: limit"),
      ("GET", "/tasks?offset=x", nil, nil, 400, "INVALID_REQUEST", "field: offset"),
      ("GET", "/nodes/nope", nil, nil, 404, "NODE_NOT_FOUND", "node_id: nope"),
      ("GET", "/stats/nodes/top?limit=-1", nil, nil, 400, "INVALID_REQUEST", "field: limit"),
      ("GET", "/no/such/endpoint", nil, nil, 404, "NOT_FOUND", nil),
      ("POST", "/functions/nope/call", ["args": []], nil, 404, "FUNCTION_NOT_FOUND", nil),
      ("POST", "/functions/sync_add/call", ["args": [1, "two"]], nil, 400, "INVALID_REQUEST", nil),
      ("POST", "/functions/sync_add/call", ["args": "1, 2"], nil, 400, "INVALID_REQUEST", "field: args"),
      ("POST", "/functions/hold/call", ["args": [], "timeout": 0.3], nil, 408, "TASK_TIMEOUT", nil),
      ("POST", "/functions/sync_add/call", ["args": [1, 2], "timeout": -1], nil, 400, "INVALID_REQUEST", "field: timeout"),
      ("GET", "/internal/task/request", nil, nil, 404, "NODE_NOT_FOUND", "field: node_id"),
      ("GET", "/internal/task/request?node_id=ghost", nil, nil, 404, "NODE_NOT_FOUND", nil),
      ("POST", "/internal/heartbeat", ["node_id": "x"], nil, 400, "INVALID_REQUEST", "field: resources"),
      ("POST", "/internal/task/result", ["task_id": "task_nope", "node_id": "x", "status": "success"], nil, 404, "TASK_NOT_FOUND", nil),
      ("POST", "/internal/task/result", ["task_id": "t", "node_id": "x", "status": "great"], nil, 400, "INVALID_REQUEST", "field: status"),
    ]
    for (method, path, json, raw, status, code, details) in cases {
      let reply = try await stack.send(method, path, json: json, raw: raw)
      #expect(reply.status == status, "\(method) \(path): \(reply.text)")
      #expect(reply.errorCode == code, "\(method) \(path): \(reply.text)")
      if let details { #expect(reply.errorDetails == details, "\(method) \(path): \(reply.text)") }
      #expect((reply.object["error"] as? [String: Any])?["message"] is String)
    }
    let listed = try await stack.get("/tasks")
    #expect(listed.object["total"] as? Int == 0, "nothing refused was stored")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("seed-following clients: pending, top 5, idle_since, estimated_wait, node_id/availability, a stream called plainly")
  func seedCompatibility() async throws {
    let stack = try await Stack()
    // No node yet: nobody can say how long a task waits.
    let early = try await stack.post("/tasks", ["code": "print(1)"])
    #expect(early.status == 201 && early.object["estimated_wait"] is NSNull, "\(early.text)")
    // The seed's `pending` is our `queued`.
    let pending = try await stack.get("/tasks?status=pending")
    #expect(pending.status == 200 && pending.object["total"] as? Int == 1, "\(pending.text)")
    #expect((pending.object["tasks"] as? [[String: Any]])?.first?["status"] as? String == "queued")

    try await stack.fabric.addNode("n1", slots: 2)
    _ = try await stack.finished(try #require(early.object["task_id"] as? String))
    let idle = try await stack.get("/nodes/n1").object
    #expect(idle["status"] as? String == "idle", "its worker is freed before the task is final")
    let since = try #require(idle["idle_since"] as? String, "\(idle)")
    #expect(ISO8601DateFormatter().date(from: since) != nil)
    let later = try await stack.post("/tasks", ["code": "print(2)"])
    #expect(later.object["estimated_wait"] as? Double != nil, "\(later.text)")

    // Top nodes: 5 unless asked.
    for index in 0..<6 {
      _ = try await stack.post("/internal/heartbeat", ["node_id": "py-\(index)", "resources": ["cpu_cores": 1, "memory_mb": 512]])
    }
    #expect((try await stack.get("/stats/nodes/top").object["nodes"] as? [Any])?.count == 5)
    #expect((try await stack.get("/stats/nodes/top?limit=7").object["nodes"] as? [Any])?.count == 7)

    // Function listings carry seed 000's names beside ours.
    let functions = try await stack.get("/functions").object["functions"] as? [[String: Any]] ?? []
    let add = try #require(functions.first { $0["name"] as? String == "sync_add" })
    #expect(add["node_id"] as? String == "n1" && add["availability"] as? Bool == true && add["nodes"] as? [String] == ["n1"])

    // A streaming function called plainly answers its items as one list.
    let streamed = try await stack.post("/functions/sync_number_stream/call", ["args": [10, 3, 0]])
    #expect(streamed.status == 200, "\(streamed.text)")
    let items = try #require(streamed.object["result"] as? [[String: Any]], "\(streamed.text)")
    #expect(items.compactMap { $0["value"] as? Int } == [10, 11, 12])
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("GET /stats/gateway counts calls by function, as easyremote stats does")
  func gatewayStats() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("stats-node")
    for _ in 0..<3 { _ = try await stack.send("POST", "/functions/sync_add/call", json: ["args": [1, 2]]) }
    _ = try await stack.send("POST", "/functions/no_such_function/call", json: ["args": []])
    let reply = try await stack.send("GET", "/stats/gateway")
    #expect(reply.status == 200, "\(reply.text)")
    #expect(reply.object["nodes"] as? Int == 1)
    let perFunction = reply.object["per_function"] as? [String: [String: Any]] ?? [:]
    #expect(perFunction["sync_add"]?["calls"] as? Int == 3, "\(reply.text)")
    #expect(perFunction["sync_add"]?["failures"] as? Int == 0)
    #expect((reply.object["total_requests"] as? Int ?? 0) >= 3)
    await stack.stop()
  }

  @Test("a worker that follows the seed's bodies exactly still completes a task")
  func seedPullBodies() async throws {
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    let stack = try await Stack(configuration: configuration)
    let beat = try await stack.post(
      "/internal/heartbeat",
      [
        "node_id": "node_macbook_001", "status": "idle", "resources": ["cpu_cores": 8, "memory_mb": 16384],
        "current_load": ["cpu_percent": 15.5, "memory_percent": 45.2],
      ])
    #expect(beat.status == 200 && beat.object["status"] as? String == "ok")
    let created = try await stack.post("/tasks", ["code": "print(1+1)", "timeout": 300])
    let id = try #require(created.object["task_id"] as? String)
    let offer = try await stack.get("/internal/task/request")
    #expect(offer.object["has_task"] as? Bool == true, "\(offer.text)")
    #expect((offer.object["task"] as? [String: Any])?["task_id"] as? String == id)
    let result = try await stack.post(
      "/internal/task/result",
      ["task_id": id, "status": "success", "result": "2", "execution_time": 1.5, "error_message": NSNull()])
    #expect(result.status == 200, "\(result.text)")
    let task = try await stack.get("/tasks/\(id)").object
    #expect(task["status"] as? String == "completed" && task["result"] as? String == "2")
    #expect(task["executed_on"] as? String == "node_macbook_001")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test(
    "a full disk: no task is stuck, /health says degraded, and the queue moves again once space is back",
    .enabled(if: geteuid() == 0, "mounts a small tmpfs"))
  func diskFull() async throws {
    let disk = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-disk-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
    try #require(mount("tmpfs", disk.path, "tmpfs", 0, "size=4m") == 0, "mount: \(String(cString: strerror(errno)))")
    defer {
      umount2(disk.path, Int32(MNT_DETACH))
      try? FileManager.default.removeItem(at: disk)
    }
    var configuration = TaskFabric.configuration
    configuration.storeRetryInterval = .milliseconds(100)
    let stack = try await Stack(configuration: configuration, databasePath: disk.appendingPathComponent("tasks.sqlite").path)
    try await stack.fabric.addNode("n1", slots: 2)

    // Two tasks that run until the test lets them go (SIGUSR1), each known by its name.
    let names = (0..<2).map { "disk\($0)\(Int.random(in: 10_000...99_999))" }
    var ids: [String] = []
    for name in names {
      let code = """
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        open('/proc/self/comm', 'w').write('\(name)')
        signal.sigwait([signal.SIGUSR1])
        print('\(name) done')
        """
      ids.append(try #require(try await stack.post("/tasks", ["code": code]).object["task_id"] as? String))
    }
    #expect(await ProcessTable.until { names.allSatisfy { !ProcessTable.pids(named: $0).isEmpty } })

    // The disk fills up; then the tasks end.
    let filler = disk.appendingPathComponent("filler")
    FileManager.default.createFile(atPath: filler.path, contents: nil)
    let handle = try FileHandle(forWritingTo: filler)
    let chunk = Data(count: 64 << 10)
    while (try? handle.write(contentsOf: chunk)) != nil {}
    try? handle.close()
    // A full disk is said before any write fails on it.
    let early = try await stack.get("/health")
    #expect(early.status == 503 && early.object["status"] as? String == "degraded", "\(early.text)")
    #expect(((early.object["components"] as? [String: String])?["result_store"] ?? "").contains("free of"), "\(early.text)")
    for name in names { for pid in ProcessTable.pids(named: name) { kill(pid, SIGUSR1) } }
    #expect(try await until(stack.fabric.center.storeStatusChanges()) { stack.fabric.center.storeStatus != .healthy })

    // Degraded, and said so; nothing in memory ran ahead of the store.
    let health = try await stack.get("/health")
    #expect(health.status == 503 && health.object["status"] as? String == "degraded", "\(health.text)")
    let store = (health.object["components"] as? [String: String])?["result_store"] ?? ""
    #expect(store.hasPrefix("degraded"), "\(store)")
    for id in ids { #expect(try await stack.get("/tasks/\(id)").object["status"] as? String == "running") }
    #expect(try await stack.get("/nodes/n1").object["running"] as? Int == 2)
    let refused = try await stack.post("/tasks", ["code": "print('no room')"])
    #expect(refused.status == 507 && refused.errorCode == "INSUFFICIENT_STORAGE", "\(refused.text)")
    #expect(try await stack.get("/tasks").object["total"] as? Int == 2)

    // Space comes back: the results are written, and the queue moves — no restart.
    try FileManager.default.removeItem(at: filler)
    for (id, name) in zip(ids, names) {
      let task = try await stack.finished(id)
      #expect(task["status"] as? String == "completed" && task["result"] as? String == "\(name) done")
    }
    let after = try #require(try await stack.post("/tasks", ["code": "print('room again')"]).object["task_id"] as? String)
    #expect(try await stack.finished(after)["result"] as? String == "room again")
    let healthy = try await stack.get("/health")
    #expect(healthy.status == 200 && healthy.object["status"] as? String == "healthy", "\(healthy.text)")
    #expect(try await stack.get("/nodes/n1").object["running"] as? Int == 0)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("GET /ws/updates sends the gateway's events — node and task — to a real WebSocket client")
  func webSocket() async throws {
    let stack = try await Stack(live: true)
    let url = stack.base.replacingOccurrences(of: "http://", with: "ws://") + "/ws/updates"
    let received = Mutex<[String]>([])
    let connected = Signal()
    let socket = Task {
      try await WebSocketClient.connect(url: url, logger: Logger(label: "test.ws")) { inbound, _, _ in
        connected.fire()
        for try await message in inbound.messages(maxSize: 1 << 20) {
          guard case .text(let text) = message else { continue }
          received.withLock { $0.append(text) }
          if text.contains("\"task_completed\"") { return }
        }
      }
    }
    try #require(await connected.wait() != nil, "the WebSocket did not connect")
    // The subscription is made after the upgrade.
    try #require(try await until(stack.fabric.center.eventSubscriberChanges()) { stack.fabric.center.eventSubscriberCount == 1 })
    try await stack.fabric.addNode("ws-node")
    let created = try await stack.post("/tasks", ["code": "print(3)"])
    let id = try #require(created.object["task_id"] as? String)
    _ = try await stack.finished(id)
    _ = try await socket.value
    let all = received.withLock { $0 }.compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    // The `stats` ticks come every second in between (ConsoleAPITests checks them).
    let events = all.filter { $0["event"] as? String != "stats" }
    // The gateway's own event (its link), then the task center's.
    #expect(
      events.compactMap { $0["event"] as? String }
        == ["node_connected", "node_joined", "task_created", "task_started", "task_completed"])
    let connectedNode = events.first?["data"] as? [String: Any]
    #expect(connectedNode?["node_id"] as? String == "ws-node" && connectedNode?["max_workers"] as? Int == 1)
    #expect((connectedNode?["functions"] as? [String])?.contains("sync_add") == true)
    #expect((events.dropFirst().first?["data"] as? [String: Any])?["node_id"] as? String == "ws-node")
    #expect((events.last { $0["event"] as? String == "task_completed" }?["data"] as? [String: Any])?["result"] as? String == "3")
    await stack.stop()
  }

  @Test("events say what REST says: the same keys and values, dates as ISO-8601")
  func eventsAgreeWithREST() async throws {
    let stack = try await Stack()
    let events = stack.fabric.center.events()
    try await stack.fabric.addNode("agreeing")
    let created = try await stack.post("/tasks", ["code": "print('same')"])
    let id = try #require(created.object["task_id"] as? String)
    _ = try await stack.finished(id)
    var seen: [String: [String: Any]] = [:]
    for await event in events {
      let object = try #require(try JSONSerialization.jsonObject(with: event.json) as? [String: Any])
      #expect(object["event"] as? String == event.event.rawValue)
      seen[event.event.rawValue] = try #require(object["data"] as? [String: Any])
      if event.event == .taskCompleted { break }
    }
    let task = try await stack.get("/tasks/\(id)").object
    let completed = try #require(seen["task_completed"])
    #expect(NSDictionary(dictionary: completed) == NSDictionary(dictionary: task), "\(completed) vs \(task)")
    let node = try await stack.get("/nodes/agreeing").object
    let joined = try #require(seen["node_joined"])
    #expect(Set(joined.keys) == Set(node.keys))
    #expect(joined["joined_at"] as? String == node["joined_at"] as? String)
    #expect(NSDictionary(dictionary: joined["resources"] as? [String: Any] ?? [:]) == NSDictionary(dictionary: node["resources"] as? [String: Any] ?? [:]))
    for (event, key) in [("task_created", "created_at"), ("task_started", "started_at"), ("node_joined", "joined_at")] {
      let text = try #require(seen[event]?[key] as? String, "\(event).\(key) is not text")
      #expect(ISO8601DateFormatter().date(from: text) != nil, "\(event).\(key) = \(text)")
    }
    #expect(seen["task_created"]?["created_at"] as? String == task["created_at"] as? String)
    await stack.stop()
  }

  @Test("a database written by the v1 release opens, migrates and keeps every task; queued tasks still run")
  func migratesV1() async throws {
    let path = temporaryDatabasePath()
    try FileManager.default.createDirectory(
      atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: v1DatabaseFixture, toPath: path)
    let stack = try await Stack(databasePath: path)
    // Every task is there, results and arguments now JSON values; the running one was requeued.
    let listed = try await stack.get("/tasks?limit=100").object
    let tasks = try #require(listed["tasks"] as? [[String: Any]])
    #expect(tasks.count == 8)
    let byID = Dictionary(uniqueKeysWithValues: tasks.map { ($0["task_id"] as? String ?? "", $0) })
    let add = try #require(byID["task_6676edaf8030446e8ecebb43"])
    #expect(add["status"] as? String == "completed" && add["result"] as? Int == 42)
    #expect(add["arguments"] as? [Int] == [20, 22])
    let summary = try #require(byID["task_2c1fdaf337c54226b672af92"]?["result"] as? [String: Any])
    #expect(summary["sum"] as? Int == 6 && summary["count"] as? Int == 3)
    #expect(byID["task_6c77e736b766436da669c0c2"]?["result"] as? String == "42")
    #expect(byID["task_e1087f8bb72648a1a85838b7"]?["status"] as? String == "failed")
    #expect(byID["task_e2e9a0ef75be41eea7de5fc4"]?["arguments"] as? [AnyHashable] == ["two", 1])
    let interrupted = try #require(byID["task_a9f0140b55274a5896efae3a"])
    #expect(interrupted["status"] as? String == "queued" && interrupted["attempts"] as? Int == 1)
    #expect(try await stack.fabric.center.counts() == [.completed: 3, .failed: 2, .queued: 3])
    // The client reads a migrated result straight from its bytes.
    let client = stack.fabric.client()
    let sum: Double = try await client.result("task_6676edaf8030446e8ecebb43")
    #expect(sum == 42)
    // The queued tasks run on a node of this release.
    _ = try await client.cancelTask("task_a9f0140b55274a5896efae3a")  // it sleeps an hour
    try await stack.fabric.addNode("upgraded")
    let three: Double = try await client.result("task_e7f1960bd2bf4d1fa28294df", timeout: .seconds(20))
    #expect(three == 3)
    let code = try await client.waitForTask("task_1609e0d6a275489f99d129f2", timeout: .seconds(20))
    #expect(code.status == .completed && code.result == "queued before the upgrade")
    let rest = try await stack.get("/tasks/task_e7f1960bd2bf4d1fa28294df").object
    #expect(rest["result"] as? Int == 3 && rest["arguments"] as? [Int] == [1, 2])
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("an event subscriber that falls behind is dropped; the others and the gateway go on")
  func slowSubscriber() async throws {
    let fabric = try await TaskFabric()
    let slow = fabric.center.events(buffer: 3)
    let fast = fabric.center.events(buffer: 1000)
    let client = fabric.client()
    for _ in 0..<10 { _ = try await client.submitCode("print(1)") }
    var slowCount = 0
    for await _ in slow { slowCount += 1 }  // ends: it was dropped
    #expect(slowCount == 3)
    var fastCount = 0
    for await event in fast {
      #expect(event.event == .taskCreated)
      fastCount += 1
      if fastCount == 10 { break }
    }
    #expect(fastCount == 10)
    await fabric.stop()
  }
}
