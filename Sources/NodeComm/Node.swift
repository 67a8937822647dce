public import CoreMetrics
public import Foundation
public import Logging
import Synchronization

/// A peer of the node layer: registers methods, links to other nodes, calls them.
///
/// Every link carries calls both ways: when this node dials another, the other can call this
/// one back on the same link, so a node behind NAT that dialed out is fully callable.
///
/// ```swift
/// let transport = MemoryTransport()
/// try await withNode(id: "b", transport: transport) { b in
///   b.register("add") { (numbers: [Int], _) in numbers.reduce(0, +) }
///   try await withNode(id: "a", transport: transport) { a in
///     try await a.connect(to: "b", at: b.listeningAddress!)
///     let sum: Int = try await a.call("b", "add", [1, 2, 3])
///   }
/// }
/// ```
public final class Node: Sendable {
  /// A method implementation: gets the request payload and the call's context.
  public typealias Handler = @Sendable (Payload, CallContext) async throws -> Payload

  public let id: String
  public let config: NodeConfig
  public let serializers: SerializerRegistry
  public let logger: Logger
  /// Wrong or missing tokens by address (links, and the gateway's HTTP API with it): past
  /// its limit an address is refused for a while.
  public let authFailures: AuthFailureLimiter
  package let transport: any Transport
  /// What its links' heartbeats keep time on.
  package let timeline: Timeline
  private let state: Mutex<State>

  private enum Phase { case created, running, stopping, stopped }

  private struct State {
    var phase: Phase = .created
    var links: [String: Link] = [:]
    var handlers: [String: Handler] = [:]
    var streamHandlers: [String: StreamHandler] = [:]
    var inbound: [any CallInterceptor] = []
    var outbound: [any CallInterceptor] = []
    var subscribers: [UInt64: (NodeEvent.Kind, @Sendable (NodeEvent) -> Void)] = [:]
    var nextToken: UInt64 = 1
    var listener: (any TransportListener)?
    var unnamedLinks: [ObjectIdentifier: Link] = [:]
    var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// What this node's heartbeats carry (``reportStatus(_:)``).
    var status = Data()
    /// The links this node dialed, each running in a task the node owns: `stop` awaits them.
    var dialed: [ObjectIdentifier: Task<Void, Never>] = [:]
    /// Dialed links whose task ended before it was recorded (so it is not recorded at all).
    var dialedEnded: Set<ObjectIdentifier> = []
  }

  /// Creates a node; it takes no calls until ``start()``.
  ///
  /// - Parameters:
  ///   - id: the node id; `config.nodeID` or a random one when nil.
  ///   - config: settings; see ``NodeConfig``.
  ///   - transport: what carries the links (``MemoryTransport``, or the gRPC transport of
  ///     `NodeCommGRPC`).
  ///   - metricsFactory: where ``MetricsInterceptor`` records when `config.collectMetrics` is
  ///     set; the process's bootstrapped swift-metrics backend when nil.
  ///   - clock: what its links' heartbeats keep time on.
  public init(
    id: String? = nil, config: NodeConfig = .defaults, transport: any Transport, logger: Logger? = nil,
    metricsFactory: (any MetricsFactory)? = nil, clock: any Clock<Duration> = ContinuousClock()
  ) {
    self.timeline = Timeline(clock)
    let id = id ?? config.nodeID ?? "node-\(UUID().uuidString.prefix(8).lowercased())"
    self.id = id
    var config = config
    config.nodeID = id
    self.config = config
    self.transport = transport
    self.serializers = SerializerRegistry(defaultName: config.serialization.defaultSerializer)
    for (method, serializer) in config.serialization.perMethod { serializers.use(serializer, for: method) }
    var logger = logger ?? Logger(label: "easyremote.node")
    logger[metadataKey: "node"] = "\(id)"
    if config.debug { logger.logLevel = .debug }
    self.logger = logger
    self.state = Mutex(State())
    authFailures = AuthFailureLimiter(configuration: .init(maxFailures: max(1, config.limits.authFailuresPerMinute)))
    // Outermost first: metrics see every call whole (a retried one once, auth refusals too),
    // retry wraps the attempts, logging sees each attempt.
    if config.collectMetrics {
      addInterceptor(MetricsInterceptor(nodeID: id, factory: metricsFactory ?? MetricsSystem.factory))
    }
    if let token = config.authToken {
      addInterceptor(
        TokenAuthInterceptor(
          token: token, limiter: authFailures, logger: logger, metricsFactory: metricsFactory ?? MetricsSystem.factory))
    }
    if let retry = config.retry { addInterceptor(RetryInterceptor(retry), paths: .outbound) }
    if config.logCalls { addInterceptor(LoggingInterceptor(logger: logger, level: .info)) }
  }

