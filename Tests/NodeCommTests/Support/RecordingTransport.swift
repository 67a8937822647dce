import NodeComm
import Synchronization

/// A real transport (memory or gRPC) whose channels also note every frame they write, so a
/// test can see what went on the wire.
final class RecordingTransport: Transport {
  let base: any Transport
  private let written = Mutex<[Frame]>([])

  init(_ base: any Transport) { self.base = base }

  var frames: [Frame] { written.withLock { $0 } }

  func note(_ frames: [Frame]) { written.withLock { $0.append(contentsOf: frames) } }

  func listen(
    host: String, port: Int, name: String, accept: @escaping @Sendable (any LinkChannel) async -> Void
  ) async throws -> any TransportListener {
    try await base.listen(host: host, port: port, name: name) { channel in
      await accept(RecordingChannel(base: channel, transport: self))
    }
  }

  func dial(_ address: String) async throws -> any LinkChannel {
    RecordingChannel(base: try await base.dial(address), transport: self)
  }
}

private struct RecordingChannel: LinkChannel {
  let base: any LinkChannel
  let transport: RecordingTransport

  func write(_ frames: [Frame]) async throws {
    transport.note(frames)
    try await base.write(frames)
  }

  func read(_ receive: @escaping @Sendable ([Frame]) -> Void) async throws { try await base.read(receive) }
  func close() async { await base.close() }
  var remoteDescription: String { base.remoteDescription }
}
