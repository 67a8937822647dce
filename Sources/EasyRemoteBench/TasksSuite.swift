import EasyRemote
import Foundation
import TaskCenter
import TaskCenterHTTP

/// `tasks`: function tasks through the durable queue (submit → pushed to one of 2 nodes → run
/// → result stored), with SQLite in WAL mode, PostgreSQL (`EASYREMOTE_BENCH_POSTGRES`) and
/// without persistence; and `POST /tasks` over HTTP measured by wrk.
enum TasksSuite {
  static func run(_ settings: BenchSettings) async throws -> [BenchResult] {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).sqlite").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    var results: [BenchResult] = []
    results += try await storeOps("tasks.store.sqlite", try SQLiteTaskStore(path: path + "-ops"))
    results += try await storeOps("tasks.store.memory", MemoryTaskStore())
    results.append(try await flow("tasks.function.durable_sqlite", stores: [try SQLiteTaskStore(path: path)], count: 4000))
    results.append(try await flow("tasks.function.memory", stores: [MemoryTaskStore()], count: 4000))
    // PostgreSQL when a database is named: EASYREMOTE_BENCH_POSTGRES=postgres://user@host:port/db
    // (its tables are made there; the bench's tasks stay in them).
    if let url = ProcessInfo.processInfo.environment["EASYREMOTE_BENCH_POSTGRES"] {
      results += try await storeOps("tasks.store.postgres", try await PostgresTaskStore(url: url))
      // One gateway, then three on the same database (in this process, each with its own
      // store, pool and node); completions counted from the database.
      results.append(try await flow("tasks.function.durable_postgres", stores: [try await PostgresTaskStore(url: url)], count: 4000))
      var three: [any TaskStore] = []
      for _ in 0..<3 { three.append(try await PostgresTaskStore(url: url)) }
      results.append(try await flow("tasks.function.durable_postgres_3_gateways", stores: three, count: 4000))
    }
    results += try await httpSubmit(seconds: max(2, settings.duration.secondsDouble * 2))
    return results
  }

  /// The store alone: insert, start and finish one task at a time (each a transaction).
  static func storeOps(_ name: String, _ store: any TaskStore, count: Int = 3000) async throws -> [BenchResult] {
    var latencies = Latencies(capacity: count)
    let statementsBefore = (store as? PostgresTaskStore)?.roundTrips ?? 0
    let start = ContinuousClock.now
    for index in 0..<count {
      let began = ContinuousClock.now
      let task = try TaskRecord.function("inc", args: [.int(Int64(index))])
      try await store.insert(task)
      _ = try await store.start(task.id, on: "n", at: Date())
      _ = try await store.finish(task.id, with: .completed(.json("1")), by: "n", at: Date())
      latencies.append(ContinuousClock.now - began)
    }
    let rate = Double(count) / (ContinuousClock.now - start).secondsDouble
    var result = latencies.result(name + ".insert_start_finish")
    result.ops_per_s = rate
    if let store = store as? PostgresTaskStore {
      result.round_trips_per_op = Double(store.roundTrips - statementsBefore) / Double(count)
    }
    return [result]
  }

  /// `count` function tasks, 128 submitted at a time (round robin over the gateways, one
  /// gateway per store), until every result is stored. One gateway has two nodes; several
  /// share a database (PostgreSQL) and have one node each. On a shared store the completions
  /// are counted in the database (every gateway sees them), and the statements the stores
  /// sent per task are reported (`round_trips_per_op`).
  static func flow(_ name: String, stores: [any TaskStore], count: Int) async throws -> BenchResult {
    var gateways: [(Server, TaskCenter)] = []
    var members: [(ComputeNode, TaskWorker)] = []
    var clients: [Client] = []
    for (index, store) in stores.enumerated() {
      let server = Server(port: 0, config: .defaults { $0.shutdownGracePeriod = .milliseconds(100) })
      let center = TaskCenter(server: server, store: store)
      try await server.start()
      try await center.start()
      gateways.append((server, center))
      for id in stores.count == 1 ? ["bench-a", "bench-b"] : ["bench-\(index)"] {
        let node = ComputeNode(serverAddress: server.address!, nodeID: id, maxWorkers: 64)
        node.register("inc", parameters: ["x"]) { (x: Int) in x + 1 }
        let worker = TaskWorker(node: node, runner: nil, slots: 64, load: { NodeLoad() })
        try await node.start()
        try await worker.start()
        members.append((node, worker))
      }
      let client = Client(serverAddress: server.address!, timeout: .seconds(120))
      try await client.connect()
      clients.append(client)
    }
    let shared = stores.compactMap { $0 as? PostgresTaskStore }
    let completedBefore = try await stores[0].count(.completed)
    let statementsBefore = shared.reduce(0) { $0 + $1.roundTrips }

    // Completions are counted as the task center stores them (its events, or the database),
    // so the clients only submit: the flow measured is submit → dispatch → run on a node →
    // result stored.
    let events = shared.isEmpty ? gateways[0].1.events(buffer: count * 4) : nil
    let next = Counter()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        if let events {
          var completed = 0
          for await event in events where event.event == .taskCompleted || event.event == .taskFailed {
            guard event.event == .taskCompleted else {
              throw TaskCenterError(code: .internalError, message: "a task failed: \(event.data)")
            }
            completed += 1
            if completed == count { return }
          }
        } else {
          while try await stores[0].count(.completed) - completedBefore < count {
            if try await stores[0].count(.failed) > 0 { throw TaskCenterError(code: .internalError, message: "a task failed") }
            try await Task.sleep(for: .milliseconds(10))
          }
        }
      }
      for submitter in 0..<128 {
        let client = clients[submitter % clients.count]
        group.addTask {
          while true {
            let index = next.take()
            guard index < count else { return }
            _ = try await client.submit("inc", index)
          }
        }
      }
      try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - start
    let statements = shared.reduce(0) { $0 + $1.roundTrips } - statementsBefore
    // Spot check: results are there and right.
    for task in try await stores[0].tasks(status: .completed, limit: 50, offset: 0) {
      guard case .int(let argument)? = task.arguments?.first else {
        throw TaskCenterError(code: .internalError, message: "task \(task.id) lost its argument")
      }
      guard task.result == String(argument + 1) else {
        throw TaskCenterError(code: .internalError, message: "task \(task.id): \(task.result ?? "") for \(argument)")
      }
    }
    for client in clients { await client.close() }
    for (node, worker) in members {
      await worker.stop()
      await node.stop()
    }
    for (server, center) in gateways {
      await center.stop()
      await server.stop()
    }
    var result = BenchResult(name: name, ops_per_s: Double(count) / elapsed.secondsDouble)
    if !shared.isEmpty { result.round_trips_per_op = Double(statements) / Double(count) }
    return result
  }

  /// `POST /tasks` (code tasks, stored durably) under wrk: 2 threads, 64 connections.
  static func httpSubmit(seconds: Double) async throws -> [BenchResult] {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") else {
      print("tasks.http_post: skipped (apt-get install wrk)")
      return []
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).sqlite").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let server = Server(port: 0)
    let center = TaskCenter(server: server, store: try SQLiteTaskStore(path: path))
    let http = TaskCenterHTTPServer(center: center, server: server, port: 0)
    try await server.start()
    try await center.start()
    try await http.start()
    let script = FileManager.default.temporaryDirectory.appendingPathComponent("bench-post.lua")
    try Data(
      """
      wrk.method = "POST"
      wrk.body = '{"code": "print(1 + 1)", "timeout": 30}'
      wrk.headers["Content-Type"] = "application/json"
      """.utf8
    ).write(to: script)
    let output = try runProgram(
      "/usr/bin/wrk",
      ["-t2", "-c64", "-d\(Int(seconds))s", "--latency", "-s", script.path, "http://\(http.address!)/tasks"])
    await http.stop()
    await center.stop()
    await server.stop()
    func number(after label: String) -> Double? {
      guard let line = output.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) })
      else { return nil }
      return line.split(separator: " ").dropFirst(label.split(separator: " ").count).first.flatMap(parseDuration)
    }
    let rate = number(after: "Requests/sec:")
    let non2xx = output.contains("Non-2xx")
    if non2xx { print(output) }
    return [
      BenchResult(name: "tasks.http_post" + (non2xx ? " (errors!)" : ""), p50_us: number(after: "50%"), p99_us: number(after: "99%"), ops_per_s: rate)
    ]
  }

  /// "512.34us", "1.20ms", "3.00s" as microseconds; a plain number as itself.
  static func parseDuration(_ text: Substring) -> Double? {
    let units: [(String, Double)] = [("us", 1), ("ms", 1000), ("s", 1_000_000)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
      return Double(text.dropLast(suffix.count)).map { $0 * factor }
    }
    return Double(text)
  }

  static func runProgram(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }
}
