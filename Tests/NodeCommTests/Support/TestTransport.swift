import Foundation
import NodeComm
import NodeCommGRPC
import Synchronization
import Testing

/// The transports the behaviour suite runs over.
enum TransportKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
  case memory, grpc
  var testDescription: String { rawValue }
}

/// Builds nodes of one transport kind for one test.
struct TestCluster: Sendable {
  let kind: TransportKind
  let memory = MemoryTransport()
  /// What the nodes' link heartbeats keep time on.
  let clock: any Clock<Duration>

  init(_ kind: TransportKind, clock: any Clock<Duration> = ContinuousClock()) {
    self.kind = kind
    self.clock = clock
  }

  func node(_ id: String, listen: Bool = true, configure: (inout NodeConfig) -> Void = { _ in }) -> Node {
    var config = NodeConfig.defaults
    config.transport = TransportConfig(mode: kind == .grpc ? .grpc : .memory, listen: listen, host: "127.0.0.1", port: 0)
    config.defaultTimeout = .seconds(20)
    config.shutdownGracePeriod = .seconds(1)
    configure(&config)
    let transport: any Transport = kind == .grpc ? GRPCTransport(tls: config.transport.tls) : memory
    return Node(id: id, config: config, transport: transport, clock: clock)
  }

  /// Starts nodes `a` and `b`, links a → b, runs `body`, stops both.
  func withPair(
    configureA: (inout NodeConfig) -> Void = { _ in },
    configureB: (inout NodeConfig) -> Void = { _ in },
    aListens: Bool = true,
    setUp: (Node, Node) -> Void = { _, _ in },
    _ body: (Node, Node) async throws -> Void
  ) async throws {
    let a = node("a", listen: aListens, configure: configureA)
    let b = node("b", configure: configureB)
    setUp(a, b)
    try await b.start()
    try await a.start()
    do {
      try await a.connect(to: "b", at: try #require(b.listeningAddress))
      try await body(a, b)
    } catch {
      await a.stop(gracePeriod: .zero)
      await b.stop(gracePeriod: .zero)
      throw error
    }
    await a.stop(gracePeriod: .zero)
    await b.stop(gracePeriod: .zero)
  }
}

/// Expects `body` to throw a ``NodeError``; returns it.
func expectNodeError(
  _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> NodeError {
  do {
    try await body()
  } catch let error as NodeError {
    return error
  } catch {
    Issue.record("expected a NodeError, got \(error)", sourceLocation: sourceLocation)
    throw error
  }
  Issue.record("expected a NodeError, but the call succeeded", sourceLocation: sourceLocation)
  throw NodeError(code: .invalidState, message: "no error")
}
