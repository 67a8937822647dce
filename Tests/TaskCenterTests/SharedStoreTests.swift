import TestSupport
import EasyRemote
import ExampleFunctions
import Foundation
import Synchronization
@testable import TaskCenter
import Testing

/// Several gateways on one PostgreSQL database (a real server the tests start): claims,
/// leases, notifications, and what a node hands in when its gateway died.
@Suite("Gateways sharing PostgreSQL", .enabled(if: PostgresServer.available, "needs Debian's postgresql and root"), .timeLimit(.minutes(3)))
struct SharedStoreTests {
  @Test("two gateways starting the same tasks at once: each task starts once, tagged; each hands back only its own")
  func claimsAndOwnRequeue() async throws {
    let url = try await PostgresServer.database()
    let a = try await PostgresTaskStore(url: url, gatewayID: "gw-a")
    let b = try await PostgresTaskStore(url: url, gatewayID: "gw-b")
    let tasks = (0..<40).map { _ in TaskRecord.code("print(1)") }
    for task in tasks { try await a.insert(task) }
    // Both race for every task.
    let starts = try await withThrowingTaskGroup(of: (String, String)?.self) { group in
      for task in tasks {
        group.addTask { try await a.start(task.id, on: "node-a", at: Date()).map { ($0.id, "a") } }
        group.addTask { try await b.start(task.id, on: "node-b", at: Date()).map { ($0.id, "b") } }
      }
      var starts: [(String, String)] = []
      for try await start in group { if let start { starts.append(start) } }
      return starts
    }
    #expect(starts.count == tasks.count)
    #expect(Set(starts.map(\.0)) == Set(tasks.map(\.id)), "a task started twice, or not at all")
    let byB = Set(starts.filter { $0.1 == "b" }.map(\.0))
    // Gateway B restarting (or stopping) hands back its own running tasks, never A's.
    let requeued = try await b.requeueRunning(on: nil, reason: "gateway b stopped", at: Date())
    #expect(Set(requeued.map(\.id)) == byB)
    #expect(try await b.requeueRunning(on: "node-a", reason: "not b's", at: Date()).isEmpty)
    let counts = try await a.counts()
    #expect(counts[.running] == tasks.count - byB.count && counts[.queued, default: 0] == byB.count, "\(counts)")
    await a.close()
    await b.close()
  }

  @Test("a gateway whose lease ran out has its running tasks requeued by a live one; the live one's stay running")
  func expiredLeases() async throws {
    let url = try await PostgresServer.database()
    let dying = try await PostgresTaskStore(url: url, gatewayID: "gw-dying")
    let live = try await PostgresTaskStore(url: url, gatewayID: "gw-live")
    #expect(try await dying.renewLease(for: .milliseconds(300), address: "127.0.0.1:1"))
    #expect(try await live.renewLease(for: .seconds(60), address: "127.0.0.1:2"))
    let lost = TaskRecord.code("print(1)")
    let kept = TaskRecord.code("print(2)")
    try await dying.insert(lost)
    try await live.insert(kept)
    _ = try #require(try await dying.start(lost.id, on: "n1", at: Date()))
    _ = try #require(try await live.start(kept.id, on: "n2", at: Date()))

    // Nothing expired yet for a reaper that looks at once... then the dying lease runs out.
    let reaped = try await reapedOnceExpired(by: live)
    #expect(reaped.map(\.id) == [lost.id])
    #expect(reaped.first?.status == .queued && reaped.first?.errorMessage == "its gateway went away")
    #expect(try await live.task(kept.id)?.status == .running)
    #expect(try await live.gateways().map(\.id) == ["gw-live"])
    #expect(try await live.gateways().first?.address == "127.0.0.1:2")
    // The dying gateway comes back: its lease was lost, and it says so.
    #expect(try await dying.renewLease(for: .seconds(60), address: nil) == false)
    #expect(try await dying.renewLease(for: .seconds(60), address: nil) == true)
    await dying.close()
    await live.close()
  }

  @Test("every change by one gateway reaches the other's notices, with its status and who made it")
  func notices() async throws {
    let url = try await PostgresServer.database()
    let a = try await PostgresTaskStore(url: url, gatewayID: "gw-a")
    let b = try await PostgresTaskStore(url: url, gatewayID: "gw-b")
    var iterator = b.notices().makeAsyncIterator()
    // A resync says it is listening; from then on nothing is missed, own changes included.
    #expect(await iterator.next() == .resync)
    let probe = TaskRecord.code("print(0)")
    try await b.insert(probe)
    #expect(await iterator.next() == .created(id: probe.id, gateway: "gw-b"))
    let task = TaskRecord.code("print(1)")
    try await a.insert(task)
    _ = try await a.start(task.id, on: "n", at: Date())
    _ = try await a.finish(task.id, with: .completed(.text("1\n")), by: "n", at: Date())
    #expect(await iterator.next() == .created(id: task.id, gateway: "gw-a"))
    #expect(await iterator.next() == .changed(id: task.id, status: .running, gateway: "gw-a"))
    #expect(await iterator.next() == .changed(id: task.id, status: .completed, gateway: "gw-a"))
    await a.close()
    await b.close()
  }

