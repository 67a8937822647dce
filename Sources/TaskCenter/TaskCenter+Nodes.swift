public import EasyRemoteCore
public import Foundation
import NodeComm

// The nodes of the task center: joining, leaving (their tasks requeued), what they look like, and the nodes that pull work over HTTP.
extension TaskCenter {
  /// The nodes that joined the task center (offline ones too), by id.
  public func nodes() -> [TaskNodeInfo] {
    let now = clock()
    return state.withLock { state in
      state.scheduler.nodes.values.sorted { $0.id < $1.id }.map { info(for: $0, state: state, now: now) }
    }
  }

  /// The idle nodes, next to be served first (`GET /stats/nodes/queue`). On a shared store,
  /// every gateway's, in the one order their schedulers follow together (this gateway's as
  /// they are, the others' as the store has them).
  public func queue() async -> [FairScheduler.QueueEntry] {
    let now = clock()
    let local = state.withLock { $0.scheduler.queue(at: now) }
    guard let shared, let rows = try? await shared.idleNodes() else { return local }
    let own = Set(local.map(\.nodeID))
    let others = state.withLock { state in
      rows.filter { $0.gatewayID != shared.gatewayID && $0.free > 0 && !own.contains($0.id) }.map {
        state.scheduler.entry(
          nodeID: $0.id, waitingSince: $0.waitingSince, completed: $0.completed, lastServedAt: $0.lastServedAt, at: now)
      }
    }
    return (local + others).sorted { ($0.score, $0.nodeID) < ($1.score, $1.nodeID) }
  }

  func info(for node: SchedulerNode, state: State, now: Date) -> TaskNodeInfo {
    let status = node.status(at: now, heartbeatTimeout: configuration.scheduler.heartbeatTimeout)
    return TaskNodeInfo(
      nodeID: node.id, status: status,
      resources: node.resources, load: node.load, slots: node.slots, running: node.running,
      completedTasks: node.completed, failedTasks: node.failed, totalComputeTime: node.totalComputeTime,
      lastHeartbeat: node.lastHeartbeat, joinedAt: node.joinedAt, runsCode: state.runsCode.contains(node.id),
      idleSince: status == .idle ? node.waitingSince : nil, isolation: state.isolation[node.id], thresholds: node.thresholds)
  }

  /// A node joined (or came back): it is idle until it is given work. On a shared store it
  /// brings the history it has there, and the other gateways learn of it.
  func join(_ nodeID: String, _ request: TaskNodeJoin) async {
    let now = clock()
    let (wasOnline, info) = state.withLock { state -> (Bool, TaskNodeInfo?) in
      let wasOnline = state.scheduler.status(of: nodeID, at: now).map { $0 != .offline } ?? false
      // Linked: alive while its link is (the link's heartbeats), not by a clock of our own.
      state.scheduler.join(
        nodeID, resources: request.resources, slots: request.slots, thresholds: request.thresholds,
        expiresWithoutHeartbeats: false, at: now)
      if request.runsCode { state.runsCode.insert(nodeID) } else { state.runsCode.remove(nodeID) }
      state.isolation[nodeID] = request.isolation
      return (wasOnline, state.scheduler.nodes[nodeID].map { self.info(for: $0, state: state, now: now) })
    }
    if !wasOnline, let info { emit(.nodeJoined, NodeView(node: info)) }
    logger.info("node joined the task center", metadata: ["peer": "\(nodeID)", "slots": "\(request.slots)"])
    await restoreHistory(of: nodeID)
    kick()
    publishSoon()  // other gateways on a shared store list it
    publishNodesSoon()
  }

  /// A linked node's heartbeat carried its machine's load.
  func loadReported(_ nodeID: String, _ load: NodeLoad) {
    let now = clock()
    let (known, changed) = state.withLock { state -> (Bool, Bool) in
      let before = state.scheduler.status(of: nodeID, at: now)
      let known = state.scheduler.heartbeat(nodeID, load: load, at: now)
      return (known, state.scheduler.status(of: nodeID, at: now) != before)
    }
    if known { kick() }  // the load may have dropped below the thresholds
    if changed { publishNodesSoon() }
  }

  /// A node went away: it leaves the scheduler and its running tasks go back to the queue
  /// (or fail after their last attempt).
  func nodeGone(_ nodeID: String, reason: String, alreadyLeft: Bool = false) async {
    guard alreadyLeft || leaveScheduler(nodeID) else { return }
    await requeueTasks(of: nodeID, reason: reason)
  }

  /// Takes `nodeID` out of scheduling; `false` when it was unknown or already offline.
  func leaveScheduler(_ nodeID: String) -> Bool {
    let left = state.withLock { state -> Bool in
      guard let node = state.scheduler.nodes[nodeID], !node.offline else { return false }
      state.scheduler.leave(nodeID)
      return true
    }
    if left { publishNodesSoon() }  // other gateways stop weighing it
    return left
  }

