import TestSupport
import Foundation
import NodeComm
import NodeCommGRPC
import Testing

#if canImport(Glibc)
  import Glibc
#endif

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
    defer { peer.program.signal(SIGKILL) }
    try await withNode(id: "caller", config: grpcConfig(listen: false)) { caller in
      let lost = Signal()
      caller.on(.disconnect) { event in
        if case .disconnect(_, let reason) = event { lost.fire(reason.message) }
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
      // The peer answers `sleepers` once the sleep call runs there: then it dies mid-call.
      let running: Int = try await caller.call("victim", "sleepers", ["atLeast": 1], timeout: .seconds(60))
      #expect(running == 1)
      await peer.kill()
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

  @Test("half-open connections are closed after the handshake timeout, those past the cap at once; real links still connect")
  func halfOpenConnections() async throws {
    var transport = GRPCTransport()
    transport.connectionLimits = GRPCConnectionLimits(handshakeTimeout: .seconds(10), maxConnections: 30)
    try await withNode(id: "guarded", config: grpcConfig(), transport: transport) { server in
      server.register("echo") { (text: String, _: CallContext) in text }
      let address = try #require(server.listeningAddress)
      let port = UInt16(address.split(separator: ":").last!)!
      // 60 clients connect and never send a handshake (or only part of one).
      let fds = (0..<60).map { index -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = in_port_t(port.bigEndian)
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &target) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if index.isMultiple(of: 2) { _ = "PRI * HTTP".withCString { send(fd, $0, 10, Int32(MSG_NOSIGNAL)) } }
        var time = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        return fd
      }
      defer { for fd in fds { close(fd) } }
      // Each is closed by the server: recv sees the end (or a reset), not the 20 s timeout.
      let closed = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
        Thread.detachNewThread {
          var count = 0
          for fd in fds {
            // (The server speaks first — its HTTP/2 settings — so read on to the end.)
            var buffer = [UInt8](repeating: 0, count: 4096)
            var result = 0
            repeat { result = recv(fd, &buffer, buffer.count, 0) } while result > 0
            if result == 0 || errno == ECONNRESET { count += 1 }
          }
          continuation.resume(returning: count)
        }
      }
      #expect(closed == fds.count, "\(fds.count - closed) half-open connections were left open")
      try await withNode(id: "client", config: grpcConfig(listen: false)) { client in
        try await client.connect(to: "guarded", at: address)
        let echoed: String = try await client.call("guarded", "echo", "still serving")
        #expect(echoed == "still serving")
      }
    }
  }

  @Test("a flood of connections that send the HTTP/2 preface and never a link HELLO: capped per address, shed at the cap, closed in time; links live on")
  func prefaceFlood() async throws {
    var transport = GRPCTransport()
    // (A real link must say HELLO within the timeout too: with the whole suite on two busy
    // cores that took over 5 s, hence 15.)
    transport.connectionLimits = GRPCConnectionLimits(handshakeTimeout: .seconds(15), maxConnections: 40, maxConnectionsPerAddress: 20)
    try await withNode(id: "guarded", config: grpcConfig(), transport: transport) { server in
      server.register("echo") { (text: String, _: CallContext) in text }
      let address = try #require(server.listeningAddress)
      let port = UInt16(address.split(separator: ":").last!)!
      try await withNode(id: "early", config: grpcConfig(listen: false)) { early in
        // A link made before the flood: its HELLO stands its guard down for good.
        try await early.connect(to: "guarded", at: address)
        let first: String = try await early.call("guarded", "echo", "before")
        #expect(first == "before")
        // Two addresses, 25 connections each, the whole preface and then silence: 20 of
        // each address are let in, the rest refused; at 40 the oldest silent ones give way.
        let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        let flood = try await offThread {
          try ["127.0.0.2", "127.0.0.3"].flatMap { source in
            try (0..<25).map { _ in
              let fd = try Self.dial(port: port, from: source)
              _ = preface.withCString { send(fd, $0, 24, Int32(MSG_NOSIGNAL)) }
              return fd
            }
          }
        }
        defer { for fd in flood { close(fd) } }
        // A newcomer at the cap still gets in, and is served.
        try await withNode(id: "late", config: grpcConfig(listen: false)) { late in
          try await late.connect(to: "guarded", at: address)
          let echoed: String = try await late.call("guarded", "echo", "during")
          #expect(echoed == "during")
        }
        // Every flood connection is closed by the server (end of input or reset, never the
        // 20 s read timeout).
        let closed = try await offThread { flood.filter(Self.closedByPeer).count }
        #expect(closed == flood.count, "\(flood.count - closed) silent connections were left open")
        // The early link outlived its handshake timeout (the flood came after it and is gone).
        let after: String = try await early.call("guarded", "echo", "after")
        #expect(after == "after")
      }
    }
  }

  /// A TCP connection to 127.0.0.1:`port` from `source` (any loopback address), with a 20 s
  /// read timeout.
  static func dial(port: UInt16, from source: String) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var local = sockaddr_in()
    local.sin_family = sa_family_t(AF_INET)
    local.sin_addr.s_addr = inet_addr(source)
    var target = sockaddr_in()
    target.sin_family = sa_family_t(AF_INET)
    target.sin_port = in_port_t(port.bigEndian)
    target.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &local) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    let connected = withUnsafePointer(to: &target) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, connected == 0 else {
      close(fd)
      throw CocoaError(.fileReadUnknown)
    }
    var time = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    return fd
  }

  /// Reads to the end: whether the server closed the connection (end of input or a reset)
  /// rather than the read timing out.
  static func closedByPeer(_ fd: Int32) -> Bool {
    var buffer = [UInt8](repeating: 0, count: 4096)
    var result = 0
    repeat { result = recv(fd, &buffer, buffer.count, 0) } while result > 0
    return result == 0 || errno == ECONNRESET
  }

  func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
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
