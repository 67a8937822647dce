import EasyRemote
import Foundation
import NodeComm
import Synchronization

/// `routed`: client → gateway → compute node → back, over gRPC on loopback.
enum RoutedSuite {
  static func run(_ settings: BenchSettings) async throws -> [BenchResult] {
    let server = Server(port: 0, config: .defaults { $0.shutdownGracePeriod = .milliseconds(100) })
    try await server.start()
    let address = server.address!
    let node = ComputeNode(serverAddress: address, nodeID: "bench-node", maxWorkers: 256)
    node.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
    node.register("echo", parameters: ["data"]) { (data: Data) in data }
    node.registerStream("numbers", parameters: ["count"]) { (count: Int) in
      let next = Counter()
      return AsyncStream<Int> { next.take() < count ? 1 : nil }
    }
    try await node.start()
    let client = Client(serverAddress: address, timeout: .seconds(60))
    try await client.connect()

    var results: [BenchResult] = []
    var latencies = Latencies(capacity: settings.iterations)
    for round in 0..<(settings.iterations + 300) {
      let start = ContinuousClock.now
      let _: Int = try await client.execute("add", 1, 2)
      if round >= 300 { latencies.append(ContinuousClock.now - start) }
    }
    results.append(latencies.result("routed.call.sequential"))
    for concurrency in [1, 16, 64] {
      let rate = try await throughput(concurrency: concurrency, duration: settings.duration) {
        let _: Int = try await client.execute("add", 1, 2)
      }
      results.append(BenchResult(name: "routed.call.inflight_\(concurrency)", ops_per_s: rate))
    }

    var first = Latencies(capacity: 200)
    for _ in 0..<200 {
      let start = ContinuousClock.now
      for try await _ in try await client.stream("numbers", 1, as: Int.self) { first.append(ContinuousClock.now - start) }
    }
    results.append(first.result("routed.stream.time_to_first_item"))
    let count = 200_000
    let start = ContinuousClock.now
    var received = 0
    for try await _ in try await client.stream("numbers", count, as: Int.self) { received += 1 }
    results.append(
      BenchResult(name: "routed.stream.items", ops_per_s: Double(received) / (ContinuousClock.now - start).secondsDouble))

    let megabyte = Data(repeating: 7, count: 1 << 20)
    let rate = try await throughput(concurrency: 1, duration: settings.duration) {
      let _: Data = try await client.execute("echo", megabyte)
    }
    results.append(BenchResult(name: "routed.echo_1MiB", ops_per_s: rate, mb_per_s: rate * 1.048576))
    results.append(try await slowReader(client, gatewayRSS: { residentMegabytes() }))

    await client.close()
    await node.stop()
    await server.stop()
    return results
  }

  /// One million small items to a reader that pauses every 1,000 items: the memory of this
  /// process (gateway, node and client together) must stay flat, because credit holds the
  /// producer back. Growth is the peak over the stream minus the memory after its first
  /// 100,000 items (by then malloc holds the free memory it keeps for reuse).
  static func slowReader(_ client: Client, gatewayRSS: () -> Double?) async throws -> BenchResult {
    var before = gatewayRSS() ?? 0
    var peak = before
    var received = 0
    let start = ContinuousClock.now
    for try await _ in try await client.stream("numbers", 1_000_000, as: Int.self) {
      received += 1
      if received % 1000 == 0 {
        try await Task.sleep(for: .milliseconds(1))
        if received == 100_000 {
          before = gatewayRSS() ?? 0
          peak = before
        } else if received % 50_000 == 0 {
          peak = max(peak, gatewayRSS() ?? 0)
        }
      }
    }
    let rate = Double(received) / (ContinuousClock.now - start).secondsDouble
    return BenchResult(name: "routed.stream.1M_slow_reader.rss_growth", ops_per_s: rate, rss_mb: peak - before)
  }
}

/// Memory per connected idle node: the gateway here, 1,000 simulated nodes in a child process.
enum ScaleSuite {
  static func run(nodes count: Int) async throws -> [BenchResult] {
    let server = Server(port: 0)
    try await server.start()
    let address = server.address!
    try await Task.sleep(for: .milliseconds(300))
    let before = residentMegabytes() ?? 0
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--simulate-nodes", String(count), "--gateway", address]
    try child.run()
    let deadline = ContinuousClock.now + .seconds(180)
    while server.nodeCount < count, ContinuousClock.now < deadline, child.isRunning {
      try await Task.sleep(for: .milliseconds(200))
    }
    try await Task.sleep(for: .seconds(1))
    let after = residentMegabytes() ?? 0
    let joined = server.nodeCount
    child.terminate()
    child.waitUntilExit()
    await server.stop()
    return [
      BenchResult(name: "scale.gateway_idle_nodes_\(joined)", rss_mb: after),
      BenchResult(name: "scale.gateway_per_idle_node_kb", rss_mb: joined > 0 ? (after - before) * 1024 / Double(joined) : nil),
    ]
  }

  /// The child: `count` compute nodes joined to `gateway`, idle until killed.
  static func simulate(nodes count: Int, gateway: String) async throws {
    var nodes: [ComputeNode] = []
    for index in 0..<count {
      let node = ComputeNode(serverAddress: gateway, nodeID: "sim-\(index)", maxWorkers: 1)
      node.register("noop") { () in 0 }
      try await node.start()
      nodes.append(node)
    }
    while true { try await Task.sleep(for: .seconds(3600)) }
  }
}

/// A counter shared with a stream's producer closure.
final class Counter: Sendable {
  private let value = Mutex(0)
  func take() -> Int {
    value.withLock { value in
      defer { value += 1 }
      return value
    }
  }
}
