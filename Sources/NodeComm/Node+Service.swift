public import ServiceLifecycle

extension Node: Service {
  /// Runs the node as a service: starts it, waits for graceful shutdown (SIGTERM/SIGINT in a
  /// `ServiceGroup`), then stops it with the configured grace period.
  public func run() async throws {
    try await start()
    try? await gracefulShutdown()
    await stop()
  }
}
