import Foundation
import NodeComm
import NodeCommGRPC

/// `link`: two nodes over one gRPC link on loopback.
enum LinkSuite {
  static func run(_ settings: BenchSettings) async throws -> [BenchResult] {
    let (server, client) = try await pair()

    var results: [BenchResult] = []
    let small = Payload.raw(Data(repeating: 1, count: 16))
    var latencies = Latencies(capacity: settings.iterations)
    for round in 0..<(settings.iterations + 300) {
      let start = ContinuousClock.now
      _ = try await client.call("bench-server", "echo", payload: small)
      if round >= 300 { latencies.append(ContinuousClock.now - start) }
    }
    results.append(latencies.result("link.call.sequential"))
    for concurrency in [1, 16, 64] {
      let rate = try await throughput(concurrency: concurrency, duration: settings.duration) {
        _ = try await client.call("bench-server", "echo", payload: small)
      }
      results.append(BenchResult(name: "link.call.inflight_\(concurrency)", ops_per_s: rate))
    }
    let large = Payload.raw(Data(repeating: 3, count: 1 << 20))
    let rate = try await throughput(concurrency: 1, duration: settings.duration) {
      _ = try await client.call("bench-server", "echo", payload: large)
    }
    results.append(BenchResult(name: "link.echo_1MiB", ops_per_s: rate, mb_per_s: rate * 1.048576))
    let rate4 = try await throughput(concurrency: 4, duration: settings.duration) {
      _ = try await client.call("bench-server", "echo", payload: large)
    }
    results.append(BenchResult(name: "link.echo_1MiB.inflight_4", ops_per_s: rate4, mb_per_s: rate4 * 1.048576))
    results += try await streamRate(client, settings)
    results += try await smallCallsDuringBulk(client, settings)
    results.append(BenchResult(name: "link.process", rss_mb: residentMegabytes()))
    await client.stop()
    await server.stop()
    return results
  }

  /// `bench-client` linked to `bench-server` over gRPC on loopback; the server has `echo` and
  /// `numbers` (a stream of N 16-byte items).
  static func pair() async throws -> (server: Node, client: Node) {
    let config = NodeConfig.defaults {
      $0.transport = TransportConfig(mode: .grpc, host: "127.0.0.1", port: 0)
      $0.shutdownGracePeriod = .milliseconds(100)
      $0.limits.maxPayloadSize = 128 << 20  // the 100 MiB transfers of smallCallsDuringBulk
    }
    let server = Node(id: "bench-server", config: config)
    server.register("echo") { payload, _ in payload }
    server.registerStream("numbers") { payload, _, sink in
      let count = Int(payload.text) ?? 0
      let item = Payload.raw(Data(repeating: 5, count: 16))
      for _ in 0..<count { try await sink.send(item) }
    }
    try await server.start()
    var clientConfig = config
    clientConfig.transport.listen = false
    let client = Node(id: "bench-client", config: clientConfig)
    try await client.start()
    try await client.connect(to: "bench-server", at: server.listeningAddress!)
    return (server, client)
  }

  /// Items per second of one stream of small items, and the time to its first item.
  static func streamRate(_ client: Node, _ settings: BenchSettings) async throws -> [BenchResult] {
    var firstItem = Latencies(capacity: 200)
    for _ in 0..<200 {
      let start = ContinuousClock.now
      for try await _ in try await client.stream("bench-server", "numbers", payload: .raw(Data("1".utf8))) {
        firstItem.append(ContinuousClock.now - start)
      }
    }
    let count = 200_000
    let start = ContinuousClock.now
    var received = 0
    for try await _ in try await client.stream("bench-server", "numbers", payload: .raw(Data("\(count)".utf8)), window: 256) {
      received += 1
    }
    let rate = Double(received) / (ContinuousClock.now - start).secondsDouble
    return [
      firstItem.result("link.stream.time_to_first_item"),
      BenchResult(name: "link.stream.items_16B", ops_per_s: rate),
    ]
  }

  /// Small calls on a link that is busy moving 100 MiB payloads: chunking keeps them moving.
  /// Also reports the rate of the bulk echoes themselves.
  static func smallCallsDuringBulk(_ client: Node, _ settings: BenchSettings) async throws -> [BenchResult] {
    let bulk = Payload.raw(Data(repeating: 9, count: 100 << 20))
    let small = Payload.raw(Data(repeating: 1, count: 16))
    return try await withThrowingTaskGroup(of: Duration.self) { group in
      group.addTask {
        // The time of each completed echo, summed (one cut short by the end is not counted).
        var busy = Duration.zero
        var echoed = 0
        while !Task.isCancelled {
          let begin = ContinuousClock.now
          do {
            let back = try await client.call("bench-server", "echo", payload: bulk, timeout: .seconds(60))
            guard back.data.count == bulk.data.count else { throw BenchFailure("a 100 MiB echo came back short") }
            busy += ContinuousClock.now - begin
            echoed += 1
          } catch where Task.isCancelled {
            break
          }
        }
        return echoed == 0 ? .zero : busy / echoed
      }
      try await Task.sleep(for: .milliseconds(200))
      let start = ContinuousClock.now
      var latencies = Latencies(capacity: 500)
      for _ in 0..<500 {
        let begin = ContinuousClock.now
        _ = try await client.call("bench-server", "echo", payload: small)
        latencies.append(ContinuousClock.now - begin)
      }
      // Let bulk echoes finish, so that their rate means something.
      while ContinuousClock.now - start < .seconds(3) { try await Task.sleep(for: .milliseconds(50)) }
      group.cancelAll()
      let each = try await group.next() ?? .zero
      guard each > .zero else { throw BenchFailure("no 100 MiB echo completed") }
      let rate = 1 / each.secondsDouble
      return [
        latencies.result("link.call.sequential_during_100MiB_echo"),
        BenchResult(name: "link.echo_100MiB", ops_per_s: rate, mb_per_s: rate * 104.8576),
      ]
    }
  }
}

/// A benchmark that could not measure what it set out to.
struct BenchFailure: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
