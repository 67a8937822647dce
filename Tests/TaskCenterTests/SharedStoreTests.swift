import EasyRemote
import Foundation
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
    var reaped: [TaskRecord] = []
    #expect(
      try await eventually(timeout: .seconds(30)) {
        reaped += try await live.reapExpiredLeases(reason: "its gateway went away", at: Date())
        return !reaped.isEmpty
      })
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
    // `hold` keeps the first gateway's only worker busy, so the queue is there for the other.
    var ids: [String] = []
    for _ in 0..<6 { ids.append(try await client.submit("hold", 0.3)) }
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
    // ...and joins again: the task ends with that result, on that node, in its first attempt.
    try await worker.join()
    let done = try await fabric.client().waitForTask(task.id, timeout: .seconds(30))
    #expect(done.status == .completed && done.result == "42" && done.nodeID == "worker-1" && done.attempts == 1, "\(done)")
    #expect(worker.completedTasks == 1)
    await fabric.stop()
  }
}
