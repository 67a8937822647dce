public import EasyRemoteCore
import Foundation
import NodeComm
public import Sandbox
public import ServiceLifecycle
import Synchronization

/// Makes a ``ComputeNode`` a worker of the gateway's task center: it joins with its machine's
/// resources, sends heartbeats with the machine's load, and runs the tasks pushed to it —
/// code tasks in a ``CodeRunner`` sandbox, function tasks with its registered functions.
///
/// ```swift
/// let node = ComputeNode(serverAddress: "gateway:8080", nodeID: "laptop", maxWorkers: 2)
/// let worker = TaskWorker(node: node, thresholds: LoadThresholds(maxCPUPercent: 50))
/// try await node.start()
/// try await worker.start()
/// ```
public final class TaskWorker: Sendable {
  public let node: ComputeNode
  /// Runs code tasks; `nil` takes function tasks only.
  public let runner: CodeRunner?
  public let slots: Int
  public let thresholds: LoadThresholds
  public let resources: NodeResources
  public let heartbeatInterval: Duration
  /// What the heartbeat loop sleeps on.
  private let clock: any Clock<Duration>
  private let load: @Sendable () -> NodeLoad
  private let state = Mutex(State())
  /// The heartbeat loop and the joins after a reconnect: cancelled and awaited by `stop`.
  private let background = OwnedTasks()

  private struct State {
    var running: [String: Task<TaskOutcome, Never>] = [:]
    var connectToken: UInt64?
    var completed = 0
    var started = false
    var isolation: SandboxIsolation?
    /// Tasks aborted before their run arrived.
    var aborted: Set<String> = []
    /// How recent tasks ended, sent again with each join (``TaskReport``).
    var reports: [TaskReport] = []

    mutating func report(_ id: String, _ outcome: TaskOutcome, attempt: Int?, at date: Date) {
      reports.append(TaskReport(id: id, outcome: outcome, at: date, attempt: attempt))
      reports.removeAll { date.timeIntervalSince($0.at) > TaskReport.keep }
      // At most so many, and so many bytes of output (the oldest go first).
      var bytes = reports.reduce(0) { $0 + ($1.outcome.output?.data.count ?? 0) }
      var drop = max(0, reports.count - TaskReport.most)
      while drop < reports.count - 1, bytes > TaskReport.mostBytes {
        bytes -= reports[drop].outcome.output?.data.count ?? 0
        drop += 1
      }
      reports.removeFirst(drop)
    }
  }

  /// - Parameters:
  ///   - slots: tasks run at once; the node's `maxWorkers` by default.
  ///   - thresholds: above this CPU or memory use the machine is its owner's, and gets no tasks.
  ///   - heartbeatInterval: how often the machine's load is sampled and reported; it rides on
  ///     the link's heartbeat to the gateway (``ComputeNode/reportStatus(_:)``).
  ///   - load: how the machine's load is read (the real one by default).
  ///   - clock: what the heartbeat loop sleeps on (tests pass one they move).
  public init(
    node: ComputeNode, runner: CodeRunner? = CodeRunner(), slots: Int? = nil,
    thresholds: LoadThresholds = LoadThresholds(), resources: NodeResources = .current,
    heartbeatInterval: Duration = .seconds(5), load: (@Sendable () -> NodeLoad)? = nil,
    clock: any Clock<Duration> = ContinuousClock()
  ) {
    self.clock = clock
    self.node = node
    self.runner = runner
    self.slots = max(1, slots ?? node.maxWorkers)
    self.thresholds = thresholds
    self.resources = resources
    self.heartbeatInterval = heartbeatInterval
    let sampler = LoadSampler()
    self.load = load ?? { sampler.sample() }
  }

  /// Tasks this worker finished.
  public var completedTasks: Int { state.withLock { $0.completed } }

