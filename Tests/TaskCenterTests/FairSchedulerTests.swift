import Foundation
import Testing

@testable import EasyRemoteCore
@testable import TaskCenter

/// The gateway's registry of nodes (``Membership``) and the fair ranking over it, driven as the
/// task center drives them: joins, heartbeats, a task's start and end — time passed in.
struct Pool {
  var membership = Membership()
  let scheduler: FairScheduler
  var timeout: Double { scheduler.configuration.heartbeatTimeout }

  init(configuration: FairScheduler.Configuration = .init()) {
    scheduler = FairScheduler(configuration: configuration)
  }

  /// A node joins: over a link (announce, then the task center's join), or pulling over HTTP.
  mutating func join(_ id: String, resources: NodeResources, slots: Int, pulling: Bool = true, at now: Date) {
    if pulling {
      membership.leave(id)  // joining again: its wait starts now
      _ = membership.pullHeartbeat(id, resources: resources, load: NodeLoad(), slots: slots, heartbeatTimeout: timeout, at: now)
    } else {
      membership.join(NodeAnnouncement(nodeID: id, maxWorkers: slots, functions: []), at: now)
      _ = membership.joinTasks(id, Membership.Worker(resources: resources, taskSlots: slots, runsCode: true), at: now)
    }
  }

  /// A heartbeat with the machine's load: `false` for a node that is not connected.
  @discardableResult
  mutating func heartbeat(_ id: String, load: NodeLoad, at now: Date) -> Bool {
    // A pulling node's heartbeat brings it back after it went silent.
    guard let member = membership.members[id] ?? membership.departed[id] else { return false }
    if member.attachment == .pull {
      _ = membership.pullHeartbeat(
        id, resources: member.worker!.resources, load: load, slots: member.worker!.taskSlots, heartbeatTimeout: timeout, at: now)
      return true
    }
    return membership.report(id, NodeReport(load: load), at: now)
  }

  mutating func restore(_ id: String, completed: Int, lastServedAt: Date? = nil) {
    let waiting = membership.members[id]!.history.waitingSince
    membership.restore(id, Membership.History(completed: completed, waitingSince: waiting, lastServedAt: lastServedAt))
  }

  func best(_ request: ResourceRequest = ResourceRequest(), at now: Date) -> FairScheduler.QueueEntry? {
    scheduler.best(request, among: membership.members.values, at: now)
  }

  /// The node the next task needing `request` goes to, its worker taken.
  mutating func assign(_ request: ResourceRequest = ResourceRequest(), at now: Date) -> String? {
    guard let id = best(request, at: now)?.nodeID, membership.take(id, at: now) else { return nil }
    return id
  }

  mutating func take(_ id: String, at now: Date) { _ = membership.take(id, at: now) }

  /// A task on `id` ended after `computeTime` seconds.
  mutating func release(_ id: String, computeTime: Double = 0, at now: Date) {
    membership.finishTask(on: id)
    membership.recordTask(on: id, computeSeconds: computeTime, succeeded: true)
  }

  func status(of id: String, at now: Date) -> NodeStatus? {
    membership.taskNode(id)?.taskStatus(at: now, heartbeatTimeout: timeout)
  }

  func queue(at now: Date) -> [FairScheduler.QueueEntry] { scheduler.queue(membership.members.values, at: now) }
  func couldRun(_ request: ResourceRequest, at now: Date) -> Bool {
    scheduler.couldRun(request, among: membership.members.values, at: now)
  }
  mutating func expire(at now: Date) -> [String] { membership.expire(heartbeatTimeout: timeout, at: now) }
  mutating func leave(_ id: String) { membership.leave(id) }
  var ids: [String] { membership.members.keys.sorted() }
}

@Suite("Fair scheduler")
struct FairSchedulerTests {
  let t0 = Date(timeIntervalSince1970: 1_800_000_000)
  let machine = NodeResources(cores: 4, memoryMB: 8192, platform: "linux")

  /// (wait seconds, completed tasks, expected score)
  static let scores: [(Double, Int, Double)] = [
    (0, 0, -20),  // a newcomer: 20 points of head start
    (10, 0, -30),
    (0, 1, -18 + 0.1),  // the head start shrinks by 2 a task...
    (0, 9, -2 + 0.9),
    (0, 10, 1),  // ...and is gone at 10
    (30, 15, -30 + 1.5),
    (60, 100, -60 + 10),  // contribution is capped at 10
    (60, 5000, -60 + 10),
    (299, 50, -299 + 5),
  ]

