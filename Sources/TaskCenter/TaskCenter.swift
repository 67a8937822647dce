public import EasyRemoteCore
public import Foundation
public import Logging
import NodeComm
import Sandbox
public import ServiceLifecycle
import Synchronization

/// The gateway's durable task queue: clients submit tasks, the ``FairScheduler`` picks an idle
/// node for each, and the task is pushed to that node over its existing link at once — no
/// polling. Tasks live in a ``TaskStore`` (SQLite by default), so an accepted task survives a
/// crash of the gateway; a task whose node goes away is queued again.
///
/// Its store is one of ``SQLiteTaskStore`` (a file; the default), ``PostgresTaskStore`` (shared
/// by several gateways) or ``MemoryTaskStore`` (lost with the process: tests, demos).
///
/// ```swift
/// let server = Server(port: 8080)
/// let center = TaskCenter(server: server, store: try SQLiteTaskStore())
/// try await server.start()
/// try await center.start()
/// let task = try await center.submit(.code("print(6 * 7)"))
/// ```
public final class TaskCenter: Sendable {
  public struct Configuration: Sendable {
    public var scheduler: FairScheduler.Configuration
    /// Largest code a task may carry (bytes).
    public var maxCodeBytes: Int
    /// Longest timeout a task may ask for (seconds).
    public var maxTimeout: Double
    public var defaultTimeout: Double
    /// Starts of a task on nodes that went away before it fails.
    public var maxAttempts: Int
    /// How often missed heartbeats are looked for.
    public var expiryInterval: Duration
    /// While the store fails (a full disk): how often what could not be written is tried again.
    public var storeRetryInterval: Duration
    /// How often a `stats` event goes to `/ws/updates` subscribers (calls, tasks, queue, each
    /// node's load: what the console charts), while there are any.
    public var statsInterval: Duration
    /// On a store several gateways share (``SharedTaskStore``): how long this gateway's lease
    /// lasts unless renewed (it is renewed five times as often). When a gateway dies, its
    /// running tasks go back to the queue this long after its last renewal — time enough for
    /// its nodes to rejoin elsewhere and hand in what they finished.
    public var leaseDuration: Duration
    /// Whether nodes that pull over HTTP may work without presenting their key (known by
    /// their address, as the seed's workers are) or must present it (``PullNodePolicy``).
    public var pullNodes: PullNodePolicy = .any

    public init(
      scheduler: FairScheduler.Configuration = .init(heartbeatTimeout: 30), maxCodeBytes: Int = 1 << 20,
      maxTimeout: Double = 86_400, defaultTimeout: Double = 300, maxAttempts: Int = 3,
      expiryInterval: Duration = .seconds(1), storeRetryInterval: Duration = .seconds(1),
      statsInterval: Duration = .seconds(1), leaseDuration: Duration = .seconds(10)
    ) {
      self.leaseDuration = leaseDuration
      self.statsInterval = statsInterval
      self.scheduler = scheduler
      self.maxCodeBytes = maxCodeBytes
      self.maxTimeout = maxTimeout
      self.defaultTimeout = defaultTimeout
      self.maxAttempts = maxAttempts
      self.expiryInterval = expiryInterval
      self.storeRetryInterval = storeRetryInterval
    }
  }

  /// The store, observed: a failed write makes ``storeStatus`` degraded. Not public: tasks
  /// change through the center (``submit(_:)``, ``cancel(_:)``…), never around its scheduler.
  package let store: any TaskStore
  /// The store as shared by several gateways, when it is one, and what the others serve.
  let shared: (any SharedTaskStore)?
  let directory: GatewayDirectory?
  let storeHealth = StoreHealth()
  public let configuration: Configuration
  let server: Server
  /// What its loops sleep on (expiry, recovery, stats, lease, a dispatch in a moment).
  let clock: any Clock<Duration>
  /// The wall time, for what it records and for the heartbeats it reads.
  let now: @Sendable () -> Date
  let logger: Logger
  let state: Mutex<State>
  let kicks: AsyncStream<Void>
  let kicker: AsyncStream<Void>.Continuation
  /// ``kickSoon()``'s requests, served by a loop.
  let soonKicks: AsyncStream<Void>
  let soonKicker: AsyncStream<Void>.Continuation
  /// Nodes that left the task center and whose running tasks are still to be requeued.
  let departed: AsyncStream<(String, String)>
  let departures: AsyncStream<(String, String)>.Continuation
  /// Nodes that joined the task center, to be announced (and their history restored).
  let arrived: AsyncStream<String>
  let arrivals: AsyncStream<String>.Continuation

