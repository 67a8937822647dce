import ArgumentParser
import TaskCenterHTTP

@main
struct EasyRemoteCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "easyremote",
    abstract: "EasyRemote: pool idle machines into one compute fabric.",
    version: "easyremote \(TaskCenterAPI.version)",
    subcommands: [
      DemoCommand.self, GatewayCommand.self, NodeCommand.self, CallCommand.self, StreamCommand.self,
      FunctionsCommand.self, NodesCommand.self, StatsCommand.self, HealthCommand.self, SubmitCommand.self, TasksCommand.self,
      TaskCommand.self, CancelCommand.self, PeerCommand.self, SandboxCommand.self, RemoteCommand.self,
    ]
  )
}
