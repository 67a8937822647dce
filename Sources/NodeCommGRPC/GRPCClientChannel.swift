import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import NIOCore
import NodeComm
import Synchronization

/// The dialer's side of one link: a gRPC client with one `Link.Open` stream.
///
/// The stream's request writer is used directly by the link's writer; the response messages
/// are handed straight to the link's reader, so no extra queue sits in between.
final class GRPCClientChannel: LinkChannel {
  typealias Batch = Easyremote_Link_V1_FrameBatch
  typealias Receiver = @Sendable ([Frame]) -> Void

  private struct State {
    var writer: RPCWriter<Batch>?
    var writerWaiter: CheckedContinuation<RPCWriter<Batch>, any Error>?
    var receiver: Receiver?
    var receiverWaiter: CheckedContinuation<Receiver, Never>?
    var readDone: Result<Void, any Error>?
    var readWaiter: CheckedContinuation<Void, any Error>?
    var failure: (any Error)?
    var closed = false
  }

  private let state = Mutex(State())
  private let requestEnd: AsyncStream<Void>
  private let endRequest: AsyncStream<Void>.Continuation
  private let client: GRPCClient<HTTP2ClientTransport.Posix>
  private let tasks = Mutex<[Task<Void, Never>]>([])
  let remoteDescription: String

  private init(client: GRPCClient<HTTP2ClientTransport.Posix>, address: String) {
    self.client = client
    self.remoteDescription = address
    (requestEnd, endRequest) = AsyncStream.makeStream(of: Void.self)
  }