  @Test("a task submitted at one gateway is run by another's node, woken by a notification; the waiter at the first gets it")
  func crossGatewayTasks() async throws {
    let url = try await PostgresServer.database()
    let first = try await TaskFabric(store: try await PostgresTaskStore(url: url, gatewayID: "gw-first"))
    let second = try await TaskFabric(store: try await PostgresTaskStore(url: url, gatewayID: "gw-second"))
    try await first.addNode("first-node", slots: 1, code: false)
    try await second.addNode("second-node", slots: 2, code: false)
    let client = first.client()
    // `hold` keeps the first gateway's only worker busy, so the queue is there for the other;
    // once the other gateway's node holds one, all are let go.
    var ids: [String] = []
    for _ in 0..<6 { ids.append(try await client.submit("hold")) }
    #expect(await second.holding.wait() == "second-node")
    first.release.open()
    second.release.open()
    var nodes: [String: Int] = [:]
    for id in ids {
      let done = try await client.waitForTask(id, timeout: .seconds(60))
      #expect(done.status == .completed, "\(done)")
      nodes[done.nodeID ?? "?", default: 0] += 1
    }
    #expect(nodes["second-node", default: 0] > 0, "the other gateway never started a task: \(nodes)")
    #expect(nodes.values.reduce(0, +) == 6)
    #expect(try await first.center.gateways().map(\.id).sorted() == ["gw-first", "gw-second"])
    await first.stop()
    await second.stop()
  }

  @Test("a node whose gateway died hands in what it finished to the gateway it joins next: recorded, not run again")
  func reportsOfALostGateway() async throws {
    let url = try await PostgresServer.database()
    // The dead gateway started the task on `worker-1` and died before recording its end.
    // (Its lease has time left: it died moments ago.)
    let dead = try await PostgresTaskStore(url: url, gatewayID: "gw-dead")
    try await dead.renewLease(for: .seconds(60), address: nil)
    let task = try TaskRecord.function("sync_add", args: [.int(2), .int(40)])
    try await dead.insert(task)
    let started = try #require(try await dead.start(task.id, on: "worker-1", at: Date()))
    await dead.close()

    let fabric = try await TaskFabric(store: try await PostgresTaskStore(url: url, gatewayID: "gw-next"))
    let (_, worker) = try await fabric.addNode("worker-1", slots: 1, code: false)
    // The node had run it (the answer lost with the gateway)...
    let outcome = await worker.run(TaskAssignment(started))
    #expect(outcome.status == .completed)
    // ...and hands it in (as it does before each announcement): the task ends with that result,
    // on that node, in its first attempt.
    await worker.handIn()
    let done = try await fabric.client().waitForTask(task.id, timeout: .seconds(30))
    #expect(done.status == .completed && done.result == "42" && done.nodeID == "worker-1" && done.attempts == 1, "\(done)")
    #expect(worker.completedTasks == 1)
    await fabric.stop()
  }

  @Test("a node whose gateway died hands in its answer after the lease ran out: the requeued task, not started again, takes it")
  func reportAfterTheLease() async throws {
    let url = try await PostgresServer.database()
    // The dead gateway started the task on `worker-1`; its lease ran out and a live gateway
    // put the task back in the queue before the node came back.
    let dead = try await PostgresTaskStore(url: url, gatewayID: "gw-dead")
    try await dead.renewLease(for: .milliseconds(200), address: nil)
    let task = try TaskRecord.function("sync_add", args: [.int(2), .int(40)])
    try await dead.insert(task)
    let started = try #require(try await dead.start(task.id, on: "worker-1", at: Date()))
    await dead.close()
    let live = try await PostgresTaskStore(url: url, gatewayID: "gw-live")
    try await live.renewLease(for: .seconds(60), address: nil)
    #expect(try await !reapedOnceExpired(by: live).isEmpty)
    #expect(try await live.task(task.id)?.status == .queued)

    // The node had run it (the answer lost with the gateway); it joins the live gateway, the
    // only node there: the task ends with its answer, in its first attempt, run once.
    let fabric = try await TaskFabric(store: live)
    let node = ComputeNode(serverAddress: fabric.address, nodeID: "worker-1", maxWorkers: 1, transport: fabric.transport)
    SeedExamples.register(on: node)
    let worker = TaskWorker(
      node: node, runner: nil, slots: 1, resources: NodeResources(cores: 4, memoryMB: 4096, platform: "linux"),
      load: { NodeLoad(cpuPercent: 1, memoryPercent: 1) })
    let outcome = await worker.run(TaskAssignment(started))
    #expect(outcome.status == .completed)
    try await node.start()
    try await worker.start()
    let done = try await fabric.client().waitForTask(task.id, timeout: .seconds(30))
    #expect(done.status == .completed && done.result == "42" && done.nodeID == "worker-1" && done.attempts == 1, "\(done)")
    #expect(worker.completedTasks == 1)
    await worker.stop()
    await node.stop()
    await fabric.stop()
  }

