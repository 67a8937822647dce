import Synchronization

/// Tells whoever watches that something changed — a count, a table — as a tick on an
/// `AsyncStream`, so a waiter re-reads what it waits for instead of polling. Costs one atomic
/// read per change while no one watches (the usual case).
package final class ChangeFeed: Sendable {
  private let watching = Atomic<Int>(0)
  private let watchers = Mutex<(next: UInt64, all: [UInt64: AsyncStream<Void>.Continuation])>((0, [:]))

  package init() {}

  /// A tick after each change from now on (several changes may make one tick), until the
  /// sequence is dropped or its reader cancelled.
  package func changes() -> AsyncStream<Void> {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let key = watchers.withLock { watchers in
      watchers.next += 1
      watchers.all[watchers.next] = continuation
      return watchers.next
    }
    watching.add(1, ordering: .releasing)
    continuation.onTermination = { [weak self] _ in
      guard let self, self.watchers.withLock({ $0.all.removeValue(forKey: key) }) != nil else { return }
      self.watching.subtract(1, ordering: .releasing)
    }
    return stream
  }

  /// Something changed: each watcher gets a tick.
  package func changed() {
    guard watching.load(ordering: .acquiring) > 0 else { return }
    for watcher in watchers.withLock({ Array($0.all.values) }) { watcher.yield() }
  }
}