  @Test("the score formula", arguments: scores)
  func score(wait: Double, completed: Int, expected: Double) {
    #expect(abs(FairScheduler.score(waitSeconds: wait, completed: completed) - expected) < 1e-9)
  }

  /// A registry of nodes that joined at `t0 - wait` and completed `completed` tasks.
  func scheduler(_ nodes: [(id: String, wait: Double, completed: Int)], now: Date) -> Pool {
    var scheduler = Pool(configuration: .init(heartbeatTimeout: 1e9))
    for node in nodes {
      let joined = now.addingTimeInterval(-node.wait)
      scheduler.join(node.id, resources: machine, slots: 1, at: joined)
      scheduler.restore(node.id, completed: node.completed, lastServedAt: node.completed > 0 ? joined : nil)
      scheduler.heartbeat(node.id, load: NodeLoad(), at: now)
    }
    return scheduler
  }

  struct PickCase: Sendable, CustomTestStringConvertible {
    var name: String
    var nodes: [(id: String, wait: Double, completed: Int)]
    var winner: String
    var testDescription: String { name }
  }

  static let picks: [PickCase] = [
    PickCase(name: "the longest wait wins among equals", nodes: [("a", 5, 20), ("b", 30, 20), ("c", 10, 20)], winner: "b"),
    PickCase(name: "a newcomer goes before a veteran that waited less than ~30 s", nodes: [("vet", 25, 50), ("new", 0, 0)], winner: "new"),
    PickCase(name: "a veteran that waited long enough goes before a newcomer", nodes: [("vet", 40, 50), ("new", 0, 0)], winner: "vet"),
    PickCase(name: "much work done yields a little", nodes: [("busy", 20, 100), ("light", 15, 10)], winner: "light"),
    PickCase(name: "the cap keeps prolific nodes in the game", nodes: [("huge", 20, 5000), ("big", 19, 100)], winner: "huge"),
    PickCase(name: "over 5 minutes of waiting beats any score", nodes: [("starving", 301, 100), ("fresh", 299, 0)], winner: "starving"),
    PickCase(name: "among starving nodes the longest wait wins", nodes: [("s1", 400, 0), ("s2", 900, 100)], winner: "s2"),
    PickCase(name: "ties go by node id", nodes: [("b", 10, 20), ("a", 10, 20)], winner: "a"),
  ]

  @Test("who gets the next task", arguments: picks)
  func pick(_ testCase: PickCase) {
    var scheduler = scheduler(testCase.nodes, now: t0)
    let picked0 = scheduler.assign(at: t0)
    #expect(picked0 == testCase.winner)
  }

  struct LabelCase: Sendable, CustomTestStringConvertible {
    var completed: Int
    var wait: Double
    var priority: FairScheduler.Priority
    var reason: FairScheduler.Reason
    var testDescription: String { "\(completed) done, waited \(Int(wait)) s → \(priority)/\(reason.rawValue)" }
  }

  static let labels: [LabelCase] = [
    LabelCase(completed: 0, wait: 300, priority: .high, reason: .newNodePriority),
    LabelCase(completed: 4, wait: 1, priority: .high, reason: .newNodePriority),
    LabelCase(completed: 50, wait: 301, priority: .high, reason: .longWait),
    LabelCase(completed: 15, wait: 60, priority: .medium, reason: .fairRotation),
    LabelCase(completed: 15, wait: 200, priority: .medium, reason: .fairRotation),
    LabelCase(completed: 50, wait: 30, priority: .low, reason: .recentlyServed),
  ]

  @Test("queue labels: priority and reason", arguments: labels)
  func label(_ testCase: LabelCase) throws {
    let scheduler = scheduler([("n", testCase.wait, testCase.completed)], now: t0)
    let entry = try #require(scheduler.queue(at: t0).first)
    #expect(entry.priority == testCase.priority)
    #expect(entry.reason == testCase.reason)
    #expect(entry.completedTasks == testCase.completed)
    #expect(abs(entry.waitSeconds - testCase.wait) < 1e-6)
  }

