package import Foundation
public import Logging
public import NodeComm
public import ServiceLifecycle
import Synchronization

/// The gateway: compute nodes dial it and register functions, clients dial it and call them.
///
/// The gateway is a node of the node layer. A call travels client → gateway → the chosen
/// node → back over the same links; nothing polls.
///
/// ```swift
/// let server = Server(port: 8080)   // gRPC, from the `EasyRemote` module
/// // or, in one process: Server(transport: MemoryTransport())
/// try await server.start()
/// print(server.stats().nodes)
/// ```
public final class Server: Sendable {
  /// The gateway's node id; compute nodes and clients call it by this name.
  public static let nodeID = "gateway"

  public let host: String
  public let port: Int
  package let node: Node
  private let state: Mutex<State>

  private struct State {
    var router: Router
    var totalRequests = 0
    var failedRequests = 0
    var perFunction: [String: (calls: Int, failures: Int, totalMilliseconds: Double)] = [:]
  }

  /// - Parameters:
  ///   - host: the address to listen on; loopback unless you mean to serve other machines.
  ///   - port: the port; 0 picks a free one (read ``address`` after ``start()``).
  ///   - balancing: how the next node is picked among those serving a function.
  ///   - config: node-layer settings (heartbeat, limits, token).
  ///   - transport: what carries the links: a `MemoryTransport` in one process, the gRPC
  ///     transport between machines (the `EasyRemote` module's `Server(host:port:)` picks it).
  public init(
    host: String = "127.0.0.1", port: Int = 8080, balancing: Balancing = .leastInFlight,
    config: NodeConfig = .defaults, transport: any Transport, logger: Logger? = nil
  ) {
    self.host = host
    self.port = port
    var config = config
    config.transport.listen = true
    config.transport.host = host
    config.transport.port = port
    self.node = Node(id: Self.nodeID, config: config, transport: transport, logger: logger)
    self.state = Mutex(State(router: Router(strategy: balancing.strategy)))
    registerMethods()
  }

  /// How the gateway spreads calls over the nodes serving a function.
  public struct Balancing: Sendable {
    let strategy: Router.Strategy
    /// The node with the fewest calls in flight (the default).
    public static let leastInFlight = Balancing(strategy: .leastInFlight)
    /// Each node in turn.
    public static let roundRobin = Balancing(strategy: .roundRobin)
  }

  /// Starts listening; returns once the gateway accepts links.
  public func start() async throws {
    node.on(.disconnect) { [weak self] event in
      self?.state.withLock { $0.router.remove(event.peerID) }
    }
    try await node.start()
  }


  /// Stops: in-flight calls get the grace period, then every link closes.
  public func stop() async { await node.stop() }

  /// Returns once the gateway has stopped.
  public func waitUntilStopped() async { await node.waitUntilStopped() }

  /// The `host:port` compute nodes and clients dial.
  public var address: String? { node.listeningAddress }
  public var isRunning: Bool { node.isRunning }
  /// Connected compute nodes.
  public var nodeCount: Int { state.withLock { $0.router.nodes.count } }
  /// Distinct functions served.
  public var functionCount: Int { state.withLock { $0.router.functions.count } }

  /// Counters of the gateway.
  public func stats() -> GatewayStats {
    state.withLock { state in
      GatewayStats(
        nodes: state.router.nodes.count, functions: state.router.functions.count,
        totalRequests: state.totalRequests, failedRequests: state.failedRequests, inFlight: state.router.inFlight,
        perFunction: state.perFunction.mapValues { entry in
          GatewayStats.FunctionStats(
            calls: entry.calls, failures: entry.failures,
            averageMilliseconds: entry.calls == 0 ? 0 : entry.totalMilliseconds / Double(entry.calls))
        })
    }
  }

  /// The functions served, with their nodes.
  public func functions() -> [FunctionInfo] { state.withLock { $0.router.functions } }

  /// The connected compute nodes.
  public func nodes() -> [NodeInfo] { state.withLock { $0.router.nodeInfos } }

  /// The nodes serving `function`.
  package func nodes(serving function: String) -> Set<String> {
    state.withLock { $0.router.nodes(serving: function) }
  }

  // MARK: - Methods

