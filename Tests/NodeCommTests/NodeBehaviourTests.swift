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

  @Test("interceptors run in the documented order on both paths", arguments: TransportKind.allCases)
  func interceptorOrder(kind: TransportKind) async throws {
    let log = Recorder<String>()
    try await TestCluster(kind).withPair(setUp: { a, b in
      a.addInterceptor(Tag(name: "out1", log: log), paths: .outbound)
      a.addInterceptor(Tag(name: "out2", log: log), paths: .outbound)
      b.addInterceptor(Tag(name: "in1", log: log), paths: .inbound)
      b.addInterceptor(Tag(name: "in2", log: log), paths: .inbound)
      b.register("work") { (_: Empty, _) in
        log.append("handler")
        return Empty()
      }
    }) { a, _ in
      let _: Empty = try await a.call("b", "work", Empty())
      #expect(log.all == ["out1>", "out2>", "in1>", "in2>", "handler", "<in2", "<in1", "<out2", "<out1"])
    }
  }

  @Test("a node with a token takes no link whose HELLO lacks it: no token, a wrong one, or another node's name", arguments: TransportKind.allCases)
  func helloNeedsToken(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let gateway = cluster.node("gateway") { $0.authToken = "s3cret" }
    gateway.register("ping") { (_: Empty, context: CallContext) in context.callerID }
    try await gateway.start()
    let address = try #require(gateway.listeningAddress)
    let honest = cluster.node("worker", listen: false) { $0.authToken = "s3cret" }
    try await honest.start()
    try await honest.connect(to: "gateway", at: address)
    let me: String = try await honest.call("gateway", "ping", Empty())
    #expect(me == "worker")
    for (index, token) in [nil, "guess"].enumerated() {
      // It names itself as the honest node: refused at the HELLO, with auth_failed.
      let impostor = cluster.node("worker", listen: false) { $0.authToken = token }
      try await impostor.start()
      let error = try await expectNodeError { try await impostor.connect(to: "gateway", at: address) }
      #expect(error.code == .authFailed, "attempt \(index): \(error)")
      #expect(error.message.contains(token == nil ? "presents none" : "refused the link's token"), "\(error.message)")
      await impostor.stop(gracePeriod: .zero)
    }
    // The honest node's link was never replaced.
    #expect(gateway.peers == ["worker"])
    let again: String = try await honest.call("gateway", "ping", Empty())
    #expect(again == "worker")
    await honest.stop(gracePeriod: .zero)
    await gateway.stop(gracePeriod: .zero)
  }

  @Test("token guessing over a link: past the limit the caller's address is refused, whatever it presents", arguments: TransportKind.allCases)
  func tokenGuessing(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let server = cluster.node("vault")
    let limiter = AuthFailureLimiter(configuration: .init(maxFailures: 5, window: .seconds(3600)))
    server.addInterceptor(TokenAuthInterceptor(token: "s3cret", limiter: limiter))
    server.register("secret") { (_: Empty, _) in "the answer" }
    try await server.start()
    let address = try #require(server.listeningAddress)
    let guesser = cluster.node("guesser", listen: false)
    let guesses = GuessingInterceptor()
    guesser.addInterceptor(guesses, paths: .outbound)
    try await guesser.start()
    try await guesser.connect(to: "vault", at: address)
    for attempt in 1...5 {
      let error = try await expectNodeError { let _: String = try await guesser.call("vault", "secret", Empty()) }
      #expect(error.code == .authFailed && error.message.contains("invalid token"), "guess \(attempt): \(error)")
    }
    // The sixth guess is the right token: refused all the same.
    guesses.count.withLock { $0 = -1 }
    let limited = try await expectNodeError { let _: String = try await guesser.call("vault", "secret", Empty()) }
    #expect(limited.code == .authFailed && limited.message.contains("too many"), "\(limited)")
    await guesser.stop(gracePeriod: .zero)
    await server.stop(gracePeriod: .zero)
  }

  @Test("the failure limiter: a window per address, refusal past the limit, free again after the window; addresses parsed")
  func failureLimiter() {
    let clock = Mutex(ContinuousClock.now)
    let limiter = AuthFailureLimiter(configuration: .init(maxFailures: 3, window: .seconds(60), maxAddresses: 10)) {
      clock.withLock { $0 }
    }
    #expect(limiter.failed("1.2.3.4") == .init(first: true, refusedFor: nil))
    #expect(limiter.failed("1.2.3.4") == .init(first: false, refusedFor: nil))
    #expect(limiter.refusal(for: "1.2.3.4") == nil)
    #expect(limiter.failed("1.2.3.4").refusedFor == .seconds(60))
    clock.withLock { $0 += .seconds(20) }
    #expect(limiter.refusal(for: "1.2.3.4") == .seconds(40))
    #expect(limiter.refusal(for: "5.6.7.8") == nil, "another address is not held back")
    clock.withLock { $0 += .seconds(40) }
    #expect(limiter.refusal(for: "1.2.3.4") == nil, "the window ended")
    #expect(limiter.failed("1.2.3.4").first)
    // Past maxAddresses the oldest windows are dropped, not the new one.
    for index in 0..<20 { limiter.failed("10.0.0.\(index)") }
    #expect(limiter.failed("10.0.0.19").first == false)
    #expect(AuthFailureLimiter.address(of: "ipv4:127.0.0.2:5678") == "127.0.0.2")
    #expect(AuthFailureLimiter.address(of: "ipv6:[::1]:5678") == "0:0:0:0::/64")
    #expect(AuthFailureLimiter.client(ip: "2001:db8:1:2:aaaa::1") == AuthFailureLimiter.client(ip: "2001:db8:1:2:bbbb::7"))
    #expect(AuthFailureLimiter.client(ip: "2001:db8:1:2::1") == "2001:db8:1:2::/64")
    #expect(AuthFailureLimiter.client(ip: "2001:db8:1:3::1") != AuthFailureLimiter.client(ip: "2001:db8:1:2::1"))
    #expect(AuthFailureLimiter.client(ip: "::ffff:10.1.2.3") == "10.1.2.3" && AuthFailureLimiter.client(ip: "10.1.2.3") == "10.1.2.3")
    #expect(AuthFailureLimiter.address(of: "10.1.2.3:80") == "10.1.2.3")
    #expect(AuthFailureLimiter.address(of: "memory-peer") == "memory-peer")
    #expect(constantTimeEqual("s3cret", "s3cret") && !constantTimeEqual("s3cret", "s3creT") && !constantTimeEqual("s3cre", "s3cret"))
  }

  @Test("token auth rejects a missing or wrong token with auth_failed", arguments: TransportKind.allCases)
  func tokenAuth(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let server = cluster.node("server")
    server.addInterceptor(TokenAuthInterceptor(token: "s3cret"))
    server.register("secret") { (_: Empty, _) in "the answer" }
    try await server.start()
    let address = try #require(server.listeningAddress)
    for (id, token) in [("good", "s3cret"), ("bad", "guess"), ("none", nil)] as [(String, String?)] {
      let client = cluster.node(id, listen: false)
      if let token { client.addInterceptor(TokenAuthInterceptor(token: token), paths: .outbound) }
      try await client.start()
      try await client.connect(to: "server", at: address)
      if id == "good" {
        let answer: String = try await client.call("server", "secret", Empty())
        #expect(answer == "the answer")
      } else {
        let error = try await expectNodeError { let _: String = try await client.call("server", "secret", Empty()) }
        #expect(error.code == .authFailed)
        #expect(error.message.contains(id == "bad" ? "invalid token" : "no token"))
        // The rejection does not break the link.
        #expect(client.isConnected(to: "server"))
      }
      await client.stop(gracePeriod: .zero)
    }
    await server.stop(gracePeriod: .zero)
  }

  /// A user serializer: JSON with the bytes reversed.
  struct ReversedJSON: PayloadSerializer {
    var name: String { "reversed-json" }
    func encode<T: Encodable>(_ value: T) throws -> Data { Data(try JSONEncoder().encode(value).reversed()) }
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
      try JSONDecoder().decode(type, from: Data(data.reversed()))
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

  @Test("a call past its deadline fails with timed_out and the handler is cancelled", arguments: TransportKind.allCases)
  func timeout(kind: TransportKind) async throws {
    let cancelled = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("slow") { (_: Empty, context) -> Empty in
        #expect(context.deadline != nil)
        do {
          try await hang()
        } catch {
          cancelled.fire("cancelled")
          throw error
        }
        return Empty()
      }
      b.register("fast") { (_: Empty, _) in "ok" }
    }) { a, _ in
      let start = ContinuousClock.now
      let error = try await expectNodeError {
        let _: Empty = try await a.call("b", "slow", Empty(), timeout: .milliseconds(300))
      }
      #expect(ContinuousClock.now - start < .seconds(10))
      #expect(error.code == .timedOut)
      #expect(error.nodeID == "b")
      #expect(error.method == "slow")
      #expect(error.message.contains("slow") && error.message.contains("b"))
      #expect(await cancelled.wait() == "cancelled")
      let fine: String = try await a.call("b", "fast", Empty())
      #expect(fine == "ok")
    }
  }

  @Test(
    "one deadline loop per link: a short timeout behind a long one fires first, the long one keeps waiting",
    arguments: TransportKind.allCases)
  func deadlinesInAnyOrder(kind: TransportKind) async throws {
    let entered = Signal()
    let release = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("held") { (_: Empty, _) -> String in
        entered.fire("held")
        _ = await release.wait(upTo: .seconds(600))
        return "released"
      }
      b.register("slow") { (_: Empty, _) -> String in try await hang() }
    }) { a, _ in
      // A call with a long deadline is waiting when calls with short deadlines start.
      let long = Task { () throws -> String in try await a.call("b", "held", Empty(), timeout: .seconds(600)) }
      #expect(await entered.wait() == "held")
      for _ in 0..<3 {
        let error = try await expectNodeError {
          let _: String = try await a.call("b", "slow", Empty(), timeout: .milliseconds(100))
        }
        #expect(error.code == .timedOut)
      }
      // The long one is still waiting (not failed with the short ones), and completes.
      release.fire("go")
      #expect(try await long.value == "released")
    }
  }

  @Test(
    "a call's deadline is kept on its node's clock: it fails when that clock passes it, not before",
    arguments: TransportKind.allCases)
  func deadlineOnTheNodesClock(kind: TransportKind) async throws {
    let clock = ManualClock()
    let entered = Signal()
    let ended = Signal()
    let endedYet = Recorder<String>()
    let quiet = HeartbeatConfig(enabled: false)  // the deadline loop is the one sleeper
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = quiet }, configureB: { $0.heartbeat = quiet },
      setUp: { _, b in
        b.register("slow") { (_: Empty, _) -> String in
          entered.fire()
          try await hang()
        }
        b.register("fast") { (_: Empty, _) in "ok" }
        // The time a handler has left is on its node's clock too.
        b.register("left") { (_: Empty, context) -> Int64 in context.remaining?.components.seconds ?? -1 }
      }
    ) { a, _ in
      let left: Int64 = try await a.call("b", "left", Empty(), timeout: .seconds(90))
      #expect(left == 90, "the clock has not moved")
      // An hour of the node's clock: on the real one the call would outlive the test.
      let call = Task {
        do {
          let _: String = try await a.call("b", "slow", Empty(), timeout: .seconds(3600))
          endedYet.append("answered")
          ended.fire("answered")
        } catch {
          let code = (error as? NodeError)?.code.description ?? "\(error)"
          endedYet.append(code)
          ended.fire(code)
        }
      }
      #expect(await entered.wait() != nil)
      await clock.sleepers(atLeast: 1)  // a's link sleeps until the call's deadline
      await clock.advance(by: .seconds(3599))
      let fine: String = try await a.call("b", "fast", Empty())  // a round trip after the move
      #expect(fine == "ok")
      #expect(endedYet.all.isEmpty, "3599 s of a 3600 s timeout")
      await clock.advance(by: .seconds(2))
      #expect(await ended.wait() == NodeError.Code.timedOut.description)
      call.cancel()
    }
  }

  @Test("a peer stopping mid-call fails the caller fast, not at its timeout", arguments: TransportKind.allCases)
  func peerStoppedMidCall(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let a = cluster.node("a")
    let b = cluster.node("b")
    let started = Signal()
    b.register("slow") { (_: Empty, _) -> Empty in
      started.fire()
      try await hang()
    }
    try await b.start()
    try await a.start()
    try await a.connect(to: "b", at: try #require(b.listeningAddress))
    let call = Task {
      let start = ContinuousClock.now
      do {
        let _: Empty = try await a.call("b", "slow", Empty(), timeout: .seconds(60))
        return (ContinuousClock.now - start, NodeError?.none)
      } catch {
        return (ContinuousClock.now - start, error as? NodeError)
      }
    }
    #expect(await started.wait() != nil)
    await b.stop(gracePeriod: .milliseconds(100))
    let (elapsed, error) = await call.value
    #expect(elapsed < .seconds(10))
    #expect(error?.code == .nodeStopping || error?.code == .connectionLost)
    // New calls to the stopped node fail at once.
    let after = try await expectNodeError { let _: Empty = try await a.call("b", "slow", Empty()) }
    #expect(after.code == .notConnected || after.code == .nodeStopping)
    await a.stop(gracePeriod: .zero)
  }

  @Test("a silent peer is detected by heartbeat and disconnect fires with the reason", arguments: TransportKind.allCases)
  func heartbeatExpiry(kind: TransportKind) async throws {
    let disconnected = Signal()
    // Time moves when the test says: a slow handshake on a busy machine is no silence.
    let clock = ManualClock()
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = HeartbeatConfig(enabled: true, interval: .milliseconds(100), timeout: .seconds(6)) },
      // b never sends heartbeats: to a it is silent.
      configureB: { $0.heartbeat = HeartbeatConfig(enabled: false) },
      setUp: { a, _ in
        a.on(.disconnect) { event in
          if case .disconnect(_, let reason) = event { disconnected.fire(reason.code.description) }
        }
      }
    ) { a, _ in
      await clock.sleepers(atLeast: 1)  // a's heartbeat loop
      await clock.advance(by: .seconds(5))
      await clock.sleepers(atLeast: 1)
      #expect(a.isConnected(to: "b"), "silent for 5 s of a 6 s timeout")
      await clock.advance(by: .seconds(2))
      let reason = await disconnected.wait()
      #expect(reason == LinkEndReason.Code.heartbeatTimeout.description)
      #expect(!a.isConnected(to: "b"))
    }
  }

  @Test("heartbeats keep a quiet but live link up", arguments: TransportKind.allCases)
  func heartbeatKeepsLinkUp(kind: TransportKind) async throws {
    let drops = Recorder<NodeEvent>()
    // Each side's heartbeats carry a status, so the other side tells when one arrived.
    let heardByA = Signal()
    let heardByB = Signal()
    let clock = ManualClock()
    let quick = HeartbeatConfig(enabled: true, interval: .seconds(1), timeout: .seconds(3))
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = quick }, configureB: { $0.heartbeat = quick },
      setUp: { a, b in
        a.on(.disconnect) { drops.append($0) }
        b.on(.disconnect) { drops.append($0) }
        a.on(.status) { heardByA.fire($0.peerID) }
        b.on(.status) { heardByB.fire($0.peerID) }
      }
    ) { a, b in
      a.reportStatus(Data("a".utf8))
      b.reportStatus(Data("b".utf8))
      #expect(await heardByA.wait() == "b")
      #expect(await heardByB.wait() == "a")
      // Three times the timeout, a second at a time: only the heartbeats are heard.
      for _ in 0..<9 {
        await clock.sleepers(atLeast: 2)  // both sides' heartbeat loops
        await clock.advance(by: .seconds(1))
        #expect(await heardByA.wait() == "b")
        #expect(await heardByB.wait() == "a")
      }
      #expect(drops.all.isEmpty)
      #expect(a.isConnected(to: "b"))
      #expect(b.isConnected(to: "a"))
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

@Suite("Shipped interceptors")
struct ShippedInterceptorTests {
  @Test("the logging interceptor logs method, peer, sizes and outcome, never the payload")
  func logging() async throws {
    let lines = Recorder<String>()
    let logger = Logger(label: "test.calls") { _ in RecordingLogHandler(lines: lines) }
    let transport = MemoryTransport()
    try await withNode(id: "server", transport: transport) { server in
      server.register("shout") { (text: String, _) in text.uppercased() }
      server.addInterceptor(LoggingInterceptor(logger: logger, level: .info), paths: .inbound)
      try await withNode(id: "client", transport: transport) { client in
        try await client.connect(to: "server", at: server.listeningAddress!)
        let loud: String = try await client.call("server", "shout", "top secret words")
        #expect(loud == "TOP SECRET WORDS")
        _ = try? await client.call("server", "missing", payload: .empty)
      }
    }
    let all = lines.all
    #expect(all.count == 2)
    #expect(all.first?.contains("call ok") == true)
    #expect(all.first?.contains("method=shout") == true)
    #expect(all.first?.contains("peer=client") == true)
    #expect(all.first?.contains("bytes=18") == true)
    #expect(all.last?.contains("call failed") == true)
    #expect(all.last?.contains("method_not_found") == true)
    #expect(!all.joined().contains("secret"))
  }
}

/// A log handler that keeps each message with its metadata as one line.
struct RecordingLogHandler: LogHandler {
  let lines: Recorder<String>
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let merged = metadata.merging(event.metadata ?? [:]) { $1 }
    let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    lines.append("\(event.message) \(fields)")
  }
}

/// Sends a wrong token on every outbound call, or the right one (`s3cret`) once `count` is
/// set below zero: a guesser's client.
final class GuessingInterceptor: CallInterceptor {
  let count = Mutex(0)

  func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    var call = call
    let guess = count.withLock { count -> String in
      defer { count += 1 }
      return count < 0 ? "s3cret" : "guess-\(count)"
    }
    call.metadata[TokenAuthInterceptor.metadataKey] = "Bearer \(guess)"
    return try await next(call)
  }
}
