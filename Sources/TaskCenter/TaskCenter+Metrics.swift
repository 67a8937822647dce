import EasyRemoteCore
import EasyRemoteMetrics
import Foundation

/// A node's own figures as its last heartbeat carried them, and how much of its counters the
/// metrics have shown (Prometheus counters grow by the difference).
struct ReportedNode: Sendable {
  var load: NodeLoad
  var stats: NodeStats
  var maxWorkers: Int
  var shownExecutions = 0
  var shownFailures = 0
  var shownSeconds = 0.0
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
    guard server.metrics != nil, let stats = beat.stats else { return }
    state.withLock { state in
      var node = state.reported[nodeID] ?? ReportedNode(load: beat.load, stats: stats, maxWorkers: beat.maxWorkers ?? 0)
      node.load = beat.load
      node.stats = stats
      node.maxWorkers = beat.maxWorkers ?? node.maxWorkers
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

    // Each node's counters grow by what it did since the last scrape (a node that restarted
    // reports less than before: all of it is new).
    let deltas = state.withLock { state in
      state.reported.map { id, node -> (String, ReportedNode, Int, Int, Double) in
        let seconds = node.stats.averageSeconds * Double(node.stats.executions)
        let restarted = node.stats.executions < node.shownExecutions
        let executions = restarted ? node.stats.executions : node.stats.executions - node.shownExecutions
        let failures = restarted ? node.stats.failures : max(0, node.stats.failures - node.shownFailures)
        let addedSeconds = restarted ? seconds : max(0, seconds - node.shownSeconds)
        state.reported[id]?.shownExecutions = node.stats.executions
        state.reported[id]?.shownFailures = node.stats.failures
        state.reported[id]?.shownSeconds = seconds
        return (id, node, executions, failures, addedSeconds)
      }
    }
    for (id, node, executions, failures, seconds) in deltas {
      instruments.counter(MetricCatalogue.nodeExecutions, ["node": id]).increment(by: executions)
      instruments.counter(MetricCatalogue.nodeFailures, ["node": id]).increment(by: failures)
      instruments.floatingCounter(MetricCatalogue.nodeExecutionSeconds, ["node": id]).increment(by: seconds)
      instruments.gauge(MetricCatalogue.nodeLoad, ["node": id, "resource": "cpu"]).record(node.load.cpuPercent / 100)
      instruments.gauge(MetricCatalogue.nodeLoad, ["node": id, "resource": "memory"]).record(node.load.memoryPercent / 100)
      instruments.gauge(MetricCatalogue.nodeWorkersBusy, ["node": id]).record(node.stats.running)
      instruments.gauge(MetricCatalogue.nodeWorkers, ["node": id]).record(node.maxWorkers)
    }
  }
}
