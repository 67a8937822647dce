// Deadlines: one loop per link times out its calls and the streams it reads, instead of a
// timer task per call. A call or stream with a timeout records its deadline in the link's
// state; the loop sleeps until the earliest one and is woken only when a new deadline comes
// before the one it sleeps for (with equal timeouts, once per link, not once per call).
// Deadlines are points on the node's `Timeline` (the clock it was given), so a test that moves
// the clock times calls out without waiting.

extension Link {
  /// What the deadline loop knows: when it will wake, and how to wake it sooner.
  struct DeadlineClock {
    /// When the loop wakes next (`nil`: it waits for a deadline to be set).
    var wake: Duration?
    /// The loop, parked until `wake` or a sooner deadline.
    var waiter: CheckedContinuation<Void, Never>?
    /// A sooner deadline came while the loop was not parked: it must look again at once.
    var kicked = false

    /// Records that something is due at `deadline`; returns the parked loop to wake, if it
    /// must wake sooner than it planned.
    mutating func due(at deadline: Duration) -> CheckedContinuation<Void, Never>? {
      if let wake, wake <= deadline { return nil }
      wake = deadline
      guard let waiter else {
        kicked = true
        return nil
      }
      self.waiter = nil
      return waiter
    }
  }

  /// What has passed its deadline, taken out of the state to be failed outside the lock.
  struct Expired {
    var calls: [(id: UInt64, call: PendingCall)] = []
    var streams: [(id: UInt64, error: NodeError)] = []
  }

  /// Fails calls and streams whose deadline has passed, until the link ends. Once it is
  /// closed (`terminate` failed what was left) the loop ends at once: parking would return at
  /// once too, and the loop would spin until the channel's reader returned — with a peer
  /// that froze, seconds of a whole core, which starved the close itself.
  func deadlineLoop() async {
    while !Task.isCancelled {
      let now = node.timeline.elapsed()
      let (expired, next, closed) = state.withLock { state in
        let (expired, next) = state.takeExpired(at: now, peer: state.peerID ?? channel.remoteDescription)
        return (expired, next, state.closedReason != nil)
      }
      for (id, call) in expired.calls { fail(id, call, error: .timedOut(call.target, method: call.method, after: call.timeout ?? .zero)) }
      for (id, error) in expired.streams { cancelInboundStream(id, error: error, keepForReader: true) }
      if closed { return }
      await parkUntil(next)
    }
  }

  /// Returns at `deadline`, when a sooner deadline is set, or when the loop is cancelled.
  private func parkUntil(_ deadline: Duration?) async {
    let timeline = node.timeline
    await withTaskGroup(of: Void.self) { group in
      if let deadline { group.addTask { try? await timeline.sleep(for: deadline - timeline.elapsed()) } }
      group.addTask { await self.waitForSoonerDeadline() }
      await group.next()
      group.cancelAll()
    }
  }

  private func waitForSoonerDeadline() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let now = state.withLock { state -> Bool in
          if state.deadlines.kicked || state.closedReason != nil || Task.isCancelled {
            state.deadlines.kicked = false
            return true
          }
          state.deadlines.waiter = continuation
          return false
        }
        if now { continuation.resume() }
      }
    } onCancel: {
      state.withLock { state in
        defer { state.deadlines.waiter = nil }
        return state.deadlines.waiter
      }?.resume()
    }
  }

  /// Fails a call the deadline loop took out, and tells the peer to stop its handler.
  private func fail(_ id: UInt64, _ call: PendingCall, error: NodeError) {
    let wakeup = state.withLock { state -> Wakeup? in
      guard state.closedReason == nil else { return nil }
      let cancel = Frame(id: state.allocateID(), type: .cancel, correlationID: id)
      return state.enqueue(cancel, chunkSize: node.config.limits.chunkSize)
    }
    wakeup?.resume()
    call.continuation.resume(throwing: error)
  }
}

extension Link.State {
  /// Takes the calls and streams due by `now`; returns them and the next deadline (which the
  /// loop will wake at).
  mutating func takeExpired(at now: Duration, peer: String) -> (Link.Expired, Duration?) {
    var expired = Link.Expired()
    var next: Duration?
    for (id, call) in pending {
      guard let deadline = call.deadline else { continue }
      if deadline <= now {
        expired.calls.append((id, call))
      } else if next.map({ deadline < $0 }) ?? true {
        next = deadline
      }
    }
    for (id, _) in expired.calls { pending[id] = nil }
    for (id, stream) in inStreams {
      guard let deadline = stream.deadline, stream.end == nil else { continue }
      if deadline <= now {
        expired.streams.append((id, .timedOut(stream.target, method: stream.method, after: stream.timeout ?? .zero)))
      } else if next.map({ deadline < $0 }) ?? true {
        next = deadline
      }
    }
    deadlines.wake = next
    return (expired, next)
  }
}
