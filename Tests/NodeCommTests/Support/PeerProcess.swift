import Foundation
import TestSupport

/// An `easyremote peer` in a child process (dies with the test process), for tests that kill
/// a real peer.
struct PeerProcess: Sendable {
  let program: ChildProgram
  /// The `host:port` it listens on (its first line: `LISTENING host:port`).
  let address: String

  static func start(id: String) async throws -> PeerProcess {
    let program = try await ChildProgram.launch(
      [ChildProgram.product().path, "peer", "--id", id, "--port", "0"],
      environment: ProcessInfo.processInfo.environment, readyPrefix: "LISTENING ", holdStdin: true)
    return PeerProcess(program: program, address: String(program.readyLine.dropFirst("LISTENING ".count)))
  }

  /// SIGKILL; returns once it is gone.
  func kill() async { await program.end(SIGKILL) }
}
