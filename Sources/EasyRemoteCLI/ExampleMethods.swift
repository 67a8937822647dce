import Foundation
import EasyRemoteCore
import NodeComm

/// Methods every demo and test peer serves.
enum ExampleMethods {
  struct SleepRequest: Codable {
    var seconds: Double
  }

  static func register(on node: Node) {
    node.register("echo") { payload, _ in payload }
    node.register("add") { (numbers: [Double], _) in numbers.reduce(0, +) }
    node.register("whoami") { (_: Empty, context) in "\(context.callerID) -> \(node.id)" }
    node.register("sleep") { (request: SleepRequest, _) in
      let seconds = try InputBounds.check(request.seconds, InputBounds.waitSeconds, field: "seconds")
      try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
      return request.seconds
    }
  }
}
