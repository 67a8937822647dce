public import EasyRemoteCore
import Foundation
import Hummingbird
import HummingbirdWebSocket
public import HummingbirdTLS
public import Logging
import NIOCore
import NodeComm
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
  private let running: RunningApplication
  private let tls: HTTPServerTLS?
  /// Every open connection, by its channel (the caps of ``HTTPLimits``).
  private let connections: ConnectionTable<ObjectIdentifier>

  var logger: Logger { running.logger }

  public init(
    center: TaskCenter, server: Server, host: String = "127.0.0.1", port: Int = 8000,
    configuration: TaskCenterAPI.Configuration = .init(), remoteHosts: RemoteHostManager? = nil, tls: HTTPServerTLS? = nil,
    logger: Logger? = nil
  ) {
    self.host = host
    self.port = port
    self.tls = tls
    self.api = TaskCenterAPI(center: center, server: server, configuration: configuration, remoteHosts: remoteHosts)
    self.running = RunningApplication(logger: logger, label: "easyremote.http")
    self.connections = ConnectionTable(
      total: configuration.limits.maxConnections, perAddress: configuration.limits.maxConnectionsPerAddress)
  }

  /// Connections open now, and those of them idle: silent since they connected, or between
  /// requests (they give way to a newcomer at the cap).
  public var connectionCounts: (open: Int, idle: Int) {
    let counts = connections.counts
    return (counts.open, counts.idle)
  }

  /// A tick each time ``connectionCounts`` may have changed.
  package func connectionChanges() -> AsyncStream<Void> { connections.changes() }

  /// `host:port` once started (the real port when 0 was asked for).
  public var address: String? { running.address }

  /// `https` when serving TLS, else `http`.
  public var scheme: String { tls == nil ? "http" : "https" }

  /// Starts serving; returns once the port is bound.
  public func start() async throws {
    let router = api.router()
    let limits = api.configuration.limits
    let maxBodyBytes = api.configuration.maxBodyBytes
    let connections = self.connections
    let tlsConfiguration = try tls?.configuration()
    let token = api.tokenCheck
    try await running.start(host: host, port: port) { [host, port, logger] onServerRunning in
      Application(
        router: SafeResponderBuilder(router: router, connections: connections), server: GuardedHTTPChannel.builder(
          webSocketResponder: router.buildResponder(), limits: limits, maxBodyBytes: maxBodyBytes, connections: connections,
          tls: tlsConfiguration, token: token),
        configuration: .init(address: .hostname(host, port: port), serverName: "EasyRemote"),
        onServerRunning: onServerRunning, logger: logger)
    }
  }

  /// Stops serving: open requests finish, then the port closes.
  public func stop() async { await running.stop() }
}

extension TaskCenterHTTPServer: Service {
  /// Runs the HTTP server as a service: starts it (unless ``start()`` was called already),
  /// serves until graceful shutdown or cancellation, then stops. A server that ends on its
  /// own (its listener failed) throws, which stops the group.
  public func run() async throws {
    if address == nil { try await start() }
    try await running.serveUntilShutdown(what: "the HTTP API on \(address ?? "\(host):\(port)")")
  }
}

/// The certificate and key the HTTP API serves HTTPS with (PEM text).
public struct HTTPServerTLS: Sendable {
  public var certificateChainPEM: String
  public var privateKeyPEM: String

  public init(certificateChainPEM: String, privateKeyPEM: String) {
    self.certificateChainPEM = certificateChainPEM
    self.privateKeyPEM = privateKeyPEM
  }

  /// Reads both files; a file that is not PEM is an error naming it.
  public init(certificateFile: String, keyFile: String) throws {
    func read(_ path: String, _ what: String) throws -> String {
      guard let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("-----BEGIN") else {
        throw TaskCenterError(code: .invalidRequest, message: "cannot read the HTTPS \(what) PEM file \(path)")
      }
      return text
    }
    self.init(certificateChainPEM: try read(certificateFile, "certificate"), privateKeyPEM: try read(keyFile, "key"))
  }

  func configuration() throws -> TLSConfiguration {
    let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8))
    let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
    return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
  }
}
