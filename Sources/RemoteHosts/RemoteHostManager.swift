public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The gateway's remote hosts (seed 003): SSH connections by id, each with what its host
/// offers and the compute-node agent started there. A `Service`: when the gateway stops, every
/// agent is stopped and every connection closed.
public final class RemoteHostManager: Service, Sendable {
  public let configuration: RemoteHostsConfiguration
  /// The version an agent must answer `--version` with (this program's).
  public let agentVersion: String
  private let hosts = Mutex<[String: RemoteHost]>([:])
  private let logger: Logger

  public init(configuration: RemoteHostsConfiguration, agentVersion: String, logger: Logger = Logger(label: "easyremote.remote")) {
    self.configuration = configuration
    self.agentVersion = agentVersion
    self.logger = logger
  }

  /// Connects, logs in and inspects the host.
  public func connect(_ login: SSHLogin) async throws(RemoteHostError) -> RemoteConnectionInfo {
    try login.validate()
    if let policy = configuration.allowedTargets, await !policy.allows(login.host) {
      throw RemoteHostError(
        code: .targetNotAllowed, message: "this gateway may not connect to \(login.host) (see --remote-allow)",
        details: ["host": login.host])
    }
    let connection = try await SSHConnection.open(login, configuration: configuration)
    let inspection: HostInspection
    do {
      inspection = try await HostInspector.inspect(connection, agentVersion: agentVersion)
    } catch {
      await connection.close()
      throw error
    }
    let id = "conn_" + String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8)
    let host = RemoteHost(
      id: id, connection: connection, inspection: inspection, configuration: configuration, agentVersion: agentVersion,
      logger: logger)
    hosts.withLock { $0[id] = host }
    logger.info("connected", metadata: ["connection": "\(id)", "host": "\(login.host)"])
    return await host.info()
  }

  public func connections() async -> [RemoteConnectionInfo] {
    var infos: [RemoteConnectionInfo] = []
    for host in hosts.withLock({ Array($0.values) }) { infos.append(await host.info()) }
    return infos.sorted { $0.createdAt < $1.createdAt }
  }

  public func connection(_ id: String) async throws(RemoteHostError) -> RemoteConnectionInfo {
    await (try host(id)).info()
  }

  /// Stops its agent (unless `stopViewer` is false: it then ends with the connection) and
  /// closes the connection.
  public func disconnect(_ id: String, stopViewer: Bool = true) async throws(RemoteHostError) {
    let host = try host(id)
    hosts.withLock { _ = $0.removeValue(forKey: id) }
    await host.close(stopViewer: stopViewer)
    logger.info("disconnected", metadata: ["connection": "\(id)"])
  }

  public func environments(_ id: String, refresh: Bool = false) async throws(RemoteHostError) -> HostInspection {
    let host = try host(id)
    return refresh ? try await host.detect() : await host.inspection
  }

  public func environment(_ id: String, named name: String) async throws(RemoteHostError) -> RemoteEnvironment {
    try await host(id).environment(named: name)
  }

  public func startViewer(_ id: String, environment: String, remoteRoot: String? = nil, localPort: Int? = nil)
    async throws(RemoteHostError) -> RemoteViewer
  {
    try await host(id).startViewer(environment: environment, remoteRoot: remoteRoot, localPort: localPort)
  }

  public func stopViewer(_ id: String, cleanup: Bool = true) async throws(RemoteHostError) -> Date {
    try await host(id).stopViewer(cleanup: cleanup)
  }

  public func viewer(_ id: String) async throws(RemoteHostError) -> RemoteViewer {
    try await host(id).viewerState()
  }

  public func logs(_ id: String, lines: Int) async throws(RemoteHostError) -> [String] {
    guard (1...10_000).contains(lines) else { throw RemoteHostError.invalid("lines must be 1-10000, got \(lines)") }
    return try await host(id).logs(lines: lines)
  }

  public func health(_ id: String) async throws(RemoteHostError) -> RemoteHealth {
    await (try host(id)).health()
  }

  /// Round-trip time over the connection, in milliseconds.
  public func ping(_ id: String) async throws(RemoteHostError) -> Double {
    try await host(id).ping()
  }

  /// Returns when connection `id`'s SSH master has ended (lost or closed): from then on it is
  /// listed as disconnected.
  package func ended(_ id: String) async throws(RemoteHostError) {
    try await host(id).connection.ended()
  }

  private func host(_ id: String) throws(RemoteHostError) -> RemoteHost {
    guard let host = hosts.withLock({ $0[id] }) else {
      throw RemoteHostError(code: .connectionNotFound, message: "no connection '\(id)'")
    }
    return host
  }

  /// Runs until graceful shutdown, then stops every agent and closes every connection.
  public func run() async throws {
    try? await gracefulShutdown()
    await stop()
  }

  public func stop() async {
    let all = hosts.withLock { hosts in
      defer { hosts = [:] }
      return Array(hosts.values)
    }
    await withTaskGroup(of: Void.self) { group in
      for host in all { group.addTask { await host.close(stopViewer: true) } }
    }
  }
}

extension String {
  fileprivate func leftPadded(to length: Int) -> String {
    count >= length ? self : String(repeating: "0", count: length - count) + self
  }
}

extension RemoteHostManager {
  /// How an agent would get onto a host: `installed` (it has this version), `upload` (this
  /// program's binary fits it) or `unavailable`.
  public func agentAvailability(_ inspection: HostInspection) -> String {
    switch AgentDeployer.plan(for: inspection, version: agentVersion) {
    case .installed: "installed"
    case .upload: "upload"
    case .unavailable: "unavailable"
    }
  }

  /// Where agents keep their folders on a host unless told otherwise.
  public func defaultRemoteRoot(_ inspection: HostInspection) -> String { inspection.home + "/.cache/easyremote/run" }
}
