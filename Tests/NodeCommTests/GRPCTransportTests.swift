import Foundation
import NodeComm
import NodeCommGRPC
import Testing

/// What only the gRPC transport has: real processes, TLS, mutual TLS.
@Suite("gRPC transport", .timeLimit(.minutes(2)))
struct GRPCTransportTests {
  func grpcConfig(tls: TLSConfig? = nil, listen: Bool = true) -> NodeConfig {
    .defaults {
      $0.transport = TransportConfig(mode: .grpc, listen: listen, host: "127.0.0.1", port: 0, tls: tls)
      $0.shutdownGracePeriod = .milliseconds(200)
    }
  }

  @Test("a peer process killed with SIGKILL mid-call fails the call fast with connection_lost")
  func killedPeerProcess() async throws {
    let peer = try await PeerProcess.start(id: "victim")
    defer { peer.kill() }
    try await withNode(id: "caller", config: grpcConfig(listen: false)) { caller in
      let lost = Signal()
      caller.on(.disconnect) { event in
        if case .disconnect(_, let reason) = event { lost.fire(reason) }
      }
      try await caller.connect(to: "victim", at: peer.address)
      let sum: Double = try await caller.call("victim", "add", [2.0, 3.0])
      #expect(sum == 5)
      let call = Task {
        let start = ContinuousClock.now
        do {
          let _: Double = try await caller.call("victim", "sleep", ["seconds": 60.0], timeout: .seconds(60))
          return (ContinuousClock.now - start, NodeError?.none)
        } catch {
          return (ContinuousClock.now - start, error as? NodeError)
        }
      }
      try await Task.sleep(for: .milliseconds(300))
      peer.kill()
      let (elapsed, error) = await call.value
      #expect(elapsed < .seconds(10))
      #expect(error?.code == .connectionLost)
      #expect(error?.nodeID == "victim")
      #expect(error?.method == "sleep")
      #expect(await lost.wait() != nil)
      #expect(!caller.isConnected(to: "victim"))
    }
  }

  @Test("dialing an address where nothing listens fails with connect_failed")
  func nothingListening() async throws {
    try await withNode(id: "lonely", config: grpcConfig(listen: false)) { node in
      let error = try await expectNodeError { try await node.connect(to: "ghost", at: "127.0.0.1:1") }
      #expect(error.code == .connectFailed)
    }
  }

  @Test("connecting to the wrong node id is refused")
  func wrongNodeID() async throws {
    try await withNode(id: "real", config: grpcConfig()) { server in
      try await withNode(id: "client", config: grpcConfig(listen: false)) { client in
        let error = try await expectNodeError { try await client.connect(to: "expected", at: server.listeningAddress!) }
        #expect(error.code == .connectFailed)
        #expect(error.message.contains("real"))
      }
    }
  }

  @Test("TLS: a client trusting the CA calls; one that does not is refused")
  func tls() async throws {
    let certs = try TestCertificates.make()
    let serverTLS = TLSConfig(certificatePEM: certs.server.certificatePEM, privateKeyPEM: certs.server.privateKeyPEM)
    try await withNode(id: "secure", config: grpcConfig(tls: serverTLS)) { server in
      server.register("ping") { (_: Empty, _) in "pong" }
      let address = try #require(server.listeningAddress)
      try await withNode(id: "trusting", config: grpcConfig(tls: TLSConfig(trustedCAPEM: certs.caPEM, verifyHostname: true), listen: false)) { client in
        try await client.connect(to: "secure", at: address.replacingOccurrences(of: "127.0.0.1", with: "localhost"))
        let answer: String = try await client.call("secure", "ping", Empty())
        #expect(answer == "pong")
      }
      let other = try TestCertificates.make(name: "Other")
      try await withNode(id: "distrusting", config: grpcConfig(tls: TLSConfig(trustedCAPEM: other.caPEM), listen: false)) { client in
        let error = try await expectNodeError { try await client.connect(to: "secure", at: address) }
        #expect(error.code == .connectFailed)
      }
      try await withNode(id: "plaintext", config: grpcConfig(listen: false)) { client in
        let error = try await expectNodeError { try await client.connect(to: "secure", at: address, timeout: .seconds(3)) }
        #expect(error.code == .connectFailed)
      }
    }
  }

  @Test("mutual TLS: a client with a certificate from the CA calls; wrong or no certificate is refused")
  func mutualTLS() async throws {
    let certs = try TestCertificates.make()
    let serverTLS = TLSConfig(
      certificatePEM: certs.server.certificatePEM, privateKeyPEM: certs.server.privateKeyPEM,
      trustedCAPEM: certs.caPEM, requireClientCertificate: true)
    try await withNode(id: "vault", config: grpcConfig(tls: serverTLS)) { server in
      server.register("ping") { (_: Empty, context) in "pong to \(context.callerID)" }
      let address = try #require(server.listeningAddress)
      let good = TLSConfig(
        certificatePEM: certs.client.certificatePEM, privateKeyPEM: certs.client.privateKeyPEM, trustedCAPEM: certs.caPEM)
      try await withNode(id: "member", config: grpcConfig(tls: good, listen: false)) { client in
        try await client.connect(to: "vault", at: address)
        let answer: String = try await client.call("vault", "ping", Empty())
        #expect(answer == "pong to member")
        // The server calls back over the same mutually authenticated link.
        client.register("hello") { (_: Empty, _) in "hi" }
        let back: String = try await server.call("member", "hello", Empty())
        #expect(back == "hi")
      }
      let rogue = try TestCertificates.make(name: "Rogue")
      let wrong = TLSConfig(
        certificatePEM: rogue.client.certificatePEM, privateKeyPEM: rogue.client.privateKeyPEM, trustedCAPEM: certs.caPEM)
      try await withNode(id: "intruder", config: grpcConfig(tls: wrong, listen: false)) { client in
        let error = try await expectNodeError {
          try await client.connect(to: "vault", at: address, timeout: .seconds(3))
          let _: String = try await client.call("vault", "ping", Empty(), timeout: .seconds(3))
        }
        #expect(error.code == .connectFailed || error.code == .connectionLost || error.code == .notConnected)
        #expect(server.peers.contains("intruder") == false)
      }
      try await withNode(id: "anonymous", config: grpcConfig(tls: TLSConfig(trustedCAPEM: certs.caPEM), listen: false)) { client in
        let error = try await expectNodeError {
          try await client.connect(to: "vault", at: address, timeout: .seconds(3))
          let _: String = try await client.call("vault", "ping", Empty(), timeout: .seconds(3))
        }
        #expect(error.code == .connectFailed || error.code == .connectionLost || error.code == .notConnected)
        #expect(server.peers.contains("anonymous") == false)
      }
    }
  }

  @Test("addresses parse as host:port")
  func addresses() throws {
    #expect(try parseAddress("127.0.0.1:8080") == ("127.0.0.1", 8080))
    #expect(try parseAddress("grpc://example.org:443") == ("example.org", 443))
    #expect(try parseAddress("[::1]:7000") == ("::1", 7000))
    #expect(throws: NodeError.self) { try parseAddress("no-port") }
    #expect(throws: NodeError.self) { try parseAddress("host:99999") }
  }
}
