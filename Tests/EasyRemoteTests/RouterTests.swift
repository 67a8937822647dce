import Testing

@testable import EasyRemoteCore

@Suite("Router")
struct RouterTests {
  func announce(_ id: String, _ functions: [String], maxWorkers: Int = 2) -> NodeAnnouncement {
    NodeAnnouncement(
      nodeID: id, maxWorkers: maxWorkers,
      functions: functions.map {
        FunctionDescriptor(name: $0, description: "", parameters: [], streaming: false, idempotent: false)
      })
  }

  @Test("least in flight picks the idlest node, then spreads ties")
  func leastInFlight() throws {
    var router = Router()
    router.add(announce("a", ["f"]))
    router.add(announce("b", ["f"]))
    let first = try router.pick("f").get().nodeID
    let second = try router.pick("f").get().nodeID
    #expect(first != second)
    router.finish(first)
    #expect(try router.pick("f").get().nodeID == first)
    #expect(router.inFlight == 2)
  }

  @Test("full nodes are skipped while another has a free worker")
  func skipsFull() throws {
    var router = Router(strategy: .roundRobin)
    router.add(announce("a", ["f"], maxWorkers: 1))
    router.add(announce("b", ["f"], maxWorkers: 5))
    var picks: [String] = []
    for _ in 0..<4 { picks.append(try router.pick("f").get().nodeID) }
    #expect(picks.filter { $0 == "a" }.count == 1)
    #expect(picks.filter { $0 == "b" }.count == 3)
  }

  @Test("round robin takes each node in turn")
  func roundRobin() throws {
    var router = Router(strategy: .roundRobin)
    for id in ["a", "b", "c"] { router.add(announce(id, ["f"], maxWorkers: 100)) }
    let picks = try (0..<6).map { _ in try router.pick("f").get().nodeID }
    #expect(picks == ["a", "b", "c", "a", "b", "c"])
  }

  @Test("targets, exclusions and unknown functions")
  func targeting() throws {
    var router = Router()
    router.add(announce("a", ["f"]))
    router.add(announce("b", ["f", "g"]))
    #expect(try router.pick("g").get().nodeID == "b")
    #expect(try router.pick("f", target: "a").get().nodeID == "a")
    #expect(try router.pick("f", excluding: ["a"]).get().nodeID == "b")
    #expect(throws: EasyRemoteError.self) { try router.pick("g", target: "a").get() }
    #expect(throws: EasyRemoteError.self) { try router.pick("h").get() }
    #expect(throws: EasyRemoteError.self) { try router.pick("g", excluding: ["b"]).get() }
    router.remove("b")
    #expect(throws: EasyRemoteError.self) { try router.pick("g").get() }
    #expect(router.functions.map(\.name) == ["f"])
    #expect(router.functions.first?.nodes == ["a"])
  }
}
