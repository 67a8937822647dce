import Foundation
public import Logging
public import NodeComm
public import ServiceLifecycle
import Synchronization

/// A machine's contribution to the pool: it dials the gateway (so it works behind NAT),
/// registers functions and runs the calls routed to it (and, with a `TaskWorker`, tasks),
/// at most `maxWorkers` at once, calls and tasks together.
///
/// ```swift
/// let node = ComputeNode(serverAddress: "127.0.0.1:8080", nodeID: "gpu-box", maxWorkers: 4)
/// node.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
/// node.registerStream("count", parameters: ["to"]) { (to: Int) in
///   AsyncStream<Int> { c in for i in 0..<to { c.yield(i) }; c.finish() }
/// }
/// try await node.serve()
/// ```
public final class ComputeNode: Sendable {
  /// The gateway's `host:port` as given: several, comma-separated, for gateways sharing one
  /// task store (the node moves to the next when the one it has goes away).
  public let serverAddress: String
  /// ``serverAddress``, one address each.
  public let serverAddresses: [String]
  public let maxWorkers: Int
  /// Calls beyond `maxWorkers` wait in a queue of this size; beyond it they are refused (`busy`).
  public let queueLimit: Int
  package let node: Node
  let state: Mutex<State>
  /// Its `maxWorkers` places, shared by calls and tasks.
  let workers: WorkerGate
  /// What the node starts on its own: the reconnect loop, announcements after a late `register`.
  let background = OwnedTasks()
  /// Told of each change of its workers' counts and of its link (``changes()``).
  let feed = ChangeFeed()
  /// What the reconnection backoff sleeps on.
  let clock: any Clock<Duration>

  struct State {
    var functions: [String: FunctionDescriptor] = [:]
    var executions = 0
    var failures = 0
    var totalSeconds = 0.0
    var stopped = false
    var started = false
    var connected = false
    var reconnecting = false
    var connectListeners = Listeners<Void>()
    /// What it offers the task center, in each announcement (``offerTasks(_:)``).
    var worker: Membership.Worker?
    /// The offer the gateway last took.
    var announcedWorker: Membership.Worker?
    /// Run before each announcement (``beforeAnnouncing(_:)``).
    var announceHooks: [UInt64: @Sendable () async -> Void] = [:]
    var nextHook: UInt64 = 0
    /// Which of ``serverAddresses`` it dials (it moves on when that one fails).
    var gatewayIndex = 0
  }

  /// - Parameters:
  ///   - serverAddress: the gateway's `host:port`; or several, comma-separated (gateways
  ///     sharing one task store): the node joins the first that answers, and moves to the next
  ///     when its gateway goes away.
  ///   - nodeID: this node's id; a random one when nil.
  ///   - maxWorkers: calls and tasks run at once; the rest wait (up to `queueLimit`) or are
  ///     refused. When nil: `config.maxWorkers`, else 5.
  ///   - transport: what carries the link to the gateway (the `EasyRemote` module's
  ///     `ComputeNode(serverAddress:)` picks gRPC).
  ///   - clock: what the waits between reconnection attempts and the link's heartbeats keep
  ///     time on.
  public init(
    serverAddress: String, nodeID: String? = nil, maxWorkers: Int? = nil, queueLimit: Int? = nil,
    config: NodeConfig = .defaults, transport: any Transport, logger: Logger? = nil,
    clock: any Clock<Duration> = ContinuousClock()
  ) {
    self.clock = clock
    self.serverAddress = serverAddress
    self.serverAddresses = Self.addresses(serverAddress)
    let maxWorkers = InputBounds.clamp(maxWorkers ?? config.maxWorkers ?? 5, InputBounds.slots)
    self.maxWorkers = maxWorkers
    self.queueLimit = queueLimit ?? maxWorkers * 16
    self.workers = WorkerGate(limit: maxWorkers, queueLimit: self.queueLimit, feed: feed, timeline: Timeline(clock))
    var config = config
    config.transport.listen = false
    self.node = Node(id: nodeID ?? config.nodeID, config: config, transport: transport, logger: logger, clock: clock)
    self.state = Mutex(State())
    registerMethods()
  }

