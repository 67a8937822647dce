import Foundation
@testable import TaskCenter
import Testing

/// The pulling nodes' registry as a value, with time passed in.
@Suite("Pull registry")
struct PullRegistryTests {
  @Test("an address's node ids are bounded, and silent ones are forgotten after an hour")
  func boundAndRetention() throws {
    var registry = PullRegistry()
    let start = Date(timeIntervalSince1970: 1_000_000)
    for index in 0..<PullRegistry.maxNodesPerAddress {
      #expect(try registry.heartbeat("n\(index)", key: nil, address: "10.0.0.1", linked: false, at: start) != nil)
    }
    #expect(throws: TaskCenterError.self) {
      try registry.heartbeat("one-more", key: nil, address: "10.0.0.1", linked: false, at: start)
    }
    // A known id goes on; another address is not held back.
    #expect(try registry.heartbeat("n0", key: nil, address: "10.0.0.1", linked: false, at: start + 1800) == nil)
    #expect(try registry.heartbeat("elsewhere", key: nil, address: "10.0.0.2", linked: false, at: start) != nil)
    // An hour later the silent ones are gone: the address may bring new ids, and only n0 is left of it.
    let later = start + PullRegistry.retention + 1
    #expect(try registry.heartbeat("one-more", key: nil, address: "10.0.0.1", linked: false, at: later) != nil)
    #expect(registry.entries.keys.filter { $0.hasPrefix("n") }.sorted() == ["n0"])
    #expect(registry.entries["elsewhere"] == nil)
  }
}
