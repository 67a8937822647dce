import Foundation
import Synchronization

/// A streaming method implementation: gets the request and sends items through the sink.
/// Returning ends the stream; throwing ends it with the error.
public typealias StreamHandler = @Sendable (Payload, CallContext, StreamSink) async throws -> Void

/// Where a streaming handler sends its items.
///
/// `send` waits while the consumer has no credit left, so a slow reader slows the producer
/// instead of filling memory; it throws `cancelled` once the consumer has gone away.
public struct StreamSink: Sendable {
  let link: Link
  let id: UInt64
  let method: String
  /// Items are deflated (those large enough): the link compresses and the stream was selected.
  let compress: Bool

  /// Sends one item, waiting for the consumer's credit.
  public func send(_ item: Payload) async throws {
    try await link.sendStreamItems(id, method: method, payloads: CollectionOfOne(packed(item)))
  }

  /// Sends the item if the consumer has credit for it now, without suspending; returns false
  /// (sending nothing) when it has none: then ``send(_:)`` waits for it.
  public func offer(_ item: Payload) throws -> Bool {
    try link.offerStreamItem(id, method: method, payload: packed(item))
  }

  /// Sends items in order, each as soon as the consumer has credit for it; items that go
  /// out together share one frame.
  public func send(contentsOf items: [Payload]) async throws {
    try await link.sendStreamItems(id, method: method, payloads: compress ? items.map(packed) : items)
  }

  private func packed(_ item: Payload) -> Payload {
    guard compress, item.data.count >= max(1, link.node.config.compression.minimumSize),
      item.data.count <= link.node.config.limits.maxPayloadSize
    else { return item }
    return PayloadCompression.compress(item)
  }
}

/// The items of a stream opened with ``Node/stream(_:_:payload:timeout:window:metadata:)``.
///
/// Items arrive as the producer yields them. Reading grants the producer more credit;
/// breaking out of the loop, cancelling the reading task or dropping the sequence cancels the
/// producing task on the remote node.
public struct NodeStream: AsyncSequence, Sendable {
  public typealias Element = Payload
  public typealias Failure = any Error

  let receiver: StreamReceiver

  /// Takes the items that have arrived up to a window at a time and hands them out one by
  /// one, so a fast stream costs one wake-up per batch, not per item. Credit goes back as
  /// items are handed out (half a window at a time), so the producer stays within a window
  /// of this reader. Items taken but not handed out stay with the stream, so a second
  /// iterator (after a `break`) goes on where the first stopped.
  public struct AsyncIterator: AsyncIteratorProtocol {
    let receiver: StreamReceiver

    public mutating func next() async throws -> Payload? {
      try await receiver.next()
    }
  }

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(receiver: receiver) }

  /// The same items as arrays of those that arrived together (at most a window each): for
  /// code that passes items on, such as a gateway forwarding a stream. A batch counts as
  /// read when the next one is asked for.
  public var batches: Batches { Batches(receiver: receiver) }

  public struct Batches: AsyncSequence, Sendable {
    public typealias Element = [Payload]
    public typealias Failure = any Error
    let receiver: StreamReceiver

    public struct AsyncIterator: AsyncIteratorProtocol {
      let receiver: StreamReceiver

      public mutating func next() async throws -> [Payload]? {
        try await receiver.nextBatch()
      }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(receiver: receiver) }
  }

  /// Stops reading; the producer's task is cancelled.
  public func cancel() {
    receiver.link.cancelInboundStream(receiver.id, error: NodeError(code: .cancelled, message: "stream cancelled"))
  }
}

/// Owns one inbound stream; when the last reference goes, an unfinished stream is cancelled.
final class StreamReceiver: Sendable {
  let link: Link
  let id: UInt64
  let window: Int
  /// Items taken from the link and not yet handed out, and how many handed out are not yet
  /// reported to the link (the producer's credit waits for them).
  private let taken = Mutex<(items: [Payload], next: Int, unreported: Int)>(([], 0, 0))

  init(link: Link, id: UInt64, window: Int) {
    self.link = link
    self.id = id
    self.window = window
  }

  /// The items taken and not handed out yet, else the next batch from the link. A batch
  /// counts as read when the next one is asked for.
  func nextBatch() async throws -> [Payload]? {
    let (leftover, consumed) = taken.withLock { state -> ([Payload]?, Int) in
      if state.next < state.items.count {
        let rest = Array(state.items[state.next...])
        state.next = state.items.count
        state.unreported += rest.count
        return (rest, 0)
      }
      defer { state.unreported = 0 }
      return (nil, state.unreported)
    }
    if let leftover { return leftover }
    guard let items = try await link.nextStreamItems(id, max: window, consumed: consumed) else { return nil }
    taken.withLock { state in
      state.items = []
      state.next = 0
      state.unreported = items.count
    }
    return items
  }

  /// The next item: from those already taken, else the next batch from the link.
  func next() async throws -> Payload? {
    let half = Swift.max(1, window / 2)
    enum Step { case item(Payload, report: Int), fetch(consumed: Int) }
    let step = taken.withLock { state -> Step in
      guard state.next < state.items.count else {
        defer { state.unreported = 0 }
        return .fetch(consumed: state.unreported)
      }
      let item = state.items[state.next]
      state.next += 1
      state.unreported += 1
      guard state.unreported >= half else { return .item(item, report: 0) }
      defer { state.unreported = 0 }
      return .item(item, report: state.unreported)
    }
    switch step {
    case .item(let item, let report):
      if report > 0 { link.streamItemsConsumed(id, count: report) }
      return item
    case .fetch(let consumed):
      guard let items = try await link.nextStreamItems(id, max: window, consumed: consumed) else { return nil }
      let report = taken.withLock { state -> Int in
        state.items = items
        state.next = 1
        state.unreported = 1
        guard state.unreported >= half else { return 0 }
        defer { state.unreported = 0 }
        return state.unreported
      }
      if report > 0 { link.streamItemsConsumed(id, count: report) }
      return items[0]
    }
  }

