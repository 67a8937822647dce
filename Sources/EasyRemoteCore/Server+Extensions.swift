public import Foundation
public import NodeComm

/// A change in the gateway's membership, as a gateway extension (the task center) hears it.
public enum MembershipEvent: Sendable, Equatable {
  /// A compute node announced itself (first time, or back after its link dropped).
  case joined(nodeID: String)
  /// A compute node offers tasks (its announcement's worker section): it is a task node now.
  case joinedTasks(nodeID: String)
  /// A compute node stopped offering tasks but keeps its link: its record, offline, stays.
  case leftTasks(nodeID: String)
  /// A compute node's link closed (why: closed by the peer, a heartbeat timeout, …): it is
  /// already gone from routing and from tasks.
  case left(nodeID: String, reason: LinkEndReason)
  /// A compute node that was full (calls and tasks using all its workers) has a free worker
  /// again because a call ended: a queued task may start there now.
  case workerFree(nodeID: String)
  /// A task worker's heartbeat brought its load and counters, now in its record;
  /// `availabilityChanged`: whether that made it able, or unable, to take a task.
  case reported(nodeID: String, availabilityChanged: Bool)
}

/// What the gateway offers the parts that extend it (the task center is one): methods they
/// serve to nodes and clients, the membership's events, calls to compute nodes, and the
/// workers of a node, shared by calls and tasks.
///
/// ```swift
/// server.serve("my.ext.ping") { (request: Ping, caller) -> Pong in Pong(from: caller.callerID) }
/// server.onMembershipChange { event in if case .left(let id, _) = event { forget(id) } }
/// let answer: Pong = try await server.call(node: "gpu-box", "my.ext.ping", Ping(), as: Pong.self)
/// ```
extension Server {
  /// Serves `method` to compute nodes and clients on their links to the gateway. The request
  /// is decoded as `Request`; the answer is encoded the way the request came.
  public func serve<Request: Decodable & SendableMetatype, Response: Encodable & SendableMetatype>(
    _ method: String, _ handler: @escaping @Sendable (Request, CallContext) async throws -> Response
  ) {
    node.register(method, handler)
  }

  /// Calls `method` on the compute node `nodeID` over its link.
  ///
  /// - Throws: `NodeError` (`not_connected`, `timed_out`, `connection_lost`...) or the
  ///   handler's error as the node sent it; ``EasyRemoteError/init(_:function:)`` reads either.
  /// - Parameters:
  ///   - serializer: how the request is encoded (`json` by default; `binary`, MessagePack,
  ///     carries `Data` as it is); the node answers the same way.
  public func call<Request: Encodable, Response: Decodable & Sendable>(
    node nodeID: String, _ method: String, _ request: Request, as: Response.Type = Response.self,
    serializer: String? = nil, timeout: Duration? = nil
  ) async throws -> Response {
    try await node.call(nodeID, method, request, as: Response.self, serializer: serializer, timeout: timeout)
  }

  /// Calls `handler` on every membership change, in order, outside the gateway's lock.
  /// Returns a token for ``removeMembershipListener(_:)``.
  @discardableResult
  public func onMembershipChange(_ handler: @escaping @Sendable (MembershipEvent) -> Void) -> UInt64 {
    state.withLock { $0.listeners.add(handler) }
  }

  public func removeMembershipListener(_ token: UInt64) {
    state.withLock { $0.listeners.remove(token) }
  }

  func announce(_ event: MembershipEvent) {
    defer { feed.changed() }  // once it is counted and published too
    for listener in state.withLock({ $0.listeners.all }) { listener(event) }
    countMembership(event)
    switch event {
    case .joined(let nodeID):
      // Only its own entry, and only when someone listens (not a whole snapshot per join).
      guard hub.subscriberCount > 0 else { return }
      let member = state.withLock { $0.membership.members[nodeID] }
      publish(
        "node_connected",
        NodeConnected(nodeID: nodeID, functions: member?.functions.keys.sorted() ?? [], maxWorkers: member?.maxWorkers ?? 0))
    case .left(let nodeID, let reason):
      publish("node_disconnected", NodeDisconnected(nodeID: nodeID, reason: reason.message))
    case .workerFree, .reported, .joinedTasks, .leftTasks:
      break
    }
  }

  // MARK: Events