  @Test("a node that has not worked for 30 minutes is not 'recently served'")
  func notRecentlyServed() throws {
    var scheduler = Pool(configuration: .init(heartbeatTimeout: 1e9))
    scheduler.join("n", resources: machine, slots: 1, at: t0)
    for _ in 0..<10 {
      _ = scheduler.assign(at: t0)
      scheduler.release("n", at: t0)
    }
    let later = t0.addingTimeInterval(30)
    #expect(scheduler.queue(at: later).first?.reason == .recentlyServed)
    // Waiting resets at each assignment, so only a long wait makes it "medium"; a node
    // whose last task was long ago but which was just re-joined counts as rotation.
    scheduler.join("n", resources: machine, slots: 1, at: t0.addingTimeInterval(3600))
    #expect(scheduler.queue(at: t0.addingTimeInterval(3610)).first?.reason == .fairRotation)
  }

  @Test("best names the node assign would take, without taking it; rank scores another gateway's node the same way")
  func bestAndRank() {
    let now = t0
    var scheduler = scheduler([("old", 10, 8), ("new", 5, 0)], now: now)
    let best = scheduler.best(at: now)
    #expect(best?.nodeID == "new" && best?.score == FairScheduler.score(waitSeconds: 5, completed: 0))
    #expect(scheduler.status(of: "new", at: now) == .idle, "nothing taken")
    // A node elsewhere with the same history scores the same; one waiting past 5 minutes
    // goes before all.
    #expect(scheduler.scheduler.rank(waitingSince: now.addingTimeInterval(-5), completed: 0, at: now) == best?.score)
    #expect(scheduler.scheduler.rank(waitingSince: now.addingTimeInterval(-301), completed: 500, at: now) < -1e12)
    scheduler.take("new", at: now)
    #expect(scheduler.status(of: "new", at: now) == .busy)
    #expect(scheduler.best(at: now)?.nodeID == "old")
  }

  @Test("only idle nodes whose machine fits the task are picked")
  func eligibility() {
    var scheduler = Pool(configuration: .init(heartbeatTimeout: 1e9))
    scheduler.join("full", resources: machine, slots: 1, at: t0.addingTimeInterval(-200))
    let picked1 = scheduler.assign(at: t0.addingTimeInterval(-200))
    #expect(picked1 == "full")
    scheduler.join("small", resources: NodeResources(cores: 2, memoryMB: 1024, platform: "linux"), slots: 1, at: t0)
    scheduler.join("big", resources: NodeResources(cores: 16, memoryMB: 65536, platform: "linux"), slots: 1, at: t0.addingTimeInterval(5))
    scheduler.join("loaded", resources: machine, slots: 1, at: t0.addingTimeInterval(-100))
    scheduler.heartbeat("loaded", load: NodeLoad(cpuPercent: 95, memoryPercent: 10), at: t0)

    let now = t0.addingTimeInterval(10)
    #expect(scheduler.status(of: "loaded", at: now) == .busy)
    #expect(scheduler.status(of: "full", at: now) == .busy)
    #expect(scheduler.queue(at: now).map(\.nodeID) == ["small", "big"])
    let picked2 = scheduler.assign(ResourceRequest(cpu: 4, memoryMB: 2048), at: now)
    #expect(picked2 == "big")
    let picked3 = scheduler.assign(ResourceRequest(cpu: 4, memoryMB: 2048), at: now)
    #expect(picked3 == nil)
    let picked4 = scheduler.assign(ResourceRequest(cpu: 1, memoryMB: 512), at: now)
    #expect(picked4 == "small")
    let picked5 = scheduler.assign(at: now)
    #expect(picked5 == nil)
    #expect(scheduler.couldRun(ResourceRequest(cpu: 8, memoryMB: 1024), at: now))
    #expect(!scheduler.couldRun(ResourceRequest(cpu: 64, memoryMB: 1024), at: now))
    #expect(Pool().couldRun(ResourceRequest(cpu: 64, memoryMB: 1024), at: now))

    // The owner's load goes down: the node is idle again.
    scheduler.heartbeat("loaded", load: NodeLoad(cpuPercent: 5, memoryPercent: 10), at: now)
    let picked6 = scheduler.assign(at: now)
    #expect(picked6 == "loaded")
  }

