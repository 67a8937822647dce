// The module users import: the compute layer (`EasyRemoteCore`) with gRPC over the network as
// its default transport. Code that brings its own transport (a `MemoryTransport` in tests or
// when embedding) can import `EasyRemoteCore` alone; it does not depend on gRPC.
@_exported public import EasyRemoteCore
@_exported public import EasyRemoteMetrics
@_exported public import NodeComm
@_exported public import NodeCommGRPC
public import Logging

extension Server {
  /// A gateway that listens for gRPC links on `host:port`.
  ///
  /// - Parameters:
  ///   - host: the address to listen on; loopback unless you mean to serve other machines.
  ///   - port: the port; 0 picks a free one (read ``Server/address`` after ``Server/start()``).
  ///   - balancing: how the next node is picked among those serving a function.
  ///   - maxWorkers: calls in flight through the gateway at most; beyond it they wait (up to
  ///     `queueLimit`), then are refused `busy`. Unbounded when nil (and `config.maxWorkers`
  ///     is nil).
  ///   - config: node-layer settings (TLS in `config.transport.tls`, heartbeat, limits, token).
  ///   - metrics: where the gateway's metrics go (its own Prometheus registry by default);
  ///     nil turns them off.
  public convenience init(
    host: String = "127.0.0.1", port: Int = 8080, balancing: Balancing = .leastInFlight, maxWorkers: Int? = nil,
    queueLimit: Int? = nil, config: NodeConfig = .defaults, metrics: MetricsRegistry? = MetricsRegistry(),
    logger: Logger? = nil
  ) {
    self.init(
      host: host, port: port, balancing: balancing, maxWorkers: maxWorkers, queueLimit: queueLimit, config: config,
      metrics: metrics,
      transport: GRPCTransport(tls: config.transport.tls), logger: logger)
  }
}

extension ComputeNode {
  /// A compute node that dials the gateway at `serverAddress` (`host:port`) over gRPC.
  ///
  /// - Parameters:
  ///   - nodeID: this node's id; a random one when nil.
  ///   - maxWorkers: calls and tasks run at once; the rest wait (up to `queueLimit`) or are
  ///     refused. When nil: `config.maxWorkers`, else 5.
  public convenience init(
    serverAddress: String, nodeID: String? = nil, maxWorkers: Int? = nil, queueLimit: Int? = nil,
    config: NodeConfig = .defaults, logger: Logger? = nil
  ) {
    self.init(
      serverAddress: serverAddress, nodeID: nodeID, maxWorkers: maxWorkers, queueLimit: queueLimit, config: config,
      transport: GRPCTransport(tls: config.transport.tls), logger: logger)
  }
}

extension Client {
  /// A client of the gateway at `serverAddress` (`host:port`) over gRPC.
  ///
  /// - Parameters:
  ///   - timeout: the default limit of a call.
  public convenience init(serverAddress: String, timeout: Duration = .seconds(30), config: NodeConfig = .defaults) {
    self.init(
      serverAddress: serverAddress, timeout: timeout, config: config,
      transport: GRPCTransport(tls: config.transport.tls))
  }
}

extension BlockingClient {
  /// A blocking client of the gateway at `serverAddress` (`host:port`) over gRPC.
  public convenience init(serverAddress: String, timeout: Duration = .seconds(30)) {
    self.init(client: Client(serverAddress: serverAddress, timeout: timeout))
  }
}

/// Asks the gateway at `address` (`host:port`, over gRPC) how it is.
///
/// - Throws: ``EasyRemoteError`` `connectionFailed` when it cannot be reached.
public func healthCheck(
  _ address: String, timeout: Duration = .seconds(5), authToken: String? = nil, tls: TLSConfig? = nil
) async throws -> HealthReport {
  try await healthCheck(address, timeout: timeout, authToken: authToken, transport: GRPCTransport(tls: tls))
}
