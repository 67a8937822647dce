import ArgumentParser
import Foundation
import NodeComm
import NodeCommGRPC
import TaskCenterHTTP

/// A node-layer peer in its own process, for tests and for trying links by hand.
struct PeerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "peer",
    abstract: "Run a node-layer peer that serves echo, add, whoami and sleep over gRPC.",
    shouldDisplay: false
  )

  @Option(help: "The node id.") var id = "peer"
  @Option(help: "The host to listen on.") var host = "127.0.0.1"
  @Option(help: "The port to listen on (0 picks a free one).") var port = 0
  @Option(help: "A YAML node configuration.") var config: String?

  func run() async throws {
    var nodeConfig = try config.map { try NodeConfig.load(file: $0, otherSections: GatewaySettings.sections) } ?? .defaults
    nodeConfig.transport.mode = .grpc
    nodeConfig.transport.host = host
    nodeConfig.transport.port = port
    let node = Node(id: id, config: nodeConfig)
    ExampleMethods.register(on: node)
    try await node.start()
    // Written unbuffered: the parent process reads this line to learn the address.
    try? FileHandle.standardOutput.write(contentsOf: Data("LISTENING \(node.listeningAddress ?? "")\n".utf8))
    // Serve until stdin closes or the process is killed.
    while let line = readLine() {
      if line == "quit" { break }
    }
    await node.stop(gracePeriod: .seconds(1))
  }
}
