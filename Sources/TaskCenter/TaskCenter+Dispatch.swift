import EasyRemoteCore
import Foundation
import NodeComm

// Dispatch: one loop gives queued tasks to idle nodes (fair order, one capacity with the gateway's calls) and records how they end.
extension TaskCenter {
  /// Starts as many queued tasks as there are idle nodes that fit them, oldest first.
  func dispatch() async -> [(TaskRecord, String)] {
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
    // nil: not queued any more (cancelled, or another gateway on the store took it); a failed
    // start leaves the task queued (the store's status says why).
    let (started, taken) = await withTaskGroup(of: (Int, TaskRecord?, Bool).self) { group -> ([Int: TaskRecord], Bool) in
      for index in picks.indices {
        let (taskID, nodeID) = (picks[index].0.id, picks[index].1)
        group.addTask {
          do {
            return (index, try await store.start(taskID, on: nodeID, at: now), true)
          } catch {
            return (index, nil, false)
          }
        }
      }
      var started: [Int: TaskRecord] = [:]
      var taken = false
      for await (index, record, answered) in group {
        if let record { started[index] = record } else if answered { taken = true }
      }
      return (started, taken)
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
    // More to do: a full batch was read, or some tasks were gone and their nodes are idle again.
    if (queued.count == batch && !launches.isEmpty) || taken { kick() }
    return launches
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
    await record(task.id, on: nodeID, outcome)
  }

  /// Records how a task ended, then frees its node's slot and counts it. When the store
  /// fails (a full disk), nothing changes in memory either: the task stays running on its
  /// node, as the store says, and the result is kept to be written again later.
  func record(_ taskID: String, on nodeID: String, _ outcome: TaskOutcome) async {
    let written: TaskRecord?
    do {
      if outcome.status == .cancelled {
        // Not cancelled by request (that made the task final already): the node stopped and
        // handed the task back. Queue it again.
        let reason = "node \(nodeID) stopped while running the task"
        written = try await store.requeue(taskID, from: nodeID, reason: reason, at: clock())
      } else {
        written = try await store.finish(taskID, with: outcome, by: nodeID, at: clock())
      }
    } catch {
      logger.error("could not record a result; it will be tried again", metadata: ["task": "\(taskID)", "error": "\(error)"])
      state.withLock { $0.unrecorded[taskID] = (nodeID, outcome) }
      return
    }
    state.withLock { state in
      state.running.removeValue(forKey: taskID)
      state.scheduler.release(
        nodeID, computeTime: outcome.executionTime ?? 0, succeeded: outcome.status == .completed, at: clock())
    }
    if let written, written.status.isFinal { finished(written) }
    kick()
  }

  /// Announces a final task and wakes those waiting for it.
  func finished(_ task: TaskRecord) {
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
}
