import Foundation
import Logging

// Inbound frames on a link: batches from the reader, chunked payloads reassembled, each frame
// dispatched; the handler tasks of inbound requests, owned by the link (cancelled by CANCEL
// or the link's end, awaited before its run returns).
extension Link {
  /// Handles one batch from the reader. Runs on the reader's task; never suspends.
  func receive(_ batch: [Frame]) {
    let now = node.timeline.elapsed()
    // A link whose HELLO was refused is heard no more: its dialer closes it (ours do on the
    // refusal), and a listener's transport closes a connection that never made a link.
    guard !state.withLock({ state in
      state.lastReceived = now
      return state.helloRefused
    }) else { return }
    var pieceBytes = 0
    for frame in batch {
      if frame.chunk != nil {
        pieceBytes += frame.payload.count
        if let whole = reassemble(frame) { process(whole) }
      } else {
        process(frame)
        // (Nothing after a refused HELLO in the same batch is served either.)
        if frame.type == .hello, state.withLock({ $0.helloRefused }) { return }
      }
    }
    // The pieces are in: the peer may send that many more bytes of pieces.
    if pieceBytes > 0 { enqueue(Frame(type: .credit, correlationID: Self.bulkAckID, credit: UInt32(clamping: pieceBytes))) }
  }

  /// Collects the pieces of a chunked payload; returns the whole frame after the last piece.
  func reassemble(_ piece: Frame) -> Frame? {
    guard let chunk = piece.chunk else { return piece }
    let limit = node.config.limits.maxPayloadSize
    enum Step { case wait, whole(Frame), tooLarge(Frame) }
    let step: Step = state.withLock { state in
      if chunk.index == 0 {
        if chunk.totalSize > UInt64(limit) {
          state.discarding.insert(piece.id)
          if chunk.last { state.discarding.remove(piece.id) }
          return .tooLarge(piece)
        }
        var header = piece
        header.chunk = nil
        var data = Data()
        data.reserveCapacity(Int(chunk.totalSize))
        data.append(piece.payload)
        header.payload = data
        if chunk.last { return .whole(header) }
        state.partial[piece.id] = header
        return .wait
      }
      if state.discarding.contains(piece.id) {
        if chunk.last { state.discarding.remove(piece.id) }
        return .wait
      }
      guard var header = state.partial[piece.id] else { return .wait }
      state.partial[piece.id] = nil  // avoid a copy while appending
      header.payload.append(piece.payload)
      if header.payload.count > limit {
        if !chunk.last { state.discarding.insert(piece.id) }
        return .tooLarge(header)
      }
      if chunk.last { return .whole(header) }
      state.partial[piece.id] = header
      return .wait
    }
    switch step {
    case .wait: return nil
    case .whole(let frame): return frame
    case .tooLarge(let header):
      rejectOversized(header, size: Int(chunk.totalSize), limit: limit)
      return nil
    }
  }

  func rejectOversized(_ header: Frame, size: Int, limit: Int) {
    let error = NodeError.payloadTooLarge(size: size, limit: limit, method: header.method)
    node.logger.warning(
      "dropped an oversized payload", metadata: ["peer": "\(peerID ?? "?")", "size": "\(size)", "limit": "\(limit)"])
    switch header.type {
    case .request:
      var refused = error
      refused.nodeID = node.id
      send(Frame(type: .response, source: node.id, correlationID: header.id, error: refused.info))
    case .response:
      if let pending = state.withLock({ $0.pending.removeValue(forKey: header.correlationID) }) {
        var received = error
        received.nodeID = peerID
        received.method = pending.method
        received.message = "the response " + error.message
        pending.continuation.resume(throwing: received)
      }
    default:
      break
    }
  }

  func process(_ frame: Frame) {
    switch frame.type {
    case .hello:
      acceptHello(frame)
    case .request where frame.streaming:
      startStreamHandler(for: frame)
    case .request, .notify:
      startHandler(for: frame)
    case .response where state.withLock({ $0.inStreams[frame.correlationID] != nil }):
      // A streaming request refused before its stream began (unknown method, auth...).
      finishInboundStream(frame.correlationID, error: frame.error)
    case .response:
      let pending = state.withLock { $0.pending.removeValue(forKey: frame.correlationID) }
      guard let pending else { return }  // abandoned (timed out or cancelled) before the answer came
      if let info = frame.error {
        pending.continuation.resume(throwing: NodeError(remote: info, nodeID: frame.source.isEmpty ? (peerID ?? "") : frame.source, method: pending.method))
      } else {
        do {
          let payload = try unpacked(Payload(data: frame.payload, serializer: frame.serializer), method: pending.method)
          pending.continuation.resume(returning: payload)
        } catch {
          var failure = error
          failure.nodeID = peerID
          failure.message = "the result: " + failure.message
          pending.continuation.resume(throwing: failure)
        }
      }
    case .cancel:
      let (task, creditWaiter) = state.withLock { state in
        (state.handlers.removeValue(forKey: frame.correlationID),
         state.outStreams.removeValue(forKey: frame.correlationID)?.waiter)
      }
      task?.cancel()
      creditWaiter?.resume()
      if task != nil { signalDrainIfIdle() }
    case .goodbye:
      state.withLock { $0.peerStopping = true }
    case .heartbeat:
      if !frame.payload.isEmpty, let peer = state.withLock({ $0.peerID }) { node.heard(status: frame.payload, from: peer) }
    case .streamItem:
      deliverStreamItems(frame)
    case .streamEnd:
      finishInboundStream(frame.correlationID, error: frame.error)
    case .credit where frame.correlationID == Self.bulkAckID:
      piecesAcknowledged(bytes: Int(frame.credit))
    case .credit:
      grantCredit(frame.correlationID, amount: Int(frame.credit))
    }
  }

