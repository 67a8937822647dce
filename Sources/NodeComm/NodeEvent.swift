public import Foundation

/// Something that happened to a node's links.
public enum NodeEvent: Sendable, Equatable {
  /// A link to `peerID` is up (either side dialed).
  case connect(peerID: String)
  /// The link to `peerID` is gone, and why: `"closed by peer"`, `"heartbeat timeout"`,
  /// `"stopped"`, a transport error...
  case disconnect(peerID: String, reason: String)
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
    case .connect(let peerID), .disconnect(let peerID, _), .status(let peerID, _): peerID
    }
  }
}

/// Identifies one subscription, to remove it with ``Node/off(_:)``.
public struct EventToken: Sendable, Hashable {
  let value: UInt64
}
