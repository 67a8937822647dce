public import NodeComm
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import NIOCore
import Synchronization

/// The production transport: each link is one long-lived bidirectional gRPC stream over
/// HTTP/2, optionally with TLS or mutual TLS.
///
/// ```swift
/// let node = Node(id: "worker", config: config, transport: GRPCTransport(tls: config.transport.tls))
/// ```
public struct GRPCTransport: Transport {
  /// TLS settings; plaintext when nil.
  public var tls: NodeComm.TLSConfig?
  /// The largest batch of frames in one gRPC message. Payloads are chunked well below it.
  public var maxMessageSize: Int
  /// Handshake timeout and connection cap of a listener.
  public var connectionLimits = GRPCConnectionLimits()
  /// How long a dial may take until the link's stream is open (a peer that accepts the TCP
  /// connection but never answers — a frozen process — fails it with `connect_failed`).
  public var connectTimeout: Duration = .seconds(10)

  public init(tls: NodeComm.TLSConfig? = nil, maxMessageSize: Int = 32 << 20) {
    self.tls = tls
    self.maxMessageSize = maxMessageSize
  }

  public func listen(
    host: String, port: Int, name: String, accept: @escaping @Sendable (any LinkChannel) async -> Void
  ) async throws -> any TransportListener {
    try await GRPCListener.start(
      host: host, port: port, tls: tls, maxMessageSize: maxMessageSize, limits: connectionLimits, accept: accept)
  }

  public func dial(_ address: String) async throws -> any LinkChannel {
    try await GRPCClientChannel.open(address: address, tls: tls, maxMessageSize: maxMessageSize, timeout: connectTimeout)
  }
}

/// Splits `host:port` (also `[v6]:port`) into its parts.
package func parseAddress(_ address: String) throws -> (host: String, port: Int) {
  var text = Substring(address)
  if text.hasPrefix("grpc://") { text = text.dropFirst(7) }
  guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
  else {
    throw NodeError(code: .connectFailed, message: "'\(address)' is not a host:port address")
  }
  var host = text[..<colon]
  if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
  return (host.isEmpty ? "127.0.0.1" : String(host), port)
}

/// Socket reads grow up to 1 MiB so that bulk data takes few reads (NIO's default stops at 64 KiB).
let linkReceiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 << 10, maximum: 1 << 20)