  private func registerMethods() {
    node.register(Methods.announce) { [weak self] (announcement: NodeAnnouncement, context) -> Empty in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      guard announcement.nodeID == context.callerID else {
        throw EasyRemoteError(code: .invalidArguments, message: "a node may only announce itself").nodeError
      }
      self.state.withLock { $0.router.add(announcement) }
      self.node.logger.info(
        "node registered", metadata: ["peer": "\(announcement.nodeID)", "functions": "\(announcement.functions.count)"])
      return Empty()
    }
    node.register(Methods.functions) { [weak self] (_: Empty, _) in self?.functions() ?? [] }
    node.register(Methods.nodes) { [weak self] (_: Empty, _) in self?.nodes() ?? [] }
    node.register(Methods.stats) { [weak self] (_: Empty, _) -> GatewayStats in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      return self.stats()
    }
    node.register(Methods.health) { [weak self] (_: Empty, _) in
      HealthReport(status: "healthy", nodes: self?.nodeCount ?? 0, functions: self?.functionCount ?? 0)
    }
    node.register(Methods.execute) { [weak self] payload, context in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      return try await self.execute(payload, context: context)
    }
    node.registerStream(Methods.stream) { [weak self] payload, context, sink in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "gateway is gone").nodeError }
      try await self.forwardStream(payload, context: context, sink: sink)
    }
  }

  /// Routes one call: picks a node, runs the call there, retries an idempotent function once
  /// on another node when the first is lost.
  private func execute(_ payload: Payload, context: CallContext) async throws -> Payload {
    // Clients name the function (and node) in the call's metadata, so the arguments pass
    // through without being parsed here; other callers' payloads are read for them.
    if let function = context.metadata[Methods.functionKey] {
      return try await route(function, node: context.metadata[Methods.nodeKey], payload: payload, timeout: context.remaining)
    }
    let invocation = try node.serializers.decode(Invocation.self, from: payload, method: Methods.execute)
    return try await route(invocation.function, node: invocation.node, payload: payload, timeout: context.remaining)
  }

  /// Calls a function of the pool from inside the gateway (the HTTP API's
  /// `POST /functions/{name}/call`), balanced like a client's call. Returns the JSON result.
  ///
  /// - Throws: ``EasyRemoteError``.
  package func call(_ invocation: Invocation, timeout: Duration) async throws -> Data {
    do {
      // JSON whatever the gateway's default serializer: the node answers in kind, and the
      // HTTP API passes the answer on as JSON.
      let payload = try node.serializers.encode(invocation, method: Methods.execute, explicit: JSONSerializer.name)
      return try await route(invocation.function, node: invocation.node, payload: payload, timeout: timeout).data
    } catch {
      throw EasyRemoteError(error, function: invocation.function)
    }
  }

  private func route(_ function: String, node target: String?, payload: Payload, timeout: Duration?) async throws
    -> Payload
  {
    let start = ContinuousClock.now
    var tried: Set<String> = []
    var lastError: EasyRemoteError?
    while true {
      let pick = state.withLock { state in
        state.router.pick(function, target: target, excluding: tried)
      }
      let chosen: (nodeID: String, descriptor: FunctionDescriptor)
      switch pick {
      case .success(let value): chosen = value
      case .failure(let error):
        let failure = lastError ?? error
        record(function, start: start, failed: true)
        throw failure.nodeError
      }
      if chosen.descriptor.streaming {
        state.withLock { $0.router.finish(chosen.nodeID) }
        record(function, start: start, failed: true)
        throw EasyRemoteError(
          code: .invalidArguments, message: "'\(function)' is a streaming function: use stream()",
          function: function
        ).nodeError
      }
      tried.insert(chosen.nodeID)
      do {
        let result = try await node.call(chosen.nodeID, Methods.run, payload: payload, timeout: timeout)
        state.withLock { $0.router.finish(chosen.nodeID) }
        record(function, start: start, failed: false)
        return result
      } catch {
        state.withLock { $0.router.finish(chosen.nodeID) }
        let failure = EasyRemoteError(error, function: function)
        if failure.code == .nodeLost {
          lastError = EasyRemoteError(
            code: .nodeLost, message: "node '\(chosen.nodeID)' was lost while running '\(function)'",
            function: function, details: ["node": chosen.nodeID])
          if chosen.descriptor.idempotent, tried.count < 2, target == nil { continue }
          record(function, start: start, failed: true)
          throw lastError!.nodeError
        }
        record(function, start: start, failed: true)
        throw failure.nodeError
      }
    }
  }

  /// Opens the stream on a node and passes its items on as they come, within the client's
  /// credit; when the client goes away the node's stream is cancelled with it.
  private func forwardStream(_ payload: Payload, context: CallContext, sink: StreamSink) async throws {
    let invocation = try node.serializers.decode(Invocation.self, from: payload, method: Methods.stream)
    let start = ContinuousClock.now
    let pick = state.withLock { $0.router.pick(invocation.function, target: invocation.node) }
    guard case .success(let chosen) = pick else {
      if case .failure(let error) = pick { throw error.nodeError }
      return
    }
    defer { state.withLock { $0.router.finish(chosen.nodeID) } }
    do {
      let items = try await node.stream(chosen.nodeID, Methods.runStream, payload: payload, timeout: context.remaining, window: Methods.streamWindow)
      for try await batch in items.batches { try await sink.send(contentsOf: batch) }
      record(invocation.function, start: start, failed: false)
    } catch {
      record(invocation.function, start: start, failed: true)
      var failure = EasyRemoteError(error, function: invocation.function)
      if failure.code == .nodeLost {
        failure.message = "node '\(chosen.nodeID)' was lost while streaming '\(invocation.function)'"
      }
      throw failure.nodeError
    }
  }

  private func record(_ function: String, start: ContinuousClock.Instant, failed: Bool) {
    let elapsed = ContinuousClock.now - start
    let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    state.withLock { state in
      state.totalRequests += 1
      if failed { state.failedRequests += 1 }
      var entry = state.perFunction[function] ?? (0, 0, 0)
      entry.calls += 1
      if failed { entry.failures += 1 }
      entry.totalMilliseconds += milliseconds
      state.perFunction[function] = entry
    }
  }
}

extension Server: Service {
  /// Runs the gateway as a service: starts it, waits for graceful shutdown (SIGTERM/SIGINT
  /// in a `ServiceGroup`) or cancellation, then stops it.
  /// Calling ``start()`` first (to know the address before the group runs) is fine.
  public func run() async throws {
    if !isRunning { try await start() }
    try? await gracefulShutdown()
    await stop()
  }
}
