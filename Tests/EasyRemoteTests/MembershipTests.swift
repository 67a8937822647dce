import Foundation
import Testing

@testable import EasyRemoteCore

/// The gateway's one list of nodes, as a pure state machine: time is passed in, nothing runs.
@Suite("Membership")
struct MembershipTests {
  static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

  static func announce(_ id: String, _ functions: [String], maxWorkers: Int = 2) -> NodeAnnouncement {
    NodeAnnouncement(
      nodeID: id, maxWorkers: maxWorkers,
      functions: functions.map {
        FunctionDescriptor(name: $0, description: "", parameters: [], streaming: false, idempotent: false)
      })
  }

  static func members(_ specs: [(String, [String], Int)], strategy: Membership.Strategy = .leastInFlight) -> Membership {
    var membership = Membership(strategy: strategy)
    for (offset, (id, functions, workers)) in specs.enumerated() {
      membership.join(announce(id, functions, maxWorkers: workers), at: t0.addingTimeInterval(Double(offset)))
    }
    return membership
  }

  @Test("least in flight picks the idlest node, then spreads ties")
  func leastInFlight() throws {
    var membership = Self.members([("a", ["f"], 2), ("b", ["f"], 2)])
    let first = try membership.routeCall("f").get().nodeID
    let second = try membership.routeCall("f").get().nodeID
    #expect(first != second)
    membership.finishCall(on: first)
    #expect(try membership.routeCall("f").get().nodeID == first)
    #expect(membership.callsInFlight == 2)
  }

  @Test("full nodes are skipped while another has a free worker")
  func skipsFull() throws {
    var membership = Self.members([("a", ["f"], 1), ("b", ["f"], 5)], strategy: .roundRobin)
    var picks: [String] = []
    for _ in 0..<4 { picks.append(try membership.routeCall("f").get().nodeID) }
    #expect(picks.filter { $0 == "a" }.count == 1)
    #expect(picks.filter { $0 == "b" }.count == 3)
  }

  @Test("round robin takes each node in turn")
  func roundRobin() throws {
    var membership = Self.members([("a", ["f"], 100), ("b", ["f"], 100), ("c", ["f"], 100)], strategy: .roundRobin)
    let picks = try (0..<6).map { _ in try membership.routeCall("f").get().nodeID }
    #expect(picks == ["a", "b", "c", "a", "b", "c"])
  }

