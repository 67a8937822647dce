/// The other gateways a gateway can hand a call to when none of its own nodes serves the
/// function: several gateways sharing one task store publish which functions their nodes
/// serve (the task center's `GatewayDirectory`), and a call or stream for a function served
/// only behind another gateway goes there over a link of its own (``Server/forwarding(to:)``).
public protocol GatewayPeers: Sendable {
  /// The other gateways whose nodes serve `function` (node `target` among them, when one is
  /// named), each with how many workers those nodes have; empty when none does.
  func gateways(serving function: String, node target: String?) -> [PeerGateway]

  /// Whether any other gateway's nodes serve `function`.
  func serve(_ function: String) -> Bool

  /// The functions other gateways' nodes serve, as those gateways last published them.
  func functions() -> [FunctionInfo]

  /// Other gateways' nodes, as they last published them, each with its ``NodeInfo/gateway``.
  func nodes() -> [NodeInfo]
}

/// Another gateway a call can be forwarded to.
public struct PeerGateway: Sendable, Equatable {
  /// Where it listens (`host:port`).
  public var address: String
  /// The workers of its nodes that serve the function (as it last published them).
  public var workers: Int

  public init(address: String, workers: Int) {
    self.address = address
    self.workers = workers
  }
}
