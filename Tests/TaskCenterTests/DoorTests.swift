import EasyRemote
import Foundation
import TaskCenter
import Testing

/// Hostile numbers at the door (issue 22): every number from outside is checked where it
/// enters, refused with a 400 that names its field, and nothing counts with it. Before these
/// checks, the first test's sequence killed the gateway's process (an overflow summing slots).
@Suite("The door: numbers from outside", .timeLimit(.minutes(3)))
struct DoorTests {
  typealias Stack = HTTPAPITests.Stack

  static let huge = Int64.max

  static func beat(_ id: String, cores: Any = 2, memory: Any = 2048, slots: Any = 1, cpu: Any = 1.0, memoryLoad: Any = 1.0)
    -> [String: Any]
  {
    [
      "node_id": id, "resources": ["cpu_cores": cores, "memory_mb": memory], "slots": slots,
      "current_load": ["cpu_percent": cpu, "memory_percent": memoryLoad],
    ]
  }

  @Test("a heartbeat with Int64.max slots, a second node, then a task: refused at the door, the gateway lives")
  func hugeSlotsThenTask() async throws {
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    let stack = try await Stack(configuration: configuration)
    let cases: [([String: Any], String)] = [
      (Self.beat("big", slots: Self.huge), "field: slots"),
      (Self.beat("big", slots: 0), "field: slots"),
      (Self.beat("big", cores: Self.huge), "field: resources.cpu_cores"),
      (Self.beat("big", memory: Self.huge), "field: resources.memory_mb"),
      (Self.beat("big", cores: 0), "field: resources.cpu_cores"),
      (Self.beat("big", cpu: 1e308), "field: current_load.cpu_percent"),
      (Self.beat("big", memoryLoad: -1), "field: current_load.memory_percent"),
    ]
    for (body, field) in cases {
      let reply = try await stack.post("/internal/heartbeat", body)
      #expect(reply.status == 400 && reply.errorCode == "INVALID_REQUEST", "\(body): \(reply.text)")
      #expect(reply.errorDetails == field, "\(body): \(reply.text)")
    }
    // Nothing of "big" joined.
    #expect(try await stack.get("/nodes/big").status == 404)
    // The largest machine the bounds allow, twice: sums stay far from overflow.
    for id in ["max-1", "max-2"] {
      let reply = try await stack.post("/internal/heartbeat", Self.beat(id, cores: 4096, memory: 64 << 20, slots: 4096))
      #expect(reply.status == 200, "\(reply.text)")
    }
    let created = try await stack.post("/tasks", ["code": "print(1)"])
    #expect(created.status == 201, "\(created.text)")
    #expect(created.object["estimated_wait"] is Double, "\(created.text)")
    #expect(try await stack.get("/health").status == 200)
    #expect(try await stack.get("/stats").status == 200)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("a task asking more than any node has is 503 RESOURCE_UNAVAILABLE; beyond the bounds, 400")
  func impossibleTasks() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("n1")  // 4 cores, 4096 MiB
    // A forged node with Int64.max cores is refused, so it cannot make 1,000 cores look possible.
    #expect(try await stack.post("/internal/heartbeat", Self.beat("liar", cores: Self.huge, memory: Self.huge)).status == 400)
    let cases: [([String: Any], Int, String, String?)] = [
      (["code": "print(1)", "resources": ["cpu": 1000]], 503, "RESOURCE_UNAVAILABLE", nil),
      (["code": "print(1)", "resources": ["memory": 1 << 20]], 503, "RESOURCE_UNAVAILABLE", nil),
      (["code": "print(1)", "resources": ["cpu": 1e300]], 400, "INVALID_REQUEST", "field: resources.cpu"),
      (["code": "print(1)", "resources": ["memory": Self.huge]], 400, "INVALID_REQUEST", "field: resources.memory"),
      (["code": "print(1)", "max_attempts": Self.huge], 400, "INVALID_REQUEST", "field: max_attempts"),
      (["code": "print(1)", "timeout": 1e308], 400, "INVALID_REQUEST", "field: timeout"),
    ]
    for (body, status, code, field) in cases {
      let reply = try await stack.post("/tasks", body)
      #expect(reply.status == status && reply.errorCode == code, "\(body): \(reply.text)")
      if let field { #expect(reply.errorDetails == field, "\(body): \(reply.text)") }
    }
    #expect(try await stack.get("/tasks").object["total"] as? Int == 0, "nothing refused was stored")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("a result with out-of-range figures is refused and the task still runs; a fitting one is taken")
  func resultFigures() async throws {
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    let stack = try await Stack(configuration: configuration)
    #expect(try await stack.post("/internal/heartbeat", Self.beat("py-1")).status == 200)
    let id = try #require(try await stack.post("/tasks", ["code": "print(1)"]).object["task_id"] as? String)
    #expect(try await stack.get("/internal/task/request?node_id=py-1").object["has_task"] as? Bool == true)
    let cases: [([String: Any], String)] = [
      (["execution_time": 1e308], "field: execution_time"),
      (["execution_time": -1], "field: execution_time"),
      (["exit_status": Self.huge], "field: exit_status"),
      (["attempt": Self.huge], "field: attempt"),
      (["attempt": 0], "field: attempt"),
    ]
    for (extra, field) in cases {
      let body = ["task_id": id, "node_id": "py-1", "status": "success", "result": "1\n"].merging(extra) { $1 }
      let reply = try await stack.post("/internal/task/result", body)
      #expect(reply.status == 400 && reply.errorDetails == field, "\(extra): \(reply.text)")
    }
    #expect(try await stack.get("/tasks/\(id)").object["status"] as? String == "running")
    let taken = try await stack.post(
      "/internal/task/result", ["task_id": id, "node_id": "py-1", "status": "success", "result": "1\n", "execution_time": 0.5])
    #expect(taken.object["status"] as? String == "completed", "\(taken.text)")
    #expect(try await stack.get("/nodes/py-1").object["total_compute_time"] as? Double == 0.5)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("arguments that would overflow or sleep forever in the example functions are 400, not a dead node")
  func exampleArguments() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("n1")
    let cases: [(String, [Any])] = [
      ("async_computation", [[1.0], 1e300]),
      ("async_ai_simulation", ["hi", -1]),
    ]
    for (function, args) in cases {
      let reply = try await stack.post("/functions/\(function)/call", ["args": args])
      #expect(reply.status == 400 && reply.errorCode == "INVALID_REQUEST", "\(function)\(args): \(reply.text)")
    }
    // A stream whose last value would pass Int.max: an error line, no crash.
    let stream = try await stack.post("/functions/sync_number_stream/stream", ["args": [Self.huge, 5, 0]])
    #expect(stream.text.contains("INVALID_REQUEST"), "\(stream.text)")
    let pipeline = try await stack.post(
      "/functions/async_complex_pipeline/stream",
      ["args": ["src", ["stages": Self.huge, "items_per_stage": Self.huge, "stage_delay": 0]]])
    #expect(pipeline.text.contains("INVALID_REQUEST"), "\(pipeline.text)")
    // The node is alive and serves as before.
    let sum = try await stack.post("/functions/sync_add/call", ["args": [2, 3]])
    #expect(sum.object["result"] as? Double == 5, "\(sum.text)")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  /// An announcement offering tasks, as a node's link would carry it, with any numbers.
  struct RawAnnouncement: Encodable {
    var nodeID = "liar"
    var maxWorkers = 1
    var functions: [String] = []
    var worker: RawJoin
  }

  /// The worker section of an announcement, with any numbers.
  struct RawJoin: Encodable {
    struct Resources: Encodable {
      var cores: Int
      var memory: Int
      var platform = "linux"
    }
    struct Thresholds: Encodable {
      var maxCPUPercent: Double = 80
      var maxMemoryPercent: Double = 90
    }
    var resources: Resources
    var slots: Int
    var thresholds = Thresholds()
    var runsCode = false
  }

  @Test("a node whose announcement claims Int.max task slots or cores is refused with the field named; the pool is unharmed")
  func hostileLinkJoin() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("honest")
    let liar = ComputeNode(
      serverAddress: stack.fabric.address, nodeID: "liar", maxWorkers: Int.max, transport: stack.fabric.transport)
    try await liar.start()
    let cases: [(RawJoin, String)] = [
      (RawJoin(resources: .init(cores: 4, memory: 4096), slots: Int.max), "worker.slots"),
      (RawJoin(resources: .init(cores: Int.max, memory: 4096), slots: 1), "worker.resources.cores"),
      (RawJoin(resources: .init(cores: 4, memory: Int.max), slots: 1), "worker.resources.memory"),
      (RawJoin(resources: .init(cores: 4, memory: 4096), slots: 1, thresholds: .init(maxCPUPercent: 1e308)), "worker.thresholds.maxCPUPercent"),
    ]
    for (join, field) in cases {
      do {
        _ = try await liar.callGateway(
          "er.gateway.announce", RawAnnouncement(maxWorkers: Int.max, worker: join), as: Empty.self, timeout: .seconds(20))
        Issue.record("an announcement with \(field) out of range was taken")
      } catch {
        #expect("\(error)".contains(field), "\(error)")
      }
    }
    let nodes = try await stack.get("/nodes").object["nodes"] as? [[String: Any]] ?? []
    #expect(nodes.map { $0["node_id"] as? String } == ["honest"])
    // Its announced workers are clamped where the gateway counts them.
    let members = try await stack.fabric.client().listNodes()
    #expect(members.first { $0.id == "liar" }?.maxWorkers == InputBounds.slots.upperBound, "\(members)")
    let created = try await stack.post("/tasks", ["code": "print(1)"])
    #expect(created.status == 201, "\(created.text)")
    #expect(try await stack.finished(try #require(created.object["task_id"] as? String))["status"] as? String == "completed")
    await liar.stop()
    await stack.stop()
  }
}

/// Who may speak for a node that pulls its work over HTTP (issue 22): a key-less worker is
/// known by the address of its first heartbeat, its key is handed out once, and another
/// address cannot speak for it without that key.
@Suite("The door: pulling nodes' identity", .timeLimit(.minutes(3)))
struct PullIdentityTests {
  typealias Stack = HTTPAPITests.Stack

  static var beat: [String: Any] { ["node_id": "seed-1", "resources": ["cpu_cores": 2, "memory_mb": 2048]] }

  static func stack(_ policy: PullNodePolicy = .any) async throws -> Stack {
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    configuration.pullNodes = policy
    return try await Stack(configuration: configuration, live: true)  // the address a request comes from is the subject
  }

  @Test("another address cannot heartbeat, claim or report for a key-less worker; the key is handed out once")
  func keylessWorkerIsItsAddress() async throws {
    let stack = try await Self.stack()
    let first = try await stack.post("/internal/heartbeat", Self.beat)
    let key = try #require(first.object["node_key"] as? String, "\(first.text)")
    let again = try await stack.post("/internal/heartbeat", Self.beat)
    #expect(again.status == 200 && again.object["node_key"] == nil, "handed out once: \(again.text)")

    // From 127.0.0.2, naming it without its key: refused, and no key in the answer.
    let stolen = try await RawSocket.request("POST", stack.base, "/internal/heartbeat", json: Self.beat, from: "127.0.0.2")
    #expect(stolen.status == 403 && stolen.body["node_key"] == nil, "\(stolen)")

    let id = try #require(try await stack.post("/tasks", ["code": "print('real')"]).object["task_id"] as? String)
    let grab = try await RawSocket.request("GET", stack.base, "/internal/task/request?node_id=seed-1", from: "127.0.0.2")
    #expect(grab.status == 403, "\(grab)")
    let offer = try await stack.get("/internal/task/request?node_id=seed-1")
    #expect((offer.object["task"] as? [String: Any])?["task_id"] as? String == id, "\(offer.text)")
    let forged = try await RawSocket.request(
      "POST", stack.base, "/internal/task/result",
      json: ["task_id": id, "node_id": "seed-1", "status": "success", "result": "forged"], from: "127.0.0.2")
    #expect(forged.status == 403, "\(forged)")
    let anonymous = try await RawSocket.request(
      "POST", stack.base, "/internal/task/result", json: ["task_id": id, "status": "success", "result": "forged"],
      from: "127.0.0.2")
    #expect(anonymous.status == 403, "\(anonymous)")
    #expect(try await stack.get("/tasks/\(id)").object["status"] as? String == "running")
    let real = try await stack.post("/internal/task/result", ["task_id": id, "node_id": "seed-1", "status": "success", "result": "real\n"])
    #expect(real.object["result"] as? String == "real", "\(real.text)")

    // With its key it may speak from anywhere; from then on the key is required everywhere.
    let moved = try await RawSocket.request(
      "POST", stack.base, "/internal/heartbeat", json: Self.beat, headers: ["X-Node-Key": key], from: "127.0.0.2")
    #expect(moved.status == 200 && moved.body["node_key"] == nil, "\(moved)")
    #expect(try await stack.post("/internal/heartbeat", Self.beat).status == 403)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("one address brings at most 64 pulling nodes (429 TOO_MANY_NODES); its known ones go on, others are served")
  func nodesPerAddress() async throws {
    let stack = try await Self.stack()
    for index in 0..<64 {
      let beat = ["node_id": "many-\(index)", "resources": ["cpu_cores": 1, "memory_mb": 512]] as [String: Any]
      #expect(try await stack.post("/internal/heartbeat", beat).status == 200, "node \(index)")
    }
    let extra = try await stack.post("/internal/heartbeat", ["node_id": "many-64", "resources": ["cpu_cores": 1, "memory_mb": 512]])
    #expect(extra.status == 429 && extra.errorCode == "TOO_MANY_NODES", "\(extra.text)")
    #expect(try await stack.post("/internal/heartbeat", ["node_id": "many-0", "resources": ["cpu_cores": 1, "memory_mb": 512]]).status == 200)
    let other = try await RawSocket.request("POST", stack.base, "/internal/heartbeat", json: Self.beat, from: "127.0.0.3")
    #expect(other.status == 200, "\(other.body)")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("--pull-nodes keyed: every request after the first heartbeat carries the key")
  func keyedPolicy() async throws {
    let stack = try await Self.stack(.keyed)
    let key = try #require(try await stack.post("/internal/heartbeat", Self.beat).object["node_key"] as? String)
    let keyless = try await stack.post("/internal/heartbeat", Self.beat)
    #expect(keyless.status == 403 && keyless.errorCode == "FORBIDDEN", "\(keyless.text)")
    #expect(try await stack.get("/internal/task/request?node_id=seed-1").status == 403)
    #expect(try await stack.get("/internal/task/request").status == 404, "no key-less node to stand for")
    let keyed = try await stack.send("GET", "/internal/task/request?node_id=seed-1", headers: ["X-Node-Key": key])
    #expect(keyed.status == 200 && keyed.object["has_task"] as? Bool == false, "\(keyed.text)")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }
}

/// Token guessing over HTTP (issue 22): failures count against the caller's address; past the
/// limit that address is 429 with Retry-After for everything behind the token, the failures
/// are counted in the metrics, and everyone else is served.
@Suite("The door: token guessing", .timeLimit(.minutes(3)))
struct TokenGuessingTests {
  @Test("ten wrong tokens from one address, then even the right one is 429; another address is served")
  func guessing() async throws {
    let stack = try await HTTPStack(token: "right-token", live: true)
    for attempt in 1...10 {
      let guess = try await RawSocket.request(
        "GET", stack.base, "/tasks", headers: ["Authorization": "Bearer guess-\(attempt)"], from: "127.0.0.2")
      #expect(guess.status == 401, "guess \(attempt): \(guess.body)")
    }
    let limited = try await RawSocket.request(
      "GET", stack.base, "/tasks", headers: ["Authorization": "Bearer right-token"], from: "127.0.0.2")
    #expect(limited.status == 429 && (limited.body["error"] as? [String: Any])?["code"] as? String == "TOO_MANY_ATTEMPTS", "\(limited.body)")
    let retry = limited.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }
    let seconds = Int(retry?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
    #expect((1...61).contains(seconds), "\(limited.head)")
    // Open paths stay open to it; other addresses are served.
    #expect(try await RawSocket.request("GET", stack.base, "/health", from: "127.0.0.2").status == 200)
    #expect(try await stack.send("GET", "/tasks").status == 200)
    #expect(try await stack.send("GET", "/tasks", token: false).status == 401)
    let metrics = MetricsTests.parse(try await stack.send("GET", "/metrics").text)
    #expect(metrics[#"easyremote_auth_failures_total{transport="http",outcome="refused"}"#] == 11, "\(metrics.filter { $0.key.contains("auth") })")
    #expect(metrics[#"easyremote_auth_failures_total{transport="http",outcome="limited"}"#] == 1)
    await stack.stop()
  }
}

/// Smaller points of issue 22: safe headers on every answer, HEAD on every GET route.
@Suite("The door: answers", .timeLimit(.minutes(2)))
struct SafeAnswerTests {
  @Test("every answer says nosniff and no-referrer; HEAD is answered as GET without the body")
  func headersAndHead() async throws {
    let stack = try await HTTPStack(token: "answers-token", live: true)
    for (method, path, token, status) in [
      ("GET", "/health", false, 200), ("GET", "/tasks", true, 200), ("GET", "/tasks", false, 401), ("GET", "/nope", true, 404),
      ("HEAD", "/health", false, 200), ("HEAD", "/web", false, 200), ("HEAD", "/tasks", true, 200), ("HEAD", "/tasks", false, 401),
      // A GET that hands out a task is not run for a HEAD.
      ("HEAD", "/internal/task/request?node_id=x", true, 405),
    ] {
      let reply = try await stack.send(method, path, token: token)
      #expect(reply.status == status, "\(method) \(path): \(reply.status) \(reply.text)")
      #expect(reply.headers["X-Content-Type-Options"] == "nosniff", "\(method) \(path): \(reply.headers)")
      #expect(reply.headers["Referrer-Policy"] == "no-referrer", "\(method) \(path): \(reply.headers)")
      if method == "HEAD" { #expect(reply.body.isEmpty, "\(method) \(path): \(reply.text)") }
    }
    // The guard's own refusals too.
    let address = try #require(stack.http.address)
    let refused = try await offPool {
      let socket = try RawSocket(port: UInt16(address.split(separator: ":").last!)!)
      defer { socket.close() }
      try socket.send("GARBAGE\r\n\r\n")
      return socket.readToEnd(deadline: .now + .seconds(20)).0
    }
    #expect(refused.hasPrefix("HTTP/1.1 400 ") && refused.contains("X-Content-Type-Options: nosniff"), "\(refused)")
    await stack.stop()
  }
}
