import EasyRemoteCore
import EasyRemoteMetrics
import Foundation

/// A node's own figures as its last heartbeat carried them, and how much of its counters the
/// metrics have shown (Prometheus counters grow by the difference).
struct ReportedNode: Sendable {
  var load: NodeLoad
  var stats: NodeStats
  var maxWorkers: Int
  var executions = CounterFeed()
  var failures = CounterFeed()
  var seconds = CounterFeed()
}

// The task center's figures at scrape time: tasks and nodes by status, WebSocket
// subscribers, and each node's own counters and load (reported over its link: nodes behind
// NAT cannot be scraped). Events (submitted, started, finished, requeued, commits) are
// counted where they happen, in `ObservedTaskStore`.
extension TaskCenter {
  func registerMetrics() {
    server.metrics?.onCollect { [weak self] in await self?.collectMetrics() }
  }

  func reported(_ nodeID: String, _ beat: TaskNodeHeartbeat) {
    guard server.metrics != nil, let stats = beat.stats?.sanitized else { return }
    let load = beat.load.clamped
    let maxWorkers = beat.maxWorkers.map { InputBounds.clamp($0, InputBounds.slots) }
    state.withLock { state in
      var node = state.reported[nodeID] ?? ReportedNode(load: load, stats: stats, maxWorkers: maxWorkers ?? 0)
      node.load = load
      node.stats = stats
      node.maxWorkers = maxWorkers ?? node.maxWorkers
      state.reported[nodeID] = node
    }
  }

  /// A node left: its gauges end (its counters stay, as counters do).
  func forgetReported(_ nodeID: String) {
    guard let instruments = server.metrics?.instruments else { return }
    _ = state.withLock { $0.reported.removeValue(forKey: nodeID) }
    for name in [MetricCatalogue.nodeLoad, MetricCatalogue.nodeWorkersBusy, MetricCatalogue.nodeWorkers] {
      instruments.removeGauges(name, where: "node", is: nodeID)
    }
  }

  func collectMetrics() async {
    guard let instruments = server.metrics?.instruments else { return }
    if let counts = try? await store.counts() {
      for status in TaskStatus.allCases {
        instruments.gauge(MetricCatalogue.tasks, ["status": status.rawValue]).record(counts[status] ?? 0)
      }
    }
    var byStatus: [NodeStatus: Int] = [.idle: 0, .busy: 0, .offline: 0]
    for node in nodes() { byStatus[node.status, default: 0] += 1 }
    for (status, count) in byStatus { instruments.gauge(MetricCatalogue.nodes, ["status": status.rawValue]).record(count) }
    instruments.gauge(MetricCatalogue.webSocketSubscribers).record(eventSubscriberCount)

    // Each node's counters grow by what it did since the last scrape.
    let deltas = state.withLock { state in
      state.reported.keys.map { id -> (String, ReportedNode, NodeFigures) in
        let node = state.reported[id]!
        let figures = NodeFigures(
          executions: state.reported[id]!.executions.delta(to: Double(node.stats.executions)),
          failures: state.reported[id]!.failures.delta(to: Double(node.stats.failures)),
          seconds: state.reported[id]!.seconds.delta(to: node.stats.averageSeconds * Double(node.stats.executions)),
          running: node.stats.running, maxWorkers: node.maxWorkers,
          cpu: node.load.cpuPercent / 100, memory: node.load.memoryPercent / 100)
        return (id, node, figures)
      }
    }
    for (id, _, figures) in deltas { figures.record(node: id, into: instruments) }
  }
}
