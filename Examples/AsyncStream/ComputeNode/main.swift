// The compute node of the async & streaming example: serves the seed 002 functions.
// Terminal 2:
//   swift run async-stream-node [gateway host:port]
import EasyRemote
import ExampleFunctions
import Foundation

let gateway = CommandLine.arguments.dropFirst().first ?? "127.0.0.1:8080"
let node = ComputeNode(serverAddress: gateway, nodeID: "async-stream-node", maxWorkers: 8)
SeedExamples.register(on: node)
try await node.start()
print("compute node joined \(gateway) with \(node.functionCount) functions")
fflush(nil)  // show the line at once, also when stdout is a pipe
try await node.serve()