  /// Queues again the tasks running on `nodeID`, which left; when the store fails, tries
  /// again later (``recoveryLoop()``).
  func requeueTasks(of nodeID: String, reason: String, announce: Bool = true) async {
    if announce { emit(.nodeLeft, JSONValue.object(["node_id": .string(nodeID), "reason": .string(reason)])) }
    do {
      for task in try await store.requeueRunning(on: nodeID, reason: reason, at: clock()) {
        state.withLock { _ = $0.running.removeValue(forKey: task.id) }
        if task.status.isFinal { finished(task) }
      }
    } catch {
      logger.error("could not requeue tasks; it will be tried again", metadata: ["node": "\(nodeID)", "error": "\(error)"])
      state.withLock { $0.unrequeued[nodeID] = reason }
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
  /// the online nodes' slots, at the average run time so far; `nil` while no node is online.
  public func estimatedWait(queued: Int) -> Double? {
    let now = clock()
    let (slots, average) = state.withLock { state -> (Int, Double) in
      let slots = state.scheduler.nodes.values
        .filter { $0.status(at: now, heartbeatTimeout: configuration.scheduler.heartbeatTimeout) != .offline }
        .saturatingSum(\.slots)
      let average = state.finishedCount == 0 ? 1 : state.finishedSeconds / Double(state.finishedCount)
      return (slots, average)
    }
    guard slots > 0 else { return nil }
    return (Double(queued) / Double(slots) * average * 10).rounded() / 10
  }

  /// Counters of tasks and nodes (`GET /stats`).
  public func stats() async throws -> TaskCenterStats {
    let counts = try await store.counts()
    let now = clock()
    let nodes = poolNodes()  // every gateway's, on a shared store
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

  /// Who is speaking over HTTP: the node it names (if any), the key it presents (if any),
  /// and the IP address it speaks from. See ``PullRegistry`` for the rules.
  public struct PullCaller: Sendable {
    public var nodeID: String?
    public var key: String?
    public var address: String?

    public init(nodeID: String?, key: String? = nil, address: String? = nil) {
      self.nodeID = nodeID
      self.key = key
      self.address = address
    }
  }

  /// What a pulling node's heartbeat is answered with.
  public struct PullHeartbeatReply: Sendable, Equatable {
    /// It joined (or came back) with this heartbeat.
    public var joined: Bool
    /// Its key: in the answer to the first heartbeat of its id only.
    public var nodeKey: String?
  }

  /// Whether `nodeID` is a node connected over a link (which nobody may speak for over HTTP).
  func isLinked(_ nodeID: String, _ state: State) -> Bool {
    server.isMember(nodeID) || (state.scheduler.nodes[nodeID] != nil && !state.pull.contains(nodeID))
  }

  /// A heartbeat of a node that pulls its work (`POST /internal/heartbeat`); the first one
  /// joins it. Throws ``TaskCenterError/Code/forbidden`` — changing nothing — for a node
  /// connected over a link, or a key that is missing or wrong.
  @discardableResult
  public func pullHeartbeat(
    _ caller: PullCaller, resources: NodeResources, load: NodeLoad, slots: Int = 1
  ) throws(TaskCenterError) -> PullHeartbeatReply {
    guard let nodeID = caller.nodeID, !nodeID.isEmpty else { throw .invalid("node_id", "node_id is required") }
    try TaskCenterError.bounded { () throws(InputBoundsError) in
      _ = try resources.checked(cores: "resources.cpu_cores", memory: "resources.memory_mb")
      _ = try load.checked(prefix: "current_load")
      try InputBounds.check(slots, InputBounds.slots, field: "slots")
    }
    let now = clock()
    let linked = server.isMember(nodeID)
    let (reply, info) = try state.withLock { state throws(TaskCenterError) -> (PullHeartbeatReply, TaskNodeInfo?) in
      let key = try state.pullRegistry.heartbeat(
        nodeID, key: caller.key, address: caller.address, linked: linked || isLinked(nodeID, state), at: now)
      let known = state.scheduler.status(of: nodeID, at: now)
      if known == nil || known == .offline {
        state.scheduler.join(nodeID, resources: resources, slots: slots, at: now)
        state.pull.insert(nodeID)
        state.runsCode.insert(nodeID)
      }
      state.scheduler.heartbeat(nodeID, load: load, resources: resources, at: now)
      let joined = known == nil || known == .offline
      return (
        PullHeartbeatReply(joined: joined, nodeKey: key),
        joined ? state.scheduler.nodes[nodeID].map { self.info(for: $0, state: state, now: now) } : nil
      )
    }
    if let info { emit(.nodeJoined, NodeView(node: info)) }
    return reply
  }

  /// The next code task for a pulling node, started on it; `nil` when it is not idle or
  /// nothing fits (`GET /internal/task/request`). A caller that names no node is the key-less
  /// node that last sent a heartbeat from its address.
  public func claim(for caller: PullCaller) async throws -> TaskRecord? {
    let now = clock()
    let nodeID = try state.withLock { state throws(TaskCenterError) -> String in
      guard let named = caller.nodeID, !named.isEmpty else {
        guard let anonymous = state.pullRegistry.anonymousNode(at: caller.address) else {
          throw TaskCenterError(
            code: .nodeNotFound, message: "no node has sent a heartbeat from \(caller.address ?? "here"): send one first",
            details: "field: node_id")
        }
        return anonymous
      }
      try state.pullRegistry.authorize(named, key: caller.key, address: caller.address, linked: isLinked(named, state))
      return named
    }
    let known = state.withLock { $0.pull.contains(nodeID) ? $0.scheduler.status(of: nodeID, at: now) : nil }
    guard let status = known else {
      throw TaskCenterError(
        code: .nodeNotFound, message: "node \(nodeID) has not sent a heartbeat", details: "node_id: \(nodeID)")
    }
    guard status == .idle else { return nil }
    for task in try await store.queued(limit: 64) where task.kind == .code {
      let took = state.withLock { $0.scheduler.assign(task.resources, where: { $0.id == nodeID }, at: now) != nil }
      guard took else { continue }
      let started: TaskRecord?
      do {
        started = try await store.start(task.id, on: nodeID, at: now)
      } catch {
        state.withLock { $0.scheduler.unassign(nodeID) }  // nothing started: the slot is free
        throw error
      }
      if let started {
        state.withLock { $0.running[task.id] = nodeID }
        emit(.taskStarted, TaskView(task: started))
        return started
      }
      state.withLock { $0.scheduler.unassign(nodeID) }
    }
    return nil
  }

  /// The outcome of a task a pulling node ran (`POST /internal/task/result`).
  ///
  /// Accepted only from the node the task is running on (with its key, once it has
  /// presented it), and — when `attempt` is given — for the task's current attempt. A report
  /// that names no node is accepted from the key-less node the task was handed to, at the
  /// address it heartbeats from. Anything else is ``TaskCenterError/Code/forbidden`` and
  /// changes nothing. A report for a task that is no longer running returns it as it is.
  @discardableResult
  public func report(
    _ taskID: String, from caller: PullCaller, attempt: Int? = nil, outcome: TaskOutcome
  ) async throws -> TaskRecord {
    try TaskCenterError.bounded { () throws(InputBoundsError) in
      if let attempt { try InputBounds.check(attempt, InputBounds.attempts, field: "attempt") }
      if let seconds = outcome.executionTime { try InputBounds.check(seconds, InputBounds.executionSeconds, field: "execution_time") }
      if let status = outcome.exitStatus { try InputBounds.check(status, InputBounds.exitStatus, field: "exit_status") }
    }
    let current = try await task(taskID)  // unknown → taskNotFound
    guard current.status == .running, let runner = state.withLock({ $0.running[taskID] }) else { return current }
    try state.withLock { state throws(TaskCenterError) in
      if isLinked(runner, state) {
        throw TaskCenterError(
          code: .forbidden, message: "task \(taskID) runs on node \(runner), connected over a link: its result comes over the link",
          details: "task_id: \(taskID)")
      }
      if let named = caller.nodeID, !named.isEmpty {
        guard named == runner else {
          throw TaskCenterError(
            code: .forbidden, message: "task \(taskID) is not running on node \(named)", details: "node_id: \(named)")
        }
        try state.pullRegistry.authorize(named, key: caller.key, address: caller.address, linked: false)
      } else {
        try state.pullRegistry.authorizeAnonymous(for: runner, address: caller.address)
      }
    }
    if let attempt, attempt != current.attempts {
      throw TaskCenterError(
        code: .forbidden, message: "the result is for attempt \(attempt); task \(taskID) is on attempt \(current.attempts)",
        details: "field: attempt")
    }
    // (When the store fails, this throws and nothing changes: the worker may send it again.)
    guard let record = try await store.finish(taskID, with: outcome, by: runner, at: clock()) else {
      return try await task(taskID)  // finished or moved meanwhile → as it is
    }
    state.withLock { state in
      state.running.removeValue(forKey: taskID)
      state.scheduler.release(
        runner, computeTime: outcome.executionTime ?? 0, succeeded: outcome.status == .completed, at: clock())
    }
    finished(record)
    kick()
    return record
  }
}
