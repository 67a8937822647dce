import TestSupport
import Foundation
import Logging
import NodeComm
import Synchronization
import Testing

/// The node layer's behaviour, run over both the memory and the gRPC transport.
@Suite("Node behaviour", .timeLimit(.minutes(2)))
struct NodeBehaviourTests {
  struct Point: Codable, Equatable, Sendable {
    var x: Int
    var y: Int
  }

  @Test("a typed call returns the handler's result", arguments: TransportKind.allCases)
  func call(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("add") { (numbers: [Int], _) in numbers.reduce(0, +) }
      b.register("flip") { (point: Point, _) in Point(x: point.y, y: point.x) }
    }) { a, _ in
      let sum: Int = try await a.call("b", "add", [1, 2, 3, 4])
      #expect(sum == 10)
      let flipped: Point = try await a.call("b", "flip", Point(x: 1, y: 2))
      #expect(flipped == Point(x: 2, y: 1))
      let raw = try await a.call("b", "add", payload: try .json([5, 5]))
      #expect(raw.text == "10")
    }
  }

  @Test("a notification runs the handler and returns no result", arguments: TransportKind.allCases)
  func notify(kind: TransportKind) async throws {
    let received = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("log") { (line: String, context) in
        #expect(context.isNotification)
        received.fire(line)
        return Empty()
      }
    }) { a, _ in
      try await a.notify("b", "log", "hello")
      #expect(await received.wait() == "hello")
      // A notification to an unknown method is not an error for the sender.
      try await a.notify("b", "missing", "x")
    }
  }

  @Test("broadcast reaches every peer but the excluded, with each one's result or error", arguments: TransportKind.allCases)
  func broadcast(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let hub = cluster.node("hub")
    let peers = ["p1", "p2", "p3", "p4"].map { cluster.node($0) }
    try await hub.start()
    for peer in peers {
      peer.register("name") { (_: Empty, _) in
        if peer.id == "p4" { throw NodeError(code: .rejected, message: "p4 refuses") }
        return peer.id
      }
      try await peer.start()
      try await hub.connect(to: peer.id, at: try #require(peer.listeningAddress))
    }
    let results = try await hub.broadcast("name", Empty(), as: String.self, exclude: ["p2"])
    #expect(Set(results.keys) == ["p1", "p3", "p4"])
    #expect(try results["p1"]?.get() == "p1")
    #expect(try results["p3"]?.get() == "p3")
    guard case .failure(let error) = results["p4"] else {
      Issue.record("p4 should have failed")
      return
    }
    #expect(error.code == .rejected)
    #expect(error.message == "p4 refuses")
    for peer in peers { await peer.stop(gracePeriod: .zero) }
    await hub.stop(gracePeriod: .zero)
  }

  @Test("calls flow both ways on one link; the dialer need not listen", arguments: TransportKind.allCases)
  func bothDirections(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(aListens: false, setUp: { a, b in
      a.register("whoami") { (_: Empty, context) in "a, called by \(context.callerID)" }
      b.register("whoami") { (_: Empty, context) in "b, called by \(context.callerID)" }
    }) { a, b in
      #expect(a.listeningAddress == nil)
      let fromA: String = try await a.call("b", "whoami", Empty())
      let fromB: String = try await b.call("a", "whoami", Empty())
      #expect(fromA == "b, called by a")
      #expect(fromB == "a, called by b")
      #expect(a.peers == ["b"])
      #expect(b.peers == ["a"])
    }
  }

  @Test("connect and disconnect events fire on both sides and can be removed", arguments: TransportKind.allCases)
  func events(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let a = cluster.node("a")
    let b = cluster.node("b")
    let seenByA = Recorder<NodeEvent>()
    let seenByB = Recorder<NodeEvent>()
    let disconnected = Signal()
    let removed = Recorder<NodeEvent>()
    a.on(.connect) { seenByA.append($0) }
    a.on(.disconnect) { event in
      seenByA.append(event)
      disconnected.fire()
    }
    // A chain of subscriptions is one token; off(token) removes them all, off(kind) every
    // handler of a kind.
    let token = a.on(.connect) { removed.append($0) }.on(.disconnect) { removed.append($0) }
    a.off(token)
    b.on(.disconnect) { removed.append($0) }.on(.disconnect) { removed.append($0) }
    b.off(.disconnect)
    let connected = Signal()
    b.on(.connect) { event in
      seenByB.append(event)
      connected.fire()
    }
    try await a.start()
    try await b.start()
    let bAddress = try #require(b.listeningAddress)
    try await a.connect(to: "b", at: bAddress)
    #expect(await connected.wait() != nil)
    // The connect event names the peer and where it is: the dialed address on the dialer's
    // side, the peer's socket address (gRPC) on the listener's.
    #expect(seenByA.all == [.connect(peerID: "b", address: bAddress)])
    #expect(seenByB.all.map(\.peerID) == ["a"])
    let dialerAddress = try #require(seenByB.all.first?.address)
    switch kind {
    case .memory: #expect(dialerAddress == "memory-dialer")
    case .grpc: #expect(dialerAddress.contains("127.0.0.1:") && !dialerAddress.hasSuffix(":\(bAddress.split(separator: ":").last!)"), "\(dialerAddress)")
    }
    await b.stop(gracePeriod: .zero)
    #expect(await disconnected.wait() != nil)
    #expect(seenByA.all.count == 2)
    if case .disconnect(let peer, let reason) = seenByA.all.last {
      #expect(peer == "b")
      #expect(!reason.message.isEmpty)
    } else {
      Issue.record("expected a disconnect event, got \(seenByA.all)")
    }
    #expect(!a.isConnected(to: "b"))
    await a.stop(gracePeriod: .zero)
    #expect(removed.all.isEmpty)
  }

  struct Tag: CallInterceptor {
    let name: String
    let log: Recorder<String>
    func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
      log.append("\(name)>")
      let result = try await next(call)
      log.append("<\(name)")
      return result
    }
  }

  @Test("the serializer is chosen per call, per method or by default", arguments: TransportKind.allCases)
  func serializerChoice(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { a, b in
      for node in [a, b] { node.serializers.register(ReversedJSON()) }
      a.serializers.use("binary", for: "binaryByMethod")
      for method in ["which", "binaryByMethod"] {
        b.register(method) { payload, _ in
          // Answer with the name of the serializer the request came in, in that serializer.
          try b.serializers.encode(Point(x: payload.data.count, y: 0), method: method, explicit: payload.serializer)
            .withName(payload.serializer)
        }
      }
    }) { a, _ in
      let point = Point(x: 1000, y: -5)
      for name in ["json", "binary", "reversed-json"] {
        let payload = try a.serializers.encode(point, method: "which", explicit: name)
        #expect(payload.serializer == name)
        let answer = try await a.call("b", "which", payload: payload)
        #expect(answer.serializer == name)
        let typed: Point = try await a.call("b", "which", point, serializer: name)
        #expect(typed.x == payload.data.count)
      }
      let binarySize = try a.serializers.encode(point, method: "x", explicit: "binary").data.count
      let jsonSize = try a.serializers.encode(point, method: "x", explicit: "json").data.count
      #expect(binarySize < jsonSize)
      let byMethod = try a.serializers.encode(point, method: "binaryByMethod")
      #expect(byMethod.serializer == "binary")
      let byDefault = try a.serializers.encode(point, method: "which")
      #expect(byDefault.serializer == "json")
      let raw = try a.serializers.encode(Data([1, 2, 3]), method: "which")
      #expect(raw == .raw(Data([1, 2, 3])))
    }
  }

  @Test("an unknown method fails with method_not_found naming node and method", arguments: TransportKind.allCases)
  func unknownMethod(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair { a, _ in
      let error = try await expectNodeError { _ = try await a.call("b", "nope", payload: .empty) }
      #expect(error.code == .methodNotFound)
      #expect(error.nodeID == "b")
      #expect(error.method == "nope")
      let missing = try await expectNodeError { _ = try await a.call("zz", "x", payload: .empty) }
      #expect(missing.code == .notConnected)
      #expect(missing.nodeID == "zz")
    }
  }

  @Test("an undecodable or mistyped payload fails with serialization_failed", arguments: TransportKind.allCases)
  func undecodablePayload(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("flip") { (point: Point, _) in Point(x: point.y, y: point.x) }
    }) { a, _ in
      let garbage = try await expectNodeError {
        _ = try await a.call("b", "flip", payload: Payload(data: Data("{not json".utf8), serializer: "json"))
      }
      #expect(garbage.code == .serializationFailed)
      #expect(garbage.message.contains("Point"))
      let wrongType = try await expectNodeError {
        _ = try await a.call("b", "flip", payload: Payload(data: Data(#"{"x":"one","y":2}"#.utf8), serializer: "json"))
      }
      #expect(wrongType.code == .serializationFailed)
      #expect(wrongType.message.contains("'x'"))
      let missingField = try await expectNodeError {
        _ = try await a.call("b", "flip", payload: Payload(data: Data(#"{"x":1}"#.utf8), serializer: "json"))
      }
      #expect(missingField.message.contains("missing field 'y'"))
      let unknownSerializer = try await expectNodeError {
        _ = try await a.call("b", "flip", payload: Payload(data: Data("{}".utf8), serializer: "yaml"))
      }
      #expect(unknownSerializer.code == .serializationFailed)
      #expect(unknownSerializer.message.contains("yaml"))
      // The result decoded as the wrong type fails on the caller's side, also typed.
      let wrongResult = try await expectNodeError { let _: String = try await a.call("b", "flip", Point(x: 1, y: 2)) }
      #expect(wrongResult.code == .serializationFailed)
    }
  }

  struct Overheated: Error, CustomStringConvertible {
    var description: String { "the GPU is too hot" }
  }

  @Test("a handler that throws gives execution_failed with its message and type", arguments: TransportKind.allCases)
  func handlerThrows(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(configureB: { $0.debug = true }, setUp: { _, b in
      b.register("fail") { (_: Empty, _) -> Empty in throw Overheated() }
      b.register("custom") { (_: Empty, _) -> Empty in
        throw NodeError(code: .rejected, message: "quota exceeded", details: ["quota": "10"])
      }
    }) { a, _ in
      let error = try await expectNodeError { let _: Empty = try await a.call("b", "fail", Empty()) }
      #expect(error.code == .remoteExecutionFailed)
      #expect(error.message == "the GPU is too hot")
      #expect(error.details["type"]?.contains("Overheated") == true)
      #expect(error.nodeID == "b")
      #expect(error.debugDetail != nil)  // b runs in debug mode
      let custom = try await expectNodeError { let _: Empty = try await a.call("b", "custom", Empty()) }
      #expect(custom.code == .rejected)
      #expect(custom.details["quota"] == "10")
    }
  }

  @Test("an oversized payload is refused with payload_too_large and the link keeps working", arguments: TransportKind.allCases)
  func oversizedPayload(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(
      configureA: { $0.limits = LimitsConfig(maxPayloadSize: 4 << 20, chunkSize: 64 << 10) },
      configureB: { $0.limits = LimitsConfig(maxPayloadSize: 1 << 20, chunkSize: 64 << 10) },
      setUp: { _, b in
        b.register("echo") { payload, _ in payload }
        b.register("big") { (size: Int, _) in Data(count: size) }
      }
    ) { a, _ in
      // Refused by the receiver, which drops the pieces as they come.
      let remote = try await expectNodeError { _ = try await a.call("b", "echo", payload: .raw(Data(count: 2 << 20))) }
      #expect(remote.code == .payloadTooLarge)
      #expect(remote.details["limit"] == String(1 << 20))
      // Refused by the sender before anything is sent.
      let local = try await expectNodeError { _ = try await a.call("b", "echo", payload: .raw(Data(count: 5 << 20))) }
      #expect(local.code == .payloadTooLarge)
      #expect(local.details["limit"] == String(4 << 20))
      // A result over the responder's limit.
      let result = try await expectNodeError { let _: Data = try await a.call("b", "big", 2 << 20) }
      #expect(result.code == .payloadTooLarge)
      // The link still works, also for payloads that need several pieces.
      let payload = patterned(count: 900 << 10)
      let echoed = try await a.call("b", "echo", payload: .raw(payload))
      #expect(echoed.data == payload)
      #expect(a.isConnected(to: "b"))
    }
  }

  @Test("large payloads arrive intact while small calls go on", arguments: TransportKind.allCases)
  func largePayload(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("echo") { payload, _ in payload }
      b.register("add") { (numbers: [Int], _) in numbers.reduce(0, +) }
    }) { a, _ in
      let big = patterned(count: 48 << 20)
      let finished = Mutex(false)
      async let echoed: Payload = {
        defer { finished.withLock { $0 = true } }
        return try await a.call("b", "echo", payload: .raw(big), timeout: .seconds(120))
      }()
      for i in 0..<20 {
        let sum: Int = try await a.call("b", "add", [i, i])
        #expect(sum == 2 * i)
      }
      let smallCallsFirst = !finished.withLock { $0 }
      #expect(try await echoed.data == big)
      // Over a socket the 48 MiB take a while: the small calls must not have waited for them.
      // (In memory the transfer may simply be over first.)
      if kind == .grpc { #expect(smallCallsFirst, "the small calls waited for the whole transfer") }
    }
  }

  @Test("1,000 concurrent calls are all answered correctly", arguments: TransportKind.allCases)
  func concurrentCalls(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("square") { (n: Int, _) in
        for _ in 0..<Int.random(in: 0...5) { await Task.yield() }  // answers out of order
        return n * n
      }
    }) { a, _ in
      let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
        for n in 0..<1000 {
          group.addTask { (n, try await a.call("b", "square", n)) }
        }
        var results: [Int: Int] = [:]
        for try await (n, square) in group { results[n] = square }
        return results
      }
      #expect(results.count == 1000)
      #expect(results.allSatisfy { $0.value == $0.key * $0.key })
    }
  }

  @Test("stop lets in-flight calls finish within the grace period and refuses new ones", arguments: TransportKind.allCases)
  func gracefulStop(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let a = cluster.node("a")
    let b = cluster.node("b")
    let started = Signal()
    let hanging = Signal()
    let finish = Gate()
    b.register("work") { (n: Int, _) in
      if n > 1 {
        started.fire()
        try await finish.wait()
      }
      return n
    }
    a.register("hang") { (_: Empty, _) -> Empty in
      hanging.fire()
      try await hang()
    }
    try await b.start()
    try await a.start()
    try await a.connect(to: "b", at: try #require(b.listeningAddress))
    // In flight until the test lets it finish: meanwhile b refuses new calls.
    let call = Task { () throws -> Int in try await a.call("b", "work", 3000) }
    #expect(await started.wait() != nil)
    // b's own call out to a is pending when b stops.
    let own = Task { () throws -> Empty in try await b.call("a", "hang", Empty(), timeout: .seconds(60)) }
    #expect(await hanging.wait() != nil)
    let stopping = Task { await b.stop(gracePeriod: .seconds(5)) }

    // While b waits for its in-flight call, new calls to it are refused at once.
    // (One may still go through before b began to stop: each is a round trip to b.)
    var refusal: NodeError?
    for _ in 0..<100_000 where refusal == nil {
      do {
        let _: Int = try await a.call("b", "work", 1)
      } catch let error as NodeError {
        refusal = error
      }
    }
    #expect(refusal?.code == .nodeStopping)
    #expect(refusal?.nodeID == "b")
    finish.open()

    #expect(try await call.value == 3000, "the in-flight call finished within the grace period")
    await stopping.value
    let ownResult = await own.result
    guard case .failure(let error as NodeError) = ownResult else {
      Issue.record("b's own pending call should have failed, got \(ownResult)")
      return
    }
    #expect(error.code == .nodeStopping)
    await a.stop(gracePeriod: .zero)
  }

  @Test("cancelling the calling task cancels the call and the remote handler", arguments: TransportKind.allCases)
  func callerCancellation(kind: TransportKind) async throws {
    let started = Signal()
    let cancelled = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("slow") { (_: Empty, _) -> Empty in
        started.fire()
        do { try await hang() } catch {
          cancelled.fire()
          throw error
        }
      }
    }) { a, _ in
      let call = Task { () throws -> Empty in try await a.call("b", "slow", Empty()) }
      #expect(await started.wait() != nil)
      call.cancel()
      let result = await call.result
      guard case .failure(let error as NodeError) = result else {
        Issue.record("expected a cancelled NodeError, got \(result)")
        return
      }
      #expect(error.code == .cancelled)
      #expect(await cancelled.wait() != nil)
    }
  }
}

extension Payload {
  fileprivate func withName(_ name: String) -> Payload { Payload(data: data, serializer: name) }
}

/// Bytes that differ from piece to piece (so a misordered or lost piece shows), made cheaply.
func patterned(count: Int) -> Data {
  var bytes = [UInt8](repeating: 0, count: count)
  bytes.withUnsafeMutableBufferPointer { buffer in
    var index = 0
    while index < count {
      buffer[index] = UInt8(truncatingIfNeeded: index >> 10)
      index += 1021
    }
  }
  return Data(bytes)
}
