import TestSupport
import Foundation
import Metrics
import MetricsTestKit
import NodeComm
import Synchronization
import Testing

/// Seed 001's interceptors and options beyond logging and auth: retry, metrics, a method's
/// own serializer.
@Suite("Retry, metrics and per-method serializers", .timeLimit(.minutes(2)))
struct SeedInterceptorTests {
  /// Counts executions of a handler across tasks.
  final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
    var count: Int { value.withLock { $0 } }
  }

  @Test("a call made before the link exists is retried until the link comes", arguments: TransportKind.allCases)
  func retriesUntilConnected(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let retried = Signal()
    let retries = Recorder<RetryInterceptor.Retry>()
    let a = cluster.node("a")
    a.addInterceptor(
      RetryInterceptor(
        RetryPolicy(maxAttempts: 50, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200))
      ) { retry in
        retries.append(retry)
        retried.fire()
      }, paths: .outbound)
    let b = cluster.node("b")
    b.register("add") { (numbers: [Int], _) in numbers.reduce(0, +) }
    try await a.start()
    try await b.start()
    let call = Task { () throws -> Int in try await a.call("b", "add", [2, 3]) }
    #expect(await retried.wait() != nil)
    try await a.connect(to: "b", at: try #require(b.listeningAddress))
    #expect(try await call.value == 5)
    #expect(retries.all.first?.error.code == .notConnected && retries.all.allSatisfy { $0.method == "add" })
    // Without the interceptor the same call fails at once.
    let plain = cluster.node("plain")
    try await plain.start()
    let error = try await expectNodeError { _ = try await plain.call("b", "add", [1]) as Int }
    #expect(error.code == .notConnected)
    for node in [a, b, plain] { await node.stop(gracePeriod: .zero) }
  }

  @Test("a call that may have run is sent again only when its method is idempotent", arguments: TransportKind.allCases)
  func onlyIdempotentCallsAreResent(kind: TransportKind) async throws {
    let executions = ["once": Counter(), "get": Counter()]
    let retries = Recorder<RetryInterceptor.Retry>()
    try await TestCluster(kind).withPair(
      setUp: { a, b in
        a.addInterceptor(
          RetryInterceptor(
            RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(10), jitter: 0.5, idempotentMethods: ["get"]),
            onRetry: retries.append), paths: .outbound)
        for method in ["once", "get"] {
          b.register(method) { (_: Empty, _) in
            // The first execution hangs past the caller's timeout (its task is cancelled);
            // later ones answer at once.
            if executions[method]!.next() == 1 { try await hang() }
            return method
          }
        }
      }
    ) { a, _ in
      let error = try await expectNodeError {
        _ = try await a.call("b", "once", Empty(), as: String.self, timeout: .milliseconds(300))
      }
      #expect(error.code == .timedOut)
      #expect(executions["once"]!.count <= 1)
      #expect(retries.all.isEmpty, "a non-idempotent call was sent again: \(retries.all.map(\.error))")

      // The first attempt times out; a later one answers (on a loaded machine a second one
      // may time out too: each attempt has the whole timeout, and each is another execution).
      let value = try await a.call("b", "get", Empty(), as: String.self, timeout: .seconds(1))
      #expect(value == "get")
      #expect(executions["get"]!.count >= 2)
      #expect(!retries.all.isEmpty && retries.all.allSatisfy { $0.error.code == .timedOut && $0.method == "get" })
      #expect(retries.all.count == executions["get"]!.count - 1)
    }
  }

  @Test("errors that say the call ran and failed are final, even for idempotent methods", arguments: TransportKind.allCases)
  func finalErrorsAreNotRetried(kind: TransportKind) async throws {
    let executions = Counter()
    let retries = Recorder<RetryInterceptor.Retry>()
    try await TestCluster(kind).withPair(
      setUp: { a, b in
        a.addInterceptor(
          RetryInterceptor(RetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(1), idempotentMethods: ["fail", "missing"]),
          onRetry: retries.append), paths: .outbound)
        b.register("fail") { (_: Empty, _) -> String in
          _ = executions.next()
          throw NodeError(code: .rejected, message: "no")
        }
      }
    ) { a, _ in
      let failed = try await expectNodeError { _ = try await a.call("b", "fail", Empty(), as: String.self) }
      #expect(failed.code == .rejected && executions.count == 1)
      let missing = try await expectNodeError { _ = try await a.call("b", "missing", Empty(), as: String.self) }
      #expect(missing.code == .methodNotFound)
      #expect(retries.all.isEmpty)
    }
  }

  @Test("backoff grows by the multiplier up to its cap; jitter only shortens it")
  func backoff() {
    let policy = RetryPolicy(
      maxAttempts: 10, initialBackoff: .milliseconds(100), maxBackoff: .seconds(1), multiplier: 2, jitter: 0.25)
    #expect((1...6).map { policy.backoff(after: $0) } == [100, 200, 400, 800, 1000, 1000].map { Duration.milliseconds($0) })
    #expect(RetryPolicy(maxAttempts: 0).maxAttempts == 1)
    #expect(RetryPolicy(jitter: 7).jitter == 1)
  }

  @Test("the metrics interceptor counts calls by method, direction and outcome, and times them")
  func metrics() async throws {
    let metrics = TestMetrics()
    try await TestCluster(.memory).withPair(
      setUp: { a, b in
        a.addInterceptor(MetricsInterceptor(nodeID: "a", factory: metrics))
        b.addInterceptor(MetricsInterceptor(nodeID: "b", factory: metrics))
        b.register("add") { (numbers: [Int], _) in numbers.reduce(0, +) }
        b.register("fail") { (_: Empty, _) -> Int in throw NodeError(code: .rejected, message: "no") }
      }
    ) { a, _ in
      for _ in 0..<3 { _ = try await a.call("b", "add", [1, 2]) as Int }
      _ = try? await a.call("b", "fail", Empty()) as Int
      func calls(_ node: String, _ direction: String, _ method: String, _ outcome: String) -> Int64 {
        metrics.counterTotal(
          label: MetricsInterceptor.callsLabel,
          dimensions: [("node", node), ("direction", direction), ("method", method), ("outcome", outcome)])
      }
      #expect(calls("a", "outbound", "add", "ok") == 3)
      #expect(calls("b", "inbound", "add", "ok") == 3)
      #expect(calls("a", "outbound", "fail", "rejected") == 1)
      #expect(calls("b", "inbound", "fail", "rejected") == 1)
      let timer = try metrics.expectTimer(
        MetricsInterceptor.durationLabel, [("node", "a"), ("direction", "outbound"), ("method", "add")])
      #expect(timer.values.count == 3 && timer.values.allSatisfy { $0 > 0 })
      let inFlight = try metrics.expectMeter(
        MetricsInterceptor.inFlightLabel, [("node", "b"), ("direction", "inbound"), ("method", "add")])
      #expect(inFlight.lastValue == 0)
    }
  }

  @Test("a method's own serializer encodes its answers and items, whatever the request came in", arguments: TransportKind.allCases)
  func methodSerializer(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("pack", serializer: BinarySerializer.name) { (numbers: [Int], _) in numbers.map { $0 * 2 } }
      b.register("echo") { (numbers: [Int], _) in numbers }
      b.registerStream("count", serializer: BinarySerializer.name) { (limit: Int, _) in
        AsyncStream { continuation in
          for index in 0..<limit { continuation.yield(index) }
          continuation.finish()
        }
      }
    }) { a, _ in
      let raw = try await a.call("b", "pack", payload: try .json([1, 2]))
      #expect(raw.serializer == BinarySerializer.name)
      #expect(try await a.call("b", "pack", [1, 2]) as [Int] == [2, 4])
      // Without one, a method answers in the request's serializer.
      #expect(try await a.call("b", "echo", payload: try .json([1])).serializer == JSONSerializer.name)
      var serializers: Set<String> = []
      var items: [Int] = []
      for try await item in try await a.stream("b", "count", payload: try .json(3)) {
        serializers.insert(item.serializer)
        items.append(try a.serializers.decode(Int.self, from: item, method: "count"))
      }
      #expect(serializers == [BinarySerializer.name] && items == [0, 1, 2])
    }
  }
}
