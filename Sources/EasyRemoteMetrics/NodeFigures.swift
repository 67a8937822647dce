/// A compute node's own figures for one scrape (what its counters grew by since the last one,
/// its workers and load), recorded under its `node` label: by the gateway for the nodes that
/// report over their links, by a node's own status page for itself.
public struct NodeFigures: Sendable {
  public var executions: Double
  public var failures: Double
  public var seconds: Double
  public var running: Int
  public var maxWorkers: Int
  /// Load, 0 to 1; nil when not known.
  public var cpu: Double?
  public var memory: Double?

  public init(
    executions: Double, failures: Double, seconds: Double, running: Int, maxWorkers: Int, cpu: Double?, memory: Double?
  ) {
    self.executions = executions
    self.failures = failures
    self.seconds = seconds
    self.running = running
    self.maxWorkers = maxWorkers
    self.cpu = cpu
    self.memory = memory
  }

  public func record(node: String, into instruments: Instruments) {
    instruments.floatingCounter(MetricCatalogue.nodeExecutions, ["node": node]).increment(by: executions)
    instruments.floatingCounter(MetricCatalogue.nodeFailures, ["node": node]).increment(by: failures)
    instruments.floatingCounter(MetricCatalogue.nodeExecutionSeconds, ["node": node]).increment(by: seconds)
    instruments.gauge(MetricCatalogue.nodeWorkersBusy, ["node": node]).record(running)
    instruments.gauge(MetricCatalogue.nodeWorkers, ["node": node]).record(maxWorkers)
    if let cpu { instruments.gauge(MetricCatalogue.nodeLoad, ["node": node, "resource": "cpu"]).record(cpu) }
    if let memory { instruments.gauge(MetricCatalogue.nodeLoad, ["node": node, "resource": "memory"]).record(memory) }
  }
}