  @Test("missed heartbeats make a node offline; a heartbeat brings it back")
  func heartbeats() {
    var scheduler = Pool(configuration: .init(heartbeatTimeout: 90))
    scheduler.join("a", resources: machine, slots: 2, at: t0)
    scheduler.join("b", resources: machine, slots: 2, at: t0)
    scheduler.heartbeat("b", load: NodeLoad(), at: t0.addingTimeInterval(60))
    let none = scheduler.expire(at: t0.addingTimeInterval(80))
    #expect(none == [])
    let expired = scheduler.expire(at: t0.addingTimeInterval(91))
    #expect(expired == ["a"])
    #expect(scheduler.status(of: "a", at: t0.addingTimeInterval(91)) == .offline)
    #expect(scheduler.queue(at: t0.addingTimeInterval(91)).map(\.nodeID) == ["b"])
    let again = scheduler.expire(at: t0.addingTimeInterval(95))
    #expect(again == [])
    let unknown = scheduler.heartbeat("nobody", load: NodeLoad(), at: t0)
    #expect(!unknown)
    scheduler.heartbeat("a", load: NodeLoad(), at: t0.addingTimeInterval(100))
    #expect(scheduler.status(of: "a", at: t0.addingTimeInterval(100)) == .idle)
    scheduler.leave("b")
    #expect(scheduler.status(of: "b", at: t0.addingTimeInterval(100)) == .offline)
    #expect(scheduler.status(of: "nobody", at: t0) == nil)
  }

  @Test("a node on a link does not expire by the clock: it is alive while its link is, until it leaves")
  func linkedNodes() {
    var scheduler = Pool(configuration: .init(heartbeatTimeout: 90))
    scheduler.join("linked", resources: machine, slots: 1, pulling: false, at: t0)
    scheduler.join("pulling", resources: machine, slots: 1, at: t0)
    let later = t0.addingTimeInterval(3600)
    #expect(scheduler.expire(at: later) == ["pulling"])
    #expect(scheduler.status(of: "linked", at: later) == .idle)
    scheduler.leave("linked")
    #expect(scheduler.status(of: "linked", at: later) == .offline)
    let revived = scheduler.heartbeat("linked", load: NodeLoad(), at: later)
    #expect(!revived && scheduler.status(of: "linked", at: later) == .offline, "a late heartbeat does not bring it back")
    // Joining again (its link came back) makes it online, still judged by its link.
    scheduler.join("linked", resources: machine, slots: 1, pulling: false, at: later)
    #expect(scheduler.status(of: "linked", at: later.addingTimeInterval(3600)) == .idle)
  }

  @Test("300 short tasks on 3 nodes: every node is served, and a newcomer gets work at once")
  func fairness() {
    var scheduler = Pool()
    var now = t0
    for id in ["n1", "n2", "n3"] { scheduler.join(id, resources: machine, slots: 1, at: now) }
    var served: [String: Int] = [:]
    var running: [(node: String, ends: Date)] = []
    var newcomerFirstTask: Int?
    for task in 0..<300 {
      if task == 150 { scheduler.join("newcomer", resources: machine, slots: 1, at: now) }
      // Wait for a free node: finish the earliest running task until one is idle.
      var node = scheduler.assign(at: now)
      while node == nil {
        running.sort { $0.ends < $1.ends }
        let done = running.removeFirst()
        now = max(now, done.ends)
        scheduler.release(done.node, computeTime: 0.2, at: now)
        for id in scheduler.ids { scheduler.heartbeat(id, load: NodeLoad(), at: now) }
        node = scheduler.assign(at: now)
      }
      let chosen = node!
      served[chosen, default: 0] += 1
      if chosen == "newcomer" && newcomerFirstTask == nil { newcomerFirstTask = task }
      // Tasks take 0.2 s on n1, 0.3 s on n2, 0.5 s on the others.
      let duration = ["n1": 0.2, "n2": 0.3][chosen] ?? 0.5
      running.append((chosen, now.addingTimeInterval(duration)))
    }
    #expect(served.values.reduce(0, +) == 300)
    for id in ["n1", "n2", "n3"] { #expect(served[id, default: 0] >= 40, "\(id) served \(served[id, default: 0])") }
    #expect(newcomerFirstTask == 150)
    #expect(served["newcomer", default: 0] >= 20)
  }
}
