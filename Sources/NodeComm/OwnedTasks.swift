import Synchronization

/// Tasks an object starts on its own (a reconnect loop, an announcement) and owns: each
/// removes itself when done, and ``cancelAll()`` cancels those still running and waits for
/// them — so none outlives its owner's `stop`.
package final class OwnedTasks: Sendable {
  private struct State {
    var tasks: [UInt64: Task<Void, Never>] = [:]
    var next: UInt64 = 0
    var closed = false
  }

  private let state = Mutex(State())

  package init() {}

  /// Starts `body` as an owned task; does nothing once ``cancelAll()`` was called.
  package func start(_ body: @escaping @Sendable () async -> Void) {
    state.withLock { state in
      guard !state.closed else { return }
      state.next += 1
      let id = state.next
      // Unstructured by design: this type is the owner (cancelled and awaited by `cancelAll`).
      state.tasks[id] = Task { [weak self] in
        await body()
        _ = self?.state.withLock { $0.tasks.removeValue(forKey: id) }
      }
    }
  }

  /// Starts taking tasks again after ``cancelAll()`` (for an owner that starts again).
  package func reopen() {
    state.withLock { $0.closed = false }
  }

  /// How many are running.
  package var count: Int { state.withLock { $0.tasks.count } }

  /// Cancels every task still running, waits for them, and starts no more.
  package func cancelAll() async {
    let tasks = state.withLock { state in
      state.closed = true
      defer { state.tasks.removeAll() }
      return Array(state.tasks.values)
    }
    for task in tasks { task.cancel() }
    for task in tasks { await task.value }
  }
}
