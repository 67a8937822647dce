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
    var waiter: CheckedContinuation<Payload?, any Error>?
    var end: Result<Void, NodeError>?
    var readSinceCredit = 0
    var timer: Task<Void, Never>?
  }

  /// A stream this node produces: the credit left and the producer waiting for more.
  struct OutboundStream {
    var credit: Int
    var waiter: CheckedContinuation<Void, Never>?
  }

  /// What a closing link must end: readers to fail, producers to wake.
  struct StreamsToEnd {
    var readers: [CheckedContinuation<Payload?, any Error>] = []
    var producers: [CheckedContinuation<Void, Never>] = []
    var timers: [Task<Void, Never>] = []

    func end(error: NodeError) {
      for timer in timers { timer.cancel() }
      for reader in readers { reader.resume(throwing: error) }
      for producer in producers { producer.resume() }
    }
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
    let (id, wakeup): (UInt64, Wakeup?) = try state.withLock { state in
      if let error = state.refusal(peer: target, method: method) { throw error }
      let id = state.allocateID()
      var stream = InboundStream(method: method, window: window)
      if let timeout {
        stream.timer = Task { [weak self] in
          guard (try? await Task.sleep(for: timeout)) != nil else { return }
          self?.cancelInboundStream(id, error: .timedOut(target, method: method, after: timeout), keepForReader: true)
        }
      }
      state.inStreams[id] = stream
      let request = Frame(
        id: id, type: .request, method: method, source: node.id, target: target, payload: payload.data,
        serializer: payload.serializer, timestampMicros: Frame.nowMicros(), metadata: metadata,
        timeoutMicros: timeout.map { $0.microseconds } ?? 0, credit: UInt32(window), streaming: true)
      return (id, state.enqueue(request, chunkSize: node.config.limits.chunkSize))
    }
    wakeup?.resume()
    return id
  }

  /// The next item of stream `id`; nil at its end. Reading replenishes the producer's credit.
  func nextStreamItem(_ id: UInt64) async throws -> Payload? {
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Payload?, any Error>) in
        enum Step { case item(Payload, grant: Int), end(Result<Void, NodeError>), wait }
        let step: Step = state.withLock { state in
          guard var stream = state.inStreams[id] else { return .end(.success(())) }
          if stream.head < stream.buffer.count {
            let item = stream.buffer[stream.head]
            stream.head += 1
            if stream.head == stream.buffer.count {
              stream.buffer.removeAll(keepingCapacity: true)
              stream.head = 0
            }
            let grant = stream.countRead()
            state.inStreams[id] = stream
            return .item(item, grant: grant)
          }
          if let end = stream.end {
            state.inStreams[id] = nil
            return .end(end)
          }
          if Task.isCancelled { return .end(.failure(NodeError(code: .cancelled, message: "stream read was cancelled"))) }
          stream.waiter = continuation
          state.inStreams[id] = stream
          return .wait
        }
        switch step {
        case .item(let item, let grant):
          if grant > 0 { enqueue(Frame(type: .credit, correlationID: id, credit: UInt32(grant))) }
          continuation.resume(returning: item)
        case .end(.success):
          continuation.resume(returning: nil)
        case .end(.failure(let error)):
          continuation.resume(throwing: error)
        case .wait:
          break
        }
      }
    } onCancel: {
      self.cancelInboundStream(id, error: NodeError(code: .cancelled, message: "stream read was cancelled"))
    }
  }

  /// Stops reading stream `id` and tells the producer. A waiting read fails with `error`;
  /// when `keepForReader` is set, a later read fails with it too (a timeout), otherwise the
  /// stream is forgotten (the reader cancelled or dropped it).
  func cancelInboundStream(_ id: UInt64, error: NodeError, keepForReader: Bool = false) {
    var failure = error
    let (found, waiter, timer) = state.withLock { state -> (Bool, CheckedContinuation<Payload?, any Error>?, Task<Void, Never>?) in
      if failure.nodeID == nil { failure.nodeID = state.peerID }
      guard var stream = state.inStreams.removeValue(forKey: id) else { return (false, nil, nil) }
      let unfinished = stream.end == nil
      if keepForReader, unfinished, stream.waiter == nil {
        stream.buffer.removeAll()
        stream.head = 0
        stream.end = .failure(failure)
        stream.timer = nil
        state.inStreams[id] = stream
      }
      return (unfinished, stream.waiter, stream.timer)
    }
    timer?.cancel()
    guard found else { return }
    enqueue(Frame(type: .cancel, correlationID: id))
    waiter?.resume(throwing: failure)
  }

  func deliverStreamItem(_ frame: Frame) {
    let item = Payload(data: frame.payload, serializer: frame.serializer)
    let (waiter, grant): (CheckedContinuation<Payload?, any Error>?, Int) = state.withLock { state in
      guard var stream = state.inStreams[frame.correlationID], stream.end == nil else { return (nil, 0) }
      if let waiter = stream.waiter {
        stream.waiter = nil
        let grant = stream.countRead()
        state.inStreams[frame.correlationID] = stream
        return (waiter, grant)
      }
      stream.buffer.append(item)
      state.inStreams[frame.correlationID] = stream
      return (nil, 0)
    }
    if grant > 0 { enqueue(Frame(type: .credit, correlationID: frame.correlationID, credit: UInt32(grant))) }
    waiter?.resume(returning: item)
  }

  func finishInboundStream(_ id: UInt64, error info: ErrorInfo?) {
    let (waiter, method, timer): (CheckedContinuation<Payload?, any Error>?, String, Task<Void, Never>?) = state.withLock { state in
      guard var stream = state.inStreams[id], stream.end == nil else { return (nil, "", nil) }
      let outcome: Result<Void, NodeError> =
        info.map { .failure(NodeError(remote: $0, nodeID: state.peerID ?? "", method: stream.method)) } ?? .success(())
      let timer = stream.timer
      stream.timer = nil
      if let waiter = stream.waiter {
        state.inStreams[id] = nil  // nothing buffered when a reader waits
        return (waiter, stream.method, timer)
      }
      stream.end = outcome
      state.inStreams[id] = stream
      return (nil, stream.method, timer)
    }
    timer?.cancel()
    guard let waiter else { return }
    if let info {
      waiter.resume(throwing: NodeError(remote: info, nodeID: peerID ?? "", method: method))
    } else {
      waiter.resume(returning: nil)
    }
  }

  // MARK: Producing

  func startStreamHandler(for frame: Frame) {
    state.withLock { state in
      guard state.closedReason == nil else { return }
      state.outStreams[frame.id] = OutboundStream(credit: Int(frame.credit))
      state.handlers[frame.id] = Task {
        let sink = StreamSink(link: self, id: frame.id, method: frame.method)
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

  /// Sends one item of stream `id`, waiting for credit first.
  ///
  /// - Throws: `cancelled` when the consumer cancelled, the task was cancelled or the link closed.
  func sendStreamItem(_ id: UInt64, method: String, payload: Payload) async throws {
    let limit = node.config.limits.maxPayloadSize
    if payload.data.count > limit {
      throw NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: method)
    }
    while true {
      // true: credit taken; false: none left; nil: the stream is gone.
      let took: Bool? = state.withLock { state in
        guard var stream = state.outStreams[id], state.closedReason == nil else { return nil }
        guard stream.credit > 0 else { return false }
        stream.credit -= 1
        state.outStreams[id] = stream
        return true
      }
      guard let took, !Task.isCancelled else {
        throw NodeError(code: .cancelled, message: "the consumer of '\(method)' went away", method: method)
      }
      if took {
        enqueue(
          Frame(type: .streamItem, source: node.id, payload: payload.data, serializer: payload.serializer, correlationID: id))
        return
      }
      await waitForCredit(id)
    }
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
      stream.credit += amount
      let waiter = stream.waiter
      stream.waiter = nil
      state.outStreams[id] = stream
      return waiter
    }
    waiter?.resume()
  }
}

