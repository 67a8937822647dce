public import ServiceLifecycle

extension Node: Service {
  /// Runs the node as a service: starts it, waits for graceful shutdown (SIGTERM/SIGINT in a
  /// `ServiceGroup`), then stops it with the configured grace period. A listener that fails
  /// ends it early: it stops, and `run()` throws the failure, which stops the group.
  public func run() async throws {
    if !isRunning { try await start() }
    try await runUntilShutdown(stop: { await self.stop() })
  }

  /// Until graceful shutdown (or cancellation): then `stop`. When the listener fails first,
  /// `stop` runs too and the failure is thrown.
  package func runUntilShutdown(stop: @escaping @Sendable () async -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        // Ends when `stop` closes the listener; throws when it failed by itself.
        try await self.waitForListener()
      }
      group.addTask {
        try? await gracefulShutdown()  // (throws when cancelled: the listener failed)
        await stop()
      }
      // `next()` throws the first failure at once (`waitForAll()` would wait for shutdown
      // first); leaving the group by throwing cancels the other task, which then stops.
      while try await group.next() != nil {}
    }
  }
}
