import TestSupport
import Foundation
import Logging
import NodeComm
import Synchronization
import Testing

// Interceptors and tokens: who may speak on a link.
extension NodeBehaviourTests {
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
}
