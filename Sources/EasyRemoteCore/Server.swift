public import EasyRemoteMetrics
public import Foundation
public import Logging
public import NodeComm
public import ServiceLifecycle
import Synchronization

/// The gateway: compute nodes dial it and register functions, clients dial it and call them.
///
/// The gateway is a node of the node layer. A call travels client → gateway → the chosen
/// node → back over the same links; nothing polls.
///
/// ```swift
/// let server = Server(port: 8080)   // gRPC, from the `EasyRemote` module
/// // or, in one process: Server(transport: MemoryTransport())
/// try await server.start()
/// print(server.stats().nodes)
/// ```
public final class Server: Sendable {
  /// The gateway's node id; compute nodes and clients call it by this name.
  public static let nodeID = "gateway"

  public let host: String
  public let port: Int
  /// Calls in flight through the gateway at most (calls and streams it routes, from
  /// clients and the HTTP API); nil for no bound.
  public let maxWorkers: Int?
  package let node: Node
  /// The `maxWorkers` places; nil when unbounded.
  let workers: WorkerGate?
  /// The gateway's metrics (`GET /metrics`); nil when they are off.
  public let metrics: MetricsRegistry?
  /// Its per-call instruments.
  let callMetrics: CallMetrics?
  let state: Mutex<State>
  /// The one event stream (``events(buffer:)``).
  let hub = EventHub()
  /// Told of each change of its membership, its workers' counts and its running (``changes()``).
  let feed: ChangeFeed

  /// Everything the gateway knows, behind one lock: the membership (the one list of nodes)
  /// and the counters.
  /// Other gateways calls can be forwarded to, and a client per gateway dialled.
  let peering = Mutex<Peering>(Peering())

  struct Peering {
    var peers: (any GatewayPeers)?
    var clients: [String: Client] = [:]
    /// Calls and streams forwarded to each peer and not yet ended.
    var inFlight: [String: Int] = [:]
    /// Breaks ties between peers, in turn.
    var turn = 0
    var stopped = false
  }

  struct State {
    var membership: Membership
    var totalRequests = 0
    var failedRequests = 0
    var perFunction: [String: (calls: Int, failures: Int, totalMilliseconds: Double)] = [:]
    /// Nodes that joined before (a join of one of these is a reconnect), bounded.
    var seenNodes: Set<String> = []
    var listeners = Listeners<MembershipEvent>()
  }

  /// - Parameters:
  ///   - host: the address to listen on; loopback unless you mean to serve other machines.
  ///   - port: the port; 0 picks a free one (read ``address`` after ``start()``).
  ///   - balancing: how the next node is picked among those serving a function.
  ///   - maxWorkers: calls in flight through the gateway at most (seed 000's `maxWorkers`);
  ///     beyond it calls wait, up to `queueLimit` (default 16 × `maxWorkers`), then are
  ///     refused `busy`. `config.maxWorkers` when nil; unbounded when both are nil.
  ///   - config: node-layer settings (heartbeat, limits, token).
  ///   - metrics: where the gateway's metrics go (a fresh Prometheus registry by default;
  ///     the HTTP API serves it at `/metrics`); nil turns them off.
  ///   - transport: what carries the links: a `MemoryTransport` in one process, the gRPC
  ///     transport between machines (the `EasyRemote` module's `Server(host:port:)` picks it).
  ///   - clock: what the links' heartbeats keep time on (tests pass one they move).
  public init(
    host: String = "127.0.0.1", port: Int = 8080, balancing: Balancing = .leastInFlight, maxWorkers: Int? = nil,
    queueLimit: Int? = nil, config: NodeConfig = .defaults, metrics: MetricsRegistry? = MetricsRegistry(),
    transport: any Transport, logger: Logger? = nil, clock: any Clock<Duration> = ContinuousClock()
  ) {
    self.host = host
    self.port = port
    let maxWorkers = (maxWorkers ?? config.maxWorkers).map { max(1, $0) }
    self.maxWorkers = maxWorkers
    let feed = ChangeFeed()
    self.feed = feed
    self.workers = maxWorkers.map {
      WorkerGate(limit: $0, queueLimit: queueLimit ?? $0 * 16, feed: feed, timeline: Timeline(clock))
    }
    var config = config
    config.transport.listen = true
    config.transport.host = host
    config.transport.port = port
    self.metrics = metrics
    self.callMetrics = metrics.map { CallMetrics(instruments: $0.instruments) }
    self.node = Node(
      id: Self.nodeID, config: config, transport: transport, logger: logger, metricsFactory: metrics?.factory,
      clock: clock)
    self.state = Mutex(State(membership: Membership(strategy: balancing.strategy)))
    registerMethods()
    registerMetrics()
  }

