/// Why a link ended, as ``NodeEvent/disconnect(peerID:reason:)`` says it: a code to match on
/// and the words for people (``description``: `heartbeat timeout (nothing received for 6 s)`).
public struct LinkEndReason: Sendable, Hashable, CustomStringConvertible {
  public struct Code: Sendable, Hashable, CustomStringConvertible {
    private enum Value: String, Sendable, Hashable {
      case closedByPeer = "closed_by_peer"
      case heartbeatTimeout = "heartbeat_timeout"
      case failed
      case handshakeFailed = "handshake_failed"
      case wrongPeer = "wrong_peer"
      case replaced
      case stopped
    }
    private let value: Value
    private init(_ value: Value) { self.value = value }

    /// The peer (or its transport) ended the link in order.
    public static let closedByPeer = Code(.closedByPeer)
    /// Nothing came from the peer for longer than the heartbeat timeout.
    public static let heartbeatTimeout = Code(.heartbeatTimeout)
    /// Reading or writing failed (a transport error).
    public static let failed = Code(.failed)
    /// No valid HELLO arrived.
    public static let handshakeFailed = Code(.handshakeFailed)
    /// The dialled address answered with another node's id.
    public static let wrongPeer = Code(.wrongPeer)
    /// A newer link from the same peer took its place.
    public static let replaced = Code(.replaced)
    /// This node closed it (stopping, or asked to).
    public static let stopped = Code(.stopped)

    public var description: String { value.rawValue }
  }

  public var code: Code
  /// What happened, in words.
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }

  static let closedByPeer = LinkEndReason(.closedByPeer, "closed by peer")
}
