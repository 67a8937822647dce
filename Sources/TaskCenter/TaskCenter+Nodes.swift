public import EasyRemoteCore
import Foundation
import NodeComm

// The nodes of the task center: joining, leaving (their tasks requeued), what they look like, and the nodes that pull work over HTTP.
extension TaskCenter {
  /// The nodes that joined the task center (offline ones too), by id.
  public func nodes() -> [NodeInfo] {
    let now = self.now()
    return server.withMembership { $0.taskNodes }.map { info(for: $0, now: now) }
  }

  /// The idle nodes, next to be served first (`GET /stats/nodes/queue`). On a shared store,
  /// every gateway's, in the one order their schedulers follow together (this gateway's as
  /// they are, the others' as the store has them).
  public func queue() async -> [FairScheduler.QueueEntry] {
    let now = self.now()
    let local = scheduler.queue(server.withMembership { Array($0.members.values) }, at: now)
    guard let shared, let rows = try? await shared.idleNodes() else { return local }
    let own = Set(local.map(\.nodeID))
    let others = rows.filter { $0.gatewayID != shared.gatewayID && $0.free > 0 && !own.contains($0.id) }.map {
      scheduler.entry(
        nodeID: $0.id, waitingSince: $0.waitingSince, completed: $0.completed, lastServedAt: $0.lastServedAt, at: now)
    }
    return (local + others).sorted { ($0.score, $0.nodeID) < ($1.score, $1.nodeID) }
  }

  /// A task node as `GET /nodes/{id}` shows it.
  func info(for member: Membership.Member, now: Date) -> NodeInfo {
    member.info(at: now, heartbeatTimeout: configuration.scheduler.heartbeatTimeout)
  }

  /// A linked node offers tasks now (its announcement's worker section, already in the
  /// registry): it is idle until it is given work. On a shared store it brings the history it
  /// has there, and the other gateways learn of it.
  func joinedTasks(_ nodeID: String) async {
    await restoreHistory(of: nodeID)
    // Told with the history it brought.
    if let member = server.withMembership({ $0.members[nodeID] }) {
      emit(.nodeJoined, NodeView(node: info(for: member, now: self.now())))
      logger.info("node joined the task center", metadata: ["peer": "\(nodeID)", "slots": "\(member.worker?.taskSlots ?? 0)"])
    }
    kick()
    publishSoon()  // other gateways on a shared store list it
    publishNodesSoon()
  }

  /// Queues again the tasks running on `nodeID`, which left; when the store fails, tries
  /// again later (``recoveryLoop()``).
  func requeueTasks(of nodeID: String, reason: String, announce: Bool = true) async {
    do {
      for task in try await store.requeueRunning(on: nodeID, reason: reason, at: now()) {
        state.withLock { _ = $0.running.removeValue(forKey: task.id) }
        if task.status.isFinal { finished(task) }
      }
    } catch {
      logger.error("could not requeue tasks; it will be tried again", metadata: ["node": "\(nodeID)", "error": "\(error)"])
      state.withLock { $0.unrequeued[nodeID] = reason }
    }
    // Told once its tasks are back in the queue (or owed to it), so what a subscriber reads
    // next is the queue without the node.
    if announce { emit(.nodeLeft, JSONValue.object(["node_id": .string(nodeID), "reason": .string(reason)])) }
    kick()
  }

  /// Node `id`. - Throws: `nodeNotFound`.
  public func node(_ id: String) throws -> NodeInfo {
    guard let member = server.withMembership({ $0.taskNode(id) }) else {
      throw TaskCenterError(code: .nodeNotFound, message: "node \(id) does not exist", details: "node_id: \(id)")
    }
    return info(for: member, now: now())
  }

  /// Seconds a task submitted now may wait before it starts: the queue ahead of it shared by
  /// the online nodes' slots, at the average run time so far; `nil` while no node is online.
  public func estimatedWait(queued: Int) -> Double? {
    let now = self.now()
    let timeout = configuration.scheduler.heartbeatTimeout
    let slots = server.withMembership { membership in
      membership.members.values.filter { $0.taskStatus(at: now, heartbeatTimeout: timeout) != .offline }
        .saturatingSum { $0.worker?.taskSlots ?? 0 }
    }
    let average = state.withLock { $0.finishedCount == 0 ? 1 : $0.finishedSeconds / Double($0.finishedCount) }
    guard slots > 0 else { return nil }
    return (Double(queued) / Double(slots) * average * 10).rounded() / 10
  }

