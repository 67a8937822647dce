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
  @Option(help: "Comma-separated networks (10.0.0.0/8) and host names (gpu-box.lan, *.lab.example.org) remote connections may reach (default: any).")
  var remoteAllow: String?

  func validate() throws {
    do {
      _ = try policy()
    } catch {
      throw ValidationError("--remote-allow: \(error.message)")
    }
  }

  func policy() throws(RemoteHostError) -> RemoteTargetPolicy? {
    try remoteAllow.map { text throws(RemoteHostError) in try RemoteTargetPolicy(text.split(separator: ",").map(String.init)) }
  }

  func manager(gateway: String, token: String?) -> RemoteHostManager? {
    if noRemote { return nil }
    var configuration = RemoteHostsConfiguration(
      gatewayAddress: gateway, gatewayToken: token, sshConfigFile: sshConfig, knownHostsFile: knownHosts,
      agentBinary: agentBinary)
    configuration.allowedTargets = try? policy()  // checked in validate()
    return RemoteHostManager(configuration: configuration, agentVersion: TaskCenterAPI.version)
  }
}