  deinit {
    link.cancelInboundStream(id, error: NodeError(code: .cancelled, message: "stream dropped by its reader"))
  }
}

extension Node {
  /// Registers a typed streaming handler: each element of the returned sequence reaches the
  /// caller as soon as it is produced, encoded with `serializer` (else the request's).
  ///
  /// ```swift
  /// node.registerStream("count") { (limit: Int, _) in
  ///   AsyncStream { continuation in
  ///     for i in 0..<limit { continuation.yield(i) }
  ///     continuation.finish()
  ///   }
  /// }
  /// ```
  public func registerStream<Request: Decodable & SendableMetatype, Items: AsyncSequence & SendableMetatype>(
    _ method: String, serializer: String? = nil,
    _ handler: @escaping @Sendable (Request, CallContext) async throws -> Items
  ) where Items.Element: Encodable & SendableMetatype {
    let serializers = self.serializers
    registerStream(method) { payload, context, sink in
      let request = try serializers.decode(Request.self, from: payload, method: method)
      let answerWith = Self.answerSerializer(serializer, request: payload)
      for try await item in try await handler(request, context) {
        try await sink.send(serializers.encode(item, method: method, explicit: answerWith))
      }
    }
  }

  /// Opens a stream from `method` on node `target`.
  ///
  /// - Parameters:
  ///   - timeout: a limit for the whole stream; none when nil (streams may be infinite).
  ///   - window: how many items may be in flight unread; the producer waits beyond it.
  /// - Throws: ``NodeError`` as for ``call(_:_:payload:timeout:metadata:)``; errors of the
  ///   producer arrive when iterating.
  public func stream(
    _ target: String, _ method: String, payload: Payload, timeout: Duration? = nil, window: Int = 64,
    metadata: [String: String] = [:]
  ) async throws -> NodeStream {
    let call = InterceptedCall(
      direction: .outbound, peerID: target, method: method, payload: payload, metadata: metadata, isNotification: false)
    let opened = OpenedStream()
    _ = try await outboundInterceptors.run(call) { [self] call in
      let link = try link(to: target, method: call.method)
      let id = try link.openStream(
        method: call.method, payload: call.payload, metadata: call.metadata, timeout: timeout, target: target,
        window: max(1, window))
      opened.set(link, id)
      return .empty
    }
    guard let (link, id) = opened.opened else {
      throw NodeError(code: .rejected, message: "an interceptor did not open the stream", nodeID: target, method: method)
    }
    return NodeStream(receiver: StreamReceiver(link: link, id: id, window: max(1, window)))
  }

  /// Opens a typed stream: the argument is encoded, each item decoded as `Item`.
  public func stream<Item: Decodable & Sendable>(
    _ target: String, _ method: String, _ argument: some Encodable, as: Item.Type = Item.self,
    serializer: String? = nil, timeout: Duration? = nil, window: Int = 64
  ) async throws -> some AsyncSequence<Item, any Error> & Sendable {
    let payload = try serializers.encode(argument, method: method, explicit: serializer)
    let items = try await stream(target, method, payload: payload, timeout: timeout, window: window)
    let serializers = self.serializers
    return items.map { payload throws -> Item in try serializers.decode(Item.self, from: payload, method: method) }
  }

  /// Runs one inbound streaming request through the interceptors and its handler. A plain
  /// handler serves a stream of one item.
  func serveStream(_ frame: Frame, peerID: String, sink: StreamSink) async -> Result<Void, NodeError> {
    let (handler, streamHandler, interceptors, running) = inboundRoute(frame.method)
    guard running else { return .failure(.stopping(id, method: frame.method)) }
    let timeout: Duration? = frame.timeoutMicros > 0 ? .microseconds(frame.timeoutMicros) : nil
    do {
      let payload = try sink.link.unpacked(Payload(data: frame.payload, serializer: frame.serializer), method: frame.method)
      let call = InterceptedCall(
        direction: .inbound, peerID: peerID, method: frame.method, payload: payload, metadata: frame.metadata,
        isNotification: false, remoteAddress: sink.link.channel.remoteDescription)
      _ = try await interceptors.run(call) { [id, timeline] call in
        let context = CallContext(callerID: peerID, method: call.method, metadata: call.metadata, timeout: timeout, on: timeline)
        if let streamHandler {
          try await streamHandler(call.payload, context, sink)
        } else if let handler {
          try await sink.send(try await handler(call.payload, context))
        } else {
          throw NodeError.methodNotFound(call.method, on: id)
        }
        return .empty
      }
      return .success(())
    } catch {
      return .failure(describe(error, method: frame.method))
    }
  }
}

/// The id of a stream opened inside the interceptor chain.
private final class OpenedStream: Sendable {
  private let value = Mutex<(Link, UInt64)?>(nil)
  var opened: (Link, UInt64)? { value.withLock { $0 } }
  func set(_ link: Link, _ id: UInt64) { value.withLock { $0 = (link, id) } }
}
