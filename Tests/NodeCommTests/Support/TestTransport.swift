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

  init(_ kind: TransportKind) { self.kind = kind }

  func node(_ id: String, listen: Bool = true, configure: (inout NodeConfig) -> Void = { _ in }) -> Node {
    var config = NodeConfig.defaults
    config.transport = TransportConfig(mode: kind == .grpc ? .grpc : .memory, listen: listen, host: "127.0.0.1", port: 0)
    config.defaultTimeout = .seconds(20)
    config.shutdownGracePeriod = .seconds(1)
    configure(&config)
    let transport: any Transport = kind == .grpc ? GRPCTransport(tls: config.transport.tls) : memory
    return Node(id: id, config: config, transport: transport)
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

/// A one-shot signal a handler can fire and a test can await with a limit.
final class Signal: Sendable {
  private let stream: AsyncStream<String>
  private let continuation: AsyncStream<String>.Continuation

  init() { (stream, continuation) = AsyncStream.makeStream(of: String.self) }

  func fire(_ value: String = "") { continuation.yield(value) }

  /// The next value fired, or nil when none comes within `limit`.
  func wait(upTo limit: Duration = .seconds(5)) async -> String? {
    let stream = self.stream
    return await withTaskGroup(of: String?.self) { group in
      group.addTask {
        for await value in stream { return value }
        return nil
      }
      group.addTask {
        try? await Task.sleep(for: limit)
        return nil
      }
      defer { group.cancelAll() }
      return await group.next()!
    }
  }
}

/// Collects values from concurrent code.
final class Recorder<Value: Sendable>: Sendable {
  private let values = Mutex<[Value]>([])
  func append(_ value: Value) { values.withLock { $0.append(value) } }
  var all: [Value] { values.withLock { $0 } }
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
