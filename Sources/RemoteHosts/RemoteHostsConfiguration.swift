/// How the gateway reaches remote hosts: the ssh client and the files it trusts, and what
/// it puts on a host.
public struct RemoteHostsConfiguration: Sendable {
  /// The OpenSSH client.
  public var sshPath: String
  /// An ssh config file (`-F`); nil reads the user's `~/.ssh/config` as `ssh` does.
  public var sshConfigFile: String?
  /// The known_hosts file host keys are checked against and accepted keys are written to;
  /// nil is the user's `~/.ssh/known_hosts` (and whatever their ssh config names).
  public var knownHostsFile: String?
  /// The `easyremote` executable uploaded to hosts that have none; nil is this program's own
  /// (`/proc/self/exe`), which is right when the gateway is the `easyremote` command.
  public var agentBinary: String?
  /// The gateway's node port the agents join through the tunnel (`host:port`).
  public var gatewayAddress: String
  /// The token agents join with (the gateway's own).
  public var gatewayToken: String?
  /// Seconds between keepalives on each connection; three lost in a row end it.
  public var keepaliveInterval: Int
  /// Seconds an agent has to join after it starts.
  public var agentStartTimeout: Double
  /// Extra arguments for `easyremote node` on every host (`--max-workers 2`, ...).
  public var agentArguments: [String]
  /// The ssh-agent socket logins with `auth_method: agent` (and keys ssh finds there) use;
  /// nil is the gateway's `$SSH_AUTH_SOCK`.
  public var agentSocket: String?
  /// The hosts connections may reach; nil: any (``RemoteTargetPolicy``).
  public var allowedTargets: RemoteTargetPolicy?

  public init(
    gatewayAddress: String, gatewayToken: String? = nil, sshPath: String = "/usr/bin/ssh", sshConfigFile: String? = nil,
    knownHostsFile: String? = nil, agentBinary: String? = nil, keepaliveInterval: Int = 5, agentStartTimeout: Double = 60,
    agentArguments: [String] = [], agentSocket: String? = nil
  ) {
    self.agentSocket = agentSocket
    self.gatewayAddress = gatewayAddress
    self.gatewayToken = gatewayToken
    self.sshPath = sshPath
    self.sshConfigFile = sshConfigFile
    self.knownHostsFile = knownHostsFile
    self.agentBinary = agentBinary
    self.keepaliveInterval = keepaliveInterval
    self.agentStartTimeout = agentStartTimeout
    self.agentArguments = agentArguments
  }
}
