import Foundation
@testable import NodeComm
import Testing

/// Pieces of large payloads go out only as fast as the peer acknowledges them, so that a
/// small frame queued behind a large transfer waits for at most one window of pieces.
@Suite("Bulk acknowledgement window")
struct BulkWindowTests {
  private let chunk = 1024

  private func large(_ id: UInt64, bytes: Int) -> Frame {
    Frame(id: id, type: .request, method: "echo", payload: Data(count: bytes), serializer: "raw")
  }

  private func small(_ id: UInt64) -> Frame {
    Frame(id: id, type: .request, method: "ping", payload: Data("x".utf8), serializer: "raw")
  }

  @Test("with an acknowledging peer, pieces stop at the window while small frames keep going")
  func window() {
    var state = Link.State(lastReceived: .zero)
    state.outbox.peerAcksPieces = true
    state.outbox.bulkWindow = 2 * chunk
    _ = state.enqueue(large(1, bytes: 8 * chunk), chunkSize: chunk)
    let first = state.takeBatch(budget: 1 << 20) ?? []
    #expect(first.map(\.chunk?.index) == [0, 1])
    #expect(state.outbox.bulkUnacked == 2 * chunk)
    #expect(state.takeBatch(budget: 1 << 20) == nil, "no piece beyond the window")

    _ = state.enqueue(small(2), chunkSize: chunk)
    #expect(state.takeBatch(budget: 1 << 20)?.map(\.method) == ["ping"], "small frames are not held back")

    state.outbox.bulkUnacked -= chunk  // the peer acknowledged one piece
    #expect(state.takeBatch(budget: 1 << 20)?.map(\.chunk?.index) == [2])
    state.closing = true  // closing sends the rest without waiting
    #expect(state.takeBatch(budget: 1 << 20)?.map(\.chunk?.index) == [3, 4, 5, 6, 7])
  }

  @Test("a peer that does not acknowledge (an older node) gets pieces as before")
  func olderPeer() {
    var state = Link.State(lastReceived: .zero)
    state.outbox.bulkWindow = 2 * chunk
    _ = state.enqueue(large(1, bytes: 8 * chunk), chunkSize: chunk)
    #expect(state.takeBatch(budget: 1 << 20)?.count == 8)
    #expect(state.outbox.bulkUnacked == 0)
  }
}
