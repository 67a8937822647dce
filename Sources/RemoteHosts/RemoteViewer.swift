public import Foundation

/// The agent ("viewer" in seed 003) on a host as the API shows it.
public struct RemoteViewer: Sendable, Equatable {
  public enum Status: String, Sendable, Codable { case starting, running, stopped, failed }

  public var status: Status
  /// Where its status page answers here, through the local forward.
  public var url: String
  public var localPort: Int
  /// The status page's port on the host.
  public var remotePort: Int
  /// The host's end of the tunnel to the gateway.
  public var gatewayPort: Int
  public var nodeID: String
  public var envName: String
  public var pythonPath: String
  public var remoteRoot: String
  public var agentPath: String
  public var pid: Int?
  public var startedAt: Date
  public var stoppedAt: Date?
  /// Why it stopped when it stopped on its own.
  public var exitReason: String?

  public var uptimeSeconds: Int {
    guard status == .running || status == .starting else { return 0 }
    return max(0, Int(Date().timeIntervalSince(startedAt)))
  }
}

/// One connection as the API lists it.
public struct RemoteConnectionInfo: Sendable {
  public var id: String
  public var host: String
  public var port: Int
  public var username: String
  /// `connected` or `disconnected` (the connection was lost).
  public var status: String
  public var createdAt: Date
  public var lastPing: Date?
  public var inspection: HostInspection
  public var viewer: RemoteViewer?
}

/// What `health` found.
public struct RemoteHealth: Sendable {
  public var sshConnection: Bool
  /// nil when no agent was started.
  public var viewerProcess: Bool?
  public var tunnelActive: Bool?
  public var checkedAt: Date

  public var healthy: Bool { sshConnection && viewerProcess != false && tunnelActive != false }
}
