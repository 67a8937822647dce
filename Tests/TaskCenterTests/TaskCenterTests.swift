import TestSupport
import EasyRemote
import ExampleFunctions
import Foundation
import Sandbox
import Synchronization
import Testing

@testable import TaskCenter

/// The task center in a real gateway, with real nodes (over the memory transport, and over
/// gRPC for the end-to-end test) and a real SQLite file.
@Suite("Task center", .timeLimit(.minutes(3)))
struct TaskCenterTests {
  @Test("code and function tasks run on a node; results are stored; events tell the story", arguments: [false, true])
  func endToEnd(overGRPC: Bool) async throws {
    let fabric = try await TaskFabric(transport: overGRPC ? GRPCTransport() : MemoryTransport())
    let events = fabric.center.events()
    try await fabric.addNode("n1")
    let client = fabric.client()

    let codeID = try await client.submitCode("print(6 * 7)")
    let code = try await client.waitForTask(codeID, timeout: .seconds(20))
    #expect(code.status == .completed)
    #expect(code.result == "42")
    #expect(code.exitStatus == 0)
    #expect(code.nodeID == "n1" && code.attempts == 1)
    #expect(code.executionTime ?? 0 > 0)

    let addID = try await client.submit("sync_add", 2, 3.5)
    let sum: Double = try await client.result(addID, timeout: .seconds(20))
    #expect(sum == 5.5)
    let summary: SeedExamples.DataSummary = try await client.result(
      try await client.submit("sync_process_data", [3.0, 1, 2]))
    #expect(summary == SeedExamples.summary([3, 1, 2]))

    let listed = try await client.tasks(status: .completed)
    #expect(Set(listed.map(\.id)).isSuperset(of: [codeID, addID]))
    let nodes = try await client.taskNodes()
    #expect(nodes.map(\.id) == ["n1"])
    #expect(nodes.first?.completedTasks == 3)
    #expect(nodes.first?.status == .idle)

    var seen: [TaskCenterEvent.Kind] = []
    for await event in events {
      seen.append(event.event)
      if seen.filter({ $0 == .taskCompleted }).count == 3 { break }
    }
    #expect(seen.first == .nodeJoined)
    #expect(seen.filter { $0 == .taskCreated }.count == 3)
    #expect(seen.filter { $0 == .taskStarted }.count == 3)
    await fabric.stop()
  }

  @Test("bad requests are refused with the field named; failures, timeouts and unknown ids are typed")
  func badInput() async throws {
    let fabric = try await TaskFabric()
    try await fabric.addNode("n1")
    let client = fabric.client()

    func refusal(_ submission: TaskSubmission) async -> TaskCenterError? {
      do {
        _ = try await client.submit(submission)
        return nil
      } catch {
        return error as? TaskCenterError
      }
    }
    let cases: [(TaskSubmission, TaskCenterError.Code, String)] = [
      (TaskSubmission(code: "print(1)", timeout: 0), .invalidRequest, "field: timeout"),
      (TaskSubmission(code: "print(1)", timeout: 601), .invalidRequest, "field: timeout"),
      (TaskSubmission(code: "print(1)", timeout: -5), .invalidRequest, "field: timeout"),
      (TaskSubmission(code: "   "), .invalidRequest, "field: code"),
      (TaskSubmission(code: String(repeating: "x", count: 10_001)), .invalidRequest, "field: code"),
      (TaskSubmission(), .invalidRequest, "field: code"),
      (TaskSubmission(code: "print(1)", function: "sync_add"), .invalidRequest, "field: function"),
      (TaskSubmission(function: "no_such_function"), .functionNotFound, "field: function"),
      (TaskSubmission(code: "print(1)", resources: ResourceRequest(cpu: 0, memoryMB: 1)), .invalidRequest, "field: resources.cpu"),
      (TaskSubmission(code: "print(1)", resources: ResourceRequest(cpu: 1, memoryMB: -1)), .invalidRequest, "field: resources.memory"),
      (TaskSubmission(code: "print(1)", resources: ResourceRequest(cpu: 64, memoryMB: 1)), .resourceUnavailable, "cpu 64"),
      (TaskSubmission(code: "print(1)", maxAttempts: 0), .invalidRequest, "field: max_attempts"),
    ]
    for (submission, code, detail) in cases {
      let error = await refusal(submission)
      #expect(error?.code == code, "\(submission)")
      #expect(error?.details?.contains(detail) == true, "\(String(describing: error))")
    }
    #expect(try await client.tasks().isEmpty, "nothing refused was stored")

    await #expect(throws: TaskCenterError(code: .taskNotFound, message: "task task_nope does not exist", details: "task_id: task_nope")) {
      _ = try await client.task("task_nope")
    }