extension Link.InboundStream {
  /// Counts one item read; returns the credit to grant now (half a window at a time).
  mutating func countRead() -> Int {
    readSinceCredit += 1
    guard readSinceCredit >= max(1, window / 2) else { return 0 }
    defer { readSinceCredit = 0 }
    return readSinceCredit
  }
}

extension Link.State {
  /// Ends the streams of a closing link: waiting readers are returned to be failed, readers
  /// that come later find `error` after the items already buffered.
  mutating func takeStreams(error: NodeError) -> Link.StreamsToEnd {
    var streams = Link.StreamsToEnd()
    for (id, var stream) in inStreams {
      if let waiter = stream.waiter { streams.readers.append(waiter) }
      if let timer = stream.timer { streams.timers.append(timer) }
      if stream.waiter != nil {
        inStreams[id] = nil  // its reader is failed by `end(error:)`
      } else if stream.end == nil {
        var failure = error
        failure.method = stream.method
        stream.end = .failure(failure)
        stream.timer = nil
        inStreams[id] = stream
      }  // else: already ended, the reader finds how after the buffered items
    }
    for stream in outStreams.values {
      if let waiter = stream.waiter { streams.producers.append(waiter) }
    }
    outStreams.removeAll()
    bulkPending.removeAll()
    return streams
  }
}