  /// Joins the task center (the node must be started) and keeps the membership up: heartbeats,
  /// and a new join whenever the link to the gateway comes back.
  public func start() async throws {
    state.withLock { $0.started = true }
    // Finds what isolation this machine offers, and removes what dead predecessors left.
    let isolation = await runner?.prepare()
    state.withLock { $0.isolation = isolation }
    if let isolation {
      node.logger.info(
        "code tasks run sandboxed", metadata: ["mechanism": "\(isolation.mechanism.rawValue)", "per-task-user": "\(isolation.perTaskUser)"])
    }
    registerMethods()
    background.reopen()
    // Before each announcement (its one join, on every reconnection too), it hands in how its
    // recent tasks ended: a task queued again after its gateway died is recorded, not started
    // anew on this node.
    let token = node.beforeAnnouncing { [weak self] in await self?.handIn() }
    try await node.offerTasks(offer(isolation: isolation))
    beat()
    let (clock, interval) = (clock, heartbeatInterval)
    background.start { [weak self] in
      while !Task.isCancelled {
        guard (try? await clock.sleep(for: interval)) != nil else { return }
        self?.beat()
      }
    }
    state.withLock { $0.connectToken = token }
  }

  /// Leaves the task center (its running tasks are queued again for other nodes), stops the
  /// heartbeats and cancels the running tasks.
  public func stop() async {
    // Announced without an offer: out of the task center, its running tasks queued again.
    try? await node.offerTasks(nil)
    let (token, running) = state.withLock { state in
      defer { state.connectToken = nil }
      return (state.connectToken, Array(state.running.values))
    }
    if let token { node.removeAnnounceHook(token) }
    await background.cancelAll()
    node.reportStatus(Data())  // heartbeats carry no load any more: this node takes no tasks
    for task in running { task.cancel() }
  }

  /// What this node offers the task center, in its announcements.
  func offer(isolation: SandboxIsolation?) -> Membership.Worker {
    Membership.Worker(
      resources: resources, taskSlots: slots, thresholds: thresholds, runsCode: runner != nil, isolation: isolation)
  }

  /// Hands in how its recent tasks ended (``TaskReport``): an answer may have been lost with
  /// the link, and the task's gateway with it. Best effort: a gateway that does not take
  /// them leaves those tasks to run again.
  func handIn() async {
    let reports = state.withLock { state in
      state.reports.removeAll { Date().timeIntervalSince($0.at) > TaskReport.keep }
      return state.reports
    }
    guard !reports.isEmpty else { return }
    do {
      _ = try await node.callGateway(TaskMethods.handIn, reports, as: Empty.self, timeout: .seconds(10))
    } catch {
      node.logger.warning("could not hand in finished tasks", metadata: ["count": "\(reports.count)", "error": "\(error)"])
    }
  }

  /// The machine's load rides on the link's heartbeat (one sign of life, not two): sent now,
  /// and carried by every heartbeat until the next sample.
  private func beat() {
    let beat = NodeReport(load: load(), stats: node.stats(), maxWorkers: node.maxWorkers)
    guard let status = try? JSONEncoder().encode(beat) else { return }
    node.reportStatus(status)
  }

  private func registerMethods() {
    node.serve(TaskMethods.run) { [weak self] (task: TaskAssignment, _) -> TaskOutcome in
      guard let self else { return .failed("the worker is gone") }
      return await self.run(task)
    }
    node.serve(TaskMethods.abort) { [weak self] (query: TaskQuery, _) -> Empty in
      self?.abort(query.id)
      return Empty()
    }
  }

  /// Cancels task `id`. The abort may overtake the run it cancels (each request has a
  /// handler of its own): then the run, when it comes, finds it and does not start.
  func abort(_ id: String) {
    let running = state.withLock { state -> Task<TaskOutcome, Never>? in
      if let task = state.running[id] { return task }
      state.aborted.insert(id)
      if state.aborted.count > 1024, let any = state.aborted.first { state.aborted.remove(any) }
      return nil
    }
    running?.cancel()
  }