  // MARK: - Methods

  /// Registers (or replaces) the handler of `method`.
  public func register(_ method: String, handler: @escaping Handler) {
    state.withLock { $0.handlers[method] = handler }
  }

  /// Registers a typed handler: the request is decoded as `Request` (with the serializer it
  /// names), the result encoded with `serializer` — the method's own choice, seed 001's
  /// `MethodOptions(serializer:)` — or, when nil, the serializer the request came in.
  ///
  /// ```swift
  /// node.register("matrix.multiply", serializer: "binary") { (m: Matrix, _) in m * m }
  /// ```
  public func register<Request: Decodable & SendableMetatype, Response: Encodable & SendableMetatype>(
    _ method: String, serializer: String? = nil,
    _ handler: @escaping @Sendable (Request, CallContext) async throws -> Response
  ) {
    let serializers = self.serializers
    register(method) { payload, context in
      let request = try serializers.decode(Request.self, from: payload, method: method)
      let response = try await handler(request, context)
      return try serializers.encode(response, method: method, explicit: Self.answerSerializer(serializer, request: payload))
    }
  }

  /// The serializer of an answer: the method's own, else the request's (raw requests get the
  /// method's or the node's default).
  static func answerSerializer(_ methodSerializer: String?, request: Payload) -> String? {
    methodSerializer ?? (request.serializer == RawSerializer.name ? nil : request.serializer)
  }

  /// Registers (or replaces) the streaming handler of `method`.
  public func registerStream(_ method: String, handler: @escaping StreamHandler) {
    state.withLock { $0.streamHandlers[method] = handler }
  }

  /// Removes the handlers of `method`; later calls fail with `methodNotFound`.
  public func unregister(_ method: String) {
    state.withLock { state in
      state.handlers[method] = nil
      state.streamHandlers[method] = nil
    }
  }

  /// The names of the registered methods, plain and streaming.
  public var methods: [String] {
    state.withLock { Set($0.handlers.keys).union($0.streamHandlers.keys).sorted() }
  }

  // MARK: - Interceptors and events

  /// Adds an interceptor to the inbound path, the outbound path or both.
  /// Interceptors run in the order they were added, the first outermost.
  public func addInterceptor(_ interceptor: any CallInterceptor, paths: InterceptorPaths = .both) {
    state.withLock { state in
      if paths.contains(.inbound) { state.inbound.append(interceptor) }
      if paths.contains(.outbound) { state.outbound.append(interceptor) }
    }
  }

  var outboundInterceptors: [any CallInterceptor] { state.withLock { $0.outbound } }

  /// The inbound interceptors, the handler of `method` (plain, streaming) and whether the node runs.
  func inboundRoute(_ method: String) -> (Handler?, StreamHandler?, [any CallInterceptor], Bool) {
    state.withLock { ($0.handlers[method], $0.streamHandlers[method], $0.inbound, $0.phase == .running) }
  }

  /// Calls `handler` for each event of `kind`, in the order handlers were added; returns a
  /// token for ``off(_:)-(EventToken)``, on which `on` chains.
  @discardableResult
  public func on(_ kind: NodeEvent.Kind, _ handler: @escaping @Sendable (NodeEvent) -> Void) -> EventToken {
    let value = state.withLock { state in
      let token = state.nextToken
      state.nextToken += 1
      state.subscribers[token] = (kind, handler)
      return token
    }
    return EventToken(values: [value], node: self)
  }

  /// Removes the subscriptions a token stands for (one, or a chain of them).
  public func off(_ token: EventToken) {
    state.withLock { state in
      for value in token.values { state.subscribers[value] = nil }
    }
  }

  /// Removes every handler of `kind`.
  public func off(_ kind: NodeEvent.Kind) {
    state.withLock { state in
      state.subscribers = state.subscribers.filter { $0.value.0 != kind }
    }
  }

  /// Sets what this node's heartbeats carry from now on (its load, for example) and sends
  /// one heartbeat with it at once on every link: peers hear it as ``NodeEvent/status(peerID:payload:)``.
  /// The heartbeat is the one sign of life a link has; the status rides on it.
  public func reportStatus(_ payload: Data) {
    let links = state.withLock { state in
      state.status = payload
      return Array(state.links.values)
    }
    for link in links { link.sendHeartbeat() }
  }

  /// What heartbeats carry now.
  var status: Data { state.withLock { $0.status } }

  /// A peer's heartbeat carried a status.
  func heard(status: Data, from peerID: String) { emit(.status(peerID: peerID, payload: status)) }

