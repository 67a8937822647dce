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
    let cancelled = CancelClock()
    node.registerStream("forever") { () in
      // The producer stops when the node's task is cancelled: its loop ends and lets go of
      // the sequence, and with it of the witness.
      let witness = ReleaseWitness(cancelled)
      return AsyncStream<Int>(unfolding: { witness.produce() }, onCancel: { cancelled.mark() })
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
    results.append(try await cancelToNode(client, cancelled))
    results.append(try await nodeLost(server, client))

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

extension RoutedSuite {
  /// From the client dropping an infinite stream to the node's producer being cancelled
  /// (issue 3: within 100 ms).
  static func cancelToNode(_ client: Client, _ cancelled: CancelClock) async throws -> BenchResult {
    var latencies = Latencies(capacity: 50)
    for _ in 0..<50 {
      cancelled.reset()
      var read = 0
      let dropped: ContinuousClock.Instant = try await {
        for try await _ in try await client.stream("forever", as: Int.self) {
          read += 1
          if read == 100 { break }
        }
        return ContinuousClock.now  // the stream is dropped here
      }()
      let deadline = ContinuousClock.now + .seconds(5)
      while cancelled.instant == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .microseconds(200)) }
      guard let instant = cancelled.instant else { throw BenchFailure("the node's producer was never cancelled") }
      latencies.append(instant - dropped)
    }
    return latencies.result("routed.stream.cancel_to_node")
  }

  /// From a compute node process being killed with SIGKILL mid-call to the caller's
  /// `node_lost` (issue 3: within a second). The node runs in a child process.
  static func nodeLost(_ server: Server, _ client: Client) async throws -> BenchResult {
    var latencies = Latencies(capacity: 10)
    for round in 0..<10 {
      let child = Process()
      child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
      child.arguments = ["--simulate-nodes", "1", "--gateway", server.address!, "--node-prefix", "doomed-\(round)-"]
      try child.run()
      let joined = ContinuousClock.now + .seconds(30)
      while !server.nodes().contains(where: { $0.id == "doomed-\(round)-0" }), ContinuousClock.now < joined {
        try await Task.sleep(for: .milliseconds(20))
      }
      let call = Task { () -> Result<Double, any Error> in
        do {
          return .success(try await client.execute("hold", 60.0, node: "doomed-\(round)-0", as: Double.self))
        } catch {
          return .failure(error)
        }
      }
      while server.stats().inFlight == 0 { try await Task.sleep(for: .milliseconds(5)) }
      let killed = ContinuousClock.now
      kill(child.processIdentifier, SIGKILL)
      let outcome = await call.value
      let failed = ContinuousClock.now
      child.waitUntilExit()
      guard case .failure(let error as EasyRemoteError) = outcome, error.code == EasyRemoteError.Code.nodeLost else {
        throw BenchFailure("a killed node's call ended with \(outcome), not node_lost")
      }
      latencies.append(failed - killed)
    }
    return latencies.result("routed.node_lost_after_sigkill")
  }
}

/// Marks the clock when the producer's sequence is let go.
final class ReleaseWitness: Sendable {
  let clock: CancelClock
  init(_ clock: CancelClock) { self.clock = clock }
  func produce() -> Int { 1 }
  deinit { clock.mark() }
}

/// When a stream's producer on the node saw its cancellation.
final class CancelClock: Sendable {
  private let value = Mutex<ContinuousClock.Instant?>(nil)
  var instant: ContinuousClock.Instant? { value.withLock { $0 } }
  func mark() { value.withLock { $0 = $0 ?? .now } }
  func reset() { value.withLock { $0 = nil } }
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
    child.arguments = ["--simulate-nodes", String(count), "--gateway", address, "--node-prefix", "sim-"]
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
  static func simulate(nodes count: Int, gateway: String, prefix: String) async throws {
    var nodes: [ComputeNode] = []
    for index in 0..<count {
      let node = ComputeNode(serverAddress: gateway, nodeID: "\(prefix)\(index)", maxWorkers: 1)
      node.register("noop") { () in 0 }
      node.register("hold", parameters: ["seconds"]) { (seconds: Double) in
        try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
        return seconds
      }
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
