public import EasyRemoteCore
import Foundation
import Sandbox

// Several gateways on one store (``SharedTaskStore``): this gateway's lease, the requeue of
// dead gateways' tasks, and what the others change (wake-ups, waiters, events).
extension TaskCenter {
  /// This gateway's id on a shared store; `nil` on a store of its own.
  public var gatewayID: String? { shared?.gatewayID }

  /// The nodes of every gateway on the store (each with its gateway): this one's as they are,
  /// the others' as they last published them (at most a lease renewal old). On a store of
  /// its own: ``nodes()``.
  public func poolNodes() -> [NodeInfo] {
    guard let shared, let directory else { return nodes() }
    var all = nodes().map { node -> NodeInfo in
      var node = node
      node.gateway = shared.gatewayID
      return node
    }
    let local = Set(all.map(\.id))
    for lease in directory.gateways {
      for var node in lease.published.nodeInfos where !local.contains(node.id) {
        node.gateway = lease.id
        all.append(node)
      }
    }
    return all.sorted { ($0.id, $0.gateway ?? "") < ($1.id, $1.gateway ?? "") }
  }

  /// Node `id` of any gateway on the store. - Throws: `nodeNotFound`.
  public func poolNode(_ id: String) throws -> NodeInfo {
    guard shared != nil else { return try node(id) }
    // An online entry first (a node that moved may still be listed offline where it was).
    let matching = poolNodes().filter { $0.id == id }
    guard let node = matching.first(where: { $0.status != .offline }) ?? matching.first else { return try node(id) }
    return node
  }

  /// The gateways sharing the store, with their leases (just this one on a store of its own).
  public func gateways() async throws -> [GatewayLease] {
    guard let shared else { return [] }
    return try await shared.gateways()
  }

  /// Renews the lease five times per ``Configuration/leaseDuration`` (and at once when this
  /// gateway's nodes or functions change: ``publishSoon()``), publishing what its nodes serve;
  /// reads what the others serve; requeues the running tasks of gateways whose lease ran out
  /// (every gateway does; each task is taken by one).
  func leaseLoop(_ shared: any SharedTaskStore) async {
    var published: [[String]]?
    await everyFifthOfALease(orWhenOpened: \.publishSignal) { await self.renew(shared, published: &published) }
  }

  /// Runs `body` five times per lease, and again at once whenever the latch at `signal` is
  /// opened (it is in place before each run, so a change during one is not missed).
  private func everyFifthOfALease(orWhenOpened signal: WritableKeyPath<State, Latch?>, _ body: () async -> Void) async {
    let interval = configuration.leaseDuration / 5
    while !Task.isCancelled {
      let latch = Latch()
      state.withLock { $0[keyPath: signal] = latch }
      await body()
      await latch.wait(upTo: interval, on: clock)
    }
  }

  /// Asks the lease loop to publish what this gateway's nodes serve now (a node joined or left).
  func publishSoon() {
    state.withLock { $0.publishSignal }?.open()
  }

  /// Renews the lease with what this gateway publishes; the others are told at once when its
  /// functions, nodes or task-center nodes changed since `published`.
  func renew(_ shared: any SharedTaskStore, published: inout [[String]]?) async {
    // Each read once: the names (sorted, as listed) say whether anything changed.
    let (functionInfos, memberInfos) = (server.localFunctions(), server.localNodes())
    let (functions, members) = (functionInfos.map(\.name), memberInfos.map(\.id))
    let infos = nodes().filter { $0.status != .offline }
    let now = [functions, members, infos.map(\.id)]
    let changed = published != now
    do {
      let publication = GatewayPublication(
        address: server.address, functions: functions, nodes: members, nodeInfos: infos,
        functionInfos: functionInfos, memberInfos: memberInfos)
      if try await !shared.renewLease(for: configuration.leaseDuration, publishing: publication, announce: changed) {
        logger.warning(
          "this gateway's lease had expired (the store was out of reach?); its running tasks may run again elsewhere",
          metadata: ["gateway": "\(shared.gatewayID)"])
      }
      published = now
      let reaped = try await shared.reapExpiredLeases(reason: "its gateway went away", at: self.now())
      if !reaped.isEmpty {
        logger.info("requeued the tasks of a gateway that went away", metadata: ["count": "\(reaped.count)"])
        for task in reaped where task.status.isFinal { finished(task) }
        kick()
      }
      try await refreshDirectory(shared)
      sharedWrites.changed()
    } catch {
      logger.error("could not renew the lease", metadata: ["error": "\(error)"])
    }
  }

