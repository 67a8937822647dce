import Foundation
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
      try await Task.sleep(for: .milliseconds(Int64(request.seconds * 1000)))
      return request.seconds
    }
  }
}
