import Foundation
import NodeComm

/// Who may speak for the nodes that pull their work over HTTP (`/internal/*`).
///
/// The rules (README, "Nodes in other languages"):
/// - The first heartbeat that names a node id makes that id's key and hands it out in its
///   answer (`node_key`) — that once, never again.
/// - Until the node presents its key (header `X-Node-Key`, or `node_key` in the body or
///   query) it is *key-less*: known by the IP address of that first heartbeat. A request
///   that names it without a key is taken only from that address; from any other it is
///   refused (403), so an id seen from one address cannot be claimed from another.
/// - Once it has presented its key, every request that names it must carry the key (from
///   any address: a keyed node may move).
/// - With ``PullNodePolicy/keyed`` there are no key-less nodes: every request after the first
///   heartbeat must carry the key.
/// - A node connected over a link is never spoken for here.
///
/// A pure value: the task center keeps it in its state.
struct PullRegistry {
  struct Entry: Equatable {
    /// The key handed out at the first heartbeat.
    var key: String
    /// Whether the key is required from now on (presented once, or the policy is `keyed`).
    var keyed: Bool
    /// Where its first heartbeat came from: the only address a key-less node speaks from.
    var address: String?
    var lastSeen: Date
  }

  var policy: PullNodePolicy = .any
  private(set) var entries: [String: Entry] = [:]
  /// Node ids one IP address may bring (a flood of made-up ids must not grow the pool's
  /// records without end).
  static let maxNodesPerAddress = 64
  /// A node not heard from for this long is forgotten (its id, key and address): it counts
  /// no more against its address, and its id may be taken again.
  static let retention: TimeInterval = 3600

  init(policy: PullNodePolicy = .any) { self.policy = policy }

  static func newKey() -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "-")
  }

  /// Checks a heartbeat's right to speak for `nodeID` and records it. Returns the key when
  /// this heartbeat made it (the first for this id); `nil` ever after.
  mutating func heartbeat(
    _ nodeID: String, key: String?, address: String?, linked: Bool, at now: Date, newKey: () -> String = newKey
  ) throws(TaskCenterError) -> String? {
    if linked { throw Self.linked(nodeID) }
    if entries[nodeID] == nil { forgetSilent(at: now) }
    guard var entry = entries[nodeID] else {
      if let address, entries.values.lazy.filter({ $0.address == address }).count >= Self.maxNodesPerAddress {
        throw TaskCenterError(
          code: .tooManyNodes,
          message: "\(Self.maxNodesPerAddress) pulling nodes speak from \(address) already: reuse their ids",
          details: "node_id: \(nodeID)")
      }
      let made = newKey()
      entries[nodeID] = Entry(key: made, keyed: policy == .keyed, address: address, lastSeen: now)
      return made
    }
    try Self.check(entry, nodeID, key: key, address: address)
    if key != nil {
      entry.keyed = true
      entry.address = address
    }
    entry.lastSeen = now
    entries[nodeID] = entry
    return nil
  }

  /// Forgets the nodes not heard from for ``retention`` (done when a new id arrives, so the
  /// records stay bounded by what spoke within the last hour).
  private mutating func forgetSilent(at now: Date) {
    entries = entries.filter { now.timeIntervalSince($0.value.lastSeen) < Self.retention }
  }

  /// Checks that a request from `address` presenting `key` may speak for `nodeID`, a known
  /// pulling node.
  func authorize(_ nodeID: String, key: String?, address: String?, linked: Bool) throws(TaskCenterError) {
    if linked { throw Self.linked(nodeID) }
    guard let entry = entries[nodeID] else {
      throw TaskCenterError(
        code: .nodeNotFound, message: "node \(nodeID) has not sent a heartbeat", details: "node_id: \(nodeID)")
    }
    try Self.check(entry, nodeID, key: key, address: address)
  }

  /// Checks that a report that names no node (a key-less worker) may finish a task running
  /// on `nodeID`: that node is key-less and speaks from `address`.
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

  private static func check(_ entry: Entry, _ nodeID: String, key: String?, address: String?) throws(TaskCenterError) {
    if let key {
      guard constantTimeEqual(key, entry.key) else {
        throw TaskCenterError(code: .forbidden, message: "wrong node key for node \(nodeID)", details: "node_id: \(nodeID)")
      }
      return
    }
    if entry.keyed {
      throw TaskCenterError(
        code: .forbidden, message: "node \(nodeID) has a key: present it (X-Node-Key)", details: "node_id: \(nodeID)")
    }
    if entry.address != address {
      throw TaskCenterError(
        code: .forbidden,
        message: "node \(nodeID) speaks from another address; from here, present its key (X-Node-Key)",
        details: "node_id: \(nodeID)")
    }
  }

  private static func linked(_ nodeID: String) -> TaskCenterError {
    TaskCenterError(
      code: .forbidden, message: "node \(nodeID) is connected over a link; it cannot be spoken for over HTTP",
      details: "node_id: \(nodeID)")
  }
}

/// Whether nodes that pull their work over HTTP may work without presenting their key
/// (``PullRegistry`` has the rules); `--pull-nodes` on the command line.
public enum PullNodePolicy: String, Sendable, CaseIterable, Codable {
  /// Key-less workers (the seed's bodies) are served, each at the address it first sent a
  /// heartbeat from.
  case any
  /// Every request after a node's first heartbeat carries its key.
  case keyed
}