  public var nodeID: String { node.id }
  /// Whether ``start()`` was called.
  public var isStarted: Bool { state.withLock { $0.started } }
  public var isConnected: Bool { state.withLock { $0.connected } }
  public var functionCount: Int { state.withLock { $0.functions.count } }

  /// A tick each time ``stats()``'s running or queued count, or ``isConnected``, changes
  /// (tests wait on it).
  package func changes() -> AsyncStream<Void> { feed.changes() }

  /// Executions, failures and average duration of the calls this node ran.
  public func stats() -> NodeStats {
    state.withLock { state in
      NodeStats(
        executions: state.executions, failures: state.failures, running: workers.running, queued: workers.queued,
        averageSeconds: state.executions == 0 ? 0 : state.totalSeconds / Double(state.executions))
    }
  }

  // MARK: - Lifecycle

  /// Connects to the gateway and registers the functions; afterwards the node reconnects by
  /// itself (with backoff) whenever the link drops, until ``stop()``.
  ///
  /// - Throws: ``EasyRemoteError`` `connectionFailed` when the first connection fails.
  public func start() async throws {
    let first = state.withLock { state in
      defer { state.started = true }
      return !state.started
    }
    guard first else {
      throw EasyRemoteError(code: .internalError, message: "compute node '\(node.id)' was already started")
    }
    node.on(.disconnect) { [weak self] event in
      guard let self, event.peerID == Server.nodeID else { return }
      self.linkLost()
    }
    try await node.start()
    // Each address once, in order.
    var failure: (any Error)?
    for _ in serverAddresses {
      do {
        try await connectAndAnnounce()
        return
      } catch {
        failure = error
        moveOn()
      }
    }
    throw failure ?? EasyRemoteError(code: .connectionFailed, message: "no gateway address given")
  }

  /// `host:port[,host:port…]`, one address each.
  package static func addresses(_ text: String) -> [String] {
    let addresses = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    return addresses.isEmpty ? [text] : addresses
  }

  /// The gateway dialled now.
  public var gatewayAddress: String { serverAddresses[state.withLock { $0.gatewayIndex }] }

  /// Dials the next gateway address from now on.
  private func moveOn() {
    state.withLock { $0.gatewayIndex = ($0.gatewayIndex + 1) % serverAddresses.count }
  }

  /// Starts (unless ``start()`` was called already) and serves until the task is cancelled or
  /// ``stop()`` is called.
  public func serve() async throws {
    if !state.withLock({ $0.started }) { try await start() }
    await withTaskCancellationHandler {
      await node.waitUntilStopped()
    } onCancel: {
      // Unstructured: a cancellation handler cannot await; the stop ends the wait above.
      Task { await self.stop() }
    }
  }

  /// Stops: running calls get the grace period; the node does not reconnect.
  public func stop() async {
    state.withLock { $0.stopped = true }
    await background.cancelAll()  // the reconnect loop and announcements, awaited
    await node.stop()
  }

  private func connectAndAnnounce() async throws {
    let address = gatewayAddress
    do {
      try await node.connect(to: Server.nodeID, at: address)
      try await announce()
      let (listeners, changed) = state.withLock { state in
        state.connected = true
        return (state.connectListeners.all, state.worker != state.announcedWorker)
      }
      if changed { try await announce() }  // its offer changed while it connected
      feed.changed()
      for listener in listeners { listener(()) }
      node.logger.info("registered with the gateway", metadata: ["gateway": "\(address)"])
    } catch {
      throw EasyRemoteError(code: .connectionFailed, message: "cannot join the gateway at \(address)", cause: error)
    }
  }

