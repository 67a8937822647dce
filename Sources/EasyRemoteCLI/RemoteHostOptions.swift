import ArgumentParser
import Foundation
import RemoteHosts
import TaskCenterHTTP

/// The gateway's SSH settings for remote hosts (`/api/remote/`, `easyremote remote`).
struct RemoteHostOptions: ParsableArguments {
  @Flag(help: "Do not offer remote hosts over SSH.") var noRemote = false
  @Option(help: "An ssh config file for remote hosts (default: ~/.ssh/config).") var sshConfig: String?
  @Option(help: "The known_hosts file host keys are checked against (default: ~/.ssh/known_hosts).") var knownHosts: String?
  @Option(help: "The easyremote binary uploaded to hosts without one (default: this program).") var agentBinary: String?

  func manager(gateway: String, token: String?) -> RemoteHostManager? {
    if noRemote { return nil }
    return RemoteHostManager(
      configuration: RemoteHostsConfiguration(
        gatewayAddress: gateway, gatewayToken: token, sshConfigFile: sshConfig, knownHostsFile: knownHosts,
        agentBinary: agentBinary),
      agentVersion: TaskCenterAPI.version)
  }
}
