import TestSupport
import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import NodeComm
import Synchronization
import TaskCenter
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Three `easyremote gateway` processes on one PostgreSQL database (a real server the test
/// starts), with compute nodes spread over them; one gateway is SIGKILLed mid-run and started
/// again.
@Suite("Three gateways on PostgreSQL", .enabled(if: PostgresServer.available, "needs Debian's postgresql and root"), .timeLimit(.minutes(10)))
struct MultiGatewayTests {
  /// How often each task's function ran to its end, across every node.
  final class Executions: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    func record(_ i: Int) { counts.withLock { $0[i, default: 0] += 1 } }
    var all: [Int: Int] { counts.withLock { $0 } }
  }

  /// What the submitters did: tasks accepted by index, the next index, keys never accepted.
  final class Submissions: Sendable {
    let accepted = Mutex<[Int: String]>([:])
    let next = Mutex(0)
    let refused = Mutex<[String]>([])
    /// Fired once this many were accepted.
    let milestone = (count: 3_000, reached: Signal())

    func take() -> Int {
      next.withLock { value in
        defer { value += 1 }
        return value
      }
    }

    var acceptedCount: Int { accepted.withLock { $0.count } }

    /// Round robin over the gateways; a gateway that is down (or cannot take the task: its
    /// nodes are still rejoining) passes the task to the next, under the same Idempotency-Key.
    func submit(_ i: Int, to gateways: [Gateway]) async {
      let deadline = ContinuousClock.now + .seconds(90)
      var attempt = 0
      while ContinuousClock.now < deadline {
        let gateway = gateways[(i + attempt) % gateways.count]
        attempt += 1
        if let reply = try? await gateway.http.send(
          "POST", "/tasks", json: ["function": "tick", "args": [i]], headers: ["Idempotency-Key": "tick-\(i)"]),
          reply.status == 201, let id = reply.object["task_id"] as? String
        {
          if accepted.withLock({ $0[i] = id; return $0.count }) == milestone.count { milestone.reached.fire() }
          return
        } else if attempt % 3 == 0 {
          // Every gateway refused (one is down, restarting: a process of its own): a pause
          // before the next round.
          try? await Task.sleep(for: .milliseconds(50))
        }
      }
      refused.withLock { $0.append("tick-\(i)") }
    }
  }

  /// What a WebSocket received (text messages).
  /// What a WebSocket received, and a tick for each message.
  final class Inbox: Sendable {
    let texts = Mutex<[String]>([])
    private let feed = ChangeFeed()
    func append(_ text: String) {
      texts.withLock { $0.append(text) }
      feed.changed()
    }
    func arrivals() -> AsyncStream<Void> { feed.changes() }
  }

  /// One gateway process and the ports it keeps across restarts.
  final class Gateway: Sendable {
    private let ports = Mutex((grpc: SSHServer.freePort(), http: SSHServer.freePort()))
    var grpcPort: Int { ports.withLock { $0.grpc } }
    var httpPort: Int { ports.withLock { $0.http } }
    let url: String
    let leaseSeconds: Int
    /// The store named in a YAML file (`tasks: {db, lease_seconds}`) instead of flags.
    let viaConfig: Bool
    private let program = Mutex<RunningProgram?>(nil)
    /// Its id on the store, as it printed it at its last start.
    var id: String {
      program.withLock { $0 }?.lines.first { $0.contains("shares its task store") }?.split(separator: " ")
        .dropFirst().first.map(String.init) ?? ""
    }

    init(url: String, leaseSeconds: Int, viaConfig: Bool = false) {
      self.url = url
      self.leaseSeconds = leaseSeconds
      self.viaConfig = viaConfig
    }

    var http: HTTPClient { HTTPClient(base: "http://127.0.0.1:\(httpPort)") }

    /// Starts it; the first start takes other ports when another test took these meanwhile
    /// (a free port is only free until someone binds it). Restarts keep the ports.
    func start() async throws {
      let first = program.withLock { $0 == nil }
      for attempt in 1...3 {
        do {
          return try await launch()
        } catch where first && attempt < 3 {
          ports.withLock { $0 = (SSHServer.freePort(), SSHServer.freePort()) }
        }
      }
    }

    private func launch() async throws {
      let binary = ChildProgram.product().path
      var store = ["--db", url, "--lease-seconds", "\(leaseSeconds)"]
      if viaConfig {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString).yaml").path
        try "tasks: { db: \"\(url)\", lease_seconds: \(leaseSeconds) }\n".write(toFile: file, atomically: true, encoding: .utf8)
        store = ["--config", file]
      }
      let started = try await RunningProgram.start(
        [binary, "gateway", "--host", "127.0.0.1", "--port", "\(grpcPort)", "--http-port", "\(httpPort)"] + store,
        readyPrefix: "gateway listening on ")
      #expect(started.lines.contains { $0.contains("shares its task store") }, "\(started.lines)")
      program.withLock { $0 = started }
    }

    func kill() async { await program.withLock { $0 }?.stop(SIGKILL) }
    func stop() async { await program.withLock { $0 }?.stop() }
  }

  @Test("10,000 tasks over three gateways' HTTP APIs, one gateway SIGKILLed and restarted: every task completes exactly once")
  func tenThousandTasksSurviveAKilledGateway() async throws {
    let url = try await PostgresServer.database()
    let gateways = (0..<3).map { _ in Gateway(url: url, leaseSeconds: 30) }
    for gateway in gateways { try await gateway.start() }
    let executions = Executions()
    // Two nodes per gateway, each with four workers; `tick` records that it ran to its end.
    var members: [(ComputeNode, TaskWorker)] = []
    for (g, gateway) in gateways.enumerated() {
      for n in 0..<2 {
        let node = ComputeNode(serverAddress: "127.0.0.1:\(gateway.grpcPort)", nodeID: "g\(g)-n\(n)", maxWorkers: 4)
        node.register("tick", parameters: ["i"]) { (i: Int) async throws -> Int in
          await Task.yield()
          executions.record(i)
          return i
        }
        let worker = TaskWorker(
          node: node, runner: nil, slots: 4, resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"),
          load: { NodeLoad(cpuPercent: 1, memoryPercent: 1) })
        try await node.start()
        try await worker.start()
        members.append((node, worker))
      }
    }
    // Each gateway has its nodes now: a node's start returns once its gateway acknowledged its
    // announcement, and the worker's once the announcement with its task slots was.
    for (g, gateway) in gateways.enumerated() {
      let listed = (try await gateway.http.get("/nodes")).text
      #expect(listed.contains("\"g\(g)-n0\"") && listed.contains("\"g\(g)-n1\""), "\(listed)")
    }

    let total = 10_000
    let submissions = Submissions()
    let began = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<24 {
        group.addTask {
          while case let i = submissions.take(), i < total { await submissions.submit(i, to: gateways) }
        }
      }
      // Mid-run: gateway 1 dies without a word, and comes back (a new gateway to the others).
      group.addTask {
        _ = await submissions.milestone.reached.wait(upTo: .seconds(120))
        await gateways[1].kill()
        // Started again at once (its nodes rejoin it within the lease, even on a busy machine,
        // and hand in what they finished).
        try await gateways[1].start()
      }
      try await group.waitForAll()
    }
    let submitted = ContinuousClock.now - began
    #expect(submissions.refused.withLock { $0 }.isEmpty, "never accepted: \(submissions.refused.withLock { $0.prefix(5) })")
    let ids = submissions.accepted.withLock { $0 }
    #expect(ids.count == total)
    #expect(Set(ids.values).count == ids.count, "two keys made one task")

    // Done when the database says every task is final (any gateway answers for the store; a
    // process of its own, asked until then).
    var stats: [String: Any] = [:]
    let finished = try await eventually(limit: .seconds(180)) {
      stats = (try await gateways[0].http.get("/stats")).object["tasks"] as? [String: Any] ?? [:]
      return (stats["queued"] as? Int) == 0 && (stats["running"] as? Int) == 0 && (stats["total"] as? Int ?? 0) >= total
    }
    #expect(finished, "not all tasks ended: \(stats)")
    print("three gateways: \(total) tasks submitted in \(submitted), all final after \(ContinuousClock.now - began)")
    #expect(stats["completed"] as? Int == total, "\(stats)")
    // Exactly once: every task's function ran to its end once, on whichever node.
    let ran = executions.all
    let twice = ran.filter { $0.value > 1 }
    let never = (0..<total).filter { ran[$0] == nil }
    var views: [String] = []
    for i in twice.keys.prefix(5) { views.append((try? await gateways[0].http.get("/tasks/\(ids[i] ?? "")"))?.text ?? "?") }
    #expect(twice.isEmpty, "ran more than once: \(twice.prefix(10)) \(views)")
    var lost: [String] = []
    for i in never.prefix(5) { lost.append((try? await gateways[0].http.get("/tasks/\(ids[i] ?? "")"))?.text ?? "?") }
    #expect(never.isEmpty, "never ran: \(never.prefix(10)) \(lost)")
    #expect(ran.values.reduce(0, +) == total)

    for (node, worker) in members {
      await worker.stop()
      await node.stop()
    }
    for gateway in gateways { await gateway.stop() }
  }

  @Test("a call, a stream and a task through one gateway to functions served only behind another; its client moves when it dies")
  func callsAcrossGateways() async throws {
    let url = try await PostgresServer.database()
    // (The second names its store in a YAML file.)
    let gateways = [Gateway(url: url, leaseSeconds: 10), Gateway(url: url, leaseSeconds: 10, viaConfig: true)]
    for gateway in gateways { try await gateway.start() }
    let (a, b) = ("127.0.0.1:\(gateways[0].grpcPort)", "127.0.0.1:\(gateways[1].grpcPort)")
    // A's /ws/updates, from before anything joins anywhere: it is subscribed once `stats` ticks come.
    let received = Inbox()
    let httpPort = gateways[0].httpPort
    let socket = Task {
      try await WebSocketClient.connect(
        url: "ws://127.0.0.1:\(httpPort)/ws/updates", logger: Logger(label: "test.ws")
      ) { inbound, _, _ in
        for try await message in inbound.messages(maxSize: 1 << 20) {
          if case .text(let text) = message { received.append(text) }
        }
      }
    }
    func all() -> [[String: Any]] {
      received.texts.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
    func events(_ name: String) -> [[String: Any]] {
      all().filter { $0["event"] as? String == name }.compactMap { $0["data"] as? [String: Any] }
    }
    try #require(try await until(received.arrivals()) { !events("stats").isEmpty }, "A's /ws/updates never ticked")
    // The functions are served behind B only.
    let node = ComputeNode(serverAddress: b, nodeID: "behind-b", maxWorkers: 4)
    node.register("add", parameters: ["a", "b"]) { (x: Int, y: Int) in x + y }
    node.registerStream("count", parameters: ["n"]) { (n: Int) in
      AsyncStream<Int> { continuation in
        for i in 0..<n { continuation.yield(i) }
        continuation.finish()
      }
    }
    let worker = TaskWorker(
      node: node, runner: nil, slots: 4, resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"),
      load: { NodeLoad(cpuPercent: 1, memoryPercent: 1) })
    try await node.start()
    try await worker.start()
    // A node that knows both gateways joins the first.
    let mover = ComputeNode(serverAddress: "\(a),\(b)", nodeID: "mover", maxWorkers: 2)
    mover.register("whereabouts") { () -> String in "mover" }
    try await mover.start()
    #expect(mover.gatewayAddress == a)

    let client = Client(serverAddress: "\(a),\(b)", timeout: .seconds(20))
    // A learns what B's nodes serve when B publishes it (at the node's join), and lists B's
    // node, with its gateway. (Two processes of their own, talking through PostgreSQL: A's
    // event stream tells of B's node when A read it.)
    let listed = try await until(received.arrivals()) {
      events("node_joined").contains { $0["node_id"] as? String == "behind-b" && $0["gateway"] as? String == gateways[1].id }
    }
    let listing = (try? await gateways[0].http.get("/nodes"))?.text ?? ""
    #expect(listed, "A's /nodes: \(listing)")
    #expect(listing.contains("\"behind-b\"") && listing.contains(gateways[1].id), "A's /nodes: \(listing)")
    #expect(try await client.execute("add", 2, 3, as: Int.self) == 5)
    #expect(client.gatewayAddress == a, "the client is on the first gateway")
    let counted = (try await gateways[0].http.get("/stats")).object["nodes"] as? [String: Any]
    #expect(counted?["total"] as? Int == 1, "A's /stats counts B's node: \(String(describing: counted))")
    let remote = try await gateways[0].http.get("/nodes/behind-b")
    #expect(remote.status == 200 && remote.object["gateway"] as? String == gateways[1].id, "\(remote.text)")
    // ...and its functions (HTTP and the clients' listing), and its node's arrival as an event.
    let functions = (try await gateways[0].http.get("/functions")).text
    #expect(functions.contains("\"count\"") && functions.contains("behind-b"), "\(functions)")
    #expect(try await client.listFunctions().first { $0.name == "add" }?.nodes == ["behind-b"])
    let listedNodes = try await client.listNodes()
    #expect(listedNodes.first { $0.id == "behind-b" }?.gateway == gateways[1].id, "\(listedNodes)")
    #expect(listedNodes.first { $0.id == "mover" }.map { $0.gateway == nil } == true, "\(listedNodes)")
    // A stream through both gateways, longer than a window (credit end to end), in order.
    var items: [Int] = []
    for try await item in try await client.stream("count", 1_000, as: Int.self) { items.append(item) }
    #expect(items == Array(0..<1_000))
    // A's HTTP API too, and a function task submitted at A runs behind B.
    let call = try await gateways[0].http.post("/functions/add/call", ["args": [20, 22]])
    #expect(call.status == 200 && call.object["result"] as? Int == 42, "\(call.text)")
    let submitted = try await gateways[0].http.post("/tasks", ["function": "add", "args": [1, 1]])
    let taskID = try #require(submitted.object["task_id"] as? String, "\(submitted.text)")
    #expect(try await client.waitForTask(taskID, timeout: .seconds(30)).status == .completed)
    #expect((try await gateways[0].http.get("/tasks/\(taskID)")).object["node_id"] as? String == "behind-b")
    // The task's events reach A's subscribers though B ran it.
    #expect(
      try await until(received.arrivals()) {
        events("task_started").contains { $0["task_id"] as? String == taskID }
          && events("task_completed").contains { $0["task_id"] as? String == taskID && $0["result"] as? Int == 2 }
      }, "\(all().compactMap { $0["event"] as? String })")
    socket.cancel()
    // A function nobody serves is still an unknown function, not a loop between gateways.
    await #expect(throws: EasyRemoteError.self) { _ = try await client.execute("nobody", 1, as: Int.self) }

    // A dies: once the client has seen its link go, its next call goes to B.
    let linkGone = Signal()
    let watch = client.node.on(.disconnect) { _ in linkGone.fire() }
    await gateways[0].kill()
    #expect(await linkGone.wait() != nil && !client.isConnected)
    client.node.off(watch)
    #expect(try await client.execute("add", 4, 5, as: Int.self) == 9)
    #expect(client.gatewayAddress == b)
    items = []
    for try await item in try await client.stream("count", 5, as: Int.self) { items.append(item) }
    #expect(items == [0, 1, 2, 3, 4])
    // The node that was on A moved to B by itself.
    #expect(try await until(mover.changes()) { mover.isConnected && mover.gatewayAddress == b })
    #expect(try await client.execute("whereabouts", as: String.self) == "mover")
    #expect(mover.gatewayAddress == b)

    await mover.stop()
    await client.close()
    await worker.stop()
    await node.stop()
    for gateway in gateways { await gateway.stop() }
  }

  @Test("nodes behind three gateway processes share one queue by the seed-004 rules: tasks submitted at one gateway go to every node in turn")
  func fairAcrossGatewayProcesses() async throws {
    let url = try await PostgresServer.database()
    let gateways = (0..<3).map { _ in Gateway(url: url, leaseSeconds: 10) }
    for gateway in gateways { try await gateway.start() }
    var members: [(ComputeNode, TaskWorker)] = []
    for (g, gateway) in gateways.enumerated() {
      let id = "fair-\(g)"
      let node = ComputeNode(serverAddress: "127.0.0.1:\(gateway.grpcPort)", nodeID: id, maxWorkers: 1)
      node.register("where") { () -> String in id }
      let worker = TaskWorker(
        node: node, runner: nil, slots: 1, resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"),
        load: { NodeLoad(cpuPercent: 1, memoryPercent: 1) })
      try await node.start()
      try await worker.start()
      members.append((node, worker))
    }
    // The first gateway's fair queue lists the idle nodes of all three (asked until it does:
    // the gateways are processes of their own that learn of each other through PostgreSQL).
    var queue = ""
    #expect(
      try await eventually(limit: .seconds(30)) {
        let reply = try await gateways[0].http.get("/stats/nodes/queue")
        queue = reply.text
        return reply.object["total_nodes_in_queue"] as? Int == 3
      }, "\(queue)")
    let client = Client(serverAddress: "127.0.0.1:\(gateways[0].grpcPort)", timeout: .seconds(30))
    var ran: [String] = []
    for _ in 0..<9 {
      let id = try await client.submit("where")
      let done = try await client.waitForTask(id, timeout: .seconds(60))
      #expect(done.status == .completed, "\(done)")
      ran.append(done.nodeID ?? "?")
    }
    let counts = Dictionary(ran.map { ($0, 1) }, uniquingKeysWith: +)
    #expect(counts == ["fair-0": 3, "fair-1": 3, "fair-2": 3], "\(ran)")
    for round in 0..<3 {
      #expect(Set(ran[round * 3..<round * 3 + 3]).count == 3, "each round serves every node once: \(ran)")
    }
    await client.close()
    for (node, worker) in members {
      await worker.stop()
      await node.stop()
    }
    for gateway in gateways { await gateway.stop() }
  }
}
