public import EasyRemoteCore
import Foundation
import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore
public import ServiceLifecycle
public import RemoteHosts
import Synchronization
public import TaskCenter

/// The HTTP side of the gateway (default port 8000): the ``TaskCenterAPI`` on a Hummingbird
/// server, in the gateway's process.
///
/// ```swift
/// let http = TaskCenterHTTPServer(center: center, server: server, port: 8000)
/// try await http.start()
/// ```
public final class TaskCenterHTTPServer: Sendable {
  public let host: String
  public let port: Int
  let api: TaskCenterAPI
  let logger: Logger
  private let state = Mutex<(task: Task<Void, any Error>?, group: ServiceGroup?, address: String?)>((nil, nil, nil))

  public init(
    center: TaskCenter, server: Server, host: String = "127.0.0.1", port: Int = 8000,
    configuration: TaskCenterAPI.Configuration = .init(), remoteHosts: RemoteHostManager? = nil, logger: Logger? = nil
  ) {
    self.host = host
    self.port = port
    self.api = TaskCenterAPI(center: center, server: server, configuration: configuration, remoteHosts: remoteHosts)
    self.logger =
      logger
      ?? {
        var logger = Logger(label: "easyremote.http")
        logger.logLevel = .warning
        return logger
      }()
  }

  /// `host:port` once started (the real port when 0 was asked for).
  public var address: String? { state.withLock { $0.address } }

  /// Starts serving; returns once the port is bound.
  public func start() async throws {
    let (bound, binding) = AsyncStream.makeStream(of: String.self)
    let router = api.router()
    let app = Application(
      router: router, server: .http1WebSocketUpgrade(webSocketRouter: router),
      configuration: .init(address: .hostname(host, port: port), serverName: "EasyRemote"),
      onServerRunning: { [host] channel in
        binding.yield("\(host):\(channel.localAddress?.port ?? 0)")
        binding.finish()
      }, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
    let task = Task {
      defer { binding.finish() }
      try await group.run()
    }
    state.withLock { $0 = (task, group, nil) }
    var iterator = bound.makeAsyncIterator()
    guard let address = await iterator.next() else {
      try await task.value
      throw TaskCenterError(code: .internalError, message: "the HTTP server did not start on \(host):\(port)")
    }
    state.withLock { $0.address = address }
  }

  /// Stops serving: open requests finish, then the port closes.
  public func stop() async {
    let (task, group) = state.withLock { ($0.task, $0.group) }
    await group?.triggerGracefulShutdown()
    _ = try? await task?.value
  }
}

extension TaskCenterHTTPServer: Service {
  /// Runs the HTTP server as a service: starts it (unless ``start()`` was called already),
  /// serves until graceful shutdown or cancellation, then stops.
  public func run() async throws {
    if address == nil { try await start() }
    try? await gracefulShutdown()
    await stop()
  }
}
