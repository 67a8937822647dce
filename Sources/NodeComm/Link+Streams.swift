import Foundation

// Streams on a link: a REQUEST with `streaming` set opens one; the producer sends
// STREAM_ITEMs only while it has credit; the consumer grants more CREDIT as it reads, so
// neither side buffers more than the window; STREAM_END (or an error RESPONSE before the
// stream began) closes it; CANCEL from the consumer cancels the producing task.

extension Link {
  /// A stream this node reads: items arrived but not yet read, and the reader waiting.
  struct InboundStream {
    let method: String
    let window: Int
    var buffer: [Payload] = []
    var head = 0
    var waiter: StreamReader?
    var end: Result<Void, NodeError>?
    var readSinceCredit = 0
    /// Who produces it, and its timeout: when the deadline loop fails it (`nil`: never).
    var target = ""
    var timeout: Duration?
    /// On the node's timeline (``Timeline/elapsed``).
    var deadline: Duration?
  }

  /// A reader waiting for items: it takes up to `max` of them at once.
  struct StreamReader {
    let continuation: CheckedContinuation<[Payload]?, any Error>
    let max: Int
  }

  /// A stream this node produces: the credit left and the producer waiting for more.
  struct OutboundStream {
    var credit: Int
    var waiter: CheckedContinuation<Void, Never>?
  }

  /// What a closing link must end: readers to fail, producers to wake.
  struct StreamsToEnd {
    var readers: [StreamReader] = []
    var producers: [CheckedContinuation<Void, Never>] = []

    func end(error: NodeError) {
      for reader in readers { reader.continuation.resume(throwing: error) }
      for producer in producers { producer.resume() }
    }
  }

  /// What a read of a stream finds.
  enum StreamTake {
    case items([Payload])
    case end(Result<Void, NodeError>)
    case wait
  }

  // MARK: Consuming