  @Test("the node table: other gateways' available nodes are offered, starts and answers count in the same statement, a wake reaches its gateway")
  func nodeTable() async throws {
    let url = try await PostgresServer.database()
    let a = try await PostgresTaskStore(url: url, gatewayID: "gw-a")
    let b = try await PostgresTaskStore(url: url, gatewayID: "gw-b")
    try await a.renewLease(for: .seconds(60), address: nil)
    try await b.renewLease(for: .seconds(60), address: nil)
    let joined = Date(timeIntervalSince1970: 1_000)
    func node(_ id: String, online: Bool = true, available: Bool = true) -> PoolNode {
      PoolNode(
        id: id, gatewayID: "gw-a", online: online, available: available, slots: 1, waitingSince: joined, cores: 4,
        memoryMB: 4096, runsCode: true, functions: ["whoami"])
    }
    try await a.publishNodes([node("a-free"), node("a-busy", available: false), node("a-gone", online: false)])
    var wakes = a.notices().makeAsyncIterator()
    #expect(await wakes.next() == .resync)

    // B is offered A's one available node, leaves the task to it and wakes A.
    let task = TaskRecord.code("print(1)")
    try await b.insert(task)
    let offered = Mutex<[String]>([])
    let none = try await b.startQueued(limit: 10, now: { Date() }) { offer in
      offered.withLock { $0 = offer.others.map(\.id) }
      return QueueChoice(wake: ["gw-a"])
    }
    #expect(none.isEmpty)
    #expect(offered.withLock { $0 } == ["a-free"])
    var notice = await wakes.next()
    while case .created = notice { notice = await wakes.next() }
    #expect(notice == .wake(gateway: "gw-a"))

    // A starts it there: the row counts it running and its wait starts again; B no longer
    // sees a free node.
    let start = Date(timeIntervalSince1970: 2_000)
    let started = try await a.startQueued(limit: 10, now: { start }) { offer in
      QueueChoice(picks: [QueuePick(taskID: offer.tasks[0].id, nodeID: "a-free")])
    }
    #expect(started.map(\.id) == [task.id])
    var row = try #require(try await b.poolNode("a-free"))
    #expect(row.running == 1 && row.free == 0 && row.waitingSince == start && row.lastServedAt == start, "\(row)")
    try await b.insert(TaskRecord.code("print(2)"))
    _ = try await b.startQueued(limit: 10, now: { Date() }) { offer in
      offered.withLock { $0 = offer.others.map(\.id) }
      return QueueChoice()
    }
    #expect(offered.withLock { $0 }.isEmpty)

    // Its answer frees the slot and counts, in the same statement.
    _ = try await a.finish(task.id, with: TaskOutcome(status: .completed, executionTime: 1.5), by: "a-free", at: Date())
    row = try #require(try await b.poolNode("a-free"))
    #expect(row.running == 0 && row.completed == 1 && row.failed == 0 && row.computeTime == 1.5, "\(row)")

    // A write by its gateway keeps what the tasks' statements counted.
    try await a.publishNodes([node("a-free")])
    row = try #require(try await b.poolNode("a-free"))
    #expect(row.completed == 1 && row.waitingSince == start, "\(row)")

    // The node moves to B: B's row, with its history; A writing it offline changes nothing.
    var moved = node("a-free")
    moved.gatewayID = "gw-b"
    try await b.publishNodes([moved])
    try await a.publishNodes([node("a-free", online: false)])
    row = try #require(try await a.poolNode("a-free"))
    #expect(row.gatewayID == "gw-b" && row.online && row.completed == 1, "\(row)")

    // A gateway without a live lease offers nothing.
    try await a.releaseLease()
    _ = try await b.startQueued(limit: 10, now: { Date() }) { offer in
      offered.withLock { $0 = offer.others.map(\.id) }
      return QueueChoice()
    }
    #expect(offered.withLock { $0 }.isEmpty)
    await a.close()
    await b.close()
  }