  /// Ticks after each write to the shared store (``sharedStoreWrites()``).
  let sharedWrites = ChangeFeed()

  /// The ranking of idle nodes; the nodes themselves are the gateway's members (``Membership``).
  let scheduler: FairScheduler

  /// What the task center keeps beside the gateway's registry of nodes: who may speak for the
  /// nodes that pull over HTTP, tasks and their waiters, writes owed to the store, its loops.
  struct State {
    /// Who may speak for each node that pulls work over HTTP.
    var pullRegistry: PullRegistry
    /// How much of each node's reported counters the metrics have shown.
    var feeds: [String: NodeFeeds] = [:]
    /// Finished tasks: how many, their total run time, and when each of the last hour ended.
    var finishedCount = 0
    var finishedSeconds = 0.0
    var finishedTimes: [Date] = []
    /// Running tasks and their nodes.
    var running: [String: String] = [:]
    var waiters: [String: [UUID: Latch]] = [:]
    /// Writes the store still owes, retried until it takes them (after a full disk):
    /// results by task id, and nodes whose running tasks are to be queued again.
    var unrecorded: [String: (nodeID: String, outcome: TaskOutcome)] = [:]
    var unrequeued: [String: String] = [:]
    /// The loops, when ``start()`` runs them (an embedder without a `ServiceGroup`); as a
    /// service, ``run()`` runs them as its children instead.
    var loops: Task<Void, Never>?
    /// Between ``prepare()`` and ``stop()``: membership changes are acted on.
    var active = false
    /// Opened to have the lease loop publish at once (a node joined or left).
    var publishSignal: Latch?
    /// Opened to have this gateway's nodes written to the shared store at once.
    var nodesSignal: Latch?
    /// Whether a ``kickSoon()`` is pending.
    var kickPending = false
    var membershipToken: UInt64?
    var started = false
  }

  /// A task center that keeps its tasks in a SQLite file.
  ///
  /// - Parameters:
  ///   - clock: what its loops sleep on; `now`: the wall time. Tests pass a clock they move,
  ///     with its wall time.
  public convenience init(
    server: Server, store: SQLiteTaskStore, configuration: Configuration = Configuration(),
    clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
    logger: Logger? = nil
  ) {
    self.init(server: server, anyStore: store, configuration: configuration, clock: clock, now: now, logger: logger)
  }

  /// A task center that shares its tasks with the other gateways on a PostgreSQL database.
  /// Run the store as a service given before the task center (it closes after the center has
  /// handed its tasks back), or ``PostgresTaskStore/close()`` it after ``stop()``.
  public convenience init(
    server: Server, store: PostgresTaskStore, configuration: Configuration = Configuration(),
    clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
    logger: Logger? = nil
  ) {
    self.init(server: server, anyStore: store, configuration: configuration, clock: clock, now: now, logger: logger)
  }

  /// A task center whose tasks live in memory only (lost when the process ends).
  public convenience init(
    server: Server, store: MemoryTaskStore, configuration: Configuration = Configuration(),
    clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
    logger: Logger? = nil
  ) {
    self.init(server: server, anyStore: store, configuration: configuration, clock: clock, now: now, logger: logger)
  }

  /// A task center on any store of the package (the gateway command picks one at run time).
  package convenience init(
    server: Server, store: any TaskStore, configuration: Configuration = Configuration(),
    clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
    logger: Logger? = nil
  ) {
    self.init(server: server, anyStore: store, configuration: configuration, clock: clock, now: now, logger: logger)
  }

