public import EasyRemoteCore
public import EasyRemoteMetrics
import Foundation
import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization
public import TaskCenter

/// A compute node's own status page (`easyremote node --status-port`): `GET /` and
/// `GET /health` answer JSON about the node — whether it is linked to its gateway, its
/// functions and work — on a local port, for people and for the gateway's SSH tunnel;
/// `GET /metrics` the same figures (and whatever else `metrics` holds: the node layer's
/// interceptor, when the process's swift-metrics backend is it) for a Prometheus that can
/// reach the node.
public final class NodeStatusServer: Service, Sendable {
  public let host: String
  public let port: Int
  private let node: ComputeNode
  private let worker: TaskWorker?
  private let startedAt = Date()
  private let running: RunningApplication
  public let metrics: MetricsRegistry
  private let feeds = Mutex((executions: CounterFeed(), failures: CounterFeed(), seconds: CounterFeed()))
  /// CPU is the share busy since the previous scrape.
  private let load = LoadSampler()

  public init(
    node: ComputeNode, worker: TaskWorker?, host: String = "127.0.0.1", port: Int, metrics: MetricsRegistry = MetricsRegistry(),
    logger: Logger? = nil
  ) {
    self.node = node
    self.worker = worker
    self.host = host
    self.port = port
    self.metrics = metrics
    self.running = RunningApplication(logger: logger, label: "easyremote.node-status")
    metrics.onCollect { [weak self] in self?.collect() }
  }

  private func collect() {
    let stats = node.stats()
    let (executions, failures, seconds) = feeds.withLock { feeds in
      (
        feeds.executions.delta(to: Double(stats.executions)), feeds.failures.delta(to: Double(stats.failures)),
        feeds.seconds.delta(to: stats.averageSeconds * Double(stats.executions))
      )
    }
    let load = load.sample()
    NodeFigures(
      executions: executions, failures: failures, seconds: seconds, running: stats.running, maxWorkers: node.maxWorkers,
      cpu: load.cpuPercent / 100, memory: load.memoryPercent / 100
    ).record(node: node.nodeID, into: metrics.instruments)
  }

  /// `host:port` once started.
  public var address: String? { running.address }

  /// Starts serving; returns once the port is bound.
  public func start() async throws {
    let router = Router()
    let status = self
    router.get("/") { _, _ in status.response() }
    router.get("/health") { _, _ in status.response() }
    router.get("/metrics") { _, _ in
      Response(
        status: .ok, headers: [.contentType: MetricsRegistry.contentType],
        body: ResponseBody(byteBuffer: ByteBuffer(bytes: await status.metrics.exposition())))
    }
    try await running.start(host: host, port: port) { [host, port, logger = running.logger] onServerRunning in
      Application(
        router: router, configuration: .init(address: .hostname(host, port: port), serverName: "EasyRemote node"),
        onServerRunning: onServerRunning, logger: logger)
    }
  }

  private func response() -> Response {
    let stats = node.stats()
    let connected = node.isConnected
    let body: JSONValue = .object([
      "node_id": .string(node.nodeID), "gateway": .string(node.serverAddress),
      "status": .string(connected ? "connected" : "disconnected"), "functions": .int(Int64(node.functionCount)),
      "executions": .int(Int64(stats.executions)), "failures": .int(Int64(stats.failures)), "running": .int(Int64(stats.running)),
      "tasks_completed": .int(Int64(worker?.completedTasks ?? 0)), "code_tasks": .bool(worker?.runner != nil),
      "started_at": .string(startedAt.formatted(.iso8601)),
      "uptime_seconds": .int(Int64(Date().timeIntervalSince(startedAt))),
    ])
    return JSONBody.response(body, status: connected ? .ok : .serviceUnavailable)
  }

  public func run() async throws {
    try await running.serveUntilShutdown(what: "the status page on \(address ?? "\(host):\(port)")")
  }

  public func stop() async { await running.stop() }
}
