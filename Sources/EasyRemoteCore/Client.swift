import Foundation
public import NodeComm
import Synchronization

/// Calls functions of the pool through the gateway, as if they were local.
///
/// ```swift
/// let client = Client(serverAddress: "127.0.0.1:8080")
/// let sum: Int = try await client.execute("add", 2, 3)
/// for try await n in try await client.stream("count", 5, as: Int.self) { print(n) }
/// ```
public final class Client: Sendable {
  /// The gateway's `host:port` as given: several, comma-separated, for gateways sharing one
  /// task store (the client moves to the next when the one it has cannot be reached).
  public let serverAddress: String
  /// ``serverAddress``, one address each.
  public let serverAddresses: [String]
  /// Which of them it dials.
  private let gatewayIndex = Mutex(0)
  public let timeout: Duration
  package let node: Node
  private let connection = Mutex<Task<Void, any Error>?>(nil)

  /// - Parameters:
  ///   - serverAddress: the gateway's `host:port`, or several, comma-separated.
  ///   - timeout: the default limit of a call.
  ///   - transport: what carries the link to the gateway (the `EasyRemote` module's
  ///     `Client(serverAddress:)` picks gRPC).
  public init(
    serverAddress: String, timeout: Duration = .seconds(30), config: NodeConfig = .defaults, transport: any Transport
  ) {
    self.serverAddress = serverAddress
    self.serverAddresses = ComputeNode.addresses(serverAddress)
    self.timeout = timeout
    var config = config
    config.transport.listen = false
    config.defaultTimeout = timeout
    self.node = Node(
      id: "client-\(UUID().uuidString.prefix(8).lowercased())", config: config, transport: transport)
  }

  /// Connects to the gateway (done on the first call otherwise).
  ///
  /// - Throws: ``EasyRemoteError`` `connectionFailed`.
  public func connect() async throws {
    let task = connection.withLock { current -> Task<Void, any Error> in
      if let current { return current }
      // Unstructured: one connection attempt shared by every caller that asks meanwhile;
      // each awaits it, none owns it.
      let task = Task { [self] in
        if !node.isRunning { try await node.start() }
        // The gateway it had first, then each other in turn.
        let first = self.gatewayIndex.withLock { $0 }
        var failure: (any Error)?
        for step in 0..<serverAddresses.count {
          let index = (first + step) % serverAddresses.count
          do {
            try await node.connect(to: Server.nodeID, at: serverAddresses[index])
            self.gatewayIndex.withLock { $0 = index }
            return
          } catch {
            failure = error
          }
        }
        throw failure ?? EasyRemoteError(code: .connectionFailed, message: "no gateway address given")
      }
      current = task
      return task
    }
    do {
      try await task.value
    } catch {
      connection.withLock { $0 = nil }
      throw EasyRemoteError(code: .connectionFailed, message: "cannot reach the gateway at \(serverAddress)", cause: error)
    }
    if !node.isConnected(to: Server.nodeID) {
      // The link dropped since: dial again.
      connection.withLock { $0 = nil }
      try await connect()
    }
  }

  /// The gateway it dials now (of ``serverAddresses``).
  public var gatewayAddress: String { serverAddresses[gatewayIndex.withLock { $0 }] }

  /// Whether the link to the gateway is up.
  public var isConnected: Bool { node.isConnected(to: Server.nodeID) }

  /// Closes the link to the gateway.
  public func close() async { await node.stop(gracePeriod: .zero) }

  /// Runs `name` with positional arguments (and keyword arguments) and decodes its result.
  ///
  /// - Parameters:
  ///   - node: run on this node only.
  /// - Throws: ``EasyRemoteError``: `connectionFailed`, `timedOut`, `functionNotFound`,
  ///   `invalidArguments`, `remoteExecutionFailed`, `nodeLost`, `busy`, `invalidResult`.
  public func execute<R: Decodable & Sendable, each A: Encodable>(
    _ name: String, _ arguments: repeat each A, kwargs: [String: JSONValue] = [:], node target: String? = nil,
    timeout: Duration? = nil, as: R.Type = R.self
  ) async throws -> R {
    // The argument list encoded once, each value straight with the call's serializer.
    let call = TypedCall(function: name, args: (repeat each arguments), kwargs: kwargs, node: target)
    let payload = try await send(name, node: target, timeout: timeout) {
      try call.payload(method: Methods.execute, serializers: node.serializers)
    }
    do {
      return try node.serializers.decodeResult(R.self, from: payload, function: name)
    } catch {
      throw EasyRemoteError(
        code: .invalidResult, message: "the result of '\(name)' is not \(R.self): \(payload.text.prefix(200))",
        function: name)
    }
  }

