public import EasyRemoteCore
import Synchronization

/// What the other gateways on a shared store serve, as they last published it (their lease
/// rows): the ``GatewayPeers`` a gateway forwards calls to. Refreshed by the task center with
/// every lease renewal and whenever a gateway announces a change.
public final class GatewayDirectory: GatewayPeers {
  /// This gateway's id: never a peer of itself.
  public let own: String
  private let state = Mutex<(gateways: [GatewayLease], turn: Int)>(([], 0))

  public init(own: String) {
    self.own = own
  }

  /// The other gateways, as last read.
  public var gateways: [GatewayLease] { state.withLock { $0.gateways } }

  /// Replaces what is known with `leases` (this gateway's own left out).
  public func update(_ leases: [GatewayLease]) {
    let others = leases.filter { $0.id != own && $0.address != nil }
    state.withLock { $0.gateways = others }
  }

  public func gateway(serving function: String, node target: String?) -> String? {
    state.withLock { state -> String? in
      let candidates = state.gateways.filter { lease in
        lease.functions.contains(function) && (target.map { lease.nodes.contains($0) } ?? true)
      }
      guard !candidates.isEmpty else { return nil }
      // In turn, so calls spread over the gateways serving the function.
      state.turn &+= 1
      return candidates[state.turn % candidates.count].address
    }
  }

  public func serve(_ function: String) -> Bool {
    state.withLock { $0.gateways.contains { $0.functions.contains(function) } }
  }

  public func nodes() -> [NodeInfo] {
    state.withLock { $0.gateways }.flatMap { lease in
      lease.published.memberInfos.map { node in
        var node = node
        node.gateway = lease.id
        return node
      }
    }
  }

  public func functions() -> [FunctionInfo] {
    FunctionInfo.merged(state.withLock { $0.gateways }.flatMap(\.published.functionInfos))
  }
}
