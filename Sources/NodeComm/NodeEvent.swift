public import Foundation

/// Something that happened to a node's links.
public enum NodeEvent: Sendable, Equatable {
  /// A link to `peerID` is up (either side dialed); `address` is where the peer is as the
  /// transport sees it (`ipv4:127.0.0.1:53122` from a gRPC listener, the dialed `host:port`
  /// from a dialer, the peer's name in memory).
  case connect(peerID: String, address: String)
  /// The link to `peerID` is gone, and why (``LinkEndReason``: closed by the peer, a
  /// heartbeat timeout, a transport error...).
  case disconnect(peerID: String, reason: LinkEndReason)
  /// `peerID`'s heartbeat carried a status (what it set with ``Node/reportStatus(_:)``, its
  /// load for example).
  case status(peerID: String, payload: Data)

  /// The kind of an event, to subscribe with ``Node/on(_:_:)``.
  public enum Kind: Sendable, Hashable {
    case connect
    case disconnect
    case status
  }

  public var kind: Kind {
    switch self {
    case .connect: .connect
    case .disconnect: .disconnect
    case .status: .status
    }
  }

  public var peerID: String {
    switch self {
    case .connect(let peerID, _), .disconnect(let peerID, _), .status(let peerID, _): peerID
    }
  }

  /// The peer's address, for ``connect(peerID:address:)``.
  public var address: String? {
    if case .connect(_, let address) = self { return address }
    return nil
  }
}

/// Identifies subscriptions made with ``Node/on(_:_:)``, to remove them with
/// ``Node/off(_:)-(EventToken)``. Chain `on` to subscribe more handlers to the same node; the
/// token then stands for all of them:
///
/// ```swift
/// let token = node.on(.connect) { print("up", $0) }.on(.disconnect) { print("down", $0) }
/// node.off(token)       // removes both
/// node.off(.connect)    // or: every connect handler
/// ```
public struct EventToken: Sendable, Hashable {
  let values: [UInt64]
  private weak var node: Node?

  init(values: [UInt64], node: Node) {
    self.values = values
    self.node = node
  }

  /// Subscribes `handler` on the same node; the returned token stands for every
  /// subscription of the chain.
  @discardableResult
  public func on(_ kind: NodeEvent.Kind, _ handler: @escaping @Sendable (NodeEvent) -> Void) -> EventToken {
    guard let node else { return self }
    let next = node.on(kind, handler)
    return EventToken(values: values + next.values, node: node)
  }

  public static func == (lhs: EventToken, rhs: EventToken) -> Bool { lhs.values == rhs.values }
  public func hash(into hasher: inout Hasher) { hasher.combine(values) }
}