  /// Writes this gateway's nodes to the shared store (``PoolNode``) when they join, leave or
  /// change how busy their machines are (``publishNodesSoon()``), and five times per lease
  /// anyway (their calls change whether they have workers free). A start and an answer change
  /// their rows in the same statement as the task, so those need no write here.
  func nodesLoop(_ shared: any SharedTaskStore) async {
    var written: Set<String> = []  // offline nodes already written as such are not written again
    await everyFifthOfALease(orWhenOpened: \.nodesSignal) {
      let rows = self.poolRows().filter { $0.online || !written.contains($0.id) }
      do {
        try await shared.publishNodes(rows)
        for row in rows { if row.online { written.remove(row.id) } else { written.insert(row.id) } }
        self.sharedWrites.changed()
      } catch {
        self.logger.warning("could not write this gateway's nodes to the store", metadata: ["error": "\(error)"])
      }
    }
  }

  /// A tick each time this gateway wrote its lease, publication or nodes to the shared store
  /// (tests wait on it).
  package func sharedStoreWrites() -> AsyncStream<Void> { sharedWrites.changes() }

  /// Asks ``nodesLoop(_:)`` to write this gateway's nodes now.
  func publishNodesSoon() {
    state.withLock { $0.nodesSignal }?.open()
  }

  /// This gateway's task-center nodes as the other gateways' schedulers weigh them (nodes that
  /// pull work over HTTP are not offered work by anyone, so they are left out).
  func poolRows() -> [PoolNode] {
    guard let shared else { return [] }
    let now = self.now()
    let timeout = configuration.scheduler.heartbeatTimeout
    let nodes = server.withMembership { $0.taskNodes.filter { $0.attachment == .link } }
    return nodes.map { node in
      let status = node.taskStatus(at: now, heartbeatTimeout: timeout)
      let worker = node.worker
      let slots = worker?.taskSlots ?? 0
      // Unavailable while over its load thresholds, or while calls hold the workers its tasks leave.
      let busyWithCalls = node.tasks < slots && !node.hasFreeWorker
      return PoolNode(
        id: node.id, gatewayID: shared.gatewayID, online: status != .offline,
        available: (worker?.thresholds.allows(node.load) ?? false) && !busyWithCalls, slots: slots, running: node.tasks,
        waitingSince: node.history.waitingSince, lastServedAt: node.history.lastServedAt,
        completed: node.history.completed, failed: node.history.failed, computeTime: node.history.computeSeconds,
        cores: worker?.resources.cores ?? 0, memoryMB: worker?.resources.memoryMB ?? 0, runsCode: worker?.runsCode ?? false,
        functions: node.online ? node.functions.keys.sorted() : [])
    }
  }

  /// The history a joining node built on this or another gateway (the shared store keeps it),
  /// so the fair scheduler weighs it the same whichever gateway it is on.
  func restoreHistory(of nodeID: String) async {
    guard let shared, let row = try? await shared.poolNode(nodeID) else { return }
    let history = Membership.History(
      completed: row.completed, failed: row.failed, computeSeconds: row.computeTime, waitingSince: row.waitingSince,
      lastServedAt: row.lastServedAt)
    server.withMembership { $0.restore(nodeID, history) }
  }