  /// Runs `name` with JSON arguments; returns the result as JSON (the command line's form).
  public func executeJSON(
    _ name: String, args: [JSONValue], kwargs: [String: JSONValue] = [:], node target: String? = nil,
    timeout: Duration? = nil
  ) async throws -> JSONValue {
    let payload = try await executeRaw(name, args: args, kwargs: kwargs, node: target, timeout: timeout)
    return try node.serializers.decodeResult(JSONValue.self, from: payload, function: name)
  }

  private func executeRaw(
    _ name: String, args: [JSONValue], kwargs: [String: JSONValue], node target: String?, timeout: Duration?
  ) async throws -> Payload {
    let invocation = Invocation(function: name, args: args, kwargs: kwargs, node: target)
    return try await send(name, node: target, timeout: timeout) {
      try node.serializers.encode(invocation, method: Methods.execute, explicit: invocation.serializer)
    }
  }

  /// Sends one call to the gateway, naming its function (and node) in metadata.
  private func send(
    _ name: String, node target: String?, timeout: Duration?, payload encode: () throws -> Payload
  ) async throws -> Payload {
    try await connect()
    do {
      let payload = try encode()
      var metadata = [Methods.functionKey: name]
      if let target { metadata[Methods.nodeKey] = target }
      return try await node.call(
        Server.nodeID, Methods.execute, payload: payload, timeout: timeout ?? self.timeout, metadata: metadata)
    } catch {
      throw EasyRemoteError(error, function: name)
    }
  }

  /// Opens a stream of `name`'s items; each arrives as soon as the node produces it.
  ///
  /// Breaking out of the loop, cancelling the task, dropping the sequence or the timeout
  /// cancels the producing task on the node.
  public func stream<Item: Decodable & Sendable, each A: Encodable>(
    _ name: String, _ arguments: repeat each A, kwargs: [String: JSONValue] = [:], node target: String? = nil,
    timeout: Duration? = nil, as: Item.Type = Item.self
  ) async throws -> some AsyncSequence<Item, any Error> & Sendable {
    let call = TypedCall(function: name, args: (repeat each arguments), kwargs: kwargs, node: target)
    let items = try await openStream(name, node: target, timeout: timeout) {
      try call.payload(method: Methods.stream, serializers: node.serializers)
    }
    return DecodedStream<Item>(items: items, function: name, serializers: node.serializers)
  }

  /// Opens a stream with JSON arguments; items come as JSON (the command line's form).
  public func streamJSON(
    _ name: String, args: [JSONValue], kwargs: [String: JSONValue] = [:], node target: String? = nil,
    timeout: Duration? = nil
  ) async throws -> some AsyncSequence<JSONValue, any Error> & Sendable {
    let invocation = Invocation(function: name, args: args, kwargs: kwargs, node: target)
    let items = try await openStream(name, node: target, timeout: timeout) {
      try node.serializers.encode(invocation, method: Methods.stream, explicit: invocation.serializer)
    }
    return DecodedStream<JSONValue>(items: items, function: name, serializers: node.serializers)
  }

  private func openStream(
    _ name: String, node target: String?, timeout: Duration?, payload encode: () throws -> Payload
  ) async throws -> NodeStream {
    try await connect()
    do {
      let payload = try encode()
      // Like a call: the function (and node) in metadata, so the gateway need not parse the arguments.
      var metadata = [Methods.functionKey: name]
      if let target { metadata[Methods.nodeKey] = target }
      return try await node.stream(
        Server.nodeID, Methods.stream, payload: payload, timeout: timeout, window: Methods.streamWindow,
        metadata: metadata)
    } catch {
      throw EasyRemoteError(error, function: name)
    }
  }