  /// How the gateway spreads calls over the nodes serving a function.
  public struct Balancing: Sendable {
    let strategy: Membership.Strategy
    /// The node with the fewest calls in flight (the default).
    public static let leastInFlight = Balancing(strategy: .leastInFlight)
    /// Each node in turn.
    public static let roundRobin = Balancing(strategy: .roundRobin)
  }

  /// Starts listening; returns once the gateway accepts links.
  public func start() async throws {
    node.on(.disconnect) { [weak self] event in
      guard case .disconnect(let peer, let reason) = event, let self else { return }
      let left = self.state.withLock { state -> [String]? in
        guard state.membership.members[peer]?.attachment == .link, let member = state.membership.leave(peer) else {
          return nil
        }
        return state.membership.unserved(member.functions.keys)
      }
      guard let unserved = left else { return }
      self.forgetFunctions(unserved)
      self.node.logger.info("node left", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
      self.announce(.left(nodeID: peer, reason: reason))
    }
    // The link's heartbeat is a node's one sign of life; what it carries (a task worker's
    // load and counters) goes into its record.
    node.on(.status) { [weak self] event in
      guard case .status(let peer, let payload) = event, let self, !payload.isEmpty,
        let report = try? JSONDecoder().decode(NodeReport.self, from: payload)
      else { return }
      let changed = self.state.withLock { state -> Bool? in
        let before = state.membership.members[peer]?.canTakeTask
        guard state.membership.report(peer, report.clamped, at: Date()) else { return nil }
        return state.membership.members[peer]?.canTakeTask != before
      }
      if let changed { self.announce(.reported(nodeID: peer, availabilityChanged: changed)) }
    }
    try await node.start()
    feed.changed()
  }


  /// Stops: in-flight calls get the grace period, then every link closes.
  public func stop() async {
    let peers = peering.withLock { peering in
      defer { peering.clients = [:] }
      peering.stopped = true
      return Array(peering.clients.values)
    }
    for client in peers { await client.close() }
    await node.stop()
    hub.finishAll()
    feed.changed()
  }

  /// Returns once the gateway has stopped.
  public func waitUntilStopped() async { await node.waitUntilStopped() }

  /// The `host:port` compute nodes and clients dial.
  public var address: String? { node.listeningAddress }
  public var isRunning: Bool { node.isRunning }
  /// Connected compute nodes.
  public var nodeCount: Int { state.withLock { $0.membership.linked.count } }
  /// Distinct functions served.
  public var functionCount: Int { state.withLock { $0.membership.functions.count } }

  /// Counters of the gateway.
  public func stats() -> GatewayStats {
    let waiting = workers?.queued ?? 0
    return state.withLock { state in
      GatewayStats(
        nodes: state.membership.linked.count, functions: state.membership.functions.count,
        totalRequests: state.totalRequests, failedRequests: state.failedRequests,
        inFlight: state.membership.callsInFlight,
        perFunction: state.perFunction.mapValues { entry in
          GatewayStats.FunctionStats(
            calls: entry.calls, failures: entry.failures,
            averageMilliseconds: entry.calls == 0 ? 0 : entry.totalMilliseconds / Double(entry.calls))
        }, maxWorkers: maxWorkers, waiting: waiting)
    }
  }

  /// Everything the gateway knows now, read under one lock (for metrics and consoles).
  public func snapshot(at now: Date = Date()) -> GatewaySnapshot {
    state.withLock { state in
      let served = state.membership.functions
      var names = Set(served.map(\.name))
      names.formUnion(state.perFunction.keys)
      let byName = Dictionary(uniqueKeysWithValues: served.map { ($0.name, $0) })
      let functions = names.sorted().map { name -> GatewaySnapshot.Function in
        let counted = state.perFunction[name] ?? (0, 0, 0)
        return GatewaySnapshot.Function(
          name: name, nodes: byName[name]?.nodes ?? [], streaming: byName[name]?.streaming ?? false,
          calls: counted.calls, failures: counted.failures,
          averageMilliseconds: counted.calls == 0 ? 0 : counted.totalMilliseconds / Double(counted.calls))
      }
      let nodes = state.membership.linked.sorted { $0.id < $1.id }.map { $0.info(at: now) }
      return GatewaySnapshot(
        takenAt: now, nodes: nodes, functions: functions, totalRequests: state.totalRequests,
        failedRequests: state.failedRequests)
    }
  }

  /// The functions served, with their nodes.
  ///
  /// With other gateways to forward to (``forwarding(to:)``), theirs too (``localFunctions()``:
  /// this gateway's alone): a function served
  /// here and there lists the nodes of both.
  public func functions() -> [FunctionInfo] {
    let local = state.withLock { $0.membership.functions }
    guard let peers = peering.withLock({ $0.peers }) else { return local }
    return FunctionInfo.merged(local + peers.functions())
  }

  /// The functions of this gateway's own nodes.
  public func localFunctions() -> [FunctionInfo] { state.withLock { $0.membership.functions } }

  /// The connected compute nodes; with other gateways to forward to (``forwarding(to:)``),
  /// theirs too, each with its ``NodeInfo/gateway``.
  public func nodes() -> [NodeInfo] {
    let local = state.withLock { $0.membership.nodeInfos(at: Date()) }
    guard let peers = peering.withLock({ $0.peers }) else { return local }
    let ids = Set(local.map(\.id))
    return local + peers.nodes().filter { !ids.contains($0.id) }
  }

  /// This gateway's own nodes.
  public func localNodes() -> [NodeInfo] { state.withLock { $0.membership.nodeInfos(at: Date()) } }

  // MARK: - Methods

  private func registerMethods() {
    node.register(Methods.announce) { [weak self] (announcement: NodeAnnouncement, context) -> Empty in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      guard announcement.nodeID == context.callerID else {
        throw EasyRemoteError(code: .invalidArguments, message: "a node may only announce itself").nodeError
      }
      if let worker = announcement.worker {
        // Checked at the door: a node that claims Int.max slots must not skew the pool.
        do throws(InputBoundsError) {
          _ = try worker.checked()
        } catch {
          throw EasyRemoteError(code: .invalidArguments, message: error.message).nodeError
        }
      }
      let (change, unserved) = self.state.withLock { state -> (Membership.JoinChange, [String]) in
        let before = state.membership.members[announcement.nodeID]?.functions.keys.map { $0 } ?? []
        let change = state.membership.join(announcement, at: Date())
        return (change, state.membership.unserved(before))
      }
      self.forgetFunctions(unserved)  // functions it no longer offers, if nobody else does
      self.node.logger.info(
        "node registered",
        metadata: [
          "peer": "\(announcement.nodeID)", "functions": "\(announcement.functions.count)",
          "task-slots": "\(announcement.worker?.taskSlots ?? 0)",
        ])
      if change.isNew { self.announce(.joined(nodeID: announcement.nodeID)) }
      if change.joinedTasks { self.announce(.joinedTasks(nodeID: announcement.nodeID)) }
      if change.leftTasks { self.announce(.leftTasks(nodeID: announcement.nodeID)) }
      return Empty()
    }
    node.register(Methods.functions) { [weak self] (_: Empty, _) in self?.functions() ?? [] }
    node.register(Methods.nodes) { [weak self] (_: Empty, _) in self?.nodes() ?? [] }
    node.register(Methods.stats) { [weak self] (_: Empty, _) -> GatewayStats in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      return self.stats()
    }
    node.register(Methods.health) { [weak self] (_: Empty, _) in
      HealthReport(status: "healthy", nodes: self?.nodeCount ?? 0, functions: self?.functionCount ?? 0)
    }
    node.register(Methods.execute) { [weak self] payload, context in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      return try await self.execute(payload, context: context)
    }
    node.registerStream(Methods.stream) { [weak self] payload, context, sink in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      try await self.forwardStream(payload, context: context, sink: sink)
    }
  }
}

extension Server: Service {
  /// Runs the gateway as a service: starts it, waits for graceful shutdown (SIGTERM/SIGINT
  /// in a `ServiceGroup`) or cancellation, then stops it. When its listener fails (it can
  /// accept no more links) it stops and throws ``NodeError`` `listener_failed`: the group
  /// stops, and the process exits non-zero with the reason.
  /// Calling ``start()`` first (to know the address before the group runs) is fine.
  public func run() async throws {
    if !isRunning { try await start() }
    try await node.runUntilShutdown(stop: { await self.stop() })
  }
}
