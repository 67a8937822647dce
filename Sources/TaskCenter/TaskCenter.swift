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

    public init(
      scheduler: FairScheduler.Configuration = .init(heartbeatTimeout: 30), maxCodeBytes: Int = 1 << 20,
      maxTimeout: Double = 86_400, defaultTimeout: Double = 300, maxAttempts: Int = 3,
      expiryInterval: Duration = .seconds(1)
    ) {
      self.scheduler = scheduler
      self.maxCodeBytes = maxCodeBytes
      self.maxTimeout = maxTimeout
      self.defaultTimeout = defaultTimeout
      self.maxAttempts = maxAttempts
      self.expiryInterval = expiryInterval
    }
  }

  public let store: any TaskStore
  public let configuration: Configuration
  let server: Server
  let clock: @Sendable () -> Date
  let logger: Logger
  private let state: Mutex<State>
  private let kicks: AsyncStream<Void>
  private let kicker: AsyncStream<Void>.Continuation
  /// Nodes that left the scheduler and whose running tasks are still to be requeued.
  private let departed: AsyncStream<(String, String)>
  private let departures: AsyncStream<(String, String)>.Continuation

  private struct State {
    var scheduler: FairScheduler
    var runsCode: Set<String> = []
    /// Nodes that pull work over HTTP instead of having it pushed over a link.
    var pull: Set<String> = []
    /// Finished tasks: how many, their total run time, and when each of the last hour ended.
    var finishedCount = 0
    var finishedSeconds = 0.0
    var finishedTimes: [Date] = []
    /// Running tasks and their nodes.
    var running: [String: String] = [:]
    var waiters: [String: [UUID: Latch]] = [:]
    var subscribers: [UUID: AsyncStream<TaskCenterEvent>.Continuation] = [:]
    var loops: Task<Void, Never>?
    var membershipToken: UInt64?
    var started = false
  }

  public init(
    server: Server, store: any TaskStore, configuration: Configuration = Configuration(),
    clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger? = nil
  ) {
    self.server = server
    self.store = store
    self.configuration = configuration
    self.clock = clock
    self.logger = logger ?? Logger(label: "easyremote.tasks")
    self.state = Mutex(State(scheduler: FairScheduler(configuration: configuration.scheduler)))
    (kicks, kicker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    (departed, departures) = AsyncStream.makeStream(of: (String, String).self)
  }

  // MARK: - Lifecycle

  /// Queues again the tasks that were running when the gateway last stopped, starts answering
  /// nodes and clients, and starts dispatching.
  public func start() async throws {
    guard state.withLock({ state in defer { state.started = true }; return !state.started }) else { return }
    let recovered = try await store.requeueRunning(on: nil, reason: "the gateway restarted", at: clock())
    if !recovered.isEmpty { logger.info("tasks requeued after restart", metadata: ["count": "\(recovered.count)"]) }
    registerMethods()
    // A node whose link closed is out of scheduling at once; its tasks are requeued by the
    // loops (in order, off the gateway's event path).
    let token = server.onMembershipChange { [weak self] event in
      guard let self, case .left(let nodeID) = event, self.state.withLock({ $0.loops != nil }) else { return }
      if self.leaveScheduler(nodeID) { self.departures.yield((nodeID, "node \(nodeID) disconnected")) }
    }
    let loops = Task { await self.runLoops() }
    state.withLock { $0.membershipToken = token }
    state.withLock { $0.loops = loops }
    kick()
  }

  /// Stops dispatching and hands the running tasks back to the queue: their calls to the
  /// nodes are cancelled (which kills the tasks there) and they are queued again, to run
  /// after the next start. (After a crash instead, the next start requeues them.)
  public func stop() async {
    let (loops, subscribers, token) = state.withLock { state in
      defer {
        state.loops = nil
        state.subscribers = [:]
        state.membershipToken = nil
      }
      return (state.loops, Array(state.subscribers.values), state.membershipToken)
    }
    if let token { server.removeMembershipListener(token) }
    loops?.cancel()
    await loops?.value
    if loops != nil {
      do {
        let requeued = try await store.requeueRunning(on: nil, reason: "the gateway stopped", at: clock())
        state.withLock { $0.running = [:] }
        if !requeued.isEmpty { logger.info("running tasks handed back to the queue", metadata: ["count": "\(requeued.count)"]) }
      } catch {
        logger.error("could not hand running tasks back; the next start will", metadata: ["error": "\(error)"])
      }
    }
    for subscriber in subscribers { subscriber.finish() }  // (outside the lock: it calls back)
  }

  private func runLoops() async {
    await withDiscardingTaskGroup { group in
      group.addTask { await self.expireLoop() }
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

  private func expireLoop() async {
    while !Task.isCancelled {
      try? await Task.sleep(for: configuration.expiryInterval)
      let expired = state.withLock { $0.scheduler.expire(at: clock()) }
      for nodeID in expired { await nodeGone(nodeID, reason: "node \(nodeID) missed its heartbeats", alreadyLeft: true) }
    }
  }

  func kick() { kicker.yield() }

  // MARK: - Tasks

  /// Validates and stores a new task; it is queued (and, if a node is idle, started) at once.
  ///
  /// - Throws: ``TaskCenterError`` `invalidRequest` naming the field, `resourceUnavailable`
  ///   when no node could ever run it, `internalError` when the store fails.
  @discardableResult
  public func submit(_ submission: TaskSubmission) async throws -> TaskRecord {
    let task = try validate(submission)
    try await store.insert(task)
    emit(.taskCreated, TaskView(task: task))
    kick()
    return task
  }

  private func validate(_ submission: TaskSubmission) throws -> TaskRecord {
    let timeout = submission.timeout ?? configuration.defaultTimeout
    guard timeout > 0, timeout <= configuration.maxTimeout, timeout.isFinite else {
      throw TaskCenterError.invalid(
        "timeout", "timeout must be more than 0 and at most \(Int(configuration.maxTimeout)) seconds, got \(timeout)")
    }
    let resources = submission.resources ?? ResourceRequest()
    guard resources.cpu > 0, resources.cpu.isFinite else {
      throw TaskCenterError.invalid("resources.cpu", "resources.cpu must be a positive number of cores")
    }
    guard resources.memoryMB > 0 else {
      throw TaskCenterError.invalid("resources.memory", "resources.memory must be a positive number of MiB")
    }
    let maxAttempts = submission.maxAttempts ?? configuration.maxAttempts
    guard maxAttempts >= 1 else { throw TaskCenterError.invalid("max_attempts", "max_attempts must be at least 1") }
    guard state.withLock({ $0.scheduler.couldRun(resources, at: clock()) }) else {
      throw TaskCenterError(
        code: .resourceUnavailable, message: "no node can provide \(resources.cpu) cores and \(resources.memoryMB) MiB",
        details: "resources: cpu \(resources.cpu), memory \(resources.memoryMB)")
    }
    switch (submission.code, submission.function) {
    case (let code?, nil):
      guard !code.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
        throw TaskCenterError.invalid("code", "code is empty")
      }
      guard code.utf8.count <= configuration.maxCodeBytes else {
        throw TaskCenterError.invalid(
          "code", "code is \(code.utf8.count) bytes; the limit is \(configuration.maxCodeBytes)")
      }
      return TaskRecord.code(code, timeout: timeout, resources: resources, maxAttempts: maxAttempts)
    case (nil, let function?):
      guard !server.nodes(serving: function).isEmpty else {
        throw TaskCenterError.invalid("function", "no node serves a function named '\(function)'")
      }
      do {
        return try TaskRecord.function(
          function, args: submission.args ?? [], timeout: timeout, resources: resources, maxAttempts: maxAttempts)
      } catch {
        throw TaskCenterError.invalid("args", "the arguments cannot be encoded: \(error)")
      }
    case (nil, nil):
      throw TaskCenterError.invalid("code", "a task needs either code or a function")
    case (.some, .some):
      throw TaskCenterError.invalid("function", "a task has either code or a function, not both")
    }
  }

  /// The task `id`. - Throws: `taskNotFound`.
  public func task(_ id: String) async throws -> TaskRecord {
    guard let task = try await store.task(id) else { throw TaskCenterError.notFound(id) }
    return task
  }

  public func tasks(status: TaskStatus? = nil, limit: Int = 100, offset: Int = 0) async throws -> [TaskRecord] {
    try await store.tasks(status: status, limit: limit, offset: offset)
  }

  /// Waits until task `id` is final, or `timeout` passes; returns it as it is then.
  public func wait(_ id: String, timeout: Duration) async throws -> TaskRecord {
    let key = UUID()
    let latch = Latch()
    // Registered before the store is read, so a finish in between is not missed.
    state.withLock { $0.waiters[id, default: [:]][key] = latch }
    defer { _ = state.withLock { $0.waiters[id]?.removeValue(forKey: key) } }
    let current = try await task(id)
    if current.status.isFinal { return current }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await latch.wait() }
      group.addTask { try? await Task.sleep(for: timeout) }
      await group.next()
      latch.open()  // ends the other child when the timeout came first
      group.cancelAll()
    }
    return try await task(id)
  }

  /// Cancels task `id`: a queued task never starts; a running one is killed on its node.
  /// A task already final is returned as it is.
  public func cancel(_ id: String) async throws -> TaskRecord {
    let current = try await task(id)
    guard !current.status.isFinal else { return current }
    let outcome = TaskOutcome(status: .cancelled, errorMessage: "cancelled by request")
    guard let cancelled = try await store.finish(id, with: outcome, by: nil, at: clock()) else { return try await task(id) }
    finished(cancelled)
    if current.status == .running, let nodeID = current.nodeID {
      _ = try? await server.call(node: nodeID, TaskMethods.abort, TaskQuery(id: id), as: Empty.self, timeout: .seconds(5))
    }
    return cancelled
  }

  /// Counts of tasks by status.
  public func counts() async throws -> [TaskStatus: Int] { try await store.counts() }

  // MARK: - Nodes

  /// The nodes that joined the task center (offline ones too), by id.
  public func nodes() -> [TaskNodeInfo] {
    let now = clock()
    return state.withLock { state in
      state.scheduler.nodes.values.sorted { $0.id < $1.id }.map { info(for: $0, state: state, now: now) }
    }
  }

  /// The idle nodes, next to be served first (`GET /stats/nodes/queue`).
  public func queue() -> [FairScheduler.QueueEntry] {
    let now = clock()
    return state.withLock { $0.scheduler.queue(at: now) }
  }

  private func info(for node: SchedulerNode, state: State, now: Date) -> TaskNodeInfo {
    TaskNodeInfo(
      nodeID: node.id, status: node.status(at: now, heartbeatTimeout: configuration.scheduler.heartbeatTimeout),
      resources: node.resources, load: node.load, slots: node.slots, running: node.running,
      completedTasks: node.completed, failedTasks: node.failed, totalComputeTime: node.totalComputeTime,
      lastHeartbeat: node.lastHeartbeat, joinedAt: node.joinedAt, runsCode: state.runsCode.contains(node.id))
  }

  /// A node joined (or came back): it is idle until it is given work.
  func join(_ nodeID: String, _ request: TaskNodeJoin) {
    let now = clock()
    let (wasOnline, info) = state.withLock { state -> (Bool, TaskNodeInfo?) in
      let wasOnline = state.scheduler.status(of: nodeID, at: now).map { $0 != .offline } ?? false
      state.scheduler.join(
        nodeID, resources: request.resources, slots: request.slots, thresholds: request.thresholds, at: now)
      if request.runsCode { state.runsCode.insert(nodeID) } else { state.runsCode.remove(nodeID) }
      return (wasOnline, state.scheduler.nodes[nodeID].map { self.info(for: $0, state: state, now: now) })
    }
    if !wasOnline, let info { emit(.nodeJoined, NodeView(node: info)) }
    logger.info("node joined the task center", metadata: ["peer": "\(nodeID)", "slots": "\(request.slots)"])
    kick()
  }

  /// A node went away: it leaves the scheduler and its running tasks go back to the queue
  /// (or fail after their last attempt).
  func nodeGone(_ nodeID: String, reason: String, alreadyLeft: Bool = false) async {
    guard alreadyLeft || leaveScheduler(nodeID) else { return }
    await requeueTasks(of: nodeID, reason: reason)
  }

  /// Takes `nodeID` out of scheduling; `false` when it was unknown or already offline.
  private func leaveScheduler(_ nodeID: String) -> Bool {
    state.withLock { state -> Bool in
      guard let node = state.scheduler.nodes[nodeID], !node.offline else { return false }
      state.scheduler.leave(nodeID)
      return true
    }
  }

  private func requeueTasks(of nodeID: String, reason: String) async {
    emit(.nodeLeft, JSONValue.object(["node_id": .string(nodeID), "reason": .string(reason)]))
    do {
      for task in try await store.requeueRunning(on: nodeID, reason: reason, at: clock()) {
        state.withLock { _ = $0.running.removeValue(forKey: task.id) }
        if task.status.isFinal { finished(task) }
      }
    } catch {
      logger.error("could not requeue tasks", metadata: ["node": "\(nodeID)", "error": "\(error)"])
    }
    kick()
  }

  /// Node `id`. - Throws: `nodeNotFound`.
  public func node(_ id: String) throws -> TaskNodeInfo {
    let now = clock()
    let found = state.withLock { state in state.scheduler.nodes[id].map { info(for: $0, state: state, now: now) } }
    guard let node = found else {
      throw TaskCenterError(code: .nodeNotFound, message: "node \(id) does not exist", details: "node_id: \(id)")
    }
    return node
  }

  /// Seconds a task submitted now may wait before it starts: the queue ahead of it shared by
  /// the online nodes' slots, at the average run time so far.
  public func estimatedWait(queued: Int) -> Double {
    let now = clock()
    let (slots, average) = state.withLock { state -> (Int, Double) in
      let slots = state.scheduler.nodes.values
        .filter { $0.status(at: now, heartbeatTimeout: configuration.scheduler.heartbeatTimeout) != .offline }
        .reduce(0) { $0 + $1.slots }
      let average = state.finishedCount == 0 ? 1 : state.finishedSeconds / Double(state.finishedCount)
      return (slots, average)
    }
    guard slots > 0 else { return -1 }
    return (Double(queued) / Double(slots) * average * 10).rounded() / 10
  }

  /// Counters of tasks and nodes (`GET /stats`).
  public func stats() async throws -> TaskCenterStats {
    let counts = try await store.counts()
    let now = clock()
    let nodes = nodes()
    let (finished, seconds, lastHour) = state.withLock { state in
      (state.finishedCount, state.finishedSeconds, state.finishedTimes.filter { now.timeIntervalSince($0) <= 3600 }.count)
    }
    return TaskCenterStats(
      tasks: .init(
        total: counts.values.reduce(0, +), queued: counts[.queued] ?? 0, running: counts[.running] ?? 0,
        completed: counts[.completed] ?? 0, failed: counts[.failed] ?? 0, timeout: counts[.timeout] ?? 0,
        cancelled: counts[.cancelled] ?? 0, averageSeconds: finished == 0 ? 0 : seconds / Double(finished)),
      nodes: .init(
        total: nodes.count, idle: nodes.filter { $0.status == .idle }.count,
        busy: nodes.filter { $0.status == .busy }.count, offline: nodes.filter { $0.status == .offline }.count),
      throughput: .init(
        tasksPerHour: lastHour, computeHours: nodes.reduce(0) { $0 + $1.totalComputeTime } / 3600))
  }

  // MARK: - Nodes that pull over HTTP

  /// A heartbeat of a node that pulls its work (`POST /internal/heartbeat`); the first one
  /// joins it. Returns whether the node is new.
  @discardableResult
  public func pullHeartbeat(_ nodeID: String, resources: NodeResources, load: NodeLoad, slots: Int = 1) -> Bool {
    let now = clock()
    let (joined, info) = state.withLock { state -> (Bool, TaskNodeInfo?) in
      let known = state.scheduler.status(of: nodeID, at: now)
      if known == nil || known == .offline {
        state.scheduler.join(nodeID, resources: resources, slots: slots, at: now)
        state.pull.insert(nodeID)
        state.runsCode.insert(nodeID)
      }
      state.scheduler.heartbeat(nodeID, load: load, resources: resources, at: now)
      let joined = known == nil || known == .offline
      return (joined, joined ? state.scheduler.nodes[nodeID].map { self.info(for: $0, state: state, now: now) } : nil)
    }
    if let info { emit(.nodeJoined, NodeView(node: info)) }
    return joined
  }

  /// The next code task for a pulling node, started on it; `nil` when it is not idle or
  /// nothing fits (`GET /internal/task/request`).
  public func claim(for nodeID: String) async throws -> TaskRecord? {
    let now = clock()
    let known = state.withLock { $0.pull.contains(nodeID) ? $0.scheduler.status(of: nodeID, at: now) : nil }
    guard let status = known else {
      throw TaskCenterError(
        code: .nodeNotFound, message: "node \(nodeID) has not sent a heartbeat", details: "node_id: \(nodeID)")
    }
    guard status == .idle else { return nil }
    for task in try await store.queued(limit: 64) where task.kind == .code {
      let took = state.withLock { $0.scheduler.assign(task.resources, where: { $0.id == nodeID }, at: now) != nil }
      guard took else { continue }
      if let started = try await store.start(task.id, on: nodeID, at: now) {
        state.withLock { $0.running[task.id] = nodeID }
        emit(.taskStarted, TaskView(task: started))
        return started
      }
      state.withLock { $0.scheduler.unassign(nodeID) }
    }
    return nil
  }

  /// The outcome of a task a pulling node ran (`POST /internal/task/result`).
  @discardableResult
  public func report(_ taskID: String, from nodeID: String, outcome: TaskOutcome) async throws -> TaskRecord {
    guard let record = try await store.finish(taskID, with: outcome, by: nodeID, at: clock()) else {
      return try await task(taskID)  // unknown → taskNotFound; already final or moved → as it is
    }
    state.withLock { state in
      state.running.removeValue(forKey: taskID)
      state.scheduler.release(
        nodeID, computeTime: outcome.executionTime ?? 0, succeeded: outcome.status == .completed, at: clock())
    }
    finished(record)
    kick()
    return record
  }

  // MARK: - Dispatch

  /// Starts as many queued tasks as there are idle nodes that fit them, oldest first.
  private func dispatch() async -> [(TaskRecord, String)] {
    guard state.withLock({ $0.scheduler.hasIdleNode(at: clock()) }) else { return [] }
    let batch = 512
    let queued: [TaskRecord]
    do {
      queued = try await store.queued(limit: batch)
    } catch {
      logger.error("could not read the queue", metadata: ["error": "\(error)"])
      return []
    }
    // Choose a node for as many tasks as fit, then record every start at once (they share
    // one group commit).
    var chosen: [(TaskRecord, String)] = []
    let now = clock()
    var serving: [String: Set<String>] = [:]
    for task in queued {
      var eligible: Set<String>?
      if task.kind == .function {
        let function = task.function ?? ""
        if serving[function] == nil { serving[function] = server.nodes(serving: function) }
        eligible = serving[function]
      }
      // One capacity: a node is eligible only while its calls and tasks leave a worker free
      // (the gateway's membership), and the worker is reserved there before the task starts.
      let server = self.server
      let pick = state.withLock { state -> String? in
        state.scheduler.assign(task.resources, where: { node in
          if state.pull.contains(node.id) || !server.hasFreeWorker(node.id) { return false }
          if let eligible { return eligible.contains(node.id) }
          return state.runsCode.contains(node.id)
        }, at: now)
      }
      if let nodeID = pick, !server.reserveTask(on: nodeID) {
        state.withLock { $0.scheduler.unassign(nodeID) }  // a call took the worker meanwhile
      } else if let nodeID = pick {
        chosen.append((task, nodeID))
      } else if !state.withLock({ $0.scheduler.hasIdleNode(at: now) }) {
        break
      }
    }
    let store = self.store
    let picks = chosen
    let started = await withTaskGroup(of: (Int, TaskRecord?).self) { group -> [Int: TaskRecord] in
      for index in picks.indices {
        let (taskID, nodeID) = (picks[index].0.id, picks[index].1)
        group.addTask {
          let record = try? await store.start(taskID, on: nodeID, at: now)
          return (index, record ?? nil)
        }
      }
      var started: [Int: TaskRecord] = [:]
      for await (index, record) in group {
        if let record { started[index] = record }
      }
      return started
    }
    var launches: [(TaskRecord, String)] = []
    for index in picks.indices {
      let nodeID = picks[index].1
      guard let record = started[index] else {
        // Cancelled meanwhile, or the store failed: the slot and the worker go back.
        state.withLock { $0.scheduler.unassign(nodeID) }
        server.finishTask(on: nodeID)
        continue
      }
      state.withLock { $0.running[record.id] = nodeID }
      emit(.taskStarted, TaskView(task: record))
      launches.append((record, nodeID))
    }
    if queued.count == batch && !launches.isEmpty { kick() }
    return launches
  }

  /// Pushes `task` to its node and records how it ended.
  private func execute(_ task: TaskRecord, on nodeID: String) async {
    var outcome: TaskOutcome?
    let answer: Result<TaskOutcome, any Error>
    do {
      answer = .success(
        try await server.call(
          node: nodeID, TaskMethods.run, TaskAssignment(task), as: TaskOutcome.self, serializer: BinarySerializer.name,
          timeout: .seconds(task.timeout + 30)))
    } catch {
      answer = .failure(error)
    }
    server.finishTask(on: nodeID)  // the node's worker is free again, whatever happened
    switch answer {
    case .success(let value): outcome = value
    case .failure(let error):
      if Task.isCancelled { return }  // the gateway is stopping: the task stays running, requeued at start
      let failure = EasyRemoteError(error, function: task.function)
      switch failure.code {
      case .nodeLost, .connectionFailed:
        await nodeGone(nodeID, reason: "node \(nodeID) was lost while running the task")
        return
      case .timedOut:
        outcome = TaskOutcome(status: .timeout, errorMessage: "node \(nodeID) did not answer in time")
      default:
        outcome = .failed("\(failure.code): \(failure.message)")
      }
    }
    guard let outcome else { return }
    state.withLock { state in
      state.running.removeValue(forKey: task.id)
      state.scheduler.release(
        nodeID, computeTime: outcome.executionTime ?? 0, succeeded: outcome.status == .completed, at: clock())
    }
    do {
      if outcome.status == .cancelled {
        // Not cancelled by request (that made the task final already): the node stopped and
        // handed the task back. Queue it again.
        let reason = "node \(nodeID) stopped while running the task"
        if let record = try await store.requeue(task.id, from: nodeID, reason: reason, at: clock()), record.status.isFinal {
          finished(record)
        }
      } else if let record = try await store.finish(task.id, with: outcome, by: nodeID, at: clock()) {
        finished(record)
      }
    } catch {
      logger.error("could not record a result", metadata: ["task": "\(task.id)", "error": "\(error)"])
    }
    kick()
  }

  /// Announces a final task and wakes those waiting for it.
  private func finished(_ task: TaskRecord) {
    let now = clock()
    state.withLock { state in
      state.finishedCount += 1
      state.finishedSeconds += task.executionTime ?? 0
      state.finishedTimes.append(now)
      if let first = state.finishedTimes.first, now.timeIntervalSince(first) > 3600 {
        state.finishedTimes.removeAll { now.timeIntervalSince($0) > 3600 }
      }
    }
    emit(task.status == .completed ? .taskCompleted : .taskFailed, TaskView(task: task))
    let waiters = state.withLock { $0.waiters.removeValue(forKey: task.id) ?? [:] }
    for waiter in waiters.values { waiter.open() }
  }

  // MARK: - Events

  /// Events as they happen. A subscriber more than `buffer` events behind is dropped (its
  /// sequence ends), so a slow reader never holds the task center back.
  public func events(buffer: Int = 1024) -> AsyncStream<TaskCenterEvent> {
    let (stream, continuation) = AsyncStream.makeStream(
      of: TaskCenterEvent.self, bufferingPolicy: .bufferingOldest(buffer))
    let key = UUID()
    continuation.onTermination = { [weak self] _ in
      _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
    }
    state.withLock { $0.subscribers[key] = continuation }
    return stream
  }

  /// How many subscribers ``events(buffer:)`` has now (tests wait on it).
  package var eventSubscriberCount: Int { state.withLock { $0.subscribers.count } }

  private func emit(_ kind: TaskCenterEvent.Kind, _ data: some Encodable) {
    let subscribers = state.withLock { $0.subscribers }
    guard !subscribers.isEmpty else { return }
    guard let event = try? TaskCenterEvent(event: kind, data: data) else {
      logger.error("an event could not be encoded", metadata: ["event": "\(kind.rawValue)"])
      return
    }
    for (key, subscriber) in subscribers {
      if case .dropped = subscriber.yield(event) {
        subscriber.finish()
        _ = state.withLock { $0.subscribers.removeValue(forKey: key) }
      }
    }
  }

  // MARK: - Methods over links

  private func registerMethods() {
    let gateway = server
    gateway.serve(TaskMethods.submit) { [weak self] (submission: TaskSubmission, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.submit(submission) }
    }
    gateway.serve(TaskMethods.get) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.task(query.id) }
    }
    gateway.serve(TaskMethods.wait) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire {
        _ = try await self.task(query.id)
        return try await self.wait(query.id, timeout: .seconds(min(max(query.timeout ?? 30, 0), 3600)))
      }
    }
    gateway.serve(TaskMethods.list) { [weak self] (query: TaskListQuery, _) -> [TaskRecord] in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.tasks(status: query.status, limit: query.limit, offset: query.offset) }
    }
    gateway.serve(TaskMethods.cancel) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.cancel(query.id) }
    }
    gateway.serve(TaskMethods.nodes) { [weak self] (_: Empty, _) -> [TaskNodeInfo] in
      self?.nodes() ?? []
    }
    gateway.serve(TaskMethods.join) { [weak self] (request: TaskNodeJoin, context) -> Empty in
      self?.join(context.callerID, request)
      return Empty()
    }
    gateway.serve(TaskMethods.leave) { [weak self] (_: Empty, context) -> Empty in
      await self?.nodeGone(context.callerID, reason: "node \(context.callerID) left")
      return Empty()
    }
    gateway.serve(TaskMethods.heartbeat) { [weak self] (beat: TaskNodeHeartbeat, context) -> HeartbeatReply in
      guard let self else { throw Self.gone }
      let now = self.clock()
      let (known, revived) = self.state.withLock { state -> (Bool, Bool) in
        let wasOffline = state.scheduler.status(of: context.callerID, at: now) == .offline
        let known = state.scheduler.heartbeat(context.callerID, load: beat.load, at: now)
        return (known, known && wasOffline)
      }
      if known { self.kick() }  // the load may have dropped below the thresholds
      if revived {
        if let info = self.nodes().first(where: { $0.nodeID == context.callerID }) {
          self.emit(.nodeJoined, NodeView(node: info))
        }
      }
      return HeartbeatReply(known: known)
    }
  }

  private static var gone: NodeError { TaskCenterError(code: .internalError, message: "the task center is gone").nodeError }

  private func wire<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch let error as TaskCenterError {
      throw error.nodeError
    }
  }
}

extension TaskCenter: Service {
  /// Runs as a service: starts, waits for graceful shutdown or cancellation, stops.
  public func run() async throws {
    try await start()
    try? await gracefulShutdown()
    await stop()
  }
}
