import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NodeComm
import Synchronization

/// A gRPC server accepting links: each `Link.Open` stream is one inbound link.
final class GRPCListener: TransportListener {
  let address: String
  private let server: GRPCServer<HTTP2ServerTransport.Posix>
  /// The gRPC server's `serve()`: it runs as long as the listener, and ends when it is closed
  /// (or its socket fails); ``waitUntilClosed()`` reports which.
  private let serveTask: Task<Void, any Error>
  /// Whether ``close()`` was called.
  private let closing = Atomic<Bool>(false)

  private init(address: String, server: GRPCServer<HTTP2ServerTransport.Posix>, serveTask: Task<Void, any Error>) {
    self.address = address
    self.server = server
    self.serveTask = serveTask
  }

  static func start(
    host: String, port: Int, tls: NodeComm.TLSConfig?, maxMessageSize: Int, limits: GRPCConnectionLimits = .init(),
    accept: @escaping @Sendable (any LinkChannel) async -> Void
  ) async throws -> GRPCListener {
    let security = try tls.map(serverSecurity) ?? .plaintext
    let table = ConnectionTable<String>(total: limits.maxConnections, perAddress: limits.maxConnectionsPerAddress)
    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: host, port: port), transportSecurity: security,
      config: .defaults { config in
        config.rpc.maxRequestPayloadSize = maxMessageSize
        config.connection.flushCoalescing = nil
        // Large windows and frames: a link is one long-lived stream carrying bulk data.
        config.http2.targetWindowSize = 16 << 20
        config.http2.maxFrameSize = 1 << 20
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
          // Connections whose link does not say HELLO in time are closed; so are those past the caps.
          channel.pipeline.addHandler(HandshakeGuard(limits: limits, table: table), position: .first).flatMap {
            channel.setOption(.recvAllocator, value: linkReceiveAllocator)
          }
        }
      })
    let server = GRPCServer(transport: transport, services: [LinkService(table: table, accept: accept)])
    // Unstructured: `bind` returns once the port is bound while the server serves; `close()`
    // and `waitUntilClosed()` await this task (a failure of it is the listener's failure).
    let serveTask = Task { try await server.serve() }
    let bound: GRPCNIOTransportCore.SocketAddress
    do {
      guard let address = try await transport.listeningAddress.ipv4 else {
        throw NodeError(code: .connectFailed, message: "the gRPC listener did not bind an IPv4 address")
      }
      bound = .ipv4(address)
    } catch {
      serveTask.cancel()
      throw error
    }
    let port = bound.ipv4!.port
    return GRPCListener(address: "\(host):\(port)", server: server, serveTask: serveTask)
  }

  func waitUntilClosed() async throws {
    let result = await serveTask.result
    guard !closing.load(ordering: .acquiring) else { return }
    let cause: (any Error)? = if case .failure(let error) = result { error } else { nil }
    throw NodeError(
      code: .listenerFailed, message: "the gRPC listener on \(address) stopped accepting links", cause: cause)
  }

  func close() async {
    closing.store(true, ordering: .releasing)
    server.beginGracefulShutdown()
    let serveTask = self.serveTask
    // Links are closed by the node before the listener; don't wait forever for stragglers.
    // (Unstructured: it must cut the wait below, which cancellation would not end.)
    let timer = Task {
      try await Task.sleep(for: .seconds(2))
      serveTask.cancel()
    }
    _ = await serveTask.result
    timer.cancel()
  }

  private static func serverSecurity(_ tls: NodeComm.TLSConfig) throws -> HTTP2ServerTransport.Posix.TransportSecurity {
    guard let certificate = tls.certificatePEM, let key = tls.privateKeyPEM else {
      throw NodeError(code: .invalidState, message: "a TLS listener needs a certificate and a private key")
    }
    return .tls(
      certificateChain: [.bytes(Array(certificate.utf8), format: .pem)],
      privateKey: .bytes(Array(key.utf8), format: .pem)
    ) { config in
      if tls.requireClientCertificate {
        config.clientCertificateVerification = .noHostnameVerification
      }
      if let ca = tls.trustedCAPEM {
        config.trustRoots = .certificates([.bytes(Array(ca.utf8), format: .pem)])
      }
    }
  }
}

/// The `Link` service: hands each stream to the node as a link and keeps it open until the
/// link ends.
private struct LinkService: Easyremote_Link_V1_Link.SimpleServiceProtocol {
  let table: ConnectionTable<String>
  let accept: @Sendable (any LinkChannel) async -> Void

  func open(
    request: RPCAsyncSequence<Easyremote_Link_V1_FrameBatch, any Error>,
    response: RPCWriter<Easyremote_Link_V1_FrameBatch>,
    context: ServerContext
  ) async throws {
    let channel = GRPCServerChannel(request: request, response: response, peer: context.remotePeer, table: table)
    await accept(channel)
  }
}

/// The listener's side of one link.
private final class GRPCServerChannel: LinkChannel {
  private let request: RPCAsyncSequence<Easyremote_Link_V1_FrameBatch, any Error>
  private let response: RPCWriter<Easyremote_Link_V1_FrameBatch>
  private let closed: AsyncStream<Void>
  private let closer: AsyncStream<Void>.Continuation
  let remoteDescription: String
  private let table: ConnectionTable<String>

  init(
    request: RPCAsyncSequence<Easyremote_Link_V1_FrameBatch, any Error>,
    response: RPCWriter<Easyremote_Link_V1_FrameBatch>, peer: String, table: ConnectionTable<String>
  ) {
    self.table = table
    self.request = request
    self.response = response
    self.remoteDescription = peer
    (closed, closer) = AsyncStream.makeStream(of: Void.self)
  }

  func write(_ frames: [Frame]) async throws {
    try await response.write(Easyremote_Link_V1_FrameBatch(frames: frames))
  }

  func read(_ receive: @escaping @Sendable ([Frame]) -> Void) async throws {
    let request = self.request
    let closed = self.closed
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        for try await batch in request { receive(batch.nodeFrames) }
      }
      group.addTask {
        for await _ in closed {}
      }
      defer { group.cancelAll() }
      try await group.next()
    }
  }

  func close() async {
    closer.finish()
  }

  func established() {
    table.prove(remoteDescription)
  }
}