  /// The gateway's events from now on — its own (`node_connected`, `node_disconnected`) and
  /// those its extensions publish (the task center's) — each encoded once. A subscriber more
  /// than `buffer` events behind is dropped (its sequence ends); every sequence ends when the
  /// gateway stops.
  public func events(buffer: Int = 1024) -> AsyncStream<GatewayEvent> {
    hub.subscribe(buffer: buffer) { $0 }
  }

  /// The events that `transform` keeps, made into an extension's own type as they come.
  package func events<Event: Sendable>(
    buffer: Int, _ transform: @escaping @Sendable (GatewayEvent) -> Event?
  ) -> AsyncStream<Event> {
    hub.subscribe(buffer: buffer, transform)
  }

  /// Publishes an extension's event to every subscriber of ``events(buffer:)``; `data` is
  /// encoded only when someone listens.
  public func publish(_ name: String, _ data: some Encodable, encoder: JSONEncoder = GatewayEvent.encoder) {
    do {
      try hub.publish { try GatewayEvent(name: name, data: data, encoder: encoder) }
    } catch {
      node.logger.error("an event could not be encoded", metadata: ["event": "\(name)", "error": "\(error)"])
    }
  }

  /// How many subscribers the gateway's events have now (tests wait on it).
  package var eventSubscriberCount: Int { hub.subscriberCount }

  /// A tick each time ``eventSubscriberCount`` changes.
  package func eventSubscriberChanges() -> AsyncStream<Void> { hub.subscriberChanges() }

  /// A tick after each change of its membership, of its workers' counts (``stats()``), and
  /// when it started or stopped (tests wait on it).
  package func changes() -> AsyncStream<Void> { feed.changes() }

  /// The membership's changes from now on, as they happen, until the sequence is dropped.
  package func membershipEvents() -> AsyncStream<MembershipEvent> {
    let (stream, continuation) = AsyncStream.makeStream(of: MembershipEvent.self)
    let token = onMembershipChange { continuation.yield($0) }
    continuation.onTermination = { [weak self] _ in self?.removeMembershipListener(token) }
    return stream
  }

  /// Whether compute node `nodeID` is connected over a link.
  public func isMember(_ nodeID: String) -> Bool { state.withLock { $0.membership.members[nodeID]?.isLinked == true } }

  /// Returns once compute node `nodeID` is out of the membership (its link's end handled), or
  /// after `limit`. A link fails its pending calls before the gateway hears that it ended:
  /// who acts on such a failure waits here, so the node is not chosen again meanwhile.
  package func departure(of nodeID: String, limit: Duration) async {
    let events = membershipEvents()
    guard isMember(nodeID) else { return }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await event in events {
          if case .left(nodeID, _) = event { return }
        }
      }
      group.addTask { try? await Task.sleep(for: limit) }  // a node that came straight back
      await group.next()
      group.cancelAll()
    }
  }

  /// Runs `body` on the registry of nodes, under the gateway's lock: one transition, seen
  /// whole by routing and by the task center alike. Keep it short, and announce nothing in it.
  package func withMembership<R>(_ body: (inout Membership) throws -> R) rethrows -> R {
    try state.withLock { try body(&$0.membership) }
  }

  /// The nodes serving `function`.
  public func nodes(serving function: String) -> Set<String> {
    state.withLock { $0.membership.nodes(serving: function) }
  }

  /// Whether `nodeID` is connected and has a worker free of calls and tasks.
  package func hasFreeWorker(_ nodeID: String) -> Bool { state.withLock { $0.membership.hasFreeWorker(nodeID) } }

  /// A task on `nodeID` ended (or did not start): its worker is free again.
  package func finishTask(on nodeID: String) { state.withLock { $0.membership.finishTask(on: nodeID) } }

  /// The shared token nodes and clients present, if the gateway has one.
  public var authToken: String? { node.config.authToken }

  /// Wrong or missing tokens by address, for links and the HTTP API alike: an address past
  /// the limit is refused for a while (``AuthFailureLimiter``).
  public var authFailures: AuthFailureLimiter { node.authFailures }
}

/// `node_connected`: a compute node announced itself.
struct NodeConnected: Encodable {
  var nodeID: String
  var functions: [String]
  var maxWorkers: Int

  enum CodingKeys: String, CodingKey {
    case nodeID = "node_id"
    case functions
    case maxWorkers = "max_workers"
  }
}

/// `node_disconnected`: a compute node's link closed.
struct NodeDisconnected: Encodable {
  var nodeID: String
  var reason: String

  enum CodingKeys: String, CodingKey {
    case nodeID = "node_id"
    case reason
  }
}
