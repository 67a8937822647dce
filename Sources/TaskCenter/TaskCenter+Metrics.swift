import EasyRemoteCore
import EasyRemoteMetrics
import Foundation

/// How much of a node's reported counters the metrics have shown (Prometheus counters grow by
/// the difference). The figures themselves are in the node's record (``Membership/Member``).
struct NodeFeeds: Sendable {
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

  /// A node left: its gauges end (its counters stay, as counters do).
  func forgetReported(_ nodeID: String) {
    guard let instruments = server.metrics?.instruments else { return }
    _ = state.withLock { $0.feeds.removeValue(forKey: nodeID) }
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
    let reporting = server.withMembership { membership in
      membership.linked.compactMap { member in member.stats.map { (member.id, $0, member.load, member.maxWorkers) } }
    }
    let deltas = state.withLock { state in
      reporting.map { id, stats, load, maxWorkers -> (String, NodeFigures) in
        var feeds = state.feeds[id] ?? NodeFeeds()
        let figures = NodeFigures(
          executions: feeds.executions.delta(to: Double(stats.executions)),
          failures: feeds.failures.delta(to: Double(stats.failures)),
          seconds: feeds.seconds.delta(to: stats.averageSeconds * Double(stats.executions)),
          running: stats.running, maxWorkers: maxWorkers,
          cpu: load.cpuPercent / 100, memory: load.memoryPercent / 100)
        state.feeds[id] = feeds
        return (id, figures)
      }
    }
    for (id, figures) in deltas { figures.record(node: id, into: instruments) }
  }
}
