import Foundation
import Logging
import Synchronization

/// One link to a peer: calls in both directions multiplexed over one ``LinkChannel``.
///
/// State lives in one `Mutex<State>`; four loops run per link, all in ``run()``'s task
/// group: the reader (the channel's `read`), the writer (drains the outbox into batches), the
/// heartbeat and the deadlines (`Link+Deadlines.swift`). The link never blocks a caller on
/// I/O: `call` registers a continuation and queues frames, the writer sends whatever is ready
/// as one batch. Inbound requests run in handler tasks that the link owns: cancelled when it
/// ends, and awaited (for a grace period) before ``run()`` returns.
final class Link: Sendable {
  enum Role { case dialer, listener }

  let node: Node
  let channel: any LinkChannel
  let role: Role
  let state: Mutex<State>

  init(node: Node, channel: any LinkChannel, role: Role) {
    self.node = node
    self.channel = channel
    self.role = role
    var state = State(lastReceived: .now)
    state.outbox.bulkWindow = max(node.config.limits.chunkSize, 1 << 20)
    self.state = Mutex(state)
  }

  /// The peer's node id, known once the handshake is done.
  var peerID: String? { state.withLock { $0.peerID } }

  var inFlightHandlers: Int { state.withLock { $0.handlers.count } }

  // MARK: - Running

