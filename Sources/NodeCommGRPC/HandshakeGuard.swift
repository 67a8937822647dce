import NIOCore
import NodeComm

/// What the gRPC listener lets a connection do before it is closed.
public struct GRPCConnectionLimits: Sendable, Hashable {
  /// Time from accepting a connection to the HELLO of the link it carries; a connection that
  /// has not said it by then is closed — silent ones, an HTTP/2 preface alone, a stream that
  /// never starts a link.
  public var handshakeTimeout: Duration
  /// Connections open at once. At the cap a new connection takes the place of the oldest one
  /// still without a link; when every one has a link, it is closed.
  public var maxConnections: Int
  /// Connections open at once from one IP address (nodes behind one NAT share theirs);
  /// more are closed as they arrive.
  public var maxConnectionsPerAddress: Int

  public init(handshakeTimeout: Duration = .seconds(10), maxConnections: Int = 4096, maxConnectionsPerAddress: Int = 256) {
    self.handshakeTimeout = handshakeTimeout
    self.maxConnections = maxConnections
    self.maxConnectionsPerAddress = maxConnectionsPerAddress
  }
}

/// The peer string gRPC gives a connection's streams (`ServerContext.remotePeer`, as
/// `ipv4:1.2.3.4:5678`), so that a link's HELLO can reach the guard of its connection; and the
/// connection's IP address alone.
func connectionPeer(of channel: any Channel) -> (peer: String, address: String)? {
  switch channel.remoteAddress {
  case .v4(let ipv4)?: ("ipv4:\(ipv4.host):\(channel.remoteAddress?.port ?? 0)", channel.remoteAddress?.ipAddress ?? ipv4.host)
  case .v6(let ipv6)?:
    ("ipv6:[\(ipv6.host)]:\(channel.remoteAddress?.port ?? 0)", AuthFailureLimiter.client(ip: channel.remoteAddress?.ipAddress ?? ipv6.host))
  default: nil
  }
}

/// First in every accepted connection's pipeline: counts it against the caps and closes it
/// unless the link it carries says HELLO in time (``ConnectionTable/prove(_:)``); then
/// it steps out of the way.
final class HandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  private let limits: GRPCConnectionLimits
  private let table: ConnectionTable<String>
  private var timer: Scheduled<Void>?

  init(limits: GRPCConnectionLimits, table: ConnectionTable<String>) {
    self.limits = limits
    self.table = table
  }

  func handlerAdded(context: ChannelHandlerContext) {
    let channel = context.channel
    guard let (peer, address) = connectionPeer(of: channel) else {
      context.close(promise: nil)
      return
    }
    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    let eventLoop = context.eventLoop
    let admission = table.admit(peer, address: address) {
      channel.close(promise: nil)
    } prove: {
      eventLoop.execute {
        let (handler, context) = bound.value
        handler.timer?.cancel()
        handler.timer = nil
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
      }
    }
    guard case .admitted = admission else {
      context.close(promise: nil)
      return
    }
    // Forgotten when the channel closes, whoever closes it.
    let table = self.table
    channel.closeFuture.whenComplete { _ in table.remove(peer) }
    timer = context.eventLoop.scheduleTask(in: TimeAmount(limits.handshakeTimeout)) { bound.value.1.close(promise: nil) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    timer?.cancel()
  }
}
