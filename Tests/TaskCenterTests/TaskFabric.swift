import EasyRemote
import ExampleFunctions
import Foundation
import NodeComm
import Sandbox
import Synchronization
import TaskCenter

/// A gateway with its task center (SQLite in a temporary file) and task-running nodes, over
/// the memory transport unless the test gives another (gRPC on loopback).
final class TaskFabric: Sendable {
  let server: Server
  let center: TaskCenter
  let databasePath: String
  let transport: any Transport
  private let members = Mutex<[(ComputeNode, TaskWorker)]>([])
  private let clients = Mutex<[Client]>([])

  /// Link heartbeats for a test of silence: every 200 ms, a link silent for 6 s closes. (Only
  /// there: under load a whole test process was seen to stall for over 3 s, a join included.)
  static let quickSilence = HeartbeatConfig(enabled: true, interval: .milliseconds(200), timeout: .seconds(6))

  /// (The scheduler's heartbeat timeout is for nodes that pull over HTTP.)
  static let configuration = TaskCenter.Configuration(
    scheduler: .init(heartbeatTimeout: 3), maxCodeBytes: 10_000, maxTimeout: 600, expiryInterval: .milliseconds(100))

  init(
    databasePath: String = temporaryDatabasePath(), port: Int = 0,
    configuration: TaskCenter.Configuration = TaskFabric.configuration, token: String? = nil,
    serializer: String = JSONSerializer.name, transport: any Transport = MemoryTransport(),
    linkHeartbeat: HeartbeatConfig = .defaults, metrics: MetricsRegistry? = MetricsRegistry(),
    store: (any TaskStore)? = nil
  ) async throws {
    self.databasePath = databasePath
    self.transport = transport
    server = Server(
      port: port,
      config: .defaults {
        $0.authToken = token
        $0.serialization.defaultSerializer = serializer
        $0.heartbeat = linkHeartbeat
      }, metrics: metrics, transport: transport)
    center = TaskCenter(
      server: server, store: try store ?? SQLiteTaskStore(path: databasePath), configuration: configuration)
    try await server.start()
    try await center.start()
  }

  var address: String { server.address ?? "" }

  /// A compute node with the seed 002 functions (and `hold`, which waits `seconds`), joined to the task center.
  ///
  /// - Parameters:
  ///   - heartbeat: how often the worker reports its load (on the link's heartbeat).
  ///   - silent: the node sends no heartbeats at all (a frozen machine, to the gateway).
  ///   - linkHeartbeat: how often the node's link heartbeats (they carry its last load).
  @discardableResult
  func addNode(
    _ id: String, slots: Int = 1, code: Bool = true, heartbeat: Duration = .milliseconds(200), silent: Bool = false,
    linkHeartbeat: Duration = .seconds(10), runner: CodeRunner = CodeRunner(),
    load: (@Sendable () -> NodeLoad)? = nil
  ) async throws -> (ComputeNode, TaskWorker) {
    let node = ComputeNode(
      serverAddress: address, nodeID: id, maxWorkers: slots,
      config: .defaults { $0.heartbeat = HeartbeatConfig(enabled: !silent, interval: linkHeartbeat, timeout: linkHeartbeat * 3) },
      transport: transport)
    SeedExamples.register(on: node)
    node.register("hold", parameters: ["seconds"]) { (seconds: Double) async throws -> String in
      try await Task.sleep(for: .seconds(seconds))
      return id
    }
    node.register("whoami") { () -> String in id }
    let worker = TaskWorker(
      node: node, runner: code ? runner : nil, slots: slots,
      resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"), heartbeatInterval: heartbeat,
      load: load ?? { NodeLoad(cpuPercent: 1, memoryPercent: 1) })
    try await node.start()
    try await worker.start()
    members.withLock { $0.append((node, worker)) }
    return (node, worker)
  }

  func client() -> Client {
    let client = Client(serverAddress: address, timeout: .seconds(20), transport: transport)
    clients.withLock { $0.append(client) }
    return client
  }

  /// Stops the gateway (its running tasks go back to the queue), leaving the nodes running.
  func stopGateway() async {
    await center.stop()
    await server.stop()
  }

  func stop() async {
    for client in clients.withLock({ $0 }) { await client.close() }
    for (node, worker) in members.withLock({ $0 }) {
      await worker.stop()
      await node.stop()
    }
    await center.stop()
    await server.stop()
  }
}

/// Polls `condition` (for tests only) until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
  let deadline = ContinuousClock.now + timeout
  while ContinuousClock.now < deadline {
    if try await condition() { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return try await condition()
}