  /// Opens a stream: sends the request with the initial credit; returns its id.
  func openStream(
    method: String, payload: Payload, metadata: [String: String], timeout: Duration?, target: String, window: Int
  ) throws -> UInt64 {
    let limit = node.config.limits.maxPayloadSize
    if payload.data.count > limit {
      throw NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: method)
    }
    let payload = packed(payload, method: method, metadata: metadata)
    let deadline = timeout.map { node.timeline.elapsed() + $0 }
    let (id, wakeup, sooner): (UInt64, Wakeup?, CheckedContinuation<Void, Never>?) = try state.withLock { state in
      if let error = state.refusal(peer: target, method: method) { throw error }
      let id = state.allocateID()
      var stream = InboundStream(method: method, window: window)
      stream.target = target
      stream.timeout = timeout
      stream.deadline = deadline
      let sooner = deadline.flatMap { state.deadlines.due(at: $0) }
      state.inStreams[id] = stream
      let request = Frame(
        id: id, type: .request, method: method, source: node.id, target: target, payload: payload.data,
        serializer: payload.serializer, timestampMicros: Frame.nowMicros(), metadata: metadata,
        timeoutMicros: timeout.map { $0.microseconds } ?? 0, credit: UInt32(window), streaming: true)
      return (id, state.enqueue(request, chunkSize: node.config.limits.chunkSize), sooner)
    }
    wakeup?.resume()
    sooner?.resume()
    return id
  }

  /// The next items of stream `id`, at least one and at most `max`, waiting for the first;
  /// nil at its end. Items taken are not yet read: the reader reports them with
  /// `consumed` here or with ``streamItemsConsumed(_:count:)`` once it has handed them on,
  /// and only then does the producer get credit for more. So the producer is never more
  /// than a window ahead of what the reader has actually taken in.
  func nextStreamItems(_ id: UInt64, max: Int, consumed: Int) async throws -> [Payload]? {
    // Items already buffered are taken without suspending.
    let (first, grant) = state.withLock { state in
      let grant = state.consumeItems(id, count: consumed)
      return (state.takeItems(id, max: max), grant)
    }
    sendCredit(id, grant)
    if let found = try Self.result(of: first) { return found }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Payload]?, any Error>) in
        let take = state.withLock { state -> StreamTake in
          let take = state.takeItems(id, max: max)
          guard case .wait = take else { return take }
          if Task.isCancelled { return .end(.failure(NodeError(code: .cancelled, message: "stream read was cancelled"))) }
          state.inStreams[id]?.waiter = StreamReader(continuation: continuation, max: max)
          return .wait
        }
        do {
          if case .wait = take { return }
          continuation.resume(returning: try Self.result(of: take) ?? nil)
        } catch {
          continuation.resume(throwing: error)
        }
      }
    } onCancel: {
      self.cancelInboundStream(id, error: NodeError(code: .cancelled, message: "stream read was cancelled"))
    }
  }

  /// The reader of stream `id` has handed on `count` more items: the producer gets credit
  /// (half a window at a time).
  func streamItemsConsumed(_ id: UInt64, count: Int) {
    sendCredit(id, state.withLock { $0.consumeItems(id, count: count) })
  }

  private func sendCredit(_ id: UInt64, _ grant: Int) {
    if grant > 0 { enqueue(Frame(type: .credit, correlationID: id, credit: UInt32(grant))) }
  }

  /// The items (`.some(nil)` at the end) of a take, or nil when the reader must wait.
  private static func result(of take: StreamTake) throws -> [Payload]?? {
    switch take {
    case .items(let items): return .some(items)
    case .end(.success): return .some(nil)
    case .end(.failure(let error)): throw error
    case .wait: return nil
    }
  }

  /// Stops reading stream `id` and tells the producer. A waiting read fails with `error`;
  /// when `keepForReader` is set, a later read fails with it too (a timeout), otherwise the
  /// stream is forgotten (the reader cancelled or dropped it).
  func cancelInboundStream(_ id: UInt64, error: NodeError, keepForReader: Bool = false) {
    var failure = error
    let (found, waiter) = state.withLock { state -> (Bool, StreamReader?) in
      if failure.nodeID == nil { failure.nodeID = state.peerID }
      guard var stream = state.inStreams.removeValue(forKey: id) else { return (false, nil) }
      let unfinished = stream.end == nil
      if keepForReader, unfinished, stream.waiter == nil {
        stream.buffer.removeAll()
        stream.head = 0
        stream.end = .failure(failure)
        stream.deadline = nil
        state.inStreams[id] = stream
      }
      return (unfinished, stream.waiter)
    }
    guard found else { return }
    enqueue(Frame(type: .cancel, correlationID: id))
    waiter?.continuation.resume(throwing: failure)
  }

  /// Takes the items of a STREAM_ITEM frame: a waiting reader gets what it asked for, the
  /// rest waits in the buffer.
  func deliverStreamItems(_ frame: Frame) {
    var items = [Payload(data: frame.payload, serializer: frame.serializer)]
    if !frame.moreItems.isEmpty {
      items.reserveCapacity(frame.itemCount)
      for data in frame.moreItems { items.append(Payload(data: data, serializer: frame.serializer)) }
    }
    let id = frame.correlationID
    if frame.serializer.hasSuffix(PayloadCompression.suffix) {
      let method = state.withLock { $0.inStreams[id]?.method } ?? frame.method
      do {
        items = try items.map { item throws(NodeError) in try unpacked(item, method: method) }
      } catch {
        var failure = error
        failure.nodeID = peerID
        cancelInboundStream(id, error: failure, keepForReader: true)
        return
      }
    }
    let (waiter, given): (StreamReader?, [Payload]) = state.withLock { state in
      guard let index = state.inStreams.index(forKey: id), state.inStreams.values[index].end == nil else {
        return (nil, [])
      }
      guard let waiter = state.inStreams.values[index].waiter else {
        state.inStreams.values[index].buffer.append(contentsOf: items)
        return (nil, [])
      }
      state.inStreams.values[index].waiter = nil
      let count = min(waiter.max, items.count)
      if count < items.count { state.inStreams.values[index].buffer.append(contentsOf: items[count...]) }
      return (waiter, count == items.count ? items : Array(items[..<count]))
    }
    waiter?.continuation.resume(returning: given)
  }

  func finishInboundStream(_ id: UInt64, error info: ErrorInfo?) {
    let (waiter, method): (StreamReader?, String) = state.withLock { state in
      guard var stream = state.inStreams[id], stream.end == nil else { return (nil, "") }
      let outcome: Result<Void, NodeError> =
        info.map { .failure(NodeError(remote: $0, nodeID: state.peerID ?? "", method: stream.method)) } ?? .success(())
      stream.deadline = nil
      if let waiter = stream.waiter {
        state.inStreams[id] = nil  // nothing buffered when a reader waits
        return (waiter, stream.method)
      }
      stream.end = outcome
      state.inStreams[id] = stream
      return (nil, stream.method)
    }
    guard let waiter else { return }
    if let info {
      waiter.continuation.resume(throwing: NodeError(remote: info, nodeID: peerID ?? "", method: method))
    } else {
      waiter.continuation.resume(returning: nil)
    }
  }

  // MARK: Producing

  func startStreamHandler(for frame: Frame) {
    state.withLock { state in
      guard state.closedReason == nil else { return }
      state.outStreams[frame.id] = OutboundStream(credit: Int(frame.credit))
      // Unstructured: the reader must not wait for a handler; the link records it by its
      // call id (CANCEL cancels it), and its `run()` awaits what is left at its end.
      state.handlers[frame.id] = Task {
        let request = Payload(data: Data(), serializer: frame.serializer)
        let compress =
          self.compresses
          && (PayloadCompression.isCompressed(request)
            || self.node.config.compression.selects(method: frame.method, metadata: frame.metadata, serializer: frame.serializer))
        let sink = StreamSink(link: self, id: frame.id, method: frame.method, compress: compress)
        let result = await self.node.serveStream(frame, peerID: self.peerID ?? frame.source, sink: sink)
        self.finishStreamHandler(frame, result: result)
      }
    }
  }

  private func finishStreamHandler(_ request: Frame, result: Result<Void, NodeError>) {
    let stillWanted = state.withLock { state in
      state.outStreams[request.id] = nil
      return state.handlers.removeValue(forKey: request.id) != nil
    }
    defer { signalDrainIfIdle() }
    guard stillWanted else { return }
    var end = Frame(type: .streamEnd, source: node.id, correlationID: request.id)
    if case .failure(let error) = result { end.error = error.info }
    enqueue(end)
  }

  /// Sends items of stream `id` in order, each as soon as the consumer has credit for it;
  /// items that go out together share a frame.
  ///
  /// - Throws: `cancelled` when the consumer cancelled, the task was cancelled or the link
  ///   closed; `payloadTooLarge` for an item above the limit (nothing of the call is sent).
  func sendStreamItems(_ id: UInt64, method: String, payloads: some Collection<Payload>) async throws {
    try checkItemSizes(payloads, method: method)
    var rest = payloads[...]
    while !rest.isEmpty {
      guard let sent = sendWithCredit(id, rest), !Task.isCancelled else { throw consumerGone(method) }
      rest = rest.dropFirst(sent)
      if sent == 0 { await waitForCredit(id) }
    }
  }

  /// Sends one item of stream `id` if there is credit for it now, without suspending.
  ///
  /// - Returns: false when there is no credit (``sendStreamItems(_:method:payloads:)`` waits).
  /// - Throws: as ``sendStreamItems(_:method:payloads:)``.
  func offerStreamItem(_ id: UInt64, method: String, payload: Payload) throws -> Bool {
    try checkItemSizes(CollectionOfOne(payload), method: method)
    guard let sent = sendWithCredit(id, CollectionOfOne(payload)), !Task.isCancelled else { throw consumerGone(method) }
    return sent == 1
  }

  private func checkItemSizes(_ payloads: some Collection<Payload>, method: String) throws {
    let limit = node.config.limits.maxPayloadSize
    if let large = payloads.first(where: { $0.data.count > limit }) {
      throw NodeError.payloadTooLarge(size: large.data.count, limit: limit, method: method)
    }
  }

  private func consumerGone(_ method: String) -> NodeError {
    NodeError(code: .cancelled, message: "the consumer of '\(method)' went away", method: method)
  }

  /// Queues as many of `items` as there is credit for; nil when the stream is gone.
  private func sendWithCredit(_ id: UInt64, _ items: some Collection<Payload>) -> Int? {
    let (sent, wakeup): (Int?, Wakeup?) = state.withLock { state in
      guard state.closedReason == nil, let index = state.outStreams.index(forKey: id) else { return (nil, nil) }
      let count = min(state.outStreams.values[index].credit, items.count)
      state.outStreams.values[index].credit -= count
      var wakeup: Wakeup?
      for item in items.prefix(count) {
        let frame = Frame(
          id: state.allocateID(), type: .streamItem, source: node.id, payload: item.data,
          serializer: item.serializer, correlationID: id)
        if let woken = state.enqueue(frame, chunkSize: node.config.limits.chunkSize) { wakeup = woken }
      }
      return (count, wakeup)
    }
    wakeup?.resume()
    return sent
  }

  /// Returns when stream `id` has credit, is gone, or the task is cancelled.
  private func waitForCredit(_ id: UInt64) async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let parked = state.withLock { state -> Bool in
          guard var stream = state.outStreams[id], stream.credit == 0, state.closedReason == nil, !Task.isCancelled
          else { return false }
          stream.waiter = continuation
          state.outStreams[id] = stream
          return true
        }
        if !parked { continuation.resume() }
      }
    } onCancel: {
      let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
        let waiter = state.outStreams[id]?.waiter
        state.outStreams[id]?.waiter = nil
        return waiter
      }
      waiter?.resume()
    }
  }

  func grantCredit(_ id: UInt64, amount: Int) {
    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
      guard var stream = state.outStreams[id] else { return nil }
      // (A peer's grants are UInt32s, summed from a bounded start: no overflow however many.)
      stream.credit = min(stream.credit, Int(Int32.max)) + amount
      let waiter = stream.waiter
      stream.waiter = nil
      state.outStreams[id] = stream
      return waiter
    }
    waiter?.resume()
  }
}