    let failing = try await client.waitForTask(try await client.submitCode("import sys\nprint('half')\nsys.exit('boom')"))
    #expect(failing.status == .failed)
    #expect(failing.result == "half")
    #expect(failing.stderr == "boom\n")
    #expect(failing.exitStatus == 1)

    let slow = try await client.waitForTask(try await client.submitCode("while True: pass", timeout: 1))
    #expect(slow.status == .timeout)
    #expect(slow.errorMessage?.contains("timeout") == true)
    await #expect(throws: TaskCenterError.self) {
      let _: String = try await client.result(try await client.submit("hold", timeout: 0.5))
    }

    let wrong = try await client.waitForTask(try await client.submit("sync_add", "two", 2))
    #expect(wrong.status == .failed)
    #expect(wrong.errorMessage?.contains("invalid_arguments") == true)
    await fabric.stop()
  }

  @Test("cancelling a queued task and a running one; the running one is killed on its node")
  func cancellation() async throws {
    let fabric = try await TaskFabric()
    let (_, worker) = try await fabric.addNode("n1", slots: 1)
    let client = fabric.client()
    let running = try await client.submitCode("import time\ntime.sleep(60)")
    let queued = try await client.submitCode("print('never')")
    #expect(try await fabric.waitFor(running, .running))
    #expect(try await client.task(queued).status == .queued)

    #expect(try await client.cancelTask(queued).status == .cancelled)
    let cancelled = try await client.cancelTask(running)
    #expect(cancelled.status == .cancelled)
    // Cancelling again returns it as it is.
    #expect(try await client.cancelTask(running).status == .cancelled)
    // The sandbox was killed: the node's slot is free again, and the next task runs.
    let next = try await client.waitForTask(try await client.submitCode("print('next')"), timeout: .seconds(20))
    #expect(next.status == .completed && next.result == "next")
    #expect(worker.completedTasks == 1, "counted before it answered")
    #expect(try await client.task(queued).startedAt == nil)
    await fabric.stop()
  }

  @Test("an abort that overtakes its run: the run, when it comes, does not start")
  func abortBeforeRun() async throws {
    let fabric = try await TaskFabric()
    let (_, worker) = try await fabric.addNode("n1")
    var record = TaskRecord(kind: .code, code: "import time\ntime.sleep(600)")
    record.id = "task_overtaken"
    worker.abort(record.id)
    let outcome = await worker.run(TaskAssignment(record))
    #expect(outcome.status == .cancelled)
    // Only that run: the next one with another id runs.
    var next = TaskRecord(kind: .code, code: "print('ran')")
    next.id = "task_next"
    let ran = await worker.run(TaskAssignment(next))
    #expect(ran.status == .completed, "\(ran)")
    await fabric.stop()
  }

  @Test("a task on a node that goes away runs again elsewhere; attempts are counted")
  func nodeLost() async throws {
    let fabric = try await TaskFabric()
    let (first, firstWorker) = try await fabric.addNode("first", runner: hangingNode)
    let client = fabric.client()
    let id = try await client.submitCode(hangsOnHangingNode("done"))
    #expect(try await fabric.waitFor(id, .running))
    let (second, secondWorker) = try await fabric.addNode("second")
    await firstWorker.stop()
    await first.stop()
    let task = try await client.waitForTask(id, timeout: .seconds(20))
    #expect(task.status == .completed)
    #expect(task.nodeID == "second")
    #expect(task.attempts == 2)
    #expect(task.result == "done")
    #expect(fabric.center.nodes().first { $0.id == "first" }?.status == .offline)

    // Out of attempts: failed with the reason.
    let once = try await client.submit(TaskSubmission(code: "import time\ntime.sleep(30)", maxAttempts: 1))
    #expect(try await fabric.waitFor(once.id, .running))
    #expect(try await client.task(once.id).nodeID == "second")
    await secondWorker.stop()
    await second.stop()
    let failed = try await client.waitForTask(once.id, timeout: .seconds(20))
    #expect(failed.status == .failed)
    #expect(failed.errorMessage == "node second left (after 1 attempt)")
    await fabric.stop()
  }

  @Test("calls and tasks share a node's maxWorkers: a call waits while a task holds the only worker")
  func oneCapacity() async throws {
    let fabric = try await TaskFabric()
    let (node, _) = try await fabric.addNode("solo", slots: 1)
    let client = fabric.client()
    let id = try await client.submitCode("import time\ntime.sleep(60)")
    #expect(try await fabric.waitFor(id, .running))
    #expect(fabric.server.nodes().first?.tasks == 1)
    #expect(!fabric.server.hasFreeWorker("solo"))
    #expect(try await until(node.changes()) { node.stats().running == 1 }, "the task holds the node's worker")
    let changes = node.changes()
    let call = Task { () async throws -> String in try await client.execute("whoami") }
    #expect(try await until(changes) { node.stats().queued == 1 }, "the call waits for the worker the task holds")
    #expect(node.stats().running == 1)
    // A second task is not given to the node meanwhile.
    let second = try await client.submitCode("print('second')")
    _ = try await client.cancelTask(id)
    #expect(try await call.value == "solo")
    let done = try await client.waitForTask(second, timeout: .seconds(20))
    #expect(done.status == .completed && done.nodeID == "solo")
    #expect(fabric.server.nodes().first?.tasks == 0, "freed before the task was final")
    #expect(try await until(node.changes()) { node.stats().running == 0 })
    await fabric.stop()
  }

  @Test("a task waiting for a node full of calls starts when a call ends, without waiting for a heartbeat")
  func startsWhenCallEnds() async throws {
    let fabric = try await TaskFabric()
    // Load reported once, at join, and link heartbeats (which carry it) once a minute: only
    // the end of the call can wake the dispatcher within the test.
    let (node, _) = try await fabric.addNode("full", slots: 1, heartbeat: .seconds(3600), linkHeartbeat: .seconds(60))
    let client = fabric.client()
    let call = Task { () async throws -> String in try await client.execute("hold") }
    #expect(await fabric.holding.wait() == "full")
    let id = try await client.submitCode("print('after the call')")
    #expect(try await client.task(id).status == .queued)
    fabric.release.open()
    #expect(try await call.value == "full")
    _ = node
    let done = try await client.waitForTask(id, timeout: .seconds(20))
    #expect(done.status == .completed && done.result == "after the call")
    await fabric.stop()
  }

  @Test("a node lost mid-call and mid-task is out of routing and scheduling when the gateway hears of it")
  func lostAtOnce() async throws {
    let fabric = try await TaskFabric()
    let (doomed, doomedWorker) = try await fabric.addNode("doomed", slots: 2)
    let client = fabric.client()
    let task = try await client.submitCode("import time\ntime.sleep(60)")
    #expect(try await fabric.waitFor(task, .running))
    let changes = doomed.changes()
    let call = Task { () async throws -> String in try await client.execute("hold") }
    #expect(try await until(changes) { doomed.stats().running == 2 })
    // Listeners hear membership changes in order: the task center's came first.
    let seen = Mutex<(member: Bool, status: NodeStatus?)?>(nil)
    let heard = Signal()
    let center = fabric.center
    let server = fabric.server
    server.onMembershipChange { event in
      guard case .left("doomed", _) = event else { return }
      let status = try? center.node("doomed").status
      seen.withLock { $0 = (server.isMember("doomed"), status) }
      heard.fire()
    }
    let queue = fabric.center.events()
    _ = doomedWorker  // the worker does not leave first: the node's link just goes
    await doomed.stop()
    #expect(await heard.wait() != nil)
    #expect(seen.withLock { $0?.member } == false)
    #expect(seen.withLock { $0?.status } == .offline)
    let lost = try await expectTaskError { _ = try await call.value }
    #expect(lost.code == .nodeLost)
    #expect(try await until(queue) { try await client.task(task).status == .queued }, "queued again, then node_left told")
    await fabric.stop()
  }

  @Test("one snapshot says what the gateway and the task center know: nodes, work, functions, fair order, tasks")
  func snapshot() async throws {
    let fabric = try await TaskFabric()
    let (node, _) = try await fabric.addNode("snap", slots: 2)
    try await fabric.addNode("idle", slots: 1)
    let client = fabric.client()
    let sum: Double = try await client.execute("sync_add", 1, 2)
    #expect(sum == 3)
    let refused = try? await client.execute("sync_add", "one", 2, node: "snap") as Double
    #expect(refused == nil)
    let task = try await client.submitCode("import time\ntime.sleep(60)")
    #expect(try await fabric.waitFor(task, .running))
    let call = Task { () async throws -> String in try await client.execute("hold", node: "snap") }
    #expect(await fabric.holding.wait() == "snap")
    #expect(fabric.server.nodes().first { $0.id == "snap" }?.inFlight == 1)
    let running = try await client.task(task)
    let snapshot = try await fabric.center.snapshot()
    let gatewayNodes = Dictionary(uniqueKeysWithValues: snapshot.gateway.nodes.map { ($0.id, $0) })
    let busy = try #require(gatewayNodes[running.nodeID ?? ""])
    #expect(busy.tasks == 1)
    #expect(gatewayNodes["snap"]?.inFlight == 1 && gatewayNodes["snap"]?.maxWorkers == 2)
    let add = try #require(snapshot.gateway.functions.first { $0.name == "sync_add" })
    #expect(add.calls == 2 && add.failures == 1 && add.nodes == ["idle", "snap"] && add.averageMilliseconds > 0)
    #expect(snapshot.gateway.functions.first { $0.name == "hold" }?.calls == 0, "counted when answered")
    #expect(snapshot.gateway.callsInFlight == 1)
    #expect(snapshot.tasks[.running] == 1 && snapshot.queueLength == 0 && snapshot.tasks[.completed] == 0)
    #expect(snapshot.nodes.map(\.id) == ["idle", "snap"])
    #expect(snapshot.nodes.first { $0.id == running.nodeID }?.tasks == 1)
    // The fair order lists the idle nodes only.
    #expect(Set(snapshot.fairOrder.map(\.nodeID)).isSubset(of: ["idle", "snap"]))
    #expect(!snapshot.fairOrder.contains { $0.nodeID == running.nodeID && running.nodeID == "idle" })
    _ = try await client.cancelTask(task)
    call.cancel()
    _ = node
    await fabric.stop()
  }

  @Test("a loaded machine gets no work until its owner's load drops")
  func load() async throws {
    let fabric = try await TaskFabric()
    let busy = Mutex(true)
    // The worker reports its load when the test moves its clock (and once when it joins).
    let clock = ManualClock()
    let joined = fabric.membershipChanges()
    try await fabric.addNode(
      "laptop", heartbeat: .milliseconds(100),
      load: { busy.withLock { $0 } ? NodeLoad(cpuPercent: 95, memoryPercent: 20) : NodeLoad(cpuPercent: 5, memoryPercent: 20) },
      clock: clock)
    let client = fabric.client()
    #expect(try await until(joined) { fabric.center.nodes().first?.status == .busy })
    let id = try await client.submitCode("print('when idle')")
    // Each report makes the dispatcher look again; after three more, the task must still wait.
    var reports = fabric.membershipChanges().makeAsyncIterator()
    func report() async {
      await clock.sleepers(atLeast: 1)
      await clock.advance(by: .milliseconds(100))
      while let event = await reports.next() {
        if case .reported("laptop", _) = event { return }
      }
    }
    for _ in 0..<3 { await report() }
    #expect(try await client.task(id).status == .queued, "the owner's machine is busy")
    busy.withLock { $0 = false }
    await report()
    let done = try await client.waitForTask(id, timeout: .seconds(20))
    #expect(done.status == .completed)
    await fabric.stop()
  }

  @Test("a node whose link goes silent goes offline; one that leaves says so")
  func heartbeats() async throws {
    let fabric = try await TaskFabric(linkHeartbeat: TaskFabric.quickSilence)
    let events = fabric.center.events()
    // Joined, then silent: no link heartbeats (nor load reports); the gateway drops its link
    // after 6 s (it comes back and goes again, as a frozen machine would).
    try await fabric.addNode("silent", heartbeat: .seconds(3600), silent: true)
    let (_, leaving) = try await fabric.addNode("leaving")
    await leaving.stop()
    var left: [JSONValue] = []
    for await event in events where event.event == .nodeLeft {
      left.append(event.data)
      if left.count == 2 { break }
    }
    // (In either order: on a busy machine the silent one may expire first.)
    let pairs = left.map { event -> [JSONValue?] in
      guard case .object(let fields) = event else { return [] }
      return [fields["node_id"], fields["reason"]]
    }
    #expect(pairs.count == 2)
    #expect(pairs.contains([.string("leaving"), .string("node leaving left")]))
    #expect(pairs.contains([.string("silent"), .string("node silent missed its heartbeats")]))
    #expect(fabric.center.nodes().first { $0.id == "leaving" }?.status == .offline)
    await fabric.stop()
  }

  @Test("accepted tasks survive a gateway restart; a task running at the stop runs again")
  func survivesRestart() async throws {
    let path = temporaryDatabasePath()
    let fabric = try await TaskFabric(databasePath: path)
    let client = fabric.client()
    try await fabric.addNode("n1", slots: 1, runner: hangingNode)
    let interrupted = try await client.submitCode(hangsOnHangingNode("second try"))
    #expect(try await fabric.waitFor(interrupted, .running))
    var waiting: [String] = []
    for index in 0..<3 { waiting.append(try await client.submit("sync_add", index, 1)) }
    await fabric.stopGateway()

    let restarted = try await TaskFabric(databasePath: path)
    let again = restarted.client()
    let before = try await again.task(interrupted)
    #expect(before.status == .queued && before.attempts == 1)
    #expect(before.errorMessage == "the gateway stopped")
    try await restarted.addNode("n2", slots: 2)
    let finished = try await again.waitForTask(interrupted, timeout: .seconds(30))
    #expect(finished.status == .completed && finished.result == "second try" && finished.attempts == 2)
    for (index, id) in waiting.enumerated() {
      let sum: Double = try await again.result(id, timeout: .seconds(20))
      #expect(sum == Double(index + 1))
    }
    await restarted.stop()
    await fabric.stop()
  }

  @Test("3 nodes and 300 short tasks: every node is served; a newcomer gets work at once")
  func fairness() async throws {
    let fabric = try await TaskFabric()
    for id in ["n1", "n2", "n3"] { try await fabric.addNode(id, slots: 1) }
    let client = fabric.client()
    var ids: [String] = []
    for index in 0..<300 { ids.append(try await client.submit("sync_add", index, 0)) }
    for id in ids { _ = try await client.waitForTask(id, timeout: .seconds(60)) }
    let tasks = try await client.tasks(status: .completed, limit: 1000)
    #expect(tasks.count == 300)
    let perNode = Dictionary(grouping: tasks, by: { $0.nodeID ?? "" }).mapValues(\.count)
    for id in ["n1", "n2", "n3"] { #expect(perNode[id, default: 0] >= 50, "\(perNode)") }

    try await fabric.addNode("newcomer", slots: 1)
    var later: [String] = []
    for index in 0..<20 { later.append(try await client.submit("sync_add", index, 0)) }
    for id in later { _ = try await client.waitForTask(id, timeout: .seconds(60)) }
    var startedOrder: [TaskRecord] = []
    for id in later { startedOrder.append(try await client.task(id)) }
    startedOrder.sort { ($0.startedAt ?? .distantFuture) < ($1.startedAt ?? .distantFuture) }
    let firstForNewcomer = startedOrder.firstIndex { $0.nodeID == "newcomer" }
    #expect(firstForNewcomer != nil && firstForNewcomer! < 4, "newcomer first served at \(String(describing: firstForNewcomer))")
    #expect(await fabric.center.queue().count == 4)
    await fabric.stop()
  }
}

/// Expects `body` to throw an ``EasyRemoteError``; returns it.
func expectTaskError(_ body: () async throws -> Void) async throws -> EasyRemoteError {
  do {
    try await body()
  } catch let error as EasyRemoteError {
    return error
  }
  Issue.record("expected an EasyRemoteError")
  throw EasyRemoteError(code: .internalError, message: "no error")
}

/// A node whose code tasks can tell it apart: their memory limit is 300 MiB.
let hangingNode = CodeRunner(limits: SandboxLimits(memoryBytes: 300 << 20))

/// Code that hangs on ``hangingNode`` and prints `text` anywhere else: the first attempt
/// hangs until its node goes, the next one (on another node) finishes.
func hangsOnHangingNode(_ text: String) -> String {
  "import resource, time\nif resource.getrlimit(resource.RLIMIT_AS)[0] == 300 << 20:\n    time.sleep(60)\nprint('\(text)')"
}
