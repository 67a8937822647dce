import Foundation
@testable import NodeComm
import Testing

/// How the link's outbox gathers stream items that are ready together into one frame.
@Suite("Stream item batching")
struct StreamBatchingTests {
  private let chunk = 1 << 20

  private func item(_ stream: UInt64, _ text: String, serializer: String = "raw") -> Frame {
    Frame(type: .streamItem, payload: Data(text.utf8), serializer: serializer, correlationID: stream)
  }

  @Test("items of one stream waiting together share a frame; anything between them starts a new one")
  func coalescing() {
    var state = Link.State(lastReceived: .zero)
    state.outbox.peerTakesItemBatches = true
    _ = state.enqueue(item(1, "a"), chunkSize: chunk)
    _ = state.enqueue(item(1, "b"), chunkSize: chunk)
    _ = state.enqueue(item(2, "x"), chunkSize: chunk)
    _ = state.enqueue(item(2, "y", serializer: "json"), chunkSize: chunk)
    _ = state.enqueue(Frame(type: .credit, correlationID: 9, credit: 4), chunkSize: chunk)
    _ = state.enqueue(item(1, "c"), chunkSize: chunk)
    _ = state.enqueue(item(1, "d"), chunkSize: chunk)
    let batch = state.takeBatch(budget: chunk) ?? []
    #expect(batch.map(\.type) == [.streamItem, .streamItem, .streamItem, .credit, .streamItem])
    #expect(batch[0].payload == Data("a".utf8) && batch[0].moreItems == [Data("b".utf8)])
    #expect(batch[1].moreItems.isEmpty && batch[2].moreItems.isEmpty)
    #expect(batch[4].payload == Data("c".utf8) && batch[4].moreItems == [Data("d".utf8)])
    // The writer took them: the next item starts a frame of its own.
    _ = state.enqueue(item(1, "e"), chunkSize: chunk)
    #expect(state.takeBatch(budget: chunk)?.map(\.moreItems) == [[]])
  }

  @Test("a frame of items carries at most 64 KiB of payload")
  func sizeBound() {
    var state = Link.State(lastReceived: .zero)
    state.outbox.peerTakesItemBatches = true
    for _ in 0..<10 {
      _ = state.enqueue(Frame(type: .streamItem, payload: Data(count: 20 << 10), serializer: "raw", correlationID: 1), chunkSize: chunk)
    }
    let batch = state.takeBatch(budget: chunk) ?? []
    #expect(batch.map(\.itemCount) == [3, 3, 3, 1])
  }

  @Test("an item behind a large item's pieces waits behind them, not in an earlier frame")
  func behindPieces() {
    var state = Link.State(lastReceived: .zero)
    state.outbox.peerTakesItemBatches = true
    _ = state.enqueue(item(1, "small"), chunkSize: 1024)
    _ = state.enqueue(Frame(type: .streamItem, payload: Data(count: 4096), serializer: "raw", correlationID: 1), chunkSize: 1024)
    _ = state.enqueue(item(1, "after"), chunkSize: 1024)
    var sizes: [Int] = []
    while let batch = state.takeBatch(budget: 1 << 20) {
      for frame in batch { sizes.append(frame.payload.count + frame.moreItems.count * 1000) }
    }
    // "small" alone, four pieces of the large item, then "after".
    #expect(sizes == [5, 1024, 1024, 1024, 1024, 5])
  }

  @Test("toward a peer that does not read batched items (an older node) each item keeps its frame")
  func olderPeer() {
    var state = Link.State(lastReceived: .zero)
    for text in ["a", "b", "c"] { _ = state.enqueue(item(1, text), chunkSize: chunk) }
    #expect(state.takeBatch(budget: chunk)?.map(\.itemCount) == [1, 1, 1])
  }

  @Test("a batch stays within its budget however many large frames wait in the outbox")
  func boundedBatches() {
    var state = Link.State(lastReceived: .zero)
    for id in 1...10 {
      _ = state.enqueue(Frame(id: UInt64(id), type: .request, payload: Data(count: 900 << 10)), chunkSize: chunk)
    }
    var sizes: [Int] = []
    while let batch = state.takeBatch(budget: 2 << 20) { sizes.append(batch.count) }
    #expect(sizes == [2, 2, 2, 2, 2])
  }
}
