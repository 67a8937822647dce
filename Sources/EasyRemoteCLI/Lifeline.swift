import Foundation
import ServiceLifecycle

/// `easyremote node --lifeline`: the agent's stdin is its SSH session. The first line is the
/// gateway's token (so it never shows in a process listing); the end of stdin — the gateway
/// stopping the agent, or the SSH connection dropping — stops the node.
final class Lifeline: Service, Sendable {
  let token: String?

  init() {
    let line = readLine(strippingNewline: true)
    token = line.flatMap { $0.isEmpty ? nil : $0 }
  }

  /// Returns when stdin ends.
  func run() async throws {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
          let count = read(0, &buffer, buffer.count)
          if count < 0 && errno == EINTR { continue }
          if count <= 0 { break }
        }
        continuation.resume()
      }
    }
  }
}