  @Test("nodes on different gateways share one queue by the seed-004 rules (fewest tasks, then longest wait); history follows a node that moves")
  func fairAcrossGateways() async throws {
    let url = try await PostgresServer.database()
    let storeA = try await PostgresTaskStore(url: url, gatewayID: "gw-a")
    let storeB = try await PostgresTaskStore(url: url, gatewayID: "gw-b")
    let a = try await TaskFabric(store: storeA)
    let b = try await TaskFabric(store: storeB)
    try await a.addNode("a-node", code: false)
    let (movingNode, movingWorker) = try await b.addNode("b-node-1", code: false)
    try await b.addNode("b-node-2", code: false)
    // Each gateway has written its nodes where the other reads them.
    #expect(
      try await until(a.center.sharedStoreWrites(), b.center.sharedStoreWrites()) {
        let rows = [try await storeB.poolNode("a-node"), try await storeA.poolNode("b-node-1"), try await storeA.poolNode("b-node-2")]
        return rows.allSatisfy { $0?.online == true }
      })
    // Either gateway lists the one fair order of all three nodes.
    let order = await a.center.queue().map(\.nodeID)
    #expect(Set(order) == ["a-node", "b-node-1", "b-node-2"], "\(order)")
    #expect(await b.center.queue().map(\.nodeID) == order)
    // Tasks one at a time, all submitted at B (whose own nodes it would otherwise pick first).
    let client = b.client()
    var ran: [String] = []
    for _ in 0..<9 {
      let id = try await client.submit("whoami")
      let done = try await client.waitForTask(id, timeout: .seconds(60))
      #expect(done.status == .completed, "\(done)")
      ran.append(done.nodeID ?? "?")
    }
    let counts = Dictionary(ran.map { ($0, 1) }, uniquingKeysWith: +)
    #expect(counts == ["a-node": 3, "b-node-1": 3, "b-node-2": 3], "\(ran)")
    for round in 0..<3 {
      #expect(Set(ran[round * 3..<round * 3 + 3]).count == 3, "each round serves every node once: \(ran)")
    }
    // b-node-1 moves to A: A's scheduler weighs it with the three tasks it did behind B.
    let writtenByB = b.center.sharedStoreWrites()
    await movingWorker.stop()
    await movingNode.stop()
    #expect(try await until(writtenByB) { try await storeA.poolNode("b-node-1")?.online == false })
    // Its node_joined event is told with the history it brought.
    let (joined, writtenByA) = (a.center.events(), a.center.sharedStoreWrites())
    try await a.addNode("b-node-1", code: false)
    #expect(try await until(joined) { (try? a.center.node("b-node-1"))?.completedTasks == 3 })
    #expect(try await until(writtenByA) { try await storeB.poolNode("b-node-1")?.gatewayID == "gw-a" })
    await a.stop()
    await b.stop()
  }

  @Test("a task left to another gateway's better node is taken here once it waited a lease, if that gateway never does")
  func patienceIsBounded() async throws {
    let url = try await PostgresServer.database()
    // A gateway that holds its lease and publishes a node that has waited long (it would win),
    // but never dispatches.
    let silent = try await PostgresTaskStore(url: url, gatewayID: "gw-silent")
    try await silent.renewLease(for: .seconds(120), address: nil)
    try await silent.publishNodes([
      PoolNode(
        id: "elsewhere", gatewayID: "gw-silent", slots: 1, waitingSince: Date().addingTimeInterval(-200), cores: 4,
        memoryMB: 4096, runsCode: false, functions: ["whoami"])
    ])
    var notices = silent.notices().makeAsyncIterator()
    #expect(await notices.next() == .resync)
    var configuration = TaskFabric.configuration
    configuration.leaseDuration = .seconds(3)
    let fabric = try await TaskFabric(configuration: configuration, store: try await PostgresTaskStore(url: url, gatewayID: "gw-here"))
    try await fabric.addNode("here", code: false)
    let client = fabric.client()
    let id = try await client.submit("whoami")
    let done = try await client.waitForTask(id, timeout: .seconds(60))
    #expect(done.status == .completed && done.nodeID == "here", "\(done)")
    let held = try #require(done.startedAt).timeIntervalSince(done.createdAt)
    #expect(held >= 2.9, "started after \(held) s: it was not left to the better node first")
    // The silent gateway was woken for it before it started here.
    var woken = false
    while let notice = await notices.next() {
      if notice == .wake(gateway: "gw-silent") { woken = true }
      if notice == .changed(id: id, status: .running, gateway: "gw-here") { break }
    }
    #expect(woken)
    await fabric.stop()
    await silent.close()
  }
}

/// What `store` reaps once a lease it waits for has run out. The leases run on PostgreSQL's
/// clock (an outside process's), so this asks again every 20 ms until it has.
func reapedOnceExpired(by store: PostgresTaskStore) async throws -> [TaskRecord] {
  var reaped: [TaskRecord] = []
  _ = try await eventually {
    reaped += try await store.reapExpiredLeases(reason: "its gateway went away", at: Date())
    return !reaped.isEmpty
  }
  return reaped
}
