import Synchronization

/// Links inside one process: for tests, examples and embedding.
///
/// Nodes sharing one `MemoryTransport` instance reach each other by the name they listen
/// under (their node id, unless configured otherwise). Frames are passed as they are.
public final class MemoryTransport: Transport {
  private let listeners = Mutex<[String: @Sendable (any LinkChannel) async -> Void]>([:])

  public init() {}

  /// The process-wide instance used by nodes configured with `transport.mode: memory`.
  public static let shared = MemoryTransport()

  public func listen(
    host: String, port: Int, name: String, accept: @escaping @Sendable (any LinkChannel) async -> Void
  ) async throws -> any TransportListener {
    let address = "memory://\(name)"
    try listeners.withLock { listeners in
      guard listeners[address] == nil else {
        throw NodeError(code: .connectFailed, message: "\(address) is already taken")
      }
      listeners[address] = accept
    }
    return Listener(address: address, transport: self)
  }

  public func dial(_ address: String) async throws -> any LinkChannel {
    let key = address.hasPrefix("memory://") ? address : "memory://\(address)"
    guard let accept = listeners.withLock({ $0[key] }) else {
      throw NodeError(code: .connectFailed, message: "nothing listens at \(key)")
    }
    let (dialer, listener) = MemoryChannel.pair(dialer: "memory-dialer", listener: key)
    // Unstructured: the listener's side runs as the accepting node's link (it records it),
    // not as part of this dial, which returns at once — as a socket's accept would.
    Task { await accept(listener) }
    return dialer
  }

  fileprivate func remove(_ address: String) {
    _ = listeners.withLock { $0.removeValue(forKey: address) }
  }

  private final class Listener: TransportListener {
    let address: String
    let transport: MemoryTransport
    /// Closed, and who waits for it.
    private let state = Mutex<(closed: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    init(address: String, transport: MemoryTransport) {
      self.address = address
      self.transport = transport
    }

    func close() async {
      transport.remove(address)
      let waiters = state.withLock { state in
        state.closed = true
        defer { state.waiters = [] }
        return state.waiters
      }
      for waiter in waiters { waiter.resume() }
    }

    /// (A listener in memory cannot fail: it returns when closed.)
    func waitUntilClosed() async throws {
      await withCheckedContinuation { continuation in
        let closed = state.withLock { state in
          if !state.closed { state.waiters.append(continuation) }
          return state.closed
        }
        if closed { continuation.resume() }
      }
    }
  }
}

/// One side of an in-memory link: an `AsyncStream` per direction.
final class MemoryChannel: LinkChannel {
  private let incoming: AsyncStream<[Frame]>
  private let incomingContinuation: AsyncStream<[Frame]>.Continuation
  private let peer: Mutex<AsyncStream<[Frame]>.Continuation?>
  let remoteDescription: String

  private init(remote: String) {
    (incoming, incomingContinuation) = AsyncStream.makeStream(of: [Frame].self)
    peer = Mutex(nil)
    remoteDescription = remote
  }

  static func pair(dialer: String, listener: String) -> (MemoryChannel, MemoryChannel) {
    let a = MemoryChannel(remote: listener)
    let b = MemoryChannel(remote: dialer)
    a.peer.withLock { $0 = b.incomingContinuation }
    b.peer.withLock { $0 = a.incomingContinuation }
    return (a, b)
  }

  func write(_ frames: [Frame]) async throws {
    guard let peer = peer.withLock({ $0 }) else {
      throw NodeError(code: .connectionLost, message: "memory link is closed")
    }
    if case .terminated = peer.yield(frames) {
      throw NodeError(code: .connectionLost, message: "memory link is closed")
    }
  }

  func read(_ receive: @escaping @Sendable ([Frame]) -> Void) async throws {
    for await batch in incoming { receive(batch) }
  }

  func close() async {
    let peer = self.peer.withLock { peer in
      defer { peer = nil }
      return peer
    }
    peer?.finish()
    incomingContinuation.finish()
  }
}