  private func emit(_ event: NodeEvent) {
    let handlers = state.withLock { state in
      state.subscribers.sorted { $0.key < $1.key }.compactMap { $0.value.0 == event.kind ? $0.value.1 : nil }
    }
    for handler in handlers { handler(event) }
  }

  // MARK: - Lifecycle

  /// Starts the node: it listens for links when `config.transport.listen` is true.
  ///
  /// - Throws: when the transport cannot listen (for example, the port is taken).
  public func start() async throws {
    let shouldListen = try state.withLock { state -> Bool in
      guard state.phase == .created else {
        throw NodeError(code: .invalidState, message: "node '\(id)' was already started")
      }
      state.phase = .running
      return config.transport.listen
    }
    guard shouldListen else { return }
    do {
      let listener = try await transport.listen(
        host: config.transport.host, port: config.transport.port, name: id
      ) { [self] channel in
        await self.accept(channel)
      }
      state.withLock { $0.listener = listener }
      logger.debug("node listening", metadata: ["address": "\(listener.address)"])
    } catch {
      state.withLock { $0.phase = .stopped }
      throw NodeError(code: .connectFailed, message: "node '\(id)' cannot listen on \(config.transport.host):\(config.transport.port)", cause: error)
    }
  }

  /// The address peers dial to reach this node, once started with listening on.
  public var listeningAddress: String? { state.withLock { $0.listener?.address } }

  /// Returns once this node's listener is closed (at once when it has none); throws
  /// ``NodeError/Code/listenerFailed`` when the listener stopped by itself: whoever runs the
  /// node stops it then, and says why.
  public func waitForListener() async throws {
    guard let listener = state.withLock({ $0.listener }) else { return }
    do {
      try await listener.waitUntilClosed()
    } catch {
      logger.error("the listener failed: this node accepts no more links", metadata: ["error": "\(error)"])
      throw error
    }
  }

  /// Whether the node is started and not stopping.
  public var isRunning: Bool { state.withLock { $0.phase == .running } }