  private init(
    server: Server, anyStore store: any TaskStore, configuration: Configuration = Configuration(),
    clock: any Clock<Duration> = ContinuousClock(), now: @escaping @Sendable () -> Date = { Date() },
    logger: Logger? = nil
  ) {
    self.server = server
    self.store = ObservedTaskStore(base: store, health: storeHealth, instruments: server.metrics?.instruments)
    self.shared = store as? any SharedTaskStore
    self.directory = shared.map { GatewayDirectory(own: $0.gatewayID) }
    self.configuration = configuration
    self.clock = clock
    self.now = now
    self.logger = logger ?? Logger(label: "easyremote.tasks")
    self.scheduler = FairScheduler(configuration: configuration.scheduler)
    self.state = Mutex(State(pullRegistry: PullRegistry(policy: configuration.pullNodes)))
    (kicks, kicker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    (soonKicks, soonKicker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    (departed, departures) = AsyncStream.makeStream(of: (String, String).self)
    (arrived, arrivals) = AsyncStream.makeStream(of: String.self)
    registerMetrics()
  }

  // MARK: - Lifecycle

  /// Queues again the tasks that were running when the gateway last stopped, starts answering
  /// nodes and clients, and starts dispatching — for embedders that run no `ServiceGroup`;
  /// in one, the center is a service (``run()``). Stop it with ``stop()``.
  public func start() async throws {
    guard try await prepare() else { return }
    // Unstructured on purpose: `start()` returns while the loops go on (an embedder's
    // lifetime, not a task's); `stop()` cancels and awaits them. `run()` needs none.
    let loops = Task { await self.runLoops() }
    state.withLock { $0.loops = loops }
  }

  /// Everything ``start()`` does but the loops; `false` when it was done already.
  @discardableResult
  package func prepare() async throws -> Bool {
    guard state.withLock({ state in defer { state.started = true }; return !state.started }) else { return false }
    if let shared {
      // Shared: what a dead gateway (this one's predecessor too) was running goes back when its
      // lease expires, never another live gateway's.
      try await shared.renewLease(for: configuration.leaseDuration, address: server.address)
      logger.info("gateway holds its lease on the shared store", metadata: ["gateway": "\(shared.gatewayID)"])
      // Calls for functions only another gateway's nodes serve go there.
      if let directory { server.forwarding(to: directory) }
    } else {
      let recovered = try await store.requeueRunning(on: nil, reason: "the gateway restarted", at: now())
      if !recovered.isEmpty { logger.info("tasks requeued after restart", metadata: ["count": "\(recovered.count)"]) }
    }
    registerMethods()
    // The gateway's membership is the one liveness: a node whose link closed (its heartbeats
    // stopped, or it went) is out of scheduling at once, its tasks requeued by the loops (in
    // order, off the gateway's event path); its heartbeats carry its load.
    let token = server.onMembershipChange { [weak self] event in
      guard let self, self.state.withLock({ $0.active }) else { return }
      switch event {
      case .left(let nodeID, let reason):
        // Out of the registry already; a task node's record stays there, offline.
        let why = reason.code == .heartbeatTimeout ? "missed its heartbeats" : "disconnected"
        if self.server.withMembership({ $0.departed[nodeID] != nil }) {
          self.departures.yield((nodeID, "node \(nodeID) \(why)"))
          self.publishNodesSoon()  // other gateways stop weighing it
        }
        self.forgetReported(nodeID)
      case .reported(_, let availabilityChanged):
        self.kick()  // the load may have dropped below the thresholds
        if availabilityChanged { self.publishNodesSoon() }
      case .workerFree:
        self.kick()  // a task waiting for that node's worker can start now
      case .joined:
        self.publishSoon()  // what it serves is published to the other gateways
      case .joinedTasks(let nodeID):
        self.arrivals.yield(nodeID)
      case .leftTasks(let nodeID):
        // It keeps its link; its running tasks go back to the queue.
        self.departures.yield((nodeID, "node \(nodeID) left"))
        self.publishNodesSoon()
      }
      if case .left = event { self.publishSoon() }
    }
    state.withLock { state in
      state.membershipToken = token
      state.active = true
    }
    kick()
    return true
  }

  /// Stops dispatching and hands the running tasks back to the queue: their calls to the
  /// nodes are cancelled (which kills the tasks there) and they are queued again, to run
  /// after the next start. (After a crash instead, the next start requeues them.)
  public func stop() async {
    let (loops, token, active) = state.withLock { state in
      defer {
        state.loops = nil
        state.membershipToken = nil
        state.active = false
      }
      return (state.loops, state.membershipToken, state.active)
    }
    if let token { server.removeMembershipListener(token) }
    loops?.cancel()
    await loops?.value
    if active {
      do {
        let requeued = try await store.requeueRunning(on: nil, reason: "the gateway stopped", at: now())
        state.withLock { $0.running = [:] }
        if !requeued.isEmpty { logger.info("running tasks handed back to the queue", metadata: ["count": "\(requeued.count)"]) }
        try await shared?.releaseLease()
      } catch {
        logger.error("could not hand running tasks back; the next start will", metadata: ["error": "\(error)"])
      }
    }
  }

  func runLoops() async {
    await withDiscardingTaskGroup { group in
      group.addTask { await self.expireLoop() }
      group.addTask { await self.recoveryLoop() }
      group.addTask { await self.statsLoop() }
      if let shared {
        group.addTask { await self.leaseLoop(shared) }
        group.addTask { await self.nodesLoop(shared) }
        group.addTask { await self.noticeLoop(shared) }
      }
      group.addTask {
        // A dispatch asked for in a moment (``kickSoon()``), once however often it is asked.
        for await _ in self.soonKicks {
          guard (try? await self.clock.sleep(for: .milliseconds(200))) != nil else { break }
          self.state.withLock { $0.kickPending = false }
          self.kick()
        }
      }
      group.addTask {
        for await nodeID in self.arrived {
          if Task.isCancelled { break }
          await self.joinedTasks(nodeID)
        }
      }
      group.addTask {
        for await (nodeID, reason) in self.departed {
          if Task.isCancelled { break }
          await self.requeueTasks(of: nodeID, reason: reason)
        }
      }
      for await _ in kicks {
        if Task.isCancelled { break }
        for (task, nodeID) in await dispatch() {
          group.addTask { await self.execute(task, on: nodeID) }
        }
      }
      group.cancelAll()
    }
  }

  func expireLoop() async {
    while !Task.isCancelled {
      try? await clock.sleep(for: configuration.expiryInterval)
      let (timeout, now) = (configuration.scheduler.heartbeatTimeout, self.now())
      let expired = server.withMembership { $0.expire(heartbeatTimeout: timeout, at: now) }
      if !expired.isEmpty { publishNodesSoon() }
      for nodeID in expired { await requeueTasks(of: nodeID, reason: "node \(nodeID) missed its heartbeats") }
    }
  }

  /// While the store fails, tries again what it could not write, and the queue: when space
  /// comes back, everything moves again without a restart.
  func recoveryLoop() async {
    while !Task.isCancelled {
      try? await clock.sleep(for: configuration.storeRetryInterval)
      let (results, requeues) = state.withLock { ($0.unrecorded, $0.unrequeued) }
      guard storeStatus != .healthy || !results.isEmpty || !requeues.isEmpty else { continue }
      for (taskID, owed) in results where !Task.isCancelled {
        state.withLock { _ = $0.unrecorded.removeValue(forKey: taskID) }
        await record(taskID, on: owed.nodeID, owed.outcome)
      }
      for (nodeID, reason) in requeues where !Task.isCancelled {
        state.withLock { _ = $0.unrequeued.removeValue(forKey: nodeID) }
        await requeueTasks(of: nodeID, reason: reason, announce: false)
      }
      kick()
    }
  }

  /// How the store is doing: degraded, with the reason, while its writes fail.
  public var storeStatus: StoreStatus { storeHealth.status }

  /// A tick each time ``storeStatus`` changes (tests wait on it).
  package func storeStatusChanges() -> AsyncStream<Void> { storeHealth.feed.changes() }

  func kick() { kicker.yield() }

  /// Dispatches again in a moment (once, however often it is asked meanwhile).
  func kickSoon() {
    guard state.withLock({ state in defer { state.kickPending = true }; return !state.kickPending }) else { return }
    soonKicker.yield()
  }
}

extension TaskCenter: Service {
  /// Runs as a service: prepares (tasks left running by a previous gateway go back to the
  /// queue), runs its loops — dispatch, expiry, recovery, stats, and on a shared store the
  /// lease, nodes and notices — as children of this task until graceful shutdown or
  /// cancellation, then stops (its running tasks go back to the queue).
  public func run() async throws {
    try await prepare()  // (nothing when prepared or started before the group ran)
    if let loops = state.withLock({ $0.loops }) {
      // Started before the group ran (``start()``): those loops are its work.
      await cancelWhenGracefulShutdown { await withTaskCancellationHandler { await loops.value } onCancel: { loops.cancel() } }
    } else {
      await cancelWhenGracefulShutdown { await self.runLoops() }
    }
    await stop()
  }
}
