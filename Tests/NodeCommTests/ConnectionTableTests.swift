@testable import NodeComm
import Synchronization
import Testing

/// The connection caps both listeners share, as a value: per address, in all with idle
/// connections giving way, and the drain that gives a flood's memory back.
@Suite("Connection table")
struct ConnectionTableTests {
  final class Log: Sendable {
    let closed = Mutex<[Int]>([])
    let drains = Mutex(0)
  }

  @Test("per-address cap; at the total cap the connection idle longest gives way; busy and linked ones never do")
  func caps() {
    let log = Log()
    let table = ConnectionTable<Int>(total: 4, perAddress: 3) { log.drains.withLock { $0 += 1 } }
    func admit(_ key: Int, _ address: String) -> ConnectionTable<Int>.Admission {
      table.admit(key, address: address, close: { log.closed.withLock { $0.append(key) } })
    }
    #expect(admit(1, "a") == .admitted && admit(2, "a") == .admitted && admit(3, "a") == .admitted)
    #expect(admit(4, "a") == .refusedForAddress)
    table.prove(1)  // a link: never idle again
    #expect(admit(5, "b") == .admitted)
    // Full: the connection idle longest (2) gives way, not the linked 1.
    #expect(admit(6, "b") == .admitted)
    #expect(log.closed.withLock { $0 } == [2])
    table.remove(2)
    // A key seen again before its close was noticed replaces the old entry, counted once.
    #expect(admit(6, "b") == .admitted && table.counts == (4, 3))
    // 3 answers a request and is idle again later than 5 and 6 became idle: 5 goes first.
    table.began(3)
    table.began(5)
    table.ended(5)
    table.ended(3)
    #expect(admit(7, "c") == .admitted)
    #expect(log.closed.withLock { $0 } == [2, 6], "6 was idle longest")
    table.remove(6)
    table.began(3)
    table.began(5)
    table.began(7)
    #expect(table.counts == (4, 0))
    #expect(admit(8, "c") == .refusedFull, "none idle: the newcomer is refused")
    #expect(log.drains.withLock { $0 } == 0)
  }

  @Test("a table that held many connections and is down to a quarter has drained, once per flood")
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
    // A second flood drains again (memory itself is given back at most once a minute).
    for key in 0..<1200 { _ = table.admit(key, address: "x", close: {}) }
    for key in 0..<1200 { table.remove(key) }
    #expect(log.drains.withLock { $0 } == 2)
  }
}