  /// Counters of tasks and nodes (`GET /stats`).
  public func stats() async throws -> TaskCenterStats {
    let counts = try await store.counts()
    let now = self.now()
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
  package struct PullCaller: Sendable {
    package var nodeID: String?
    package var key: String?
    package var address: String?

    package init(nodeID: String?, key: String? = nil, address: String? = nil) {
      self.nodeID = nodeID
      self.key = key
      self.address = address
    }
  }

  /// What a pulling node's heartbeat is answered with.
  package struct PullHeartbeatReply: Sendable, Equatable {
    /// It joined (or came back) with this heartbeat.
    package var joined: Bool
    /// Its key: in the answer to the first heartbeat of its id only.
    package var nodeKey: String?
  }

  /// Whether `nodeID` is a node on a link, or one that was (which nobody may speak for over HTTP).
  func isLinked(_ nodeID: String) -> Bool {
    server.withMembership { ($0.members[nodeID] ?? $0.departed[nodeID])?.attachment == .link }
  }

  /// A heartbeat of a node that pulls its work (`POST /internal/heartbeat`); the first one
  /// joins it. Throws ``TaskCenterError/Code/forbidden`` — changing nothing — for a node
  /// connected over a link, or a key that is missing or wrong.
  @discardableResult
  package func pullHeartbeat(
    _ caller: PullCaller, resources: NodeResources, load: NodeLoad, slots: Int = 1
  ) throws(TaskCenterError) -> PullHeartbeatReply {
    guard let nodeID = caller.nodeID, !nodeID.isEmpty else { throw .invalid("node_id", "node_id is required") }
    try TaskCenterError.bounded { () throws(InputBoundsError) in
      _ = try resources.checked(cores: "resources.cpu_cores", memory: "resources.memory_mb")
      _ = try load.checked(prefix: "current_load")
      try InputBounds.check(slots, InputBounds.slots, field: "slots")
    }
    let now = self.now()
    let linked = isLinked(nodeID)
    let key = try state.withLock { state throws(TaskCenterError) in
      try state.pullRegistry.heartbeat(nodeID, key: caller.key, address: caller.address, linked: linked, at: now)
    }
    let timeout = configuration.scheduler.heartbeatTimeout
    let (joined, member) = server.withMembership { membership in
      let joined = membership.pullHeartbeat(
        nodeID, resources: resources, load: load, slots: slots, heartbeatTimeout: timeout, at: now)
      return (joined, membership.members[nodeID])
    }
    if joined, let member { emit(.nodeJoined, NodeView(node: info(for: member, now: now))) }
    return PullHeartbeatReply(joined: joined, nodeKey: key)
  }

  /// The next code task for a pulling node, started on it; `nil` when it is not idle or
  /// nothing fits (`GET /internal/task/request`). A caller that names no node is the key-less
  /// node that last sent a heartbeat from its address.
  package func claim(for caller: PullCaller) async throws -> TaskRecord? {
    let now = self.now()
    let nodeID = try state.withLock { state throws(TaskCenterError) -> String in
      guard let named = caller.nodeID, !named.isEmpty else {
        guard let anonymous = state.pullRegistry.anonymousNode(at: caller.address) else {
          throw TaskCenterError(
            code: .nodeNotFound, message: "no node has sent a heartbeat from \(caller.address ?? "here"): send one first",
            details: "field: node_id")
        }
        return anonymous
      }
      return named
    }
    if caller.nodeID?.isEmpty == false {
      let linked = isLinked(nodeID)
      try state.withLock { state throws(TaskCenterError) in
        try state.pullRegistry.authorize(nodeID, key: caller.key, address: caller.address, linked: linked)
      }
    }
    let timeout = configuration.scheduler.heartbeatTimeout
    let known = server.withMembership { membership -> NodeStatus? in
      guard let member = membership.members[nodeID], member.attachment == .pull else { return nil }
      return member.taskStatus(at: now, heartbeatTimeout: timeout)
    }
    guard let status = known else {
      throw TaskCenterError(
        code: .nodeNotFound, message: "node \(nodeID) has not sent a heartbeat", details: "node_id: \(nodeID)")
    }
    guard status == .idle else { return nil }
    for task in try await store.queued(limit: 64) where task.kind == .code {
      let took = server.withMembership { membership in
        membership.members[nodeID]?.worker?.resources.fits(task.resources) == true && membership.take(nodeID, at: now)
      }
      guard took else { continue }
      let started: TaskRecord?
      do {
        started = try await store.start(task.id, on: nodeID, at: now)
      } catch {
        server.finishTask(on: nodeID)  // nothing started: the worker is free
        throw error
      }
      if let started {
        state.withLock { $0.running[task.id] = nodeID }
        emit(.taskStarted, TaskView(task: started))
        return started
      }
      server.finishTask(on: nodeID)
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
  package func report(
    _ taskID: String, from caller: PullCaller, attempt: Int? = nil, outcome: TaskOutcome
  ) async throws -> TaskRecord {
    try TaskCenterError.bounded { () throws(InputBoundsError) in
      if let attempt { try InputBounds.check(attempt, InputBounds.attempts, field: "attempt") }
      if let seconds = outcome.executionTime { try InputBounds.check(seconds, InputBounds.executionSeconds, field: "execution_time") }
      if let status = outcome.exitStatus { try InputBounds.check(status, InputBounds.exitStatus, field: "exit_status") }
    }
    let current = try await task(taskID)  // unknown → taskNotFound
    guard current.status == .running, let runner = state.withLock({ $0.running[taskID] }) else { return current }
    let linked = isLinked(runner)
    try state.withLock { state throws(TaskCenterError) in
      if linked {
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
    guard let record = try await store.finish(taskID, with: outcome, by: runner, at: now()) else {
      return try await task(taskID)  // finished or moved meanwhile → as it is
    }
    state.withLock { _ = $0.running.removeValue(forKey: taskID) }
    server.withMembership { membership in
      membership.finishTask(on: runner)  // its worker is free
      membership.recordTask(on: runner, computeSeconds: outcome.executionTime ?? 0, succeeded: outcome.status == .completed)
    }
    finished(record)
    kick()
    return record
  }
}