  /// Runs one task to its outcome; cancelling the call (or an abort) kills it.
  func run(_ task: TaskAssignment) async -> TaskOutcome {
    let started = state.withLock { state -> Task<TaskOutcome, Never>? in
      if state.aborted.remove(task.id) != nil { return nil }
      // Unstructured: an abort (`er.node.task.abort`, another call) must reach this run by
      // its id, so the run is a task the worker records; the caller awaits it just below.
      let work = Task { await self.execute(task) }
      state.running[task.id] = work
      return work
    }
    guard let work = started else { return TaskOutcome(status: .cancelled, errorMessage: "cancelled") }
    let outcome = await withTaskCancellationHandler { await work.value } onCancel: { work.cancel() }
    state.withLock { state in
      state.running.removeValue(forKey: task.id)
      if outcome.status == .completed { state.completed += 1 }
      // A cancelled task is handed back, not ended: nothing to report.
      if outcome.status != .cancelled { state.report(task.id, outcome, attempt: task.attempt, at: Date()) }
    }
    return outcome
  }

  private func execute(_ task: TaskAssignment) async -> TaskOutcome {
    let started = ContinuousClock.now
    func elapsed() -> Double {
      let duration = ContinuousClock.now - started
      return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
    switch task.kind {
    case .code:
      guard let runner else { return .failed("node \(node.nodeID) does not run code tasks") }
      do {
        // In one of the node's workers: calls and tasks together stay within maxWorkers.
        let result = try await node.withWorker { try await runner.run(task.code ?? "", timeout: task.timeout) }
        let status: TaskStatus =
          switch result.status {
          case .completed: .completed
          case .failed: .failed
          case .timeout: .timeout
          case .cancelled: .cancelled
          }
        var parts: [String] = []
        switch result.status {
        case .failed: parts.append("exited with status \(result.exitStatus)" + (result.signal.map { " (signal \($0))" } ?? ""))
        case .timeout: parts.append("killed after its timeout of \(task.timeout) s")
        case .cancelled: parts.append("cancelled")
        case .completed: break
        }
        // Which limits it ran into, stdout and stderr alike (the timeout is said above).
        parts += result.limitsHit.filter { $0 != .wallTime }.map { "hit the \(runner.limits.describe($0))" }
        return TaskOutcome(
          status: status, output: .text(result.stdout), stderr: result.stderr, exitStatus: Int(result.exitStatus),
          errorMessage: parts.isEmpty ? nil : parts.joined(separator: "; "), executionTime: result.duration)
      } catch {
        return .failed("\(error)", executionTime: elapsed())
      }
    case .function:
      guard let call = task.invocation else { return .failed("task \(task.id) has no call to make") }
      let function = task.function ?? ""
      do {
        let result = try await withThrowingTaskGroup(of: Payload?.self) { group in
          group.addTask { try await self.node.runLocally(call.payload, function: function) }
          group.addTask {
            try await Task.sleep(for: .seconds(task.timeout))
            return nil
          }
          defer { group.cancelAll() }
          return try await group.next() ?? nil
        }
        guard let result else {
          return TaskOutcome(
            status: .timeout, errorMessage: "killed after its timeout of \(task.timeout) s", executionTime: elapsed())
        }
        return .completed(TaskPayload(result), executionTime: elapsed())
      } catch is CancellationError {
        return TaskOutcome(status: .cancelled, errorMessage: "cancelled", executionTime: elapsed())
      } catch let error as EasyRemoteError where Task.isCancelled || error.cause is CancellationError {
        // The function ended because the task was cancelled (an abort, the node stopping, its
        // link to the gateway gone): handed back, not failed — it runs again.
        _ = error
        return TaskOutcome(status: .cancelled, errorMessage: "cancelled", executionTime: elapsed())
      } catch let error as EasyRemoteError {
        return TaskOutcome(
          status: .failed, stderr: error.remoteType, errorMessage: "\(error.code): \(error.message)",
          executionTime: elapsed())
      } catch {
        return .failed("\(error)", executionTime: elapsed())
      }
    }
  }
}

extension TaskWorker: Service {
  /// Runs the worker as a service: joins (unless ``start()`` was called already), works until
  /// graceful shutdown or cancellation, then leaves: its running tasks go back to the queue.
  public func run() async throws {
    if !state.withLock({ $0.started }) { try await start() }
    try? await gracefulShutdown()
    await stop()
  }
}
