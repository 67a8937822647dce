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
    var state = State(lastReceived: node.timeline.elapsed())
    state.outbox.bulkWindow = max(node.config.limits.chunkSize, 1 << 20)
    self.state = Mutex(state)
  }

  /// The peer's node id, known once the handshake is done.
  var peerID: String? { state.withLock { $0.peerID } }

  var inFlightHandlers: Int { state.withLock { $0.handlers.count } }

  // MARK: - Running

  /// Runs the link until it ends, then tells the node.
  func run() async {
    let reason: LinkEndReason = await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.writerLoop() }
      group.addTask { await self.deadlineLoop() }
      if node.config.heartbeat.enabled {
        group.addTask { await self.heartbeatLoop() }
      }
      var reason = LinkEndReason.closedByPeer
      do {
        try await channel.read { batch in self.receive(batch) }
      } catch {
        reason = LinkEndReason(.failed, "link failed: \(error)")
      }
      let final = self.terminate(reason: reason, error: nil)
      group.cancelAll()
      return final
    }
    await channel.close()
    node.linkEnded(self, reason: reason)
    await awaitEndedHandlers()
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
        self.terminate(reason: LinkEndReason(.handshakeFailed, "handshake failed"), error: nil)
        await self.channel.close()
        throw error
      }
    }
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
  /// HELLO metadata: the node's token (`Bearer <token>`), when it has one. A listener with a
  /// token takes no link whose HELLO lacks it: without the token nobody names itself as a
  /// node here (which would replace that node's link) or holds a connection as a link.
  static let helloTokenKey = "authorization"
  /// A listener's answer to a HELLO it refuses: why (the dialer fails with `auth_failed`).
  static let helloRefusedKey = "refused"

  var helloMetadata: [String: String] {
    var metadata = [Self.bulkAckKey: "1", Self.itemBatchesKey: "1"]
    if node.config.heartbeat.enabled {
      metadata[Self.heartbeatTimeoutKey] = String(node.config.heartbeat.timeout.microseconds / 1000)
    }
    if node.config.compression.enabled { metadata[PayloadCompression.helloKey] = PayloadCompression.deflate }
    if role == .dialer, let token = node.config.authToken { metadata[Self.helloTokenKey] = "Bearer \(token)" }
    return metadata
  }
  /// The CREDIT frames with this correlation id acknowledge bytes of pieces (stream ids
  /// start at 1).
  static let bulkAckID: UInt64 = 0

  /// The peer has taken in `bytes` of pieces: more may go, and a writer waiting for that wakes.
  func piecesAcknowledged(bytes: Int) {
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
        terminate(reason: LinkEndReason(.failed, "write failed: \(error)"), error: nil)
        break
      }
    }
    // Either drained for a graceful close or the link is gone: end the channel so the reader returns.
    await channel.close()
  }

  private func heartbeatLoop() async {
    let (config, timeline) = (node.config.heartbeat, node.timeline)
    var lastSent = timeline.elapsed()
    while !Task.isCancelled {
      // Often enough for this node's settings and for the peer's timeout (said in its HELLO).
      let peerTimeout = state.withLock { $0.peerHeartbeatTimeout }
      let interval = max(peerTimeout.map { min(config.interval, $0 / 3) } ?? config.interval, .milliseconds(10))
      let tick = max(min(interval, config.timeout / 4), .milliseconds(10))
      guard (try? await timeline.sleep(for: tick)) != nil else { return }
      let now = timeline.elapsed()
      if now - lastSent >= interval {
        sendHeartbeat()
        lastSent = now
      }
      let silent = now - state.withLock { $0.lastReceived }
      if silent > config.timeout {
        terminate(reason: LinkEndReason(.heartbeatTimeout, "heartbeat timeout (nothing received for \(silent))"), error: nil)
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
  func terminate(reason: LinkEndReason, error: NodeError?) -> LinkEndReason {
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
    /// When the deadline loop fails it, on the node's timeline (`nil`: never).
    let deadline: Duration?
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
    /// This listener refused the peer's HELLO (no valid token): nothing more is served.
    var helloRefused = false
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
    /// When the peer was last heard, on the node's ``Timeline``.
    var lastReceived: Duration
    var peerStopping = false
    /// After how long the peer closes a silent link (from its HELLO), if it said.
    var peerHeartbeatTimeout: Duration?
    /// The peer offered deflate in its HELLO (it inflates what we deflate).
    var peerInflates = false
    /// The link is closing (drains what it has, takes nothing new); the outbox then sends
    /// its pieces without waiting for acknowledgements.
    var closing: Bool {
      get { outbox.closing }
      set { outbox.closing = newValue }
    }
    var closedReason: LinkEndReason?

    init(lastReceived: Duration) { self.lastReceived = lastReceived }

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
    // Saturates (a deadline centuries away is as good as none), never traps.
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
    guard !overflow else { return seconds < 0 ? .min : .max }
    let (total, overflowed) = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000)
    return overflowed ? (whole < 0 ? .min : .max) : total
  }
}
