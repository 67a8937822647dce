import EasyRemoteMetrics
import Foundation
import NodeComm

// What the gateway counts for Prometheus (``Server/metrics``): calls by function, node and
// outcome, their duration and bytes, stream items, joins and leaves; at scrape time its links,
// calls in flight and calls waiting.
extension Server {
  func registerMetrics() {
    guard let metrics else { return }
    metrics.onCollect { [weak self] in
      guard let self, let instruments = self.metrics?.instruments else { return }
      let inFlight = self.state.withLock { $0.membership.callsInFlight }
      instruments.gauge(MetricCatalogue.callsInFlight).record(inFlight)
      instruments.gauge(MetricCatalogue.callsWaiting).record(self.workers?.queued ?? 0)
      instruments.gauge(MetricCatalogue.links).record(self.node.peers.count)
    }
  }

  /// One routed call or stream finished: counted by function, node and outcome.
  func countCall(
    _ function: String, node: String?, start: ContinuousClock.Instant, error: (any Error)?, bytesIn: Int, bytesOut: Int,
    items: Int = 0
  ) {
    guard let callMetrics else { return }
    let outcome = error.map { EasyRemoteError($0, function: function).code.rawValue } ?? "ok"
    callMetrics.record(
      function: function, node: node ?? "", outcome: outcome, start: start, bytesIn: bytesIn, bytesOut: bytesOut,
      items: items)
  }

  /// What a routed call records, for the benchmark of its cost.
  package func benchRecord(function: String, node: String, start: ContinuousClock.Instant, bytesIn: Int, bytesOut: Int) {
    countCall(function, node: node, start: start, error: nil, bytesIn: bytesIn, bytesOut: bytesOut)
  }

  /// Joins (first or reconnect) and leaves (by reason) of compute nodes.
  func countMembership(_ event: MembershipEvent) {
    guard let instruments = metrics?.instruments else { return }
    switch event {
    case .joined(let nodeID):
      let seen = state.withLock { state -> Bool in
        if state.seenNodes.contains(nodeID) { return true }
        if state.seenNodes.count >= 100_000 { state.seenNodes.removeAll() }
        state.seenNodes.insert(nodeID)
        return false
      }
      instruments.counter(MetricCatalogue.nodeJoins, ["kind": seen ? "reconnect" : "first"]).increment()
    case .left(_, let reason):
      instruments.counter(MetricCatalogue.nodeLeaves, ["reason": Self.leaveReason(reason)]).increment()
    case .reported, .workerFree, .joinedTasks, .leftTasks:
      break
    }
  }

  /// A link's end reason as a label: a bounded set.
  static func leaveReason(_ reason: LinkEndReason) -> String {
    switch reason.code {
    case .heartbeatTimeout: "heartbeat_lost"
    case .closedByPeer: "closed"
    case .stopped: "stopped"
    case .failed: "failed"
    default: "other"
    }
  }
}
