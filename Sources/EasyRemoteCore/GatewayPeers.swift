/// The other gateways a gateway can hand a call to when none of its own nodes serves the
/// function: several gateways sharing one task store publish which functions their nodes
/// serve (the task center's `GatewayDirectory`), and a call or stream for a function served
/// only behind another gateway goes there over a link of its own (``Server/forwarding(to:)``).
public protocol GatewayPeers: Sendable {
  /// The address (`host:port`) of another gateway whose nodes serve `function` (node `target`
  /// among them, when one is named); nil when none does.
  func gateway(serving function: String, node target: String?) -> String?

  /// Whether any other gateway's nodes serve `function`.
  func serve(_ function: String) -> Bool

  /// The functions other gateways' nodes serve, as those gateways last published them.
  func functions() -> [FunctionInfo]

  /// Other gateways' nodes, as they last published them, each with its ``NodeInfo/gateway``.
  func nodes() -> [NodeInfo]
}
