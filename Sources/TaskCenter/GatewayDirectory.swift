public import EasyRemoteCore
import Synchronization

/// What the other gateways on a shared store serve, as they last published it (their lease
/// rows): the ``GatewayPeers`` a gateway forwards calls to. Refreshed by the task center with
/// every lease renewal and whenever a gateway announces a change.
package final class GatewayDirectory: GatewayPeers {
  /// This gateway's id: never a peer of itself.
  package let own: String
  private let state = Mutex<[GatewayLease]>([])

  package init(own: String) {
    self.own = own
  }

  /// The other gateways, as last read.
  package var gateways: [GatewayLease] { state.withLock { $0 } }

  /// Replaces what is known with `leases` (this gateway's own left out).
  package func update(_ leases: [GatewayLease]) {
    let others = leases.filter { $0.id != own && $0.address != nil }
    state.withLock { $0 = others }
  }

  package func gateways(serving function: String, node target: String?) -> [PeerGateway] {
    state.withLock { $0 }.compactMap { lease -> PeerGateway? in
      guard let address = lease.address, lease.functions.contains(function),
        target.map({ lease.nodes.contains($0) }) ?? true
      else { return nil }
      // The workers of the nodes there that serve it (at least one: it published the function).
      let workers = lease.published.memberInfos
        .filter { $0.functions.contains(function) && (target == nil || $0.id == target) }
        .reduce(0) { $0 + $1.maxWorkers }
      return PeerGateway(address: address, workers: max(workers, 1))
    }
  }

  package func serve(_ function: String) -> Bool {
    state.withLock { $0.contains { $0.functions.contains(function) } }
  }

  package func nodes() -> [NodeInfo] {
    state.withLock { $0 }.flatMap { lease in
      lease.published.memberInfos.map { node in
        var node = node
        node.gateway = lease.id
        return node
      }
    }
  }

  package func functions() -> [FunctionInfo] {
    FunctionInfo.merged(state.withLock { $0 }.flatMap(\.published.functionInfos))
  }
}