  func acceptHello(_ frame: Frame) {
    if role == .dialer, let refusal = frame.metadata[Self.helloRefusedKey] {
      // The listener refused our HELLO: the handshake fails (and closes the link).
      let waiter = state.withLock { state in
        defer { state.helloWaiter = nil }
        return state.helloWaiter
      }
      waiter?.resume(throwing: NodeError(code: .authFailed, message: refusal))
      return
    }
    if role == .listener, state.withLock({ $0.peerID == nil }),
      let refusal = node.helloRefusal(frame.metadata[Self.helloTokenKey], from: channel.remoteDescription)
    {
      state.withLock { $0.helloRefused = true }
      enqueue(Frame(type: .hello, source: node.id, timestampMicros: Frame.nowMicros(), metadata: [Self.helloRefusedKey: refusal]))
      return
    }
    let (first, waiter) = state.withLock { state -> (Bool, CheckedContinuation<String, any Error>?) in
      guard state.peerID == nil else { return (false, nil) }
      state.peerID = frame.source
      state.outbox.peerAcksPieces = frame.metadata[Self.bulkAckKey] == "1"
      state.outbox.peerTakesItemBatches = frame.metadata[Self.itemBatchesKey] == "1"
      state.peerHeartbeatTimeout = frame.metadata[Self.heartbeatTimeoutKey].flatMap(Int64.init).map(Duration.milliseconds)
      state.peerInflates =
        frame.metadata[PayloadCompression.helloKey]?.split(separator: ",").contains { $0 == PayloadCompression.deflate }
        ?? false
      let waiter = state.helloWaiter
      state.helloWaiter = nil
      return (true, waiter)
    }
    guard first else { return }
    if role == .listener {
      enqueue(Frame(type: .hello, source: node.id, timestampMicros: Frame.nowMicros(), metadata: helloMetadata))
      node.linkEstablished(self, peerID: frame.source)
    }
    waiter?.resume(returning: frame.source)
  }

  func startHandler(for frame: Frame) {
    state.withLock { state in
      guard state.closedReason == nil else { return }
      // Unstructured: the reader must not wait for a handler; the link records it by its
      // call id (CANCEL cancels it), and its `run()` awaits what is left at its end.
      state.handlers[frame.id] = Task {
        let result = await self.node.serve(frame, peerID: self.peerID ?? frame.source, link: self)
        self.finishHandler(frame, result: result)
      }
    }
  }

  func finishHandler(_ request: Frame, result: Result<Payload, NodeError>) {
    let stillWanted = state.withLock { $0.handlers.removeValue(forKey: request.id) != nil }
    defer { signalDrainIfIdle() }
    guard stillWanted, request.type == .request else { return }
    var response = Frame(type: .response, source: node.id, correlationID: request.id)
    switch result {
    case .success(let payload):
      let limit = node.config.limits.maxPayloadSize
      if payload.data.count > limit {
        var error = NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: request.method)
        error.message = "the result " + error.message
        error.nodeID = node.id
        response.error = error.info
      } else {
        let packed = packed(
          payload, method: request.method, metadata: request.metadata,
          answeringCompressed: request.serializer.hasSuffix(PayloadCompression.suffix))
        response.payload = packed.data
        response.serializer = packed.serializer
      }
    case .failure(let error):
      response.error = error.info
    }
    send(response)
  }

  /// Answers every handler still running with `error` and cancels it (used by `Node.stop`).
  func abortHandlers(with error: NodeError) {
    let tasks = state.withLock { state -> [(UInt64, Task<Void, Never>)] in
      let all = Array(state.handlers)
      state.handlers.removeAll()
      return all
    }
    for (id, task) in tasks {
      task.cancel()
      send(Frame(type: .response, source: node.id, correlationID: id, error: error.info))
    }
  }

  /// Returns when no inbound handler is running, or when the waiting task is cancelled.
  func drained() async {
    let waiterID = state.withLock { $0.allocateID() }
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let idle = state.withLock { state -> Bool in
          if state.handlers.isEmpty || state.closedReason != nil || Task.isCancelled { return true }
          state.drainWaiters[waiterID] = continuation
          return false
        }
        if idle { continuation.resume() }
      }
    } onCancel: {
      state.withLock { $0.drainWaiters.removeValue(forKey: waiterID) }?.resume()
    }
  }

  func signalDrainIfIdle() {
    let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
      guard state.handlers.isEmpty else { return [] }
      defer { state.drainWaiters.removeAll() }
      return Array(state.drainWaiters.values)
    }
    for waiter in waiters { waiter.resume() }
  }

  /// Waits for the handlers the link's end cancelled, up to the node's grace period: a
  /// handler that ignores cancellation is let go then, with a warning.
  func awaitEndedHandlers() async {
    let tasks = state.withLock { state in
      defer { state.endedHandlers.removeAll() }
      return state.endedHandlers
    }
    guard !tasks.isEmpty else { return }
    let allEnded = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        for task in tasks { await task.value }
        return true
      }
      group.addTask {
        try? await Task.sleep(for: self.node.config.shutdownGracePeriod)
        return false
      }
      defer { group.cancelAll() }
      return await group.next() ?? true
    }
    if !allEnded {
      node.logger.warning(
        "handlers still running after the link ended; they ignore cancellation",
        metadata: ["peer": "\(peerID ?? channel.remoteDescription)", "count": "\(tasks.count)"])
    }
  }
}