  /// Reads what the other gateways publish, and tells this gateway's event subscribers about
  /// nodes that appeared behind them or went away (with their gateway).
  func refreshDirectory(_ shared: any SharedTaskStore) async throws {
    guard let directory else { return }
    let before = directory.gateways
    directory.update(try await shared.gateways())
    guard server.eventSubscriberCount > 0 else { return }
    func placed(_ leases: [GatewayLease]) -> [String: NodeInfo] {
      var nodes: [String: NodeInfo] = [:]
      for lease in leases {
        for var node in lease.published.nodeInfos {
          node.gateway = lease.id
          nodes[node.id] = node
        }
      }
      return nodes
    }
    let (old, new) = (placed(before), placed(directory.gateways))
    for (id, node) in new.sorted(by: { $0.key < $1.key }) where old[id]?.gateway != node.gateway {
      emit(.nodeJoined, NodeView(node: node))
    }
    for (id, node) in old.sorted(by: { $0.key < $1.key }) where new[id] == nil {
      let reason = "node \(id) left gateway \(node.gateway ?? "?")"
      emit(
        .nodeLeft,
        JSONValue.object(["node_id": .string(id), "reason": .string(reason), "gateway": .string(node.gateway ?? "")]))
    }
  }

  /// What other gateways change: a task queued there may start here (a wake-up, not polling);
  /// a task that ends there wakes those waiting for it here, and every task event goes to this
  /// gateway's subscribers too.
  func noticeLoop(_ shared: any SharedTaskStore) async {
    for await notice in shared.notices() {
      if Task.isCancelled { return }
      switch notice {
      case .resync:
        kick()
        try? await refreshDirectory(shared)
      case .gateways(let gateway):
        if gateway != shared.gatewayID { try? await refreshDirectory(shared) }
      case .wake(let gateway):
        // Another gateway left tasks to this one's nodes: they start here, and if those nodes
        // were busy after all, the others learn it from the rows written now.
        guard gateway == shared.gatewayID else { continue }
        kick()
        publishNodesSoon()
      case .created(let id, let gateway):
        guard gateway != shared.gatewayID else { continue }  // announced here when it happened
        kick()
        if server.eventSubscriberCount > 0, let task = try? await store.task(id) {
          emit(.taskCreated, TaskView(task: task))
        }
      case .changed(let id, let status, let gateway):
        guard gateway != shared.gatewayID else { continue }
        if status == .queued { kick() }  // requeued there: it may start here
        let waiting = state.withLock { $0.waiters[id] != nil }
        let listening = server.eventSubscriberCount > 0
        guard waiting || listening, status != .queued, let task = try? await store.task(id) else { continue }
        // The task as it is now (it may have moved on since the notice): a start is told
        // while the task has started, an end once it has ended.
        if listening {
          if status == .running, task.attempts > 0 {
            emit(.taskStarted, TaskView(task: task))
          } else if status.isFinal, task.status.isFinal {
            emit(task.status == .completed ? .taskCompleted : .taskFailed, TaskView(task: task))
          }
        }
        if task.status.isFinal {
          let waiters = state.withLock { $0.waiters.removeValue(forKey: id) ?? [:] }
          for waiter in waiters.values { waiter.open() }
        }
      }
    }
  }

  /// A node that joined handed in how its recent tasks ended (``TaskReport``): those still
  /// running on it — under a gateway that died before it recorded the answer, this one or
  /// another — end now, instead of running again when that gateway's lease expires.
  func adopt(_ reports: [TaskReport], from nodeID: String) async {
    for report in reports {
      // Still running on it; or (the gateway's lease ran out, or it restarted) queued again
      // after that very attempt and not started since.
      var written = try? await store.finish(report.id, with: report.outcome, by: nodeID, at: now())
      if written == nil, let attempt = report.attempt {
        written = try? await store.finishLate(report.id, attempt: attempt, with: report.outcome, by: nodeID, at: now())
      }
      guard let written else { continue }
      logger.info("a node handed in a result its gateway had lost", metadata: ["task": "\(report.id)", "peer": "\(nodeID)"])
      state.withLock { state in
        if state.running[report.id] == nodeID { state.running.removeValue(forKey: report.id) }
      }
      if written.status.isFinal { finished(written) }
    }
  }
}
