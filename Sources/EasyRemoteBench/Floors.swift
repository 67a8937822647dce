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

  /// An 8-byte ping-pong over one NIO TCP connection.
  static func tcpPingPong(_ settings: BenchSettings) async throws -> BenchResult {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
      .bind(host: "127.0.0.1", port: 0) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
      }
    let port = server.channel.localAddress!.port!
    let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .channelOption(.tcpOption(.tcp_nodelay), value: 1)
      .connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
      }
    var latencies = Latencies(capacity: settings.iterations)
    try await client.executeThenClose { inbound, outbound in
      var iterator = inbound.makeAsyncIterator()
      let ping = ByteBuffer(bytes: [UInt8](repeating: 7, count: 8))
      for round in 0..<(settings.iterations + 500) {
        let start = ContinuousClock.now
        try await outbound.write(ping)
        var received = 0
        while received < 8 {
          guard let chunk = try await iterator.next() else { return }
          received += chunk.readableBytes
        }
        if round >= 500 { latencies.append(ContinuousClock.now - start) }
      }
    }
    try await server.channel.close()
    return latencies.result("floor.tcp_pingpong.sequential")
  }

  private final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      context.writeAndFlush(data, promise: nil)
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
