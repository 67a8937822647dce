import EasyRemote
import Foundation
import NodeComm
import NodeCommGRPC
import Synchronization
import TestSupport
import Testing

/// The transports the gateway suites run over: in one process, and real gRPC on loopback.
enum TransportKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case memory, grpc
  var testDescription: String { rawValue }

  func make() -> any Transport {
    switch self {
    case .memory: MemoryTransport()
    case .grpc: GRPCTransport()
    }
  }
}

/// A gateway (in memory, or on a free loopback port) with compute nodes and a client, stopped
/// afterwards.
struct Fabric {
  let server: Server
  let address: String
  let transport: any Transport
  var nodes: [ComputeNode] = []
  /// Opened, every `hold` and `holdIdempotent` call on its nodes returns (before, they end
  /// only when cancelled).
  let release = Gate()

  /// - Parameters:
  ///   - transport: reuse this transport (a gateway restarting on the same memory transport).
  static func start(
    _ kind: TransportKind = .memory, balancing: Server.Balancing = .leastInFlight, port: Int = 0,
    transport: (any Transport)? = nil, maxWorkers: Int? = nil, queueLimit: Int? = nil
  ) async throws -> Fabric {
    let transport = transport ?? kind.make()
    let server = Server(
      port: port, balancing: balancing, maxWorkers: maxWorkers, queueLimit: queueLimit,
      config: .defaults { $0.shutdownGracePeriod = .milliseconds(200) }, transport: transport)
    try await server.start()
    return Fabric(server: server, address: try #require(server.address), transport: transport)
  }

  /// A compute node with the test functions, joined to the gateway.
  mutating func addNode(
    _ id: String, maxWorkers: Int = 4, queueLimit: Int? = nil, extra: (ComputeNode) -> Void = { _ in }
  ) async throws -> ComputeNode {
    let node = ComputeNode(
      serverAddress: address, nodeID: id, maxWorkers: maxWorkers, queueLimit: queueLimit,
      config: .defaults { $0.shutdownGracePeriod = .milliseconds(100) }, transport: transport)
    TestFunctions.register(on: node, release: release)
    extra(node)
    try await node.start()
    nodes.append(node)
    return node
  }

  func client(timeout: Duration = .seconds(20)) -> Client {
    Client(serverAddress: address, timeout: timeout, transport: transport)
  }

  func stop() async {
    for node in nodes { await node.stop() }
    await server.stop()
  }
}

struct Point: Codable, Sendable, Equatable {
  var x: Double
  var y: Double
}

struct Overheated: Error, CustomStringConvertible {
  var description: String { "the GPU is too hot" }
}

enum TestFunctions {
  /// - Parameter release: what `hold` and `holdIdempotent` wait for.
  static func register(on node: ComputeNode, release: Gate) {
    node.register("add", description: "Adds two integers", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
    node.register("scale", parameters: ["point", "factor"]) { (point: Point, factor: Double) in
      Point(x: point.x * factor, y: point.y * factor)
    }
    node.register("greet", parameters: ["name", "punctuation"]) { (name: String, punctuation: String?) in
      "hello, \(name)\(punctuation ?? "!")"
    }
    node.register("whoami") { () in node.nodeID }
    node.register("fail", parameters: ["reason"]) { (reason: String) throws -> Int in
      if reason == "hot" { throw Overheated() }
      return 0
    }
    // Hold a worker until the test opens `release` (or the call is cancelled); answer the node's id.
    node.register("hold", idempotent: false) { () async throws -> String in
      try await release.wait()
      return node.nodeID
    }
    node.register("holdIdempotent", idempotent: true) { () async throws -> String in
      try await release.wait()
      return node.nodeID
    }
    // `to` items; with `yielding`, the producer lets others run between items.
    node.registerStream("count", parameters: ["to", "yielding"]) { (to: Int, yielding: Int) in
      AsyncThrowingStream<Int, any Error> { continuation in
        let task = Task {
          for i in 0..<to {
            if yielding > 0 { await Task.yield() }
            continuation.yield(i)
          }
          continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
      }
    }
  }
}

/// Expects `body` to throw an ``EasyRemoteError``; returns it.
func expectRemoteError(
  _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> EasyRemoteError {
  do {
    try await body()
  } catch let error as EasyRemoteError {
    return error
  } catch {
    Issue.record("expected an EasyRemoteError, got \(error)", sourceLocation: sourceLocation)
    throw error
  }
  Issue.record("expected an EasyRemoteError, but the call succeeded", sourceLocation: sourceLocation)
  throw EasyRemoteError(code: .internalError, message: "no error")
}
