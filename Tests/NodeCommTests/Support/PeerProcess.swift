import Foundation

/// An `easyremote peer` in a child process, for tests that kill a real peer.
final class PeerProcess: Sendable {
  let process: Process
  let address: String

  private init(process: Process, address: String) {
    self.process = process
    self.address = address
  }

  /// The directory holding the built products (the test bundle sits beside them).
  static var productsDirectory: URL {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0])
    var directory = bundle.deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("easyremote").path),
      directory.path != "/"
    {
      directory = directory.deletingLastPathComponent()
    }
    return directory
  }

  /// Starts the peer and waits (off the cooperative thread pool) for its address.
  static func start(id: String) async throws -> PeerProcess {
    try await withCheckedThrowingContinuation { continuation in
      Thread.detachNewThread {
        continuation.resume(with: Result { try startBlocking(id: id) })
      }
    }
  }

  private static func startBlocking(id: String) throws -> PeerProcess {
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent("easyremote")
    process.arguments = ["peer", "--id", id, "--port", "0"]
    let output = Pipe()
    process.standardOutput = output
    process.standardInput = Pipe()
    try process.run()
    // The first line names the bound address.
    var line = Data()
    let handle = output.fileHandleForReading
    while true {
      let byte = handle.readData(ofLength: 1)
      if byte.isEmpty || byte == Data("\n".utf8) { break }
      line.append(byte)
    }
    let text = String(decoding: line, as: UTF8.self)
    guard text.hasPrefix("LISTENING ") else {
      process.terminate()
      throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "peer said: \(text)"])
    }
    return PeerProcess(process: process, address: String(text.dropFirst("LISTENING ".count)))
  }

  func kill() {
    if process.isRunning {
      Foundation.kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
    }
  }
}