  static func open(
    address: String, tls: NodeComm.TLSConfig?, maxMessageSize: Int, timeout: Duration = .seconds(10)
  ) async throws -> GRPCClientChannel {
    let (host, port) = try parseAddress(address)
    let transport = try HTTP2ClientTransport.Posix(
      target: isIPv4(host) ? .ipv4(address: host, port: port) : .dns(host: host, port: port),
      transportSecurity: try tls.map { try clientSecurity($0, host: host) } ?? .plaintext,
      config: .defaults { config in
        config.connection.flushCoalescing = nil
        config.http2.targetWindowSize = 16 << 20
        config.http2.maxFrameSize = 1 << 20
        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
          channel.setOption(.recvAllocator, value: linkReceiveAllocator)
        }
        config.backoff.initial = .milliseconds(100)
        config.backoff.max = .seconds(1)
      })
    let client = GRPCClient(transport: transport)
    let channel = GRPCClientChannel(client: client, address: address)
    channel.start(maxMessageSize: maxMessageSize)
    do {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { _ = try await channel.writer() }
        group.addTask {
          try await Task.sleep(for: timeout)
          throw NodeError(code: .connectFailed, message: "\(address) did not open the link within \(timeout)")
        }
        defer { group.cancelAll() }
        try await group.next()
      }
    } catch {
      await channel.close()
      throw error
    }
    return channel
  }

  private func start(maxMessageSize: Int) {
    let client = self.client
    // Unstructured (both): the channel outlives `start`; `close()` cancels and awaits them.
    let connections = Task {
      _ = try? await client.runConnections()
    }
    var options = CallOptions.defaults
    options.waitForReady = false
    options.maxRequestMessageBytes = maxMessageSize
    options.maxResponseMessageBytes = maxMessageSize
    let rpc = Task {
      do {
        try await client.bidirectionalStreaming(
          request: StreamingClientRequest<Batch>(producer: { writer in
            self.attach(writer)
            for await _ in self.requestEnd {}
          }),
          descriptor: Easyremote_Link_V1_Link.Method.Open.descriptor,
          serializer: ProtobufSerializer<Batch>(),
          deserializer: ProtobufDeserializer<Batch>(),
          options: options
        ) { response in
          let receive = await self.receiver()
          for try await batch in response.messages { receive(batch.nodeFrames) }
        }
        self.finishRead(.success(()))
      } catch {
        self.finishRead(.failure(error))
      }
      client.beginGracefulShutdown()
    }
    tasks.withLock { $0 = [connections, rpc] }
  }

  private func attach(_ writer: RPCWriter<Batch>) {
    let waiter = state.withLock { state in
      state.writer = writer
      defer { state.writerWaiter = nil }
      return state.writerWaiter
    }
    waiter?.resume(returning: writer)
  }

  /// The request writer, once the stream is open. Cancellable.
  private func writer() async throws -> RPCWriter<Batch> {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let ready: Result<RPCWriter<Batch>, any Error>? = state.withLock { state in
          if let writer = state.writer { return .success(writer) }
          if let failure = state.failure { return .failure(failure) }
          if state.closed { return .failure(NodeError(code: .connectionLost, message: "link to \(remoteDescription) is closed")) }
          if Task.isCancelled { return .failure(CancellationError()) }
          state.writerWaiter = continuation
          return nil
        }
        if let ready { continuation.resume(with: ready) }
      }
    } onCancel: {
      state.withLock { state in
        defer { state.writerWaiter = nil }
        return state.writerWaiter
      }?.resume(throwing: CancellationError())
    }
  }

  private func receiver() async -> Receiver {
    await withCheckedContinuation { continuation in
      let ready = state.withLock { state -> Receiver? in
        if let receiver = state.receiver { return receiver }
        state.receiverWaiter = continuation
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }

  private func finishRead(_ result: Result<Void, any Error>) {
    let (readWaiter, writerWaiter) = state.withLock { state in
      state.readDone = result
      if case .failure(let error) = result { state.failure = error }
      defer {
        state.readWaiter = nil
        state.writerWaiter = nil
      }
      return (state.readWaiter, state.writerWaiter)
    }
    readWaiter?.resume(with: result)
    if let writerWaiter {
      switch result {
      case .failure(let error):
        writerWaiter.resume(throwing: NodeError(code: .connectFailed, message: "cannot open a link to \(remoteDescription): \(error)"))
      case .success:
        writerWaiter.resume(throwing: NodeError(code: .connectFailed, message: "\(remoteDescription) closed the link at once"))
      }
    }
  }

  func write(_ frames: [Frame]) async throws {
    let writer = try state.withLock { state -> RPCWriter<Batch> in
      guard let writer = state.writer, !state.closed else {
        throw NodeError(code: .connectionLost, message: "link to \(remoteDescription) is closed")
      }
      return writer
    }
    try await writer.write(Batch(frames: frames))
  }

  func read(_ receive: @escaping @Sendable ([Frame]) -> Void) async throws {
    let waiter = state.withLock { state in
      state.receiver = receive
      defer { state.receiverWaiter = nil }
      return state.receiverWaiter
    }
    waiter?.resume(returning: receive)
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
      let done = state.withLock { state -> Result<Void, any Error>? in
        if let done = state.readDone { return done }
        state.readWaiter = continuation
        return nil
      }
      if let done { continuation.resume(with: done) }
    }
  }

  func close() async {
    let first = state.withLock { state in
      defer { state.closed = true }
      return !state.closed
    }
    guard first else { return }
    // A response handler still waiting for the link's reader (it never came: the link ended
    // before it read) gets one that drops what arrives, so the stream can end.
    let waiting = state.withLock { state -> CheckedContinuation<Receiver, Never>? in
      if state.receiver == nil { state.receiver = { _ in } }
      defer { state.receiverWaiter = nil }
      return state.receiverWaiter
    }
    waiting?.resume(returning: { _ in })
    endRequest.finish()
    // The peer ends its side when it sees ours end; if it does not answer within 2 s, the
    // stream is cut. Either way the channel's tasks have ended when this returns.
    let tasks = self.tasks.withLock { $0 }
    let client = self.client
    await withTaskGroup(of: Void.self) { group in
      // (Awaiting a task's value cannot be cancelled: this child ends when the tasks do —
      // on their own, or once the timer below cut them.)
      group.addTask { for task in tasks { await task.value } }
      group.addTask {
        guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }  // cancelled: they ended
        for task in tasks { task.cancel() }
        client.beginGracefulShutdown()
      }
      await group.next()
      group.cancelAll()
    }
  }
}

private func isIPv4(_ host: String) -> Bool {
  let parts = host.split(separator: ".", omittingEmptySubsequences: false)
  return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
}

private func clientSecurity(_ tls: NodeComm.TLSConfig, host: String) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
  .tls { config in
    config.serverCertificateVerification = tls.verifyHostname ? .fullVerification : .noHostnameVerification
    if let ca = tls.trustedCAPEM {
      config.trustRoots = .certificates([.bytes(Array(ca.utf8), format: .pem)])
    }
    if let certificate = tls.certificatePEM, let key = tls.privateKeyPEM {
      config.certificateChain = [.bytes(Array(certificate.utf8), format: .pem)]
      config.privateKey = .bytes(Array(key.utf8), format: .pem)
    }
  }
}
