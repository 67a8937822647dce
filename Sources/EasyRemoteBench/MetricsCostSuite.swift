import EasyRemote
import Foundation

/// What the gateway's metrics cost: the same routed call through a gateway with metrics on
/// (the default) and one with them off, measured in turns (on, off, on, off...) so the noise
/// of the machine falls on both alike; each side's median of the turns.
enum MetricsCostSuite {
  static let turns = 9

  static func run(_ settings: BenchSettings) async throws -> [BenchResult] {
    // EASYREMOTE_BENCH_AA=1: both sides without metrics, to see what the method itself
    // shows when nothing differs.
    let same = ProcessInfo.processInfo.environment["EASYREMOTE_BENCH_AA"] != nil
    let on = try await Fabric.start(metrics: same ? nil : MetricsRegistry(), metricsOn: true)
    let off = try await Fabric.start(metrics: nil, metricsOn: false)
    var rates: [Bool: [Double]] = [true: [], false: []]
    var p50s: [Bool: [Double]] = [true: [], false: []]
    for _ in 0..<turns {
      for fabric in [on, off] {
        let client = fabric.client
        let rate = try await throughput(concurrency: 16, duration: settings.duration) {
          let _: Int = try await client.execute("add", 1, 2)
        }
        rates[fabric.metricsOn]!.append(rate)
        var latencies = Latencies(capacity: 1000)
        for _ in 0..<1000 {
          let start = ContinuousClock.now
          let _: Int = try await client.execute("add", 1, 2)
          latencies.append(ContinuousClock.now - start)
        }
        p50s[fabric.metricsOn]!.append(latencies.percentile(0.5))
      }
    }
    await on.stop()
    await off.stop()
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    return [true, false].map { metricsOn in
      BenchResult(
        name: "routed.metrics_\(metricsOn ? "on" : "off").call.inflight_16", p50_us: median(p50s[metricsOn]!),
        ops_per_s: median(rates[metricsOn]!))
    } + [try await recordCost()]
  }

  /// What a routed call's metrics cost the gateway in CPU, alone: the same recording a call
  /// makes (a counter, a histogram, byte counters), a million times in a loop. Unlike the
  /// turns above (whose noise on this machine is ±5%, as two gateways without metrics show,
  /// `EASYREMOTE_BENCH_AA=1`), it does not depend on what else the machine does.
  static func recordCost() async throws -> BenchResult {
    let server = Server(port: 0, metrics: MetricsRegistry())
    let count = 1_000_000
    let start = ContinuousClock.now
    for _ in 0..<count {
      server.benchRecord(function: "add", node: "bench-node", start: start, bytesIn: 48, bytesOut: 1)
    }
    let elapsed = ContinuousClock.now - start
    return BenchResult(name: "routed.metrics.record_per_call", p50_us: elapsed.microsecondsDouble / Double(count))
  }

  struct Fabric {
    let server: Server
    let node: ComputeNode
    let client: Client
    let metricsOn: Bool

    static func start(metrics: MetricsRegistry?, metricsOn: Bool) async throws -> Fabric {
      let server = Server(port: 0, config: .defaults { $0.shutdownGracePeriod = .milliseconds(100) }, metrics: metrics)
      try await server.start()
      let node = ComputeNode(serverAddress: server.address!, nodeID: "bench-node", maxWorkers: 256)
      node.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
      try await node.start()
      let client = Client(serverAddress: server.address!, timeout: .seconds(60))
      try await client.connect()
      return Fabric(server: server, node: node, client: client, metricsOn: metricsOn)
    }

    func stop() async {
      await client.close()
      await node.stop()
      await server.stop()
    }
  }
}
