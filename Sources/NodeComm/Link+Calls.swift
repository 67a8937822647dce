import Foundation

// Outbound calls on a link: a REQUEST registered with its continuation (and deadline, for the
// deadline loop), a NOTIFY, giving up on a call, failing all of them when the node stops.
extension Link {
  /// Sends a request and waits for its response.
  func call(
    method: String, payload: Payload, metadata: [String: String], timeout: Duration?, target: String
  ) async throws -> Payload {
    let limit = node.config.limits.maxPayloadSize
    if payload.data.count > limit {
      throw NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: method)
    }
    let payload = packed(payload, method: method, metadata: metadata)
    let id = state.withLock { $0.allocateID() }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Payload, any Error>) in
        let request = Frame(
          id: id, type: .request, method: method, source: node.id, target: target, payload: payload.data,
          serializer: payload.serializer, timestampMicros: Frame.nowMicros(), metadata: metadata,
          timeoutMicros: timeout.map { $0.microseconds } ?? 0)
        let deadline = timeout.map { node.timeline.elapsed() + $0 }
        let outcome: (NodeError?, Wakeup?, CheckedContinuation<Void, Never>?) = state.withLock { state in
          if let error = state.refusal(peer: target, method: method) { return (error, nil, nil) }
          if Task.isCancelled {
            return (NodeError(code: .cancelled, message: "call to '\(method)' was cancelled", nodeID: target, method: method), nil, nil)
          }
          state.pending[id] = PendingCall(
            continuation: continuation, method: method, target: target, timeout: timeout, deadline: deadline)
          let sooner = deadline.flatMap { state.deadlines.due(at: $0) }
          return (nil, state.enqueue(request, chunkSize: node.config.limits.chunkSize), sooner)
        }
        if let error = outcome.0 { continuation.resume(throwing: error) }
        outcome.1?.resume()
        outcome.2?.resume()
      }
    } onCancel: {
      self.abandon(id, error: NodeError(code: .cancelled, message: "call to '\(method)' was cancelled", nodeID: target, method: method))
    }
  }

  /// Sends a notification; returns once it is queued.
  func notify(method: String, payload: Payload, metadata: [String: String], target: String) throws {
    let limit = node.config.limits.maxPayloadSize
    if payload.data.count > limit {
      throw NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: method)
    }
    let payload = packed(payload, method: method, metadata: metadata)
    let (error, wakeup): (NodeError?, Wakeup?) = state.withLock { state in
      if let error = state.refusal(peer: target, method: method) { return (error, nil) }
      let frame = Frame(
        id: state.allocateID(), type: .notify, method: method, source: node.id, target: target,
        payload: payload.data, serializer: payload.serializer, timestampMicros: Frame.nowMicros(), metadata: metadata)
      return (nil, state.enqueue(frame, chunkSize: node.config.limits.chunkSize))
    }
    if let error { throw error }
    wakeup?.resume()
  }

  /// Gives up on an outbound call: fails it and tells the peer to cancel the handler.
  func abandon(_ id: UInt64, error: NodeError) {
    let (pending, wakeup) = state.withLock { state -> (PendingCall?, Wakeup?) in
      guard let pending = state.pending.removeValue(forKey: id) else { return (nil, nil) }
      guard state.closedReason == nil else { return (pending, nil) }
      let cancel = Frame(id: state.allocateID(), type: .cancel, correlationID: id)
      return (pending, state.enqueue(cancel, chunkSize: node.config.limits.chunkSize))
    }
    guard let pending else { return }
    wakeup?.resume()
    pending.continuation.resume(throwing: error)
  }

  /// Fails every outbound call still waiting on this link with `error` (used by `Node.stop`).
  func terminatePendingCalls(with error: NodeError) {
    let pending = state.withLock { state in
      defer { state.pending.removeAll() }
      return Array(state.pending.values)
    }
    for call in pending {
      var failure = error
      failure.method = call.method
      call.continuation.resume(throwing: failure)
    }
  }
}
