import Hummingbird
import NodeComm
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A Hummingbird application in a service group of its own: ``start(host:port:make:)``
/// returns once its port is bound, ``stop()`` finishes open requests and closes it. The HTTP
/// API and a node's status page are both run this way.
final class RunningApplication: Sendable {
  let logger: Logger
  private let state = Mutex<(task: Task<Void, any Error>?, group: ServiceGroup?, address: String?, stopping: Bool)>(
    (nil, nil, nil, false))
  /// How its group ended, once it has (``ended()``).
  private let endings: AsyncStream<Result<Void, any Error>>
  private let ending: AsyncStream<Result<Void, any Error>>.Continuation

  init(logger: Logger?, label: String) {
    self.logger =
      logger
      ?? {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        return logger
      }()
    (endings, ending) = AsyncStream.makeStream(of: Result<Void, any Error>.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// How the application ended (its error, if one ended it) once it has; `nil` when the
  /// waiting task is cancelled first. A service's `run()` waits here, so an HTTP server that
  /// fails on its own fails its service group.
  func ended() async -> Result<Void, any Error>? {
    for await outcome in endings { return outcome }
    return nil
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
    let ending = self.ending
    let task = Task {
      defer { binding.finish() }
      do {
        try await group.run()
        ending.yield(.success(()))
      } catch {
        ending.yield(.failure(error))
        throw error
      }
    }
    state.withLock { $0 = (task, group, nil, false) }
    var iterator = bound.makeAsyncIterator()
    guard let address = await iterator.next() else {
      try await task.value
      throw HTTPError(.internalServerError, message: "the HTTP server did not start on \(host):\(port)")
    }
    state.withLock { $0.address = address }
  }

  /// Waits (as a service's `run()`) until graceful shutdown or cancellation, then stops; if
  /// the application ends on its own first, stops and throws (its error, or one saying so).
  func serveUntilShutdown(what: String) async throws {
    let outcome = await cancelWhenGracefulShutdown { await self.ended() }
    let asked = state.withLock { $0.stopping }  // (``stop()`` called from elsewhere)
    await stop()
    guard let outcome, !asked else { return }  // shut down, as asked
    if case .failure(let error) = outcome {
      throw NodeError(code: .listenerFailed, message: "\(what) stopped: \(error)")
    }
    throw NodeError(code: .listenerFailed, message: "\(what) stopped by itself")
  }

  func stop() async {
    let (task, group) = state.withLock { state in
      state.stopping = true
      return (state.task, state.group)
    }
    await group?.triggerGracefulShutdown()
    _ = try? await task?.value
  }
}
