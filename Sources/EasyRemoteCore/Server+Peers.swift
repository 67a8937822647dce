import Foundation
import NodeComm

// Calls and streams for functions served only behind another gateway: forwarded over a link
// this gateway dials to that one (a client of it), streams with credit on every hop.
extension Server {
  /// Hands calls and streams for functions none of this gateway's nodes serve to the gateways
  /// `peers` names. A forwarded call is run there on that gateway's own nodes, never
  /// forwarded again.
  public func forwarding(to peers: any GatewayPeers) {
    peering.withLock { $0.peers = peers }
  }

  /// Whether another gateway's nodes serve `function` (for the task center's validation).
  public func peersServe(_ function: String) -> Bool {
    peering.withLock { $0.peers }?.serve(function) ?? false
  }

  /// The gateway to forward `function` to, unless the call was forwarded here already: the
  /// one with the fewest calls forwarded from here still running per worker serving the
  /// function (least outstanding requests, weighted by capacity — a slow or small gateway gets
  /// fewer), ties in turn.
  func peerAddress(for function: String, node target: String?, metadata: [String: String]) -> String? {
    guard metadata[Methods.forwardedKey] == nil, let peers = peering.withLock({ $0.peers }) else { return nil }
    let candidates = peers.gateways(serving: function, node: target)
    guard !candidates.isEmpty else { return nil }
    return peering.withLock { peering -> String? in
      peering.turn &+= 1
      let start = peering.turn % candidates.count
      let rotated = candidates[start...] + candidates[..<start]
      func load(_ peer: PeerGateway) -> Double {
        Double(peering.inFlight[peer.address, default: 0] + 1) / Double(max(peer.workers, 1))
      }
      return rotated.min { load($0) < load($1) }?.address
    }
  }

  /// Counts a call or stream forwarded to `peer` while `body` runs.
  func forwarded<T>(to peer: String, _ body: () async throws -> T) async throws -> T {
    peering.withLock { $0.inFlight[peer, default: 0] += 1 }
    defer {
      peering.withLock { peering in
        peering.inFlight[peer, default: 1] -= 1
        if peering.inFlight[peer] == 0 { peering.inFlight[peer] = nil }
      }
    }
    return try await body()
  }

  /// A connected client of the gateway at `address` (one per peer, made on first use).
  func peerClient(_ address: String) async throws -> Client {
    let client = try peering.withLock { peering -> Client in
      if peering.stopped { throw EasyRemoteError(code: .connectionFailed, message: "the gateway is stopping") }
      if let client = peering.clients[address] { return client }
      let client = Client(
        serverAddress: address, timeout: node.config.defaultTimeout,
        config: .defaults {
          $0.authToken = node.config.authToken
          $0.limits = node.config.limits
          $0.heartbeat = node.config.heartbeat
        }, transport: node.transport)
      peering.clients[address] = client
      return client
    }
    try await client.connect()
    return client
  }

  func forwardingMetadata(_ function: String, node target: String?) -> [String: String] {
    var metadata = [Methods.functionKey: function, Methods.forwardedKey: address ?? "gateway"]
    if let target { metadata[Methods.nodeKey] = target }
    return metadata
  }

  /// Runs a call on the gateway at `peer`, counted here as a call of the function.
  func forward(
    _ function: String, node target: String?, payload: Payload, timeout: Duration?, to peer: String,
    start: ContinuousClock.Instant
  ) async throws -> Payload {
    do {
      let result = try await forwarded(to: peer) {
        try await peerClient(peer).node.call(
          Server.nodeID, Methods.execute, payload: payload, timeout: timeout,
          metadata: forwardingMetadata(function, node: target))
      }
      record(function, node: nil, start: start, error: nil, bytesIn: payload.data.count, bytesOut: result.data.count)
      return result
    } catch {
      let failure = EasyRemoteError(error, function: function)
      record(function, node: nil, start: start, error: failure, bytesIn: payload.data.count)
      throw failure.nodeError
    }
  }

  /// Opens the stream on the gateway at `peer` and passes its items on as they come: each hop
  /// holds at most a window, so a slow reader here slows the node there.
  func forwardStream(
    _ function: String, node target: String?, payload: Payload, timeout: Duration?, to peer: String,
    sink: some ItemSink, start: ContinuousClock.Instant
  ) async throws {
    var count = 0
    var bytes = 0
    do {
      try await forwarded(to: peer) {
        let items = try await peerClient(peer).node.stream(
          Server.nodeID, Methods.stream, payload: payload, timeout: timeout, window: Methods.streamWindow,
          metadata: forwardingMetadata(function, node: target))
        for try await batch in items.batches {
          count += batch.count
          for item in batch { bytes += item.data.count }
          try await sink.send(contentsOf: batch)
        }
      }
      record(function, node: nil, start: start, error: nil, bytesIn: payload.data.count, bytesOut: bytes, items: count)
    } catch {
      record(function, node: nil, start: start, error: error, bytesIn: payload.data.count, bytesOut: bytes, items: count)
      throw EasyRemoteError(error, function: function).nodeError
    }
  }
}