  private func linkLost() {
    let start = state.withLock { state -> Bool in
      state.connected = false
      guard !state.stopped, !state.reconnecting else { return false }
      state.reconnecting = true
      return true
    }
    feed.changed()
    guard start else { return }
    background.start { [weak self] in
      var delay = Duration.milliseconds(100)
      while let self, !Task.isCancelled, !self.state.withLock({ $0.stopped }) {
        do {
          try await self.connectAndAnnounce()
          break
        } catch {
          self.node.logger.debug("reconnect failed", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
          if self.serverAddresses.count > 1 {
            // Another gateway on the same store may take it: each in turn, a round at a time.
            self.moveOn()
            if self.state.withLock({ $0.gatewayIndex != 0 }) { continue }
          }
          try? await self.clock.sleep(for: delay)
          delay = min(delay * 2, .seconds(5))
        }
      }
      self?.state.withLock { $0.reconnecting = false }
    }
  }

  // MARK: - Registration

  /// Registers a function taking any number of `Decodable` parameters.
  ///
  /// - Parameters:
  ///   - parameters: the parameter names, for keyword arguments and error messages.
  ///   - idempotent: the gateway may run it again on another node if this one is lost mid-call.
  public func register<each A: Decodable & Sendable, R: Encodable & Sendable>(
    _ name: String, description: String = "", parameters: [String] = [], idempotent: Bool = false,
    _ function: @escaping @Sendable (repeat each A) async throws -> R
  ) {
    let names = Self.names(parameters, count: Self.arity((repeat (each A).self)))
    let serializers = node.serializers
    add(FunctionDescriptor(name: name, description: description, parameters: names, streaming: false, idempotent: idempotent)) {
      payload, serializer, output in
      // Each parameter straight from the caller's bytes, in its own type.
      let arguments = try ArgumentReader.decode(
        repeat (each A).self, function: name, parameters: names, from: payload, serializers: serializers)
      let result = try await function(repeat each arguments)
      try await output.send(try Self.encode(result, with: serializer))
    }
  }

  /// Registers a streaming function: each element of the returned sequence reaches the caller
  /// as soon as it is produced.
  public func registerStream<each A: Decodable & Sendable, Items: AsyncSequence & SendableMetatype>(
    _ name: String, description: String = "", parameters: [String] = [],
    _ function: @escaping @Sendable (repeat each A) async throws -> Items
  ) where Items.Element: Encodable & SendableMetatype {
    let names = Self.names(parameters, count: Self.arity((repeat (each A).self)))
    let serializers = node.serializers
    add(FunctionDescriptor(name: name, description: description, parameters: names, streaming: true, idempotent: false)) {
      payload, serializer, output in
      let arguments = try ArgumentReader.decode(
        repeat (each A).self, function: name, parameters: names, from: payload, serializers: serializers)
      for try await item in try await function(repeat each arguments) {
        let payload = try Self.encode(item, with: serializer)
        if try !output.offer(payload) { try await output.send(payload) }
      }
    }
  }

  /// A result or item as the caller gets it. Bytes answering a binary call go as they are
  /// (`raw`): no MessagePack copy on either side.
  private static func encode(_ value: some Encodable, with serializer: any PayloadSerializer) throws -> Payload {
    if serializer is BinarySerializer, let bytes = value as? Data { return .raw(bytes) }
    return Payload(data: try serializer.encode(value), serializer: serializer.name)
  }

  private static func arity<each T>(_ types: (repeat (each T).Type)) -> Int {
    var count = 0
    for _ in repeat each types { count += 1 }
    return count
  }

  private static func names(_ given: [String], count: Int) -> [String] {
    (0..<count).map { $0 < given.count ? given[$0] : "arg\($0 + 1)" }
  }

  /// Runs one call: decodes the arguments, runs the function, sends its result (or each
  /// item) encoded with `serializer` to the output.
  private typealias Body = @Sendable (Payload, _ serializer: any PayloadSerializer, FunctionOutput) async throws -> Void

  private let bodies = Mutex<[String: Body]>([:])

  private func add(_ descriptor: FunctionDescriptor, body: @escaping Body) {
    bodies.withLock { $0[descriptor.name] = body }
    let announce = state.withLock { state in
      state.functions[descriptor.name] = descriptor
      return state.connected
    }
    // Registering after the node joined: tell the gateway again.
    if announce {
      background.start { [weak self] in try? await self?.announce() }
    }
  }

  /// Tells the gateway who this node is — its functions, workers and (when it takes tasks)
  /// what it offers the task center: the one join. The hooks run first (a task worker hands
  /// in how its recent tasks ended, before it can be given new ones).
  func announce() async throws {
    let hooks = state.withLock { Array($0.announceHooks.sorted { $0.key < $1.key }.map(\.value)) }
    for hook in hooks { await hook() }
    let announcement = state.withLock { state in
      NodeAnnouncement(
        nodeID: node.id, maxWorkers: maxWorkers, functions: Array(state.functions.values), worker: state.worker)
    }
    let _: Empty = try await node.call(Server.nodeID, Methods.announce, announcement, timeout: .seconds(10))
    state.withLock { $0.announcedWorker = announcement.worker }
  }

  // MARK: - Running calls

  private func registerMethods() {
    node.register(Methods.run) { [weak self] payload, context in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "node is gone").nodeError }
      let output = FunctionOutput.single()
      try await self.run(payload, function: context.metadata[Methods.functionKey], output: output)
      return output.result ?? Payload(data: Data("null".utf8), serializer: JSONSerializer.name)
    }
    node.registerStream(Methods.runStream) { [weak self] payload, context, sink in
      guard let self else { throw EasyRemoteError(code: .internalError, message: "node is gone").nodeError }
      try await self.run(payload, function: context.metadata[Methods.functionKey], output: .stream(sink))
    }
  }

  /// Runs one of this node's functions here, in a worker like any call: the task center's way
  /// to run a function task. `call` is the invocation as it was stored (JSON, or MessagePack
  /// when it carries bytes); the result comes back in the same serializer.
  package func runLocally(_ call: Payload, function: String) async throws -> Payload {
    let output = FunctionOutput.single()
    do {
      try await run(call, function: function, output: output)
    } catch {
      throw EasyRemoteError(error, function: function)
    }
    return output.result ?? Payload(data: Data("null".utf8), serializer: JSONSerializer.name)
  }

  /// Runs a call in a worker slot. The result (or each item) is encoded the way the call
  /// came: MessagePack for a MessagePack call (bytes stay bytes), JSON otherwise.
  ///
  /// `named` is the function the call's metadata names (gateways say it, so the payload is
  /// read once, by the function's own parameter types); without it the payload's
  /// `function` field is read first.
  private func run(_ payload: Payload, function named: String?, output: FunctionOutput) async throws {
    let serializer: any PayloadSerializer =
      payload.serializer == BinarySerializer.name ? BinarySerializer() : JSONSerializer()
    let function = try named ?? node.serializers.decode(InvocationHeader.self, from: payload, method: Methods.run).function
    guard let body = bodies.withLock({ $0[function] }) else {
      throw EasyRemoteError(
        code: .functionNotFound, message: "node '\(node.id)' has no function '\(function)'", function: function
      ).nodeError
    }
    try await acquireWorker(function)
    let start = ContinuousClock.now
    var failed = false
    defer { releaseWorker(start: start, failed: failed) }
    do {
      try await body(payload, serializer, output)
    } catch let error as EasyRemoteError {
      failed = true
      throw error.nodeError
    } catch let error as NodeError {
      failed = true
      throw error
    } catch let error as InputBoundsError {
      // An argument out of its range: the caller's fault, told as such.
      failed = true
      throw EasyRemoteError(code: .invalidArguments, message: error.message, function: function).nodeError
    } catch is CancellationError {
      failed = true
      throw CancellationError()
    } catch {
      failed = true
      throw EasyRemoteError(
        code: .remoteExecutionFailed, message: "\(error)", function: function,
        remoteType: String(reflecting: type(of: error))
      ).nodeError
    }
  }

  /// Waits for a free worker (first come, first served), or refuses when the queue is full.
  func acquireWorker(_ function: String) async throws {
    try await workers.enter {
      EasyRemoteError(
        code: .busy, message: "node '\(node.id)' is running \(maxWorkers) calls and has \(queueLimit) waiting",
        function: function
      ).nodeError
    }
  }

  func releaseWorker(start: ContinuousClock.Instant, failed: Bool) {
    let elapsed = ContinuousClock.now - start
    state.withLock { state in
      state.executions += 1
      if failed { state.failures += 1 }
      state.totalSeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
    workers.leave()
  }
}

/// Counters of one compute node.
public struct NodeStats: Codable, Sendable, Equatable {
  public var executions: Int
  public var failures: Int
  public var running: Int
  public var queued: Int
  public var averageSeconds: Double
}

extension ComputeNode: Service {
  /// Runs the compute node as a service: joins the gateway (unless ``start()`` was called
  /// already), serves until graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`) or
  /// cancellation, then stops: running calls get the grace period.
  public func run() async throws {
    if !isStarted { try await start() }
    try? await gracefulShutdown()
    await stop()
  }
}