extension Link.InboundStream {
  /// Counts `count` items read; returns the credit to grant now (half a window at a time).
  mutating func countRead(_ count: Int) -> Int {
    readSinceCredit += count
    guard readSinceCredit >= max(1, window / 2) else { return 0 }
    defer { readSinceCredit = 0 }
    return readSinceCredit
  }
}

extension Link.State {
  /// Counts `count` items of stream `id` as read; returns the credit to grant now.
  mutating func consumeItems(_ id: UInt64, count: Int) -> Int {
    guard count > 0, let index = inStreams.index(forKey: id) else { return 0 }
    return inStreams.values[index].countRead(count)
  }

  /// Takes up to `max` buffered items of stream `id`, or finds its end, or finds nothing yet.
  mutating func takeItems(_ id: UInt64, max: Int) -> Link.StreamTake {
    guard let index = inStreams.index(forKey: id) else { return .end(.success(())) }
    let head = inStreams.values[index].head
    let available = inStreams.values[index].buffer.count - head
    if available > 0 {
      let count = Swift.min(available, max)
      let items = Array(inStreams.values[index].buffer[head..<(head + count)])
      if count == available {
        inStreams.values[index].buffer.removeAll(keepingCapacity: true)
        inStreams.values[index].head = 0
      } else {
        inStreams.values[index].head = head + count
      }
      return .items(items)
    }
    if let end = inStreams.values[index].end {
      inStreams.remove(at: index)
      return .end(end)
    }
    return .wait
  }

  /// Ends the streams of a closing link: waiting readers are returned to be failed, readers
  /// that come later find `error` after the items already buffered.
  mutating func takeStreams(error: NodeError) -> Link.StreamsToEnd {
    var streams = Link.StreamsToEnd()
    for (id, var stream) in inStreams {
      if let waiter = stream.waiter { streams.readers.append(waiter) }
      if stream.waiter != nil {
        inStreams[id] = nil  // its reader is failed by `end(error:)`
      } else if stream.end == nil {
        var failure = error
        failure.method = stream.method
        stream.end = .failure(failure)
        stream.deadline = nil
        inStreams[id] = stream
      }  // else: already ended, the reader finds how after the buffered items
    }
    for stream in outStreams.values {
      if let waiter = stream.waiter { streams.producers.append(waiter) }
    }
    outStreams.removeAll()
    outbox.bulkPending.removeAll()
    return streams
  }
}
