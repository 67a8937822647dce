import Foundation

/// Who may speak for the nodes that pull their work over HTTP (`/internal/*`).
///
/// A pulling node is given a key at its first heartbeat (`node_key` in the answer). Once it
/// presents that key (header `X-Node-Key`, or `node_key` in the body or query), the key is
/// required for everything it says. A worker that never presents one — it follows the seed's
/// bodies — stays key-less: it is known by the address it heartbeats from, and can finish only
/// the tasks handed to it at that address. A node connected over a link is never spoken for
/// here. A pure value: the task center keeps it in its state.
struct PullRegistry {
  struct Entry: Equatable {
    /// The key handed out at the first heartbeat.
    var key: String
    /// Whether the node has presented its key; from then on it must.
    var keyed: Bool
    /// Where its last heartbeat came from (the IP address).
    var address: String?
    var lastSeen: Date
  }

  private(set) var entries: [String: Entry] = [:]

  static func newKey() -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "-")
  }

  /// Checks a heartbeat's right to speak for `nodeID` and records it. Returns the key to give
  /// back while the node has not presented it (`nil` once it has).
  mutating func heartbeat(
    _ nodeID: String, key: String?, address: String?, linked: Bool, at now: Date, newKey: () -> String = newKey
  ) throws(TaskCenterError) -> String? {
    if linked { throw Self.linked(nodeID) }
    guard var entry = entries[nodeID] else {
      entries[nodeID] = Entry(key: newKey(), keyed: false, address: address, lastSeen: now)
      return entries[nodeID]?.key
    }
    try Self.check(entry, nodeID, key: key)
    if key != nil { entry.keyed = true }
    entry.address = address
    entry.lastSeen = now
    entries[nodeID] = entry
    return entry.keyed ? nil : entry.key
  }

  /// Checks that whoever presents `key` may speak for `nodeID`, a known pulling node.
  func authorize(_ nodeID: String, key: String?, linked: Bool) throws(TaskCenterError) {
    if linked { throw Self.linked(nodeID) }
    guard let entry = entries[nodeID] else {
      throw TaskCenterError(
        code: .nodeNotFound, message: "node \(nodeID) has not sent a heartbeat", details: "node_id: \(nodeID)")
    }
    try Self.check(entry, nodeID, key: key)
  }

  /// Checks that a report that names no node (a key-less worker) may finish a task running
  /// on `nodeID`: that node is key-less and heartbeats from `address`.
  func authorizeAnonymous(for nodeID: String, address: String?) throws(TaskCenterError) {
    guard let entry = entries[nodeID], !entry.keyed, entry.address == address else {
      throw TaskCenterError(
        code: .forbidden, message: "the task was not handed to this worker; name its node_id (and node key)",
        details: "field: node_id")
    }
  }

  /// The key-less node that last sent a heartbeat from `address`: who a request that names
  /// no node comes from.
  func anonymousNode(at address: String?) -> String? {
    entries.filter { !$0.value.keyed && $0.value.address == address }.max { $0.value.lastSeen < $1.value.lastSeen }?.key
  }

  private static func check(_ entry: Entry, _ nodeID: String, key: String?) throws(TaskCenterError) {
    if let key, key != entry.key {
      throw TaskCenterError(code: .forbidden, message: "wrong node key for node \(nodeID)", details: "node_id: \(nodeID)")
    }
    if key == nil && entry.keyed {
      throw TaskCenterError(
        code: .forbidden, message: "node \(nodeID) has a key: present it (X-Node-Key)", details: "node_id: \(nodeID)")
    }
  }

  private static func linked(_ nodeID: String) -> TaskCenterError {
    TaskCenterError(
      code: .forbidden, message: "node \(nodeID) is connected over a link; it cannot be spoken for over HTTP",
      details: "node_id: \(nodeID)")
  }
}