  @Test("targets, exclusions and unknown functions")
  func targeting() throws {
    var membership = Self.members([("a", ["f"], 2), ("b", ["f", "g"], 2)])
    #expect(try membership.routeCall("g").get().nodeID == "b")
    #expect(try membership.routeCall("f", target: "a").get().nodeID == "a")
    #expect(try membership.routeCall("f", excluding: ["a"]).get().nodeID == "b")
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("g", target: "a").get() }
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("h").get() }
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("g", excluding: ["b"]).get() }
    membership.leave("b")
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("g").get() }
    #expect(membership.functions.map(\.name) == ["f"])
    #expect(membership.functions.first?.nodes == ["a"])
  }

  /// One step of a capacity table: what happens, and what the membership must answer.
  enum Step: CustomStringConvertible {
    case call, finishCall, task(expect: Bool), finishTask
    var description: String {
      switch self {
      case .call: "call"
      case .finishCall: "finishCall"
      case .task(let expect): "task → \(expect)"
      case .finishTask: "finishTask"
      }
    }
  }

  static let capacityTables: [(workers: Int, steps: [Step])] = [
    // Calls fill the workers: no task until one ends.
    (2, [.call, .call, .task(expect: false), .finishCall, .task(expect: true), .task(expect: false)]),
    // Tasks fill the workers: calls still route (the node queues them), tasks do not.
    (2, [.task(expect: true), .task(expect: true), .task(expect: false), .call, .finishTask, .task(expect: false),
         .finishCall, .task(expect: true)]),
    // One worker, shared.
    (1, [.task(expect: true), .task(expect: false), .finishTask, .call, .task(expect: false), .finishCall,
         .task(expect: true)]),
  ]

  @Test("a node's calls and tasks share its maxWorkers: a task gets a worker only when one is free",
        arguments: capacityTables.indices)
  func oneCapacity(table: Int) throws {
    let (workers, steps) = Self.capacityTables[table]
    var membership = Self.members([("n", ["f"], workers)])
    for (index, step) in steps.enumerated() {
      switch step {
      case .call: _ = try membership.routeCall("f").get()
      case .finishCall: membership.finishCall(on: "n")
      case .task(let expected):
        let reserved = membership.reserveTask(on: "n")
        #expect(reserved == expected, "step \(index): \(step)")
      case .finishTask: membership.finishTask(on: "n")
      }
      let node = try #require(membership.members["n"])
      // Tasks never take a worker that calls or tasks hold.
      #expect(node.tasks <= workers, "step \(index)")
      if case .task(true) = step { #expect(node.busy <= workers, "step \(index)") }
      #expect(membership.hasFreeWorker("n") == (node.busy < workers))
    }
  }

  @Test("finishing a call says when it frees a full node's worker, and only then")
  func workerFreed() throws {
    var membership = Self.members([("n", ["f"], 2)])
    _ = try membership.routeCall("f").get()
    _ = try membership.routeCall("f").get()
    _ = try membership.routeCall("f").get()  // queued on the node: 3 calls, 2 workers
    let stillFull = membership.finishCall(on: "n")
    let freed = membership.finishCall(on: "n")
    let alreadyFree = membership.finishCall(on: "n")
    #expect(!stillFull && freed && !alreadyFree)
    let gone = membership.finishCall(on: "nobody")
    #expect(!gone)
  }

  @Test("busy counts tasks too: calls go to the node with less work of either kind")
  func callsSeeTasks() throws {
    var membership = Self.members([("a", ["f"], 4), ("b", ["f"], 4)])
    let first = membership.reserveTask(on: "a")
    let second = membership.reserveTask(on: "a")
    #expect(first && second)
    #expect(try membership.routeCall("f").get().nodeID == "b")
    #expect(membership.nodeInfos(at: Self.t0).map(\.tasks) == [2, 0])
    #expect(membership.nodeInfos(at: Self.t0).map(\.inFlight) == [0, 1])
  }

  @Test("a node lost mid-call and mid-task is gone from routing and from tasks at once")
  func lostMidWork() throws {
    var membership = Self.members([("doomed", ["f"], 2), ("other", ["f"], 2)])
    _ = try membership.routeCall("f", target: "doomed").get()
    let reserved = membership.reserveTask(on: "doomed")
    #expect(reserved)
    let left = membership.leave("doomed")
    let gone = try #require(left)
    #expect(gone.calls == 1 && gone.tasks == 1)
    #expect(membership.members["doomed"] == nil)
    let again = membership.reserveTask(on: "doomed")
    #expect(!again)
    #expect(!membership.hasFreeWorker("doomed"))
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("f", target: "doomed").get() }
    for _ in 0..<3 { #expect(try membership.routeCall("f").get().nodeID == "other") }
    // Late news of the lost node's work changes nothing.
    membership.finishCall(on: "doomed")
    membership.finishTask(on: "doomed")
    #expect(membership.members.keys.sorted() == ["other"])
    let twice = membership.leave("doomed")
    #expect(twice == nil)
  }

  @Test("joining again keeps the work counted and the first join time; new functions replace the old")
  func rejoin() throws {
    var membership = Self.members([("n", ["f"], 2)])
    _ = try membership.routeCall("f").get()
    let reserved = membership.reserveTask(on: "n")
    #expect(reserved)
    let change = membership.join(Self.announce("n", ["g"], maxWorkers: 3), at: Self.t0.addingTimeInterval(60))
    #expect(change == Membership.JoinChange(isNew: false, joinedTasks: false, leftTasks: false))
    let node = try #require(membership.members["n"])
    #expect(node.calls == 1 && node.tasks == 1 && node.maxWorkers == 3)
    #expect(node.joinedAt == Self.t0)
    #expect(membership.nodes(serving: "g") == ["n"] && membership.nodes(serving: "f").isEmpty)
  }

  // MARK: The one registry: task nodes, pulling nodes, history

  static let machine = NodeResources(cores: 4, memoryMB: 8192, platform: "linux")

  static func worker(slots: Int, maxCPU: Double = 80) -> Membership.Worker {
    Membership.Worker(
      resources: machine, taskSlots: slots, thresholds: LoadThresholds(maxCPUPercent: maxCPU), runsCode: true)
  }

  @Test("a task takes a worker only while the node has a task slot, a free worker and a quiet machine")
  func takeNeedsEverything() throws {
    var membership = Self.members([("n", ["f"], 4)])
    let r1 = membership.take("n", at: Self.t0)
    #expect(!r1, "not a task node until it joins the task center")
    let r2 = membership.joinTasks("n", Self.worker(slots: 2, maxCPU: 50), at: Self.t0)
    #expect(r2 == true)
    let r3 = membership.joinTasks("ghost", Self.worker(slots: 2), at: Self.t0)
    #expect(r3 == nil, "not connected")
    let r4 = membership.take("n", at: Self.t0.addingTimeInterval(1))
    #expect(r4)
    #expect(membership.members["n"]?.history.lastServedAt == Self.t0.addingTimeInterval(1))
    _ = try membership.routeCall("f").get()
    // 1 task + 1 call of 4 workers, 1 of 2 task slots: one more task fits.
    #expect(membership.members["n"]?.canTakeTask == true)
    let r5 = membership.take("n", at: Self.t0)
    #expect(r5)
    // 2 of 2 task slots (a worker is still free for calls).
    let r6 = membership.take("n", at: Self.t0)
    #expect(!r6 && membership.hasFreeWorker("n"))
    membership.finishTask(on: "n")
    // Its owner is busy: no task, whatever is free.
    membership.report("n", NodeReport(load: NodeLoad(cpuPercent: 70)), at: Self.t0)
    let r7 = membership.take("n", at: Self.t0)
    #expect(!r7)
    #expect(membership.members["n"]?.taskStatus(at: Self.t0, heartbeatTimeout: 30) == .busy)
    membership.report("n", NodeReport(load: NodeLoad(cpuPercent: 10)), at: Self.t0)
    #expect(membership.members["n"]?.taskStatus(at: Self.t0, heartbeatTimeout: 30) == .idle)
    // Calls fill the workers: busy for tasks too (one capacity).
    _ = try membership.routeCall("f").get()
    _ = try membership.routeCall("f").get()
    #expect(membership.members["n"]?.taskStatus(at: Self.t0, heartbeatTimeout: 30) == .busy)
    let r8 = membership.take("n", at: Self.t0)
    #expect(!r8)
  }

  @Test("a task node that leaves stays on record, offline, and gets its history back when it rejoins")
  func departedKeepsHistory() throws {
    var membership = Self.members([("n", ["f"], 2), ("calls-only", ["f"], 2)])
    _ = membership.joinTasks("n", Self.worker(slots: 2), at: Self.t0)
    let r9 = membership.take("n", at: Self.t0)
    #expect(r9)
    membership.finishTask(on: "n")
    membership.recordTask(on: "n", computeSeconds: 2.5, succeeded: true)
    let r10 = membership.take("n", at: Self.t0)
    #expect(r10)
    membership.leave("n")
    membership.leave("calls-only")
    membership.recordTask(on: "n", computeSeconds: 1, succeeded: false)  // its answer came late
    let record = try #require(membership.taskNode("n"))
    #expect(!record.online && record.tasks == 0 && record.history.completed == 1 && record.history.failed == 1)
    #expect(record.taskStatus(at: Self.t0, heartbeatTimeout: 1e9) == .offline)
    #expect(membership.taskNode("calls-only") == nil, "a node that never took tasks leaves no record")
    #expect(membership.taskNodes.map(\.id) == ["n"])
    // Back over a link: history kept, no tasks until it joins the task center again.
    let later = Self.t0.addingTimeInterval(60)
    membership.join(Self.announce("n", ["f"]), at: later)
    #expect(membership.departed.isEmpty)
    let r11 = membership.take("n", at: later)
    #expect(membership.members["n"]?.worker == nil && !r11)
    _ = membership.joinTasks("n", Self.worker(slots: 2), at: later)
    let back = try #require(membership.members["n"])
    #expect(back.history.completed == 1 && back.history.computeSeconds == 3.5 && back.history.waitingSince == later)
  }

  @Test("a node that pulls over HTTP is a member without a link: never routed to, expired by silence")
  func pullingNodes() throws {
    var membership = Self.members([("linked", ["f"], 2)])
    let joined = membership.pullHeartbeat(
      "puller", resources: Self.machine, load: NodeLoad(), slots: 2, heartbeatTimeout: 30, at: Self.t0)
    #expect(joined)
    #expect(membership.nodeInfos(at: Self.t0).map(\.id) == ["linked"], "the gateway's node list is its links")
    #expect(membership.members["puller"]?.isLinked == false && membership.members["linked"]?.isLinked == true)
    #expect(throws: EasyRemoteError.self) { try membership.routeCall("f", target: "puller").get() }
    let r12 = membership.take("puller", at: Self.t0)
    #expect(r12)
    // Heartbeats keep it; a linked node is never spoken for over HTTP.
    let again = membership.pullHeartbeat(
      "puller", resources: Self.machine, load: NodeLoad(), slots: 2, heartbeatTimeout: 30, at: Self.t0.addingTimeInterval(20))
    #expect(!again)
    let hijack = membership.pullHeartbeat(
      "linked", resources: Self.machine, load: NodeLoad(), slots: 2, heartbeatTimeout: 30, at: Self.t0)
    #expect(!hijack && membership.members["linked"]?.attachment == .link)
    let r13 = membership.expire(heartbeatTimeout: 30, at: Self.t0.addingTimeInterval(45))
    #expect(r13 == [])
    let r14 = membership.expire(heartbeatTimeout: 30, at: Self.t0.addingTimeInterval(51))
    #expect(r14 == ["puller"])
    #expect(membership.members["puller"] == nil && membership.taskNode("puller")?.online == false)
    // A link is never expired by the clock.
    #expect(membership.members["linked"] != nil)
    // Its next heartbeat brings it back, with what it had done.
    membership.recordTask(on: "puller", computeSeconds: 1, succeeded: true)
    let back = membership.pullHeartbeat(
      "puller", resources: Self.machine, load: NodeLoad(), slots: 2, heartbeatTimeout: 30, at: Self.t0.addingTimeInterval(60))
    #expect(back && membership.members["puller"]?.history.completed == 1 && membership.members["puller"]?.tasks == 0)
  }

  @Test("a node that stops taking tasks keeps its link and its calls")
  func leaveTasksKeepsLink() throws {
    var membership = Self.members([("n", ["f"], 2)])
    _ = membership.joinTasks("n", Self.worker(slots: 1), at: Self.t0)
    _ = try membership.routeCall("f").get()
    let r15 = membership.leaveTasks("n")
    #expect(r15)
    let r16 = membership.leaveTasks("n")
    #expect(!r16, "once")
    #expect(membership.members["n"]?.calls == 1 && membership.members["n"]?.isLinked == true)
    #expect(membership.taskNode("n")?.online == false)
    let r17 = membership.take("n", at: Self.t0)
    #expect(!r17)
    _ = membership.joinTasks("n", Self.worker(slots: 1), at: Self.t0)
    let r18 = membership.take("n", at: Self.t0)
    #expect(membership.departed.isEmpty && r18)
  }

  @Test("the records of departed nodes are bounded: the longest gone is forgotten first")
  func departedBounded() {
    var membership = Membership()
    for index in 0...Membership.departedLimit {
      let id = "n\(index)"
      let at = Self.t0.addingTimeInterval(Double(index))
      membership.join(Self.announce(id, []), at: at)
      _ = membership.joinTasks(id, Self.worker(slots: 1), at: at)
      membership.leave(id)
    }
    #expect(membership.departed.count == Membership.departedLimit)
    #expect(membership.departed["n0"] == nil && membership.departed["n1"] != nil)
  }

  @Test("one join: the announcement's worker section makes a node a task node, its absence takes it out")
  func oneJoin() throws {
    var membership = Membership()
    var announcement = Self.announce("n", ["f"], maxWorkers: 2)
    announcement.worker = Self.worker(slots: 2)
    let first = membership.join(announcement, at: Self.t0)
    #expect(first == Membership.JoinChange(isNew: true, joinedTasks: true, leftTasks: false))
    let r1 = membership.take("n", at: Self.t0.addingTimeInterval(5))
    #expect(r1)
    // Announcing again (a new function) keeps its place and its task.
    announcement.functions.append(FunctionDescriptor(name: "g", description: "", parameters: [], streaming: false, idempotent: false))
    let again = membership.join(announcement, at: Self.t0.addingTimeInterval(10))
    #expect(again == Membership.JoinChange(isNew: false, joinedTasks: false, leftTasks: false))
    #expect(membership.members["n"]?.tasks == 1 && membership.members["n"]?.history.waitingSince == Self.t0.addingTimeInterval(5))
    // Without the section: out of the task center, still on its link.
    announcement.worker = nil
    let out = membership.join(announcement, at: Self.t0.addingTimeInterval(20))
    #expect(out == Membership.JoinChange(isNew: false, joinedTasks: false, leftTasks: true))
    #expect(membership.members["n"]?.isLinked == true && membership.taskNode("n")?.online == false)
  }
}
