public import NodeComm
public import Logging

extension Node {
  /// Creates a node whose transport is chosen by `config.transport.mode`: gRPC (with the
  /// configured TLS) or in-memory (on ``MemoryTransport/shared``).
  public convenience init(id: String? = nil, config: NodeConfig, logger: Logger? = nil) {
    let transport: any Transport =
      switch config.transport.mode {
      case .grpc: GRPCTransport(tls: config.transport.tls)
      case .memory: MemoryTransport.shared
      }
    self.init(id: id, config: config, transport: transport, logger: logger)
  }
}

/// Runs `body` with a started node whose transport comes from `config`, then stops it.
public func withNode<Result>(
  id: String? = nil, config: NodeConfig, _ body: (Node) async throws -> Result
) async throws -> Result {
  let node = Node(id: id, config: config)
  try await node.start()
  do {
    let result = try await body(node)
    await node.stop()
    return result
  } catch {
    await node.stop()
    throw error
  }
}
