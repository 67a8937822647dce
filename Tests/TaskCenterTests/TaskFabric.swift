import TestSupport
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
  /// The id of each node where a `hold` call or task started, as each starts.
  let holding = Signal()
  /// Opened, every `hold` returns (before, a `hold` ends only when cancelled).
  let release = Gate()
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

  /// A compute node with the seed 002 functions (and `hold`, which holds a worker until the
  /// test opens ``release``, and says so on ``holding``), joined to the task center.
  ///
  /// - Parameters:
  ///   - heartbeat: how often the worker reports its load (on the link's heartbeat).
  ///   - silent: the node sends no heartbeats at all (a frozen machine, to the gateway).
  ///   - linkHeartbeat: how often the node's link heartbeats (they carry its last load).
  ///   - clock: what the worker's load reports wait on (a test moves a ``ManualClock``).
  @discardableResult
  func addNode(
    _ id: String, slots: Int = 1, code: Bool = true, heartbeat: Duration = .milliseconds(200), silent: Bool = false,
    linkHeartbeat: Duration = .seconds(10), runner: CodeRunner = CodeRunner(),
    load: (@Sendable () -> NodeLoad)? = nil, clock: any Clock<Duration> = ContinuousClock()
  ) async throws -> (ComputeNode, TaskWorker) {
    let node = ComputeNode(
      serverAddress: address, nodeID: id, maxWorkers: slots,
      config: .defaults { $0.heartbeat = HeartbeatConfig(enabled: !silent, interval: linkHeartbeat, timeout: linkHeartbeat * 3) },
      transport: transport)
    SeedExamples.register(on: node)
    let (holding, release) = (holding, release)
    node.register("hold") { () async throws -> String in
      holding.fire(id)
      try await release.wait()
      return id
    }
    node.register("whoami") { () -> String in id }
    let worker = TaskWorker(
      node: node, runner: code ? runner : nil, slots: slots,
      resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"), heartbeatInterval: heartbeat,
      load: load ?? { NodeLoad(cpuPercent: 1, memoryPercent: 1) }, clock: clock)
    try await node.start()
    try await worker.start()
    members.withLock { $0.append((node, worker)) }
    return (node, worker)
  }

  /// Waits, on the task center's events, until task `id` has `status`.
  func waitFor(_ id: String, _ status: TaskStatus, limit: Duration = .seconds(30)) async throws -> Bool {
    let events = center.events()
    return try await until(events, limit: limit) { try await center.task(id).status == status }
  }

  /// The gateway's membership changes from now on, as they happen.
  func membershipChanges() -> AsyncStream<MembershipEvent> { server.membershipEvents() }

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