  /// Stops the node.
  ///
  /// New inbound calls are refused with `nodeStopping` and peers are told so; calls in flight
  /// get up to `gracePeriod` (default `config.shutdownGracePeriod`) to finish, then are
  /// cancelled and answered with `nodeStopping`. Pending outbound calls fail with
  /// `nodeStopping`. Then every link and the listener close.
  public func stop(gracePeriod: Duration? = nil) async {
    let links = state.withLock { state -> [Link]? in
      guard state.phase == .running || state.phase == .created else { return nil }
      state.phase = .stopping
      return Array(state.links.values) + Array(state.unnamedLinks.values)
    }
    guard let links else { return }
    for link in links { link.sendGoodbye() }
    let grace = gracePeriod ?? config.shutdownGracePeriod
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        await withTaskGroup(of: Void.self) { drains in
          for link in links { drains.addTask { await link.drained() } }
        }
      }
      group.addTask { try? await Task.sleep(for: grace) }
      await group.next()
      group.cancelAll()
    }
    let stopping = NodeError.stopping(id)
    for link in links {
      link.abortHandlers(with: stopping)
      link.terminatePendingCalls(with: stopping)
      link.closeGracefully()
    }
    let listener = state.withLock { $0.listener }
    await listener?.close()
    // The links this node dialed end with their channels: nothing of theirs outlives the node.
    for running in state.withLock({ Array($0.dialed.values) }) { await running.value }
    let waiters = state.withLock { state in
      state.phase = .stopped
      defer { state.stopWaiters.removeAll() }
      return state.stopWaiters
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Returns once ``stop(gracePeriod:)`` has finished.
  public func waitUntilStopped() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let stopped = state.withLock { state -> Bool in
        if state.phase == .stopped { return true }
        state.stopWaiters.append(continuation)
        return false
      }
      if stopped { continuation.resume() }
    }
  }

  // MARK: - Links

  /// Opens a link to the node `nodeID` listening at `address`.
  ///
  /// - Throws: ``NodeError`` `connectFailed` if the peer cannot be reached or turns out to be
  ///   another node.
  public func connect(to nodeID: String?, at address: String, timeout: Duration = .seconds(10)) async throws {
    guard isRunning else { throw NodeError(code: .invalidState, message: "node '\(id)' is not running") }
    let channel: any LinkChannel
    do {
      channel = try await transport.dial(address)
    } catch {
      throw NodeError(code: .connectFailed, message: "cannot reach \(address)", nodeID: nodeID, cause: error)
    }
    let link = Link(node: self, channel: channel, role: .dialer)
    let key = ObjectIdentifier(link)
    state.withLock { $0.unnamedLinks[key] = link }
    // Unstructured: a dialed link outlives `connect` (it returns once the link is up); the
    // node records the task and `stop` awaits it.
    let running = Task { [self] in
      await link.run()
      state.withLock { state in
        if state.dialed.removeValue(forKey: key) == nil { state.dialedEnded.insert(key) }
      }
    }
    state.withLock { state in
      if state.dialedEnded.remove(key) == nil { state.dialed[key] = running }
    }
    let peerID = try await link.handshake(timeout: timeout)
    if let nodeID, nodeID != peerID {
      link.terminate(reason: LinkEndReason(.wrongPeer, "expected node '\(nodeID)', found '\(peerID)'"), error: nil)
      throw NodeError(code: .connectFailed, message: "\(address) is node '\(peerID)', not '\(nodeID)'", nodeID: nodeID)
    }
    linkEstablished(link, peerID: peerID)
  }

  /// Closes the link to `nodeID`, if any.
  public func disconnect(from nodeID: String) async {
    let link = state.withLock { $0.links[nodeID] }
    link?.closeGracefully()
  }

  /// The ids of the nodes this node has a link with.
  public var peers: [String] { state.withLock { $0.links.keys.sorted() } }

  /// Whether a link to `nodeID` is up.
  public func isConnected(to nodeID: String) -> Bool { state.withLock { $0.links[nodeID] != nil } }

  /// The peers this node has a link to now.
  var linkedPeers: [String] { state.withLock { Array($0.links.keys) } }

  private func accept(_ channel: any LinkChannel) async {
    let link = Link(node: self, channel: channel, role: .listener)
    let accepted = state.withLock { state -> Bool in
      guard state.phase == .running else { return false }
      state.unnamedLinks[ObjectIdentifier(link)] = link
      return true
    }
    guard accepted else {
      await channel.close()
      return
    }
    await link.run()
  }

  /// Why a HELLO presenting `authorization` from `remote` is refused, or nil when it may
  /// make a link: a node with a token wants it in every HELLO (and counts the failures of an
  /// address in ``authFailures``).
  func helloRefusal(_ authorization: String?, from remote: String) -> String? {
    guard let token = config.authToken else { return nil }
    let address = AuthFailureLimiter.address(of: remote)
    if let wait = authFailures.refusal(for: address) {
      return "too many wrong tokens from \(address): try again in \(wait.components.seconds + 1) s"
    }
    let presented = authorization.map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
    if let presented, constantTimeEqual(presented, token) { return nil }
    if authFailures.failed(address).first {
      logger.warning("a link without a valid token", metadata: ["address": "\(address)"])
    }
    return presented == nil ? "node '\(id)' needs a token: this link presents none" : "node '\(id)' refused the link's token"
  }

  func linkEstablished(_ link: Link, peerID: String) {
    let replaced = state.withLock { state -> Link? in
      state.unnamedLinks[ObjectIdentifier(link)] = nil
      let old = state.links[peerID]
      state.links[peerID] = link
      return old === link ? nil : old
    }
    link.channel.established()
    if let replaced {
      replaced.terminate(reason: LinkEndReason(.replaced, "replaced by a new link"), error: nil)
      // Unstructured: called under no task of the old link's; its channel closes on its own
      // (its `run()`, recorded by the node, ends with it).
      Task { await replaced.channel.close() }
    }
    logger.debug("link up", metadata: ["peer": "\(peerID)", "remote": "\(link.channel.remoteDescription)"])
    emit(.connect(peerID: peerID, address: link.channel.remoteDescription))
  }

  func linkEnded(_ link: Link, reason: LinkEndReason) {
    let peerID = link.peerID
    let removed = state.withLock { state -> Bool in
      state.unnamedLinks[ObjectIdentifier(link)] = nil
      guard let peerID, state.links[peerID] === link else { return false }
      state.links[peerID] = nil
      return true
    }
    guard removed, let peerID else { return }
    logger.debug("link down", metadata: ["peer": "\(peerID)", "reason": "\(reason)"])
    emit(.disconnect(peerID: peerID, reason: reason))
  }

  func link(to target: String, method: String) throws -> Link {
    try state.withLock { state in
      guard state.phase == .running else { throw NodeError.stopping(id, method: method) }
      guard let link = state.links[target] else { throw NodeError.notConnected(target, method: method) }
      return link
    }
  }

}

/// Runs `body` with a started node and stops the node afterwards, also when `body` throws.
public func withNode<Result>(
  id: String? = nil, config: NodeConfig = .defaults, transport: any Transport,
  _ body: (Node) async throws -> Result
) async throws -> Result {
  let node = Node(id: id, config: config, transport: transport)
  try await node.start()
  do {
    let result = try await body(node)
    await node.stop()
    return result
  } catch {
    await node.stop()
    throw error
  }
}
