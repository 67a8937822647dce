import ArgumentParser
import EasyRemote
import Foundation
import NodeComm

/// Hidden `--profile NAME`: one measurement alone, in a loop for `--seconds`, so that `perf`
/// sees nothing else. Not part of any suite.
enum ProfileLoops {
  static let names = ["link-echo", "routed-echo", "routed-stream", "routed-slow", "routed-call64"]

  static func run(_ name: String, seconds: Double) async throws {
    let duration = Duration.milliseconds(Int64(seconds * 1000))
    switch name {
    case "link-echo":
      let (server, client) = try await LinkSuite.pair()
      let large = Payload.raw(Data(repeating: 3, count: 1 << 20))
      let rate = try await throughput(concurrency: 1, duration: duration) {
        _ = try await client.call("bench-server", "echo", payload: large)
      }
      print("link-echo: \(Int(rate * 1.048576)) MB/s")
      await client.stop()
      await server.stop()
    case "routed-echo", "routed-stream", "routed-slow", "routed-call64":
      let server = Server(port: 0)
      try await server.start()
      let node = ComputeNode(serverAddress: server.address!, nodeID: "profile-node", maxWorkers: 256)
      node.register("echo", parameters: ["data"]) { (data: Data) in data }
      node.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
      node.registerStream("numbers", parameters: ["count"]) { (count: Int) in
        let next = Counter()
        return AsyncStream<Int> { next.take() < count ? 1 : nil }
      }
      try await node.start()
      let client = Client(serverAddress: server.address!, timeout: .seconds(120))
      try await client.connect()
      if name == "routed-slow" {
        for _ in 0..<4 { print(try await RoutedSuite.slowReader(client, gatewayRSS: { residentMegabytes() })) }  // growth must fade
      } else if name == "routed-call64" {
        let rate = try await throughput(concurrency: 64, duration: duration) {
          let _: Int = try await client.execute("add", 1, 2)
        }
        print("routed-call64: \(Int(rate)) calls/s")
      } else if name == "routed-echo" {
        let megabyte = Data(repeating: 7, count: 1 << 20)
        let rate = try await throughput(concurrency: 1, duration: duration) {
          let _: Data = try await client.execute("echo", megabyte)
        }
        print("routed-echo: \(Int(rate * 1.048576)) MB/s")
      } else {
        let start = ContinuousClock.now
        var received = 0
        while ContinuousClock.now - start < duration {
          for try await _ in try await client.stream("numbers", 200_000, as: Int.self) { received += 1 }
        }
        print("routed-stream: \(Int(Double(received) / (ContinuousClock.now - start).secondsDouble)) items/s")
      }
      await client.close()
      await node.stop()
      await server.stop()
    default:
      throw ValidationError("unknown profile '\(name)'; one of \(names.joined(separator: ", "))")
    }
  }
}
