import Synchronization

/// Opened once; ``wait()`` returns once it is open — and does not return early when the
/// waiting task is cancelled (cancel what the latch waits for instead).
package final class Latch: Sendable {
  private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  package init() {}

  package func open() {
    let waiters = state.withLock { state in
      state.open = true
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  package var isOpen: Bool { state.withLock { $0.open } }

  /// Waits until it is open or `timeout` passes, whichever comes first (the latch is opened
  /// either way, so do not share it with other waiters that should not be released).
  package func wait(upTo timeout: Duration, on clock: any Clock<Duration> = ContinuousClock()) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.wait() }
      group.addTask { try? await clock.sleep(for: timeout) }
      await group.next()
      open()  // ends the other child when the sleep came first
      group.cancelAll()
    }
  }

  package func wait() async {
    await withCheckedContinuation { continuation in
      let isOpen = state.withLock { state in
        if !state.open { state.waiters.append(continuation) }
        return state.open
      }
      if isOpen { continuation.resume() }
    }
  }
}
