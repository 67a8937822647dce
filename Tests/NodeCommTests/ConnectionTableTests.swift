@testable import NodeComm
import Synchronization
import Testing

/// The connection caps both listeners share, as a value: per address, in all with silent
/// connections giving way, and the drain that gives a flood's memory back.
@Suite("Connection table")
struct ConnectionTableTests {
  final class Log: Sendable {
    let closed = Mutex<[Int]>([])
    let drains = Mutex(0)
  }

  @Test("per-address cap; at the total cap the oldest unproven connection gives way; proven ones never do")
  func caps() {
    let log = Log()
    let table = ConnectionTable<Int>(total: 4, perAddress: 3) { log.drains.withLock { $0 += 1 } }
    func admit(_ key: Int, _ address: String) -> ConnectionTable<Int>.Admission {
      table.admit(key, address: address, close: { log.closed.withLock { $0.append(key) } })
    }
    #expect(admit(1, "a") == .admitted && admit(2, "a") == .admitted && admit(3, "a") == .admitted)
    #expect(admit(4, "a") == .refusedForAddress)
    table.prove(1)
    #expect(admit(5, "b") == .admitted)
    // Full: the oldest unproven (2) gives way, not the proven 1.
    #expect(admit(6, "b") == .admitted)
    #expect(log.closed.withLock { $0 } == [2])
    table.remove(2)
    // A key seen again before its close was noticed replaces the old entry, counted once.
    #expect(admit(6, "b") == .admitted && table.counts.open == 4)
    #expect(table.counts == (4, 3))
    table.prove(3)
    table.prove(5)
    table.prove(6)
    #expect(admit(7, "c") == .refusedFull, "all proven: the newcomer is refused")
    #expect(log.drains.withLock { $0 } == 0)
  }

  @Test("a table that held many connections and is down to a quarter has drained, once")
  func drain() {
    let log = Log()
    let table = ConnectionTable<Int>(total: 10_000, perAddress: 10_000) { log.drains.withLock { $0 += 1 } }
    for key in 0..<1200 { _ = table.admit(key, address: "x", close: {}) }
    for key in 0..<899 { table.remove(key) }
    #expect(log.drains.withLock { $0 } == 0, "301 of 1,200 left: not yet")
    table.remove(899)
    #expect(log.drains.withLock { $0 } == 1)
    for key in 900..<1200 { table.remove(key) }
    #expect(log.drains.withLock { $0 } == 1, "below the peak that counts: no second drain")
    // A second flood within the minute drains nothing more: no client can have it on demand.
    for key in 0..<1200 { _ = table.admit(key, address: "x", close: {}) }
    for key in 0..<1200 { table.remove(key) }
    #expect(log.drains.withLock { $0 } == 1)
  }
}

