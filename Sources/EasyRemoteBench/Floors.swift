import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix

/// The floors every run measures beside EasyRemote: raw TCP and plain gRPC on loopback.
enum Floors {
  static func run(_ settings: BenchSettings) async throws -> [BenchResult] {
    var results = [try await tcpPingPong(settings)]
    results += try await grpcUnaryEcho(settings)
    return results
  }

  /// An 8-byte ping-pong over one NIO TCP connection, driven by channel handlers on the
  /// event loop: the cost of the socket round trip alone.
  static func tcpPingPong(_ settings: BenchSettings) async throws -> BenchResult {
    let group = MultiThreadedEventLoopGroup.singleton
    let server = try await ServerBootstrap(group: group)
      .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
      }
      .bind(host: "127.0.0.1", port: 0).get()
    let port = server.localAddress!.port!
    let rounds = settings.iterations + 500
    let done = group.next().makePromise(of: [Duration].self)
    let client = try await ClientBootstrap(group: group)
      .channelOption(.tcpOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(PingHandler(rounds: rounds, done: done))
        }
      }
      .connect(host: "127.0.0.1", port: port).get()
    let samples = try await done.futureResult.get()
    try await client.close()
    try await server.close()
    var latencies = Latencies(capacity: settings.iterations)
    for sample in samples.dropFirst(500) { latencies.append(sample) }
    return latencies.result("floor.tcp_pingpong.sequential")
  }

  private final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      context.writeAndFlush(data, promise: nil)
    }
  }

  /// Sends 8 bytes, waits for 8 back, repeats; times each round trip.
  private final class PingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let rounds: Int
    private let done: EventLoopPromise<[Duration]>
    private var samples: [Duration] = []
    private var started = ContinuousClock.now
    private var received = 0

    init(rounds: Int, done: EventLoopPromise<[Duration]>) {
      self.rounds = rounds
      self.done = done
      samples.reserveCapacity(rounds)
    }

    func channelActive(context: ChannelHandlerContext) { ping(context) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      received += unwrapInboundIn(data).readableBytes
      guard received >= 8 else { return }
      received -= 8
      samples.append(ContinuousClock.now - started)
      if samples.count == rounds { done.succeed(samples) } else { ping(context) }
    }

    private func ping(_ context: ChannelHandlerContext) {
      started = .now
      context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: [UInt8](repeating: 7, count: 8))), promise: nil)
    }
  }

  /// A plain grpc-swift unary echo with default settings: no EasyRemote code in the path.
  static func grpcUnaryEcho(_ settings: BenchSettings) async throws -> [BenchResult] {
    let serverTransport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext)
    let server = GRPCServer(transport: serverTransport, services: [EchoService()])
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.serve() }
      let port = try await serverTransport.listeningAddress.ipv4!.port
      let clientTransport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
      let grpc = GRPCClient(transport: clientTransport)
      group.addTask { try await grpc.runConnections() }
      let client = Easyremote_Bench_V1_Echo.Client(wrapping: grpc)
      let small = Easyremote_Bench_V1_EchoMessage.with { $0.payload = Data(repeating: 1, count: 16) }
      var results: [BenchResult] = []
      var latencies = Latencies(capacity: settings.iterations)
      for round in 0..<(settings.iterations + 300) {
        let start = ContinuousClock.now
        _ = try await client.unary(small)
        if round >= 300 { latencies.append(ContinuousClock.now - start) }
      }
      results.append(latencies.result("floor.grpc_unary.sequential"))
      for concurrency in [1, 16, 64] {
        let rate = try await throughput(concurrency: concurrency, duration: settings.duration) {
          _ = try await client.unary(small)
        }
        results.append(BenchResult(name: "floor.grpc_unary.inflight_\(concurrency)", ops_per_s: rate))
      }
      var callOptions = CallOptions.defaults
      callOptions.maxRequestMessageBytes = 8 << 20
      callOptions.maxResponseMessageBytes = 8 << 20
      let options = callOptions
      let large = Easyremote_Bench_V1_EchoMessage.with { $0.payload = Data(repeating: 3, count: 1 << 20) }
      let rate = try await throughput(concurrency: 1, duration: settings.duration) {
        _ = try await client.unary(large, options: options)
      }
      results.append(BenchResult(name: "floor.grpc_unary.echo_1MiB", ops_per_s: rate, mb_per_s: rate * 1.048576))
      grpc.beginGracefulShutdown()
      server.beginGracefulShutdown()
      try await group.waitForAll()
      return results
    }
  }

  private struct EchoService: Easyremote_Bench_V1_Echo.SimpleServiceProtocol {
    func unary(
      request: Easyremote_Bench_V1_EchoMessage, context: ServerContext
    ) async throws -> Easyremote_Bench_V1_EchoMessage {
      request
    }
  }
}