  /// Runs the link until it ends, then tells the node.
  func run() async {
    let reason: String = await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.writerLoop() }
      group.addTask { await self.deadlineLoop() }
      if node.config.heartbeat.enabled {
        group.addTask { await self.heartbeatLoop() }
      }
      var reason = "closed by peer"
      do {
        try await channel.read { batch in self.receive(batch) }
      } catch {
        reason = "link failed: \(error)"
      }
      let final = self.terminate(reason: reason, error: nil)
      group.cancelAll()
      return final
    }
    await channel.close()
    node.linkEnded(self, reason: reason)
    await awaitEndedHandlers()
  }

  /// Waits for the handlers the link's end cancelled, up to the node's grace period: a
  /// handler that ignores cancellation is let go then, with a warning.
  private func awaitEndedHandlers() async {
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

  /// Sends HELLO and waits for the peer's; returns the peer's node id.
  func handshake(timeout: Duration) async throws -> String {
    enqueue(Frame(type: .hello, source: node.id, timestampMicros: Frame.nowMicros(), metadata: helloMetadata))
    return try await withThrowingTaskGroup(of: String.self) { group in
      group.addTask {
        try await withCheckedThrowingContinuation { continuation in
          let immediate: Result<String, NodeError>? = self.state.withLock { state in
            if let peerID = state.peerID { return .success(peerID) }
            if let reason = state.closedReason {
              return .failure(NodeError(code: .connectFailed, message: "link closed during handshake: \(reason)"))
            }
            state.helloWaiter = continuation
            return nil
          }
          if let immediate { continuation.resume(with: immediate) }
        }
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        throw NodeError(code: .connectFailed, message: "no handshake from \(self.channel.remoteDescription) within \(timeout)")
      }
      defer { group.cancelAll() }
      do {
        return try await group.next()!
      } catch {
        self.terminate(reason: "handshake failed", error: nil)
        await self.channel.close()
        throw error
      }
    }
  }

  // MARK: - Outbound calls

  /// Sends a request and waits for its response.
  func call(
    method: String, payload: Payload, metadata: [String: String], timeout: Duration?, target: String
  ) async throws -> Payload {
    let limit = node.config.limits.maxPayloadSize
    if payload.data.count > limit {
      throw NodeError.payloadTooLarge(size: payload.data.count, limit: limit, method: method)
    }
    let id = state.withLock { $0.allocateID() }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Payload, any Error>) in
        let request = Frame(
          id: id, type: .request, method: method, source: node.id, target: target, payload: payload.data,
          serializer: payload.serializer, timestampMicros: Frame.nowMicros(), metadata: metadata,
          timeoutMicros: timeout.map { $0.microseconds } ?? 0)
        let deadline = timeout.map { ContinuousClock.now + $0 }
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
  private func abandon(_ id: UInt64, error: NodeError) {
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

  // MARK: - Inbound

  /// Handles one batch from the reader. Runs on the reader's task; never suspends.
  private func receive(_ batch: [Frame]) {
    let now = ContinuousClock.now
    state.withLock { $0.lastReceived = now }
    var pieceBytes = 0
    for frame in batch {
      if frame.chunk != nil {
        pieceBytes += frame.payload.count
        if let whole = reassemble(frame) { process(whole) }
      } else {
        process(frame)
      }
    }
    // The pieces are in: the peer may send that many more bytes of pieces.
    if pieceBytes > 0 { enqueue(Frame(type: .credit, correlationID: Self.bulkAckID, credit: UInt32(clamping: pieceBytes))) }
  }

  /// Collects the pieces of a chunked payload; returns the whole frame after the last piece.
  private func reassemble(_ piece: Frame) -> Frame? {
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

  private func rejectOversized(_ header: Frame, size: Int, limit: Int) {
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

  private func process(_ frame: Frame) {
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
        pending.continuation.resume(returning: Payload(data: frame.payload, serializer: frame.serializer))
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

  private func acceptHello(_ frame: Frame) {
    let (first, waiter) = state.withLock { state -> (Bool, CheckedContinuation<String, any Error>?) in
      guard state.peerID == nil else { return (false, nil) }
      state.peerID = frame.source
      state.outbox.peerAcksPieces = frame.metadata[Self.bulkAckKey] == "1"
      state.outbox.peerTakesItemBatches = frame.metadata[Self.itemBatchesKey] == "1"
      state.peerHeartbeatTimeout = frame.metadata[Self.heartbeatTimeoutKey].flatMap(Int64.init).map(Duration.milliseconds)
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

  private func startHandler(for frame: Frame) {
    state.withLock { state in
      guard state.closedReason == nil else { return }
      state.handlers[frame.id] = Task {
        let result = await self.node.serve(frame, peerID: self.peerID ?? frame.source)
        self.finishHandler(frame, result: result)
      }
    }
  }

  private func finishHandler(_ request: Frame, result: Result<Payload, NodeError>) {
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
        response.payload = payload.data
        response.serializer = payload.serializer
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

  // MARK: - Sending

  /// Queues a frame (assigning its id) and wakes the writer.
  func send(_ frame: Frame) { enqueue(frame) }

  /// HELLO metadata: this node acknowledges the pieces it receives (see `bulkWindow`).
  static let bulkAckKey = "bulk-ack"
  /// HELLO metadata: this node reads STREAM_ITEM frames carrying `more_items`.
  static let itemBatchesKey = "item-batches"
  /// HELLO metadata: after how long (ms) this node closes a silent link, so the peer sends
  /// its heartbeats often enough (at least three per timeout) whatever its own settings.
  static let heartbeatTimeoutKey = "heartbeat-timeout-ms"

  var helloMetadata: [String: String] {
    var metadata = [Self.bulkAckKey: "1", Self.itemBatchesKey: "1"]
    if node.config.heartbeat.enabled {
      metadata[Self.heartbeatTimeoutKey] = String(node.config.heartbeat.timeout.microseconds / 1000)
    }
    return metadata
  }
  /// The CREDIT frames with this correlation id acknowledge bytes of pieces (stream ids
  /// start at 1).
  static let bulkAckID: UInt64 = 0

  /// The peer has taken in `bytes` of pieces: more may go, and a writer waiting for that wakes.
  private func piecesAcknowledged(bytes: Int) {
    let wakeup = state.withLock { state -> Wakeup? in
      state.outbox.acknowledge(bytes: bytes)
      return state.wakeWriter()
    }
    wakeup?.resume()
  }

  func enqueue(_ frame: Frame) {
    let wakeup = state.withLock { state -> Wakeup? in
      guard state.closedReason == nil else { return nil }
      var frame = frame
      frame.id = state.allocateID()
      return state.enqueue(frame, chunkSize: node.config.limits.chunkSize)
    }
    wakeup?.resume()
  }

  private func writerLoop() async {
    let budget = max(node.config.limits.chunkSize, 1 << 20)
    while true {
      let batch: [Frame]? = await withCheckedContinuation { continuation in
        let ready = state.withLock { state -> [Frame]?? in
          if let batch = state.takeBatch(budget: budget) { return .some(batch) }
          if state.closing || state.closedReason != nil { return .some(nil) }
          state.writer = WriterWaiter(continuation: continuation, budget: budget)
          return nil
        }
        if let ready { continuation.resume(returning: ready) }
      }
      guard let batch else { break }
      do {
        try await channel.write(batch)
      } catch {
        terminate(reason: "write failed: \(error)", error: nil)
        break
      }
    }
    // Either drained for a graceful close or the link is gone: end the channel so the reader returns.
    await channel.close()
  }

  private func heartbeatLoop() async {
    let config = node.config.heartbeat
    var lastSent = ContinuousClock.now
    while !Task.isCancelled {
      // Often enough for this node's settings and for the peer's timeout (said in its HELLO).
      let peerTimeout = state.withLock { $0.peerHeartbeatTimeout }
      let interval = max(peerTimeout.map { min(config.interval, $0 / 3) } ?? config.interval, .milliseconds(10))
      let tick = max(min(interval, config.timeout / 4), .milliseconds(10))
      guard (try? await Task.sleep(for: tick)) != nil else { return }
      let now = ContinuousClock.now
      if now - lastSent >= interval {
        sendHeartbeat()
        lastSent = now
      }
      let silent = now - state.withLock { $0.lastReceived }
      if silent > config.timeout {
        terminate(reason: "heartbeat timeout (nothing received for \(silent))", error: nil)
        await channel.close()
        return
      }
    }
  }

  /// A heartbeat now, with the node's status (if it set one).
  func sendHeartbeat() {
    var frame = Frame(type: .heartbeat, source: node.id, timestampMicros: Frame.nowMicros())
    frame.payload = node.status
    enqueue(frame)
  }

  // MARK: - Closing

  /// Tells the peer this node takes no new calls.
  func sendGoodbye() {
    enqueue(Frame(type: .goodbye, source: node.id, timestampMicros: Frame.nowMicros()))
  }

  /// Closes gracefully: queued frames are sent first, then the channel is closed.
  func closeGracefully() {
    let (writer, rest) = state.withLock { state -> (WriterWaiter?, [Frame]?) in
      state.closing = true  // from now on pieces go without waiting for acknowledgements
      guard let writer = state.writer else { return (nil, nil) }
      state.writer = nil
      return (writer, state.takeBatch(budget: writer.budget))
    }
    writer?.continuation.resume(returning: rest)  // nil: nothing left, the writer ends
  }

  /// Closes now: fails every pending call, cancels every handler. The first reason wins.
  @discardableResult
  func terminate(reason: String, error: NodeError?) -> String {
    let (final, pending, handlers, writer, helloWaiter, drainWaiters, streams, deadlineWaiter) = state.withLock { state in
      if let existing = state.closedReason {
        return (existing, [PendingCall](), [Task<Void, Never>](), WriterWaiter?.none, CheckedContinuation<String, any Error>?.none, [CheckedContinuation<Void, Never>](), StreamsToEnd(), CheckedContinuation<Void, Never>?.none)
      }
      let peer = state.peerID ?? channel.remoteDescription
      let streams = state.takeStreams(
        error: error ?? NodeError(code: .connectionLost, message: "link to node '\(peer)' lost: \(reason)", nodeID: peer))
      state.closedReason = reason
      // The handlers are cancelled below and awaited by `run()` (see `awaitEndedHandlers`).
      state.endedHandlers += state.handlers.values
      defer {
        state.pending.removeAll()
        state.handlers.removeAll()
        state.deadlines.waiter = nil
        state.writer = nil
        state.helloWaiter = nil
        state.drainWaiters.removeAll()
        state.partial.removeAll()
        state.outbox.discardAll()
      }
      return (reason, Array(state.pending.values), Array(state.handlers.values), state.writer, state.helloWaiter, Array(state.drainWaiters.values), streams, state.deadlines.waiter)
    }
    deadlineWaiter?.resume()
    let peer = peerID ?? channel.remoteDescription
    for call in pending {
      var failure = error ?? NodeError(code: .connectionLost, message: "link to node '\(peer)' lost: \(final)")
      failure.nodeID = peer
      failure.method = call.method
      call.continuation.resume(throwing: failure)
    }
    for task in handlers { task.cancel() }
    writer?.continuation.resume(returning: nil)
    helloWaiter?.resume(throwing: NodeError(code: .connectFailed, message: "link closed during handshake: \(final)"))
    for waiter in drainWaiters { waiter.resume() }
    streams.end(error: error ?? NodeError(code: .connectionLost, message: "link to node '\(peer)' lost: \(final)", nodeID: peer))
    return final
  }
}

// MARK: - State

extension Link {
  struct PendingCall {
    let continuation: CheckedContinuation<Payload, any Error>
    let method: String
    let target: String
    let timeout: Duration?
    /// When the deadline loop fails it (`nil`: never).
    let deadline: ContinuousClock.Instant?
  }

  struct WriterWaiter {
    let continuation: CheckedContinuation<[Frame]?, Never>
    let budget: Int
  }

  /// A writer to wake with a batch, returned from inside the lock and resumed outside it.
  struct Wakeup {
    let writer: WriterWaiter
    let batch: [Frame]
    func resume() { writer.continuation.resume(returning: batch) }
  }

  struct State {
    var peerID: String?
    var nextID: UInt64 = 1
    var pending: [UInt64: PendingCall] = [:]
    var handlers: [UInt64: Task<Void, Never>] = [:]
    /// Handlers the link's end cancelled, for `run()` to await.
    var endedHandlers: [Task<Void, Never>] = []
    /// The deadline loop's schedule.
    var deadlines = DeadlineClock()
    var partial: [UInt64: Frame] = [:]
    var discarding: Set<UInt64> = []
    /// What is to be sent (a pure value type, tested on its own).
    var outbox = Outbox()
    var writer: WriterWaiter?
    var helloWaiter: CheckedContinuation<String, any Error>?
    var drainWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Streams this node consumes, by request id.
    var inStreams: [UInt64: InboundStream] = [:]
    /// Streams this node produces, by request id: the credit left.
    var outStreams: [UInt64: OutboundStream] = [:]
    var lastReceived: ContinuousClock.Instant
    var peerStopping = false
    /// After how long the peer closes a silent link (from its HELLO), if it said.
    var peerHeartbeatTimeout: Duration?
    /// The link is closing (drains what it has, takes nothing new); the outbox then sends
    /// its pieces without waiting for acknowledgements.
    var closing: Bool {
      get { outbox.closing }
      set { outbox.closing = newValue }
    }
    var closedReason: String?

    init(lastReceived: ContinuousClock.Instant) { self.lastReceived = lastReceived }

    mutating func allocateID() -> UInt64 {
      defer { nextID &+= 1 }
      return nextID
    }

    /// Why a new call cannot go out on this link, if it cannot.
    func refusal(peer: String, method: String) -> NodeError? {
      if closedReason != nil || closing { return .notConnected(peer, method: method) }
      if peerStopping { return .stopping(peer, method: method) }
      return nil
    }

    /// Queues a frame (see ``Outbox/enqueue(_:chunkSize:)``); returns the writer to wake, if waiting.
    mutating func enqueue(_ frame: Frame, chunkSize: Int) -> Wakeup? {
      outbox.enqueue(frame, chunkSize: chunkSize)
      return wakeWriter()
    }

    /// The next batch (see ``Outbox/takeBatch(budget:)``).
    mutating func takeBatch(budget: Int) -> [Frame]? { outbox.takeBatch(budget: budget) }

    /// The waiting writer with the next batch, if it waits and there is one.
    mutating func wakeWriter() -> Wakeup? {
      guard let writer, let batch = takeBatch(budget: writer.budget) else { return nil }
      self.writer = nil
      return Wakeup(writer: writer, batch: batch)
    }

  }
}

extension Duration {
  var microseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
  }
}
