import NIOCore
import Synchronization

/// What the gRPC listener lets a connection do before it is closed.
public struct GRPCConnectionLimits: Sendable, Hashable {
  /// Time from accepting a connection to its first 24 bytes (the HTTP/2 preface, or a TLS
  /// ClientHello); a connection that says less is closed (half-open connections, slowloris).
  public var handshakeTimeout: Duration
  /// Connections open at once; more are closed as they arrive.
  public var maxConnections: Int

  public init(handshakeTimeout: Duration = .seconds(10), maxConnections: Int = 4096) {
    self.handshakeTimeout = handshakeTimeout
    self.maxConnections = maxConnections
  }
}

/// First in every accepted connection's pipeline: counts it against the cap and closes it
/// unless it sends the start of a handshake in time; then it steps out of the way.
final class HandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  /// The connections open now, shared by every connection's guard of one listener.
  final class Count: Sendable {
    let value = Atomic<Int>(0)
  }

  /// The HTTP/2 client preface is 24 bytes; a TLS ClientHello is longer.
  static let handshakeBytes = 24

  private let limits: GRPCConnectionLimits
  private let count: Count
  private var received = 0
  private var timer: Scheduled<Void>?
  private var counted = false

  init(limits: GRPCConnectionLimits, count: Count) {
    self.limits = limits
    self.count = count
  }

  func handlerAdded(context: ChannelHandlerContext) {
    counted = true
    let open = count.value.wrappingAdd(1, ordering: .relaxed).newValue
    // Decremented when the channel closes, whoever closes it (this handler leaves the
    // pipeline once the handshake has started).
    let count = self.count
    context.channel.closeFuture.whenComplete { _ in count.value.wrappingSubtract(1, ordering: .relaxed) }
    if open > limits.maxConnections {
      context.close(promise: nil)
      return
    }
    let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: TimeAmount(limits.handshakeTimeout)) { bound.value.close(promise: nil) }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    received += unwrapInboundIn(data).readableBytes
    context.fireChannelRead(data)
    if received >= Self.handshakeBytes, let timer {
      timer.cancel()
      self.timer = nil
      context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    timer?.cancel()
  }
}
