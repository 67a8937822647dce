/// Moves batches of frames between two nodes. The node layer sits on top of any transport.
///
/// A transport makes links in two ways: ``dial(_:)`` opens one to a listening node, and
/// ``listen(host:port:name:accept:)`` hands every link a peer opens to `accept`. Both sides of
/// a link are equal: calls flow both ways on it.
public protocol Transport: Sendable {
  /// Starts accepting links.
  ///
  /// `accept` runs one link to its end; the transport calls it once per inbound link.
  /// - Returns: the listener, which knows the address peers dial.
  func listen(
    host: String, port: Int, name: String, accept: @escaping @Sendable (any LinkChannel) async -> Void
  ) async throws -> any TransportListener

  /// Opens a link to the node listening at `address`.
  func dial(_ address: String) async throws -> any LinkChannel
}

/// A transport's accepting side.
public protocol TransportListener: Sendable {
  /// The address peers dial to reach this listener.
  var address: String { get }
  /// Stops accepting links and closes the ones accepted.
  func close() async
  /// Returns once the listener is closed by ``close()``; throws when it stopped by itself (its
  /// socket failed), so that its owner learns it and stops too — a gateway that cannot accept
  /// links must not look healthy.
  func waitUntilClosed() async throws
}

/// One link's pipe: ordered batches of frames in each direction.
public protocol LinkChannel: Sendable {
  /// Sends frames as one batch. Throws when the link is closed or broken.
  func write(_ frames: [Frame]) async throws
  /// Receives batches until the link ends: returns when the peer closed it, throws when it broke.
  /// Called once per channel.
  func read(_ receive: @escaping @Sendable ([Frame]) -> Void) async throws
  /// Closes the link in both directions; `read` then returns.
  func close() async
  /// A description of the peer's address, for logs.
  var remoteDescription: String { get }
  /// The peer's HELLO arrived and was accepted: the link is up. A listener's transport may
  /// stop guarding the connection against peers that never say it.
  func established()
}

extension LinkChannel {
  public func established() {}
}
