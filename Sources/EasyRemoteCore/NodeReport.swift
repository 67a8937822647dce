/// What a task worker's heartbeats carry (``ComputeNode/report(_:)``): its machine's load and
/// its own counters. The gateway keeps them in the node's membership record.
package struct NodeReport: Codable, Sendable, Equatable {
  package var load: NodeLoad
  /// The node's own counters (absent from older nodes).
  package var stats: NodeStats?
  package var maxWorkers: Int?

  package init(load: NodeLoad, stats: NodeStats? = nil, maxWorkers: Int? = nil) {
    self.load = load
    self.stats = stats
    self.maxWorkers = maxWorkers
  }

  /// Every figure within bounds (a node's word: it is clamped, there is no one to refuse).
  package var clamped: NodeReport {
    NodeReport(
      load: load.clamped, stats: stats?.sanitized, maxWorkers: maxWorkers.map { InputBounds.clamp($0, InputBounds.slots) })
  }
}

extension NodeLoad {
  /// Both figures moved into 0...100 (not a number: 100, busy). For a link's heartbeat,
  /// which has no one to answer a refusal.
  package var clamped: NodeLoad {
    NodeLoad(
      cpuPercent: InputBounds.clamp(cpuPercent, InputBounds.percent),
      memoryPercent: InputBounds.clamp(memoryPercent, InputBounds.percent))
  }
}


extension NodeStats {
  /// The counters as a node reported them, made safe to count with: none negative, the
  /// average finite.
  package var sanitized: NodeStats {
    var stats = self
    stats.executions = max(0, executions)
    stats.failures = max(0, failures)
    stats.running = max(0, running)
    stats.queued = max(0, queued)
    stats.averageSeconds = InputBounds.clamp(averageSeconds, InputBounds.executionSeconds)
    return stats
  }
}
