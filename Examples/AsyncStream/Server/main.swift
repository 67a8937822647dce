// The gateway of the async & streaming example. Terminal 1:
//   swift run async-stream-server [port]
import EasyRemote
import Foundation

let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8080
let server = Server(port: port)
try await server.start()
print("gateway listening on \(server.address ?? "?")")
fflush(nil)  // show the line at once, also when stdout is a pipe
await server.waitUntilStopped()
