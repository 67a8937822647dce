import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A Hummingbird application in a service group of its own: ``start(host:port:make:)``
/// returns once its port is bound, ``stop()`` finishes open requests and closes it. The HTTP
/// API and a node's status page are both run this way.
final class RunningApplication: Sendable {
  let logger: Logger
  private let state = Mutex<(task: Task<Void, any Error>?, group: ServiceGroup?, address: String?)>((nil, nil, nil))

  init(logger: Logger?, label: String) {
    self.logger =
      logger
      ?? {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        return logger
      }()
  }

  /// `host:port` once started (the real port when 0 was asked for).
  var address: String? { state.withLock { $0.address } }

  /// Builds the application with the callback it must call once running, runs it, and
  /// returns once the port is bound.
  func start<App: Service>(
    host: String, port: Int, make: (_ onServerRunning: @escaping @Sendable (any Channel) async -> Void) -> App
  ) async throws {
    let (bound, binding) = AsyncStream.makeStream(of: String.self)
    let app = make { channel in
      binding.yield("\(host):\(channel.localAddress?.port ?? 0)")
      binding.finish()
    }
    let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
    // Unstructured: `start()` returns once the port is bound while the server goes on;
    // `stop()` shuts the group down and awaits this task.
    let task = Task {
      defer { binding.finish() }
      try await group.run()
    }
    state.withLock { $0 = (task, group, nil) }
    var iterator = bound.makeAsyncIterator()
    guard let address = await iterator.next() else {
      try await task.value
      throw HTTPError(.internalServerError, message: "the HTTP server did not start on \(host):\(port)")
    }
    state.withLock { $0.address = address }
  }

  func stop() async {
    let (task, group) = state.withLock { ($0.task, $0.group) }
    await group?.triggerGracefulShutdown()
    _ = try? await task?.value
  }
}
