import NodeComm
import Synchronization
import TestSupport
import Testing

@testable import EasyRemoteCore

/// The gate behind `maxWorkers` (a node's and the gateway's): places, a bounded line, and
/// places handed on in order.
@Suite("Worker gate", .timeLimit(.minutes(1)))
struct WorkerGateTests {
  struct Full: Error {}

  /// How many are inside now, and the most there ever were.
  final class Inside: Sendable {
    private let counts = Mutex((now: 0, peak: 0))
    func enter() { counts.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) } }
    func leave() { counts.withLock { $0.now -= 1 } }
    var peak: Int { counts.withLock { $0.peak } }
  }

  @Test("the line holds queueLimit however many arrive at once; the rest are refused; each waiter gets a place in turn")
  func boundedLine() async throws {
    let gate = WorkerGate(limit: 1, queueLimit: 3)
    try await gate.enter { Full() }  // the one place, held
    let changes = gate.changes()
    let refused = Recorder<Void>()
    let (refusals, tellRefused) = AsyncStream.makeStream(of: Void.self)
    let outcomes = await withTaskGroup(of: Bool.self) { group in
      for _ in 0..<10 {
        group.addTask {
          do {
            try await gate.enter { Full() }
            gate.leave()
            return true
          } catch {
            refused.append(())
            tellRefused.yield()
            return false
          }
        }
      }
      // Three in line (parked or about to), the other seven refused; then the place is given back.
      let settled = try? await until(changes, refusals) { gate.queued == 3 && refused.all.count == 7 }
      #expect(settled == true)
      gate.leave()
      return await group.reduce(into: [Bool]()) { $0.append($1) }
    }
    #expect(outcomes.filter { $0 }.count == 3)
    #expect(outcomes.filter { !$0 }.count == 7)
    #expect(gate.running == 0 && gate.queued == 0)
  }

  @Test("thousands of enters and leaves racing: never more than the limit inside, and no place lost")
  func noLostPlace() async throws {
    let gate = WorkerGate(limit: 2, queueLimit: 10_000)
    let inside = Inside()
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<4_000 {
        group.addTask {
          guard (try? await gate.enter { Full() }) != nil else { return }
          inside.enter()
          await Task.yield()
          inside.leave()
          gate.leave()
        }
      }
    }
    #expect(inside.peak <= 2)
    #expect(gate.running == 0 && gate.queued == 0, "every place came back")
  }

  @Test("a wait for a place with a limit ends when its owner's clock passes the limit, holding nothing")
  func limitOnTheClock() async throws {
    let clock = ManualClock()
    let gate = WorkerGate(limit: 1, queueLimit: 4, timeline: Timeline(clock))
    try await gate.enter { Full() }  // the one place, held
    let waiter = Task { try await gate.enter(within: .seconds(3600)) { Full() } }
    await clock.sleepers(atLeast: 1)  // the wait's limit, on the clock
    #expect(gate.queued == 1)
    await clock.advance(by: .seconds(3600))
    #expect(try await waiter.value == false)
    #expect(gate.queued == 0 && gate.running == 1)
    gate.leave()
    #expect(try await gate.enter(within: .seconds(1)) { Full() })  // a free place at once
    #expect(gate.running == 1)
  }

  @Test("a waiter cancelled in line leaves it and holds nothing")
  func cancelledWaiter() async throws {
    let gate = WorkerGate(limit: 1, queueLimit: 4)
    try await gate.enter { Full() }
    let changes = gate.changes()
    let waiter = Task { try await gate.enter { Full() } }
    #expect(try await until(changes) { gate.queued == 1 })
    waiter.cancel()
    await #expect(throws: CancellationError.self) { try await waiter.value }
    #expect(gate.queued == 0)
    gate.leave()
    #expect(gate.running == 0)
  }
}
