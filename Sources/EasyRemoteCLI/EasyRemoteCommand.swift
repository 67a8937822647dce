import ArgumentParser

@main
struct EasyRemoteCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "easyremote",
    abstract: "EasyRemote: pool idle machines into one compute fabric.",
    subcommands: [DemoCommand.self, PeerCommand.self]
  )
}
