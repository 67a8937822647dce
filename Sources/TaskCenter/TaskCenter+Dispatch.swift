import EasyRemoteCore
import Foundation
import NodeComm
import Synchronization

// Dispatch: one loop gives queued tasks to idle nodes (fair order, one capacity with the gateway's calls) and records how they end.
extension TaskCenter {
  /// Starts as many queued tasks as there are idle nodes that fit them, oldest first.
  func dispatch() async -> [(TaskRecord, String)] {
    let now = self.now()
    guard server.withMembership({ scheduler.hasIdleNode($0.members.values, at: now) }) else { return [] }
    let batch = 512
    // The store hands over the oldest queued tasks (on a shared store, those no other gateway
    // is choosing from, with the other gateways' free nodes), a node is chosen for as many as
    // fit, and they start together (one group commit in SQLite, one statement in PostgreSQL).
    let choice = Choice()
    let started: [TaskRecord]
    var failed = false
    do {
      // The time is read once the queue has been (a task is never started before it was made).
      let now = self.now
      started = try await store.startQueued(limit: batch, now: { choice.stamp(now()) }) { [self] offer in
        let chosen = self.choose(offer, at: choice.date)
        choice.set(chosen, offered: offer.tasks.count)
        return chosen
      }
    } catch {
      logger.error("could not start queued tasks", metadata: ["error": "\(error)"])
      started = []
      failed = true
    }
    let (chosen, offered) = choice.value
    let byID = Dictionary(started.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    var launches: [(TaskRecord, String)] = []
    for pick in chosen.picks {
      guard let record = byID[pick.taskID] else {
        // Cancelled meanwhile, taken by another gateway, or the store failed: the worker goes back.
        server.finishTask(on: pick.nodeID)
        continue
      }
      state.withLock { $0.running[record.id] = pick.nodeID }
      emit(.taskStarted, TaskView(task: record))
      launches.append((record, pick.nodeID))
    }
    // More to do: a full batch was offered, or some tasks were gone and their nodes are idle.
    if (offered == batch && !launches.isEmpty) || (!failed && launches.count < chosen.picks.count) { kick() }
    // Tasks left to other gateways' nodes: looked at again shortly, in case those nodes were
    // busy after all (then the other gateway corrects what it published, or the task grows
    // too old to wait for them).
    if !chosen.wake.isEmpty && !failed { kickSoon() }
    return launches
  }

  /// Chooses a node for as many of the offered tasks as fit, in order, and takes its worker:
  /// each choice is one transition of the gateway's registry (``Membership``), ranked by the
  /// fair scheduler, so calls and tasks see one capacity. On a shared store the other
  /// gateways' free nodes compete by the same rules: a task whose best node is another
  /// gateway's is left to that gateway (woken), unless it has waited longer than
  /// ``Configuration/leaseDuration`` and a node here could run it.
  func choose(_ offer: QueueOffer, at now: Date) -> QueueChoice {
    var choice = QueueChoice()
    var others = offer.others  // their slots, taken as tasks are left to them
    let patience = Double(configuration.leaseDuration.components.seconds)
    // Another gateway's node must score better by more than this (a second of waiting): closer
    // than that, the gateways' reads and clocks cannot tell them apart, and leaving the task
    // would cost a wake-up and a round of the other's dispatcher for nothing.
    let margin = 1.0
    let scheduler = self.scheduler
    for task in offer.tasks {
      let candidates = others.indices.filter { others[$0].canTake(task) }
      let patient = now.timeIntervalSince(task.createdAt) < patience
      let decision = server.withMembership { membership -> Decision in
        let local = scheduler.best(task.resources, among: membership.members.values, where: { member in
          guard member.attachment == .link else { return false }  // pulling nodes ask for their tasks
          if task.kind == .function { return member.functions[task.function ?? ""] != nil }
          return member.worker?.runsCode == true
        }, at: now)
        let remote = candidates.map { index in
          (index, scheduler.rank(waitingSince: others[index].waitingSince, completed: others[index].completed, at: now))
        }.min { ($0.1, others[$0.0].id) < ($1.1, others[$1.0].id) }
        if let remote, local.map({ patient && remote.1 < $0.score - margin }) ?? true { return .elsewhere(remote.0) }
        guard let local, membership.take(local.nodeID, at: now) else {
          return .none(idle: scheduler.hasIdleNode(membership.members.values, at: now))
        }
        return .here(local.nodeID)
      }
      switch decision {
      case .elsewhere(let index):
        others[index].running += 1
        choice.wake.insert(others[index].gatewayID)
      case .here(let nodeID):
        choice.picks.append(QueuePick(taskID: task.id, nodeID: nodeID))
      case .none(let idle):
        if !idle && !others.contains(where: { $0.free > 0 }) { return choice }
      }
    }
    return choice
  }

  /// Where ``choose(_:at:)`` sends a task.
  private enum Decision {
    case here(String)
    case elsewhere(Int)
    case none(idle: Bool)
  }

  /// What the dispatcher chose inside the store's call (kept to undo it if the start fails),
  /// and the time the store started the tasks at.
  final class Choice: Sendable {
    private let state = Mutex<(choice: QueueChoice, offered: Int, date: Date)>((QueueChoice(), 0, .distantPast))
    func set(_ choice: QueueChoice, offered: Int) { state.withLock { ($0.choice, $0.offered) = (choice, offered) } }
    var value: (QueueChoice, Int) { state.withLock { ($0.choice, $0.offered) } }
    var date: Date { state.withLock { $0.date } }
    func stamp(_ date: Date) -> Date { state.withLock { $0.date = date }; return date }
  }

  /// Pushes `task` to its node and records how it ended.
  func execute(_ task: TaskRecord, on nodeID: String) async {
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
    switch answer {
    case .success(let value): outcome = value
    case .failure(let error):
      if Task.isCancelled {
        // The gateway is stopping: the task stays running, requeued at start.
        server.finishTask(on: nodeID)
        return
      }
      let failure = EasyRemoteError(error, function: task.function)
      switch failure.code {
      case .nodeLost, .connectionFailed:
        // Its link is gone: once the node is out of the registry too (the link failed this
        // call before the gateway heard it ended, and a dispatch meanwhile could choose the
        // node again, a start that fails at once and costs an attempt), the task goes back to
        // the queue, whether or not the node's departure requeued it already.
        await server.departure(of: nodeID, limit: .seconds(5))
        let reason = "node \(nodeID) was lost while running the task"
        await record(task.id, on: nodeID, TaskOutcome(status: .cancelled, errorMessage: reason), requeueReason: reason)
        return
      case .timedOut:
        outcome = TaskOutcome(status: .timeout, errorMessage: "node \(nodeID) did not answer in time")
      default:
        outcome = .failed("\(failure.code): \(failure.message)")
      }
    }
    guard let outcome else { return }
    await record(task.id, on: nodeID, outcome)
  }

  /// Records how a task ended, then frees its node's worker and counts the task in the node's
  /// history. When the store fails (a full disk), nothing changes in memory either: the task
  /// stays running on its node, as the store says, and the result is kept to be written again
  /// later.
  func record(_ taskID: String, on nodeID: String, _ outcome: TaskOutcome, requeueReason: String? = nil) async {
    let written: TaskRecord?
    do {
      if outcome.status == .cancelled {
        // Not cancelled by request (that made the task final already): the node stopped and
        // handed the task back, or was lost. Queue it again.
        let reason = requeueReason ?? "node \(nodeID) stopped while running the task"
        written = try await store.requeue(taskID, from: nodeID, reason: reason, at: now())
        publishNodesSoon()  // its slot is free again (an answer frees it in the same statement)
      } else {
        written = try await store.finish(taskID, with: outcome, by: nodeID, at: now())
      }
    } catch {
      logger.error("could not record a result; it will be tried again", metadata: ["task": "\(taskID)", "error": "\(error)"])
      state.withLock { $0.unrecorded[taskID] = (nodeID, outcome) }
      return
    }
    state.withLock { _ = $0.running.removeValue(forKey: taskID) }
    server.withMembership { membership in
      membership.finishTask(on: nodeID)
      if outcome.status != .cancelled {
        membership.recordTask(on: nodeID, computeSeconds: outcome.executionTime ?? 0, succeeded: outcome.status == .completed)
      }
    }
    if let written, written.status.isFinal { finished(written) }
    kick()
  }

  /// Announces a final task and wakes those waiting for it.
  func finished(_ task: TaskRecord) {
    let now = self.now()
    state.withLock { state in
      state.finishedCount += 1
      state.finishedSeconds += InputBounds.clamp(task.executionTime ?? 0, InputBounds.executionSeconds)
      state.finishedTimes.append(now)
      if let first = state.finishedTimes.first, now.timeIntervalSince(first) > 3600 {
        state.finishedTimes.removeAll { now.timeIntervalSince($0) > 3600 }
      }
    }
    emit(task.status == .completed ? .taskCompleted : .taskFailed, TaskView(task: task))
    let waiters = state.withLock { $0.waiters.removeValue(forKey: task.id) ?? [:] }
    for waiter in waiters.values { waiter.open() }
  }
}
