public import EasyRemoteCore
import Foundation
import Hummingbird
public import Logging
import NIOCore
public import ServiceLifecycle
public import TaskCenter

/// A compute node's own status page (`easyremote node --status-port`): `GET /` and
/// `GET /health` answer JSON about the node — whether it is linked to its gateway, its
/// functions and work — on a local port, for people and for the gateway's SSH tunnel.
public final class NodeStatusServer: Service, Sendable {
  public let host: String
  public let port: Int
  private let node: ComputeNode
  private let worker: TaskWorker?
  private let startedAt = Date()
  private let running: RunningApplication

  public init(node: ComputeNode, worker: TaskWorker?, host: String = "127.0.0.1", port: Int, logger: Logger? = nil) {
    self.node = node
    self.worker = worker
    self.host = host
    self.port = port
    self.running = RunningApplication(logger: logger, label: "easyremote.node-status")
  }

  /// `host:port` once started.
  public var address: String? { running.address }

  /// Starts serving; returns once the port is bound.
  public func start() async throws {
    let router = Router()
    let status = self
    router.get("/") { _, _ in status.response() }
    router.get("/health") { _, _ in status.response() }
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
    try? await gracefulShutdown()
    await stop()
  }

  public func stop() async { await running.stop() }
}