  /// The functions of the pool.
  public func listFunctions() async throws -> [FunctionInfo] {
    try await connect()
    do {
      return try await node.call(Server.nodeID, Methods.functions, Empty())
    } catch {
      throw EasyRemoteError(error, function: nil)
    }
  }

  /// One function: parameters, nodes, description, availability.
  ///
  /// - Throws: ``EasyRemoteError`` `functionNotFound`.
  public func functionInfo(_ name: String) async throws -> FunctionInfo {
    guard let info = try await listFunctions().first(where: { $0.name == name }) else {
      throw EasyRemoteError(code: .functionNotFound, message: "no node serves '\(name)'", function: name)
    }
    return info
  }

  /// The compute nodes connected to the gateway.
  public func listNodes() async throws -> [NodeInfo] {
    try await connect()
    do {
      return try await node.call(Server.nodeID, Methods.nodes, Empty())
    } catch {
      throw EasyRemoteError(error, function: nil)
    }
  }

  /// The gateway's counters.
  public func gatewayStats() async throws -> GatewayStats {
    try await connect()
    do {
      return try await node.call(Server.nodeID, Methods.stats, Empty())
    } catch {
      throw EasyRemoteError(error, function: nil)
    }
  }
}

extension Client {
  /// Calls `method` on the gateway (connecting first): how extensions of the gateway (the
  /// task center) give clients their own methods.
  ///
  /// - Throws: ``EasyRemoteError`` `connectionFailed`; `NodeError` or the handler's error
  ///   as the gateway sent it.
  public func callGateway<Request: Encodable, Response: Decodable & Sendable>(
    _ method: String, _ request: Request, as: Response.Type = Response.self, timeout: Duration? = nil
  ) async throws -> Response {
    try await connect()
    return try await node.call(Server.nodeID, method, request, as: Response.self, timeout: timeout ?? self.timeout)
  }
}

/// Asks the gateway at `address` how it is.
///
/// - Throws: ``EasyRemoteError`` `connectionFailed` when it cannot be reached.
public func healthCheck(
  _ address: String, timeout: Duration = .seconds(5), authToken: String? = nil, transport: any Transport
) async throws -> HealthReport {
  let client = Client(
    serverAddress: address, timeout: timeout, config: .defaults { $0.authToken = authToken }, transport: transport)
  do {
    try await client.connect()
    let report: HealthReport = try await client.node.call(Server.nodeID, Methods.health, Empty())
    await client.close()
    return report
  } catch {
    await client.close()
    throw EasyRemoteError(error, function: nil)
  }
}

/// The items of a function's stream, decoded as `Item`; node-layer errors become
/// ``EasyRemoteError``s. (One layer over the node stream: a stream of small items spends its
/// time in these few calls.)
struct DecodedStream<Item: Decodable & Sendable>: AsyncSequence, Sendable {
  typealias Element = Item
  let items: NodeStream
  let function: String
  let serializers: SerializerRegistry

  struct AsyncIterator: AsyncIteratorProtocol {
    var base: NodeStream.AsyncIterator
    let function: String
    let serializers: SerializerRegistry

    mutating func next() async throws -> Item? {
      let payload: Payload?
      do {
        payload = try await base.next()
      } catch {
        throw EasyRemoteError(error, function: function)
      }
      guard let payload else { return nil }
      do {
        return try serializers.decodeResult(Item.self, from: payload, function: function)
      } catch {
        throw EasyRemoteError(
          code: .invalidResult, message: "an item of '\(function)' is not \(Item.self): \(payload.text.prefix(200))",
          function: function)
      }
    }
  }

  func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(base: items.makeAsyncIterator(), function: function, serializers: serializers)
  }
}

extension SerializerRegistry {
  /// A function's result or item as `T`: by the payload's serializer, and raw bytes (what a
  /// node answers a binary call returning `Data`) also as a ``JSONValue``.
  func decodeResult<T: Decodable>(_ type: T.Type, from payload: Payload, function: String) throws -> T {
    if payload.serializer == RawSerializer.name, T.self == JSONValue.self, let value = JSONValue.bytes(payload.data) as? T {
      return value
    }
    return try decode(type, from: payload, method: function)
  }
}
