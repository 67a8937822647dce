import TestSupport
import Foundation
import Logging
import NodeComm
import Synchronization
import Testing

// Deadlines, a peer that stops mid-call, heartbeats: the node layer and time.
extension NodeBehaviourTests {
  @Test("a call past its deadline fails with timed_out and the handler is cancelled", arguments: TransportKind.allCases)
  func timeout(kind: TransportKind) async throws {
    let cancelled = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("slow") { (_: Empty, context) -> Empty in
        #expect(context.deadline != nil)
        do {
          try await hang()
        } catch {
          cancelled.fire("cancelled")
          throw error
        }
        return Empty()
      }
      b.register("fast") { (_: Empty, _) in "ok" }
    }) { a, _ in
      let start = ContinuousClock.now
      let error = try await expectNodeError {
        let _: Empty = try await a.call("b", "slow", Empty(), timeout: .milliseconds(300))
      }
      #expect(ContinuousClock.now - start < .seconds(10))
      #expect(error.code == .timedOut)
      #expect(error.nodeID == "b")
      #expect(error.method == "slow")
      #expect(error.message.contains("slow") && error.message.contains("b"))
      #expect(await cancelled.wait() == "cancelled")
      let fine: String = try await a.call("b", "fast", Empty())
      #expect(fine == "ok")
    }
  }

  @Test(
    "one deadline loop per link: a short timeout behind a long one fires first, the long one keeps waiting",
    arguments: TransportKind.allCases)
  func deadlinesInAnyOrder(kind: TransportKind) async throws {
    let entered = Signal()
    let release = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("held") { (_: Empty, _) -> String in
        entered.fire("held")
        _ = await release.wait(upTo: .seconds(600))
        return "released"
      }
      b.register("slow") { (_: Empty, _) -> String in try await hang() }
    }) { a, _ in
      // A call with a long deadline is waiting when calls with short deadlines start.
      let long = Task { () throws -> String in try await a.call("b", "held", Empty(), timeout: .seconds(600)) }
      #expect(await entered.wait() == "held")
      for _ in 0..<3 {
        let error = try await expectNodeError {
          let _: String = try await a.call("b", "slow", Empty(), timeout: .milliseconds(100))
        }
        #expect(error.code == .timedOut)
      }
      // The long one is still waiting (not failed with the short ones), and completes.
      release.fire("go")
      #expect(try await long.value == "released")
    }
  }

  @Test(
    "a call's deadline is kept on its node's clock: it fails when that clock passes it, not before",
    arguments: TransportKind.allCases)
  func deadlineOnTheNodesClock(kind: TransportKind) async throws {
    let clock = ManualClock()
    let entered = Signal()
    let ended = Signal()
    let endedYet = Recorder<String>()
    let quiet = HeartbeatConfig(enabled: false)  // the deadline loop is the one sleeper
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = quiet }, configureB: { $0.heartbeat = quiet },
      setUp: { _, b in
        b.register("slow") { (_: Empty, _) -> String in
          entered.fire()
          try await hang()
        }
        b.register("fast") { (_: Empty, _) in "ok" }
        // The time a handler has left is on its node's clock too.
        b.register("left") { (_: Empty, context) -> Int64 in context.remaining?.components.seconds ?? -1 }
      }
    ) { a, _ in
      let left: Int64 = try await a.call("b", "left", Empty(), timeout: .seconds(90))
      #expect(left == 90, "the clock has not moved")
      // An hour of the node's clock: on the real one the call would outlive the test.
      let call = Task {
        do {
          let _: String = try await a.call("b", "slow", Empty(), timeout: .seconds(3600))
          endedYet.append("answered")
          ended.fire("answered")
        } catch {
          let code = (error as? NodeError)?.code.description ?? "\(error)"
          endedYet.append(code)
          ended.fire(code)
        }
      }
      #expect(await entered.wait() != nil)
      await clock.sleepers(atLeast: 1)  // a's link sleeps until the call's deadline
      await clock.advance(by: .seconds(3599))
      let fine: String = try await a.call("b", "fast", Empty())  // a round trip after the move
      #expect(fine == "ok")
      #expect(endedYet.all.isEmpty, "3599 s of a 3600 s timeout")
      await clock.advance(by: .seconds(2))
      #expect(await ended.wait() == NodeError.Code.timedOut.description)
      call.cancel()
    }
  }

  @Test("a peer stopping mid-call fails the caller fast, not at its timeout", arguments: TransportKind.allCases)
  func peerStoppedMidCall(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let a = cluster.node("a")
    let b = cluster.node("b")
    let started = Signal()
    b.register("slow") { (_: Empty, _) -> Empty in
      started.fire()
      try await hang()
    }
    try await b.start()
    try await a.start()
    try await a.connect(to: "b", at: try #require(b.listeningAddress))
    let call = Task {
      let start = ContinuousClock.now
      do {
        let _: Empty = try await a.call("b", "slow", Empty(), timeout: .seconds(60))
        return (ContinuousClock.now - start, NodeError?.none)
      } catch {
        return (ContinuousClock.now - start, error as? NodeError)
      }
    }
    #expect(await started.wait() != nil)
    await b.stop(gracePeriod: .milliseconds(100))
    let (elapsed, error) = await call.value
    #expect(elapsed < .seconds(10))
    #expect(error?.code == .nodeStopping || error?.code == .connectionLost)
    // New calls to the stopped node fail at once.
    let after = try await expectNodeError { let _: Empty = try await a.call("b", "slow", Empty()) }
    #expect(after.code == .notConnected || after.code == .nodeStopping)
    await a.stop(gracePeriod: .zero)
  }

  @Test("a silent peer is detected by heartbeat and disconnect fires with the reason", arguments: TransportKind.allCases)
  func heartbeatExpiry(kind: TransportKind) async throws {
    let disconnected = Signal()
    // Time moves when the test says: a slow handshake on a busy machine is no silence.
    let clock = ManualClock()
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = HeartbeatConfig(enabled: true, interval: .milliseconds(100), timeout: .seconds(6)) },
      // b never sends heartbeats: to a it is silent.
      configureB: { $0.heartbeat = HeartbeatConfig(enabled: false) },
      setUp: { a, _ in
        a.on(.disconnect) { event in
          if case .disconnect(_, let reason) = event { disconnected.fire(reason.code.description) }
        }
      }
    ) { a, _ in
      await clock.sleepers(atLeast: 1)  // a's heartbeat loop
      await clock.advance(by: .seconds(5))
      await clock.sleepers(atLeast: 1)
      #expect(a.isConnected(to: "b"), "silent for 5 s of a 6 s timeout")
      await clock.advance(by: .seconds(2))
      let reason = await disconnected.wait()
      #expect(reason == LinkEndReason.Code.heartbeatTimeout.description)
      #expect(!a.isConnected(to: "b"))
    }
  }

  @Test("heartbeats keep a quiet but live link up", arguments: TransportKind.allCases)
  func heartbeatKeepsLinkUp(kind: TransportKind) async throws {
    let drops = Recorder<NodeEvent>()
    // Each side's heartbeats carry a status, so the other side tells when one arrived.
    let heardByA = Signal()
    let heardByB = Signal()
    let clock = ManualClock()
    let quick = HeartbeatConfig(enabled: true, interval: .seconds(1), timeout: .seconds(3))
    try await TestCluster(kind, clock: clock).withPair(
      configureA: { $0.heartbeat = quick }, configureB: { $0.heartbeat = quick },
      setUp: { a, b in
        a.on(.disconnect) { drops.append($0) }
        b.on(.disconnect) { drops.append($0) }
        a.on(.status) { heardByA.fire($0.peerID) }
        b.on(.status) { heardByB.fire($0.peerID) }
      }
    ) { a, b in
      a.reportStatus(Data("a".utf8))
      b.reportStatus(Data("b".utf8))
      #expect(await heardByA.wait() == "b")
      #expect(await heardByB.wait() == "a")
      // Three times the timeout, a second at a time: only the heartbeats are heard.
      for _ in 0..<9 {
        await clock.sleepers(atLeast: 2)  // both sides' heartbeat loops
        await clock.advance(by: .seconds(1))
        #expect(await heardByA.wait() == "b")
        #expect(await heardByB.wait() == "a")
      }
      #expect(drops.all.isEmpty)
      #expect(a.isConnected(to: "b"))
      #expect(b.isConnected(to: "a"))
    }
  }
}
