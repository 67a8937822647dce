import TestSupport
import Foundation
import NodeComm
import Synchronization
import Testing

/// Streams on the node layer, run over both transports.
@Suite("Node streams", .timeLimit(.minutes(2)))
struct NodeStreamTests {
  @Test("each item reaches the reader as soon as it is produced", arguments: TransportKind.allCases)
  func itemsArriveAsProduced(kind: TransportKind) async throws {
    let readerGotFirst = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("twoSteps") { _, _, sink in
        try await sink.send(.raw(Data("first".utf8)))
        // The second item is only produced after the reader has the first: a collecting
        // implementation would never get here.
        guard await readerGotFirst.wait(upTo: .seconds(20)) != nil else { throw NodeError(code: .timedOut, message: "reader never saw the first item") }
        try await sink.send(.raw(Data("second".utf8)))
      }
    }) { a, _ in
      var items: [String] = []
      for try await item in try await a.stream("b", "twoSteps", payload: .empty) {
        items.append(item.text)
        if items.count == 1 { readerGotFirst.fire() }
      }
      #expect(items == ["first", "second"])
    }
  }

  @Test("typed streams decode each item; producer errors arrive after the items", arguments: TransportKind.allCases)
  func typedAndErrors(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("count") { (limit: Int, _) in
        AsyncThrowingStream<Int, any Error> { continuation in
          for i in 0..<limit { continuation.yield(i) }
          if limit > 5 { continuation.finish(throwing: NodeError(code: .rejected, message: "too many")) }
          continuation.finish()
        }
      }
    }) { a, _ in
      var numbers: [Int] = []
      for try await n in try await a.stream("b", "count", 5, as: Int.self) { numbers.append(n) }
      #expect(numbers == [0, 1, 2, 3, 4])
      var partial: [Int] = []
      let error = try await expectNodeError {
        for try await n in try await a.stream("b", "count", 8, as: Int.self, serializer: "binary") { partial.append(n) }
      }
      #expect(partial == Array(0..<8))
      #expect(error.code == .rejected)
      #expect(error.message == "too many")
    }
  }

  @Test("a slow reader holds the producer back to the credit window", arguments: TransportKind.allCases)
  func backpressure(kind: TransportKind) async throws {
    let produced = Mutex(0)
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("firehose") { _, _, sink in
        while true {
          try await sink.send(.raw(Data(count: 100)))
          produced.withLock { $0 += 1 }
        }
      }
    }) { a, _ in
      let window = 8
      var read = 0
      for try await _ in try await a.stream("b", "firehose", payload: .empty, window: window) {
        read += 1
        for _ in 0..<50 { await Task.yield() }  // a slow reader: the producer may run ahead meanwhile
        let ahead = produced.withLock { $0 } - read
        #expect(ahead <= window + 1, "the producer ran \(ahead) items ahead of the reader")
        if read == 60 { break }
      }
      #expect(read == 60)
    }
  }

  @Test("breaking out, cancelling or dropping a stream cancels the producer", arguments: TransportKind.allCases)
  func cancellationReachesProducer(kind: TransportKind) async throws {
    let stopped = Signal()
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("forever") { _, _, sink in
        do {
          var i = 0
          while true {
            try await sink.send(try .json(i))  // (held back by the credit window)
            i += 1
          }
        } catch {
          stopped.fire("stopped")
          throw error
        }
      }
    }) { a, _ in
      // Break out of the loop.
      var seen = 0
      for try await _ in try await a.stream("b", "forever", payload: .empty) {
        seen += 1
        if seen == 5 { break }
      }
      #expect(await stopped.wait() == "stopped")
      // Cancel the reading task.
      let reading = Signal()
      let reader = Task {
        for try await _ in try await a.stream("b", "forever", payload: .empty) { reading.fire() }
      }
      #expect(await reading.wait() != nil)
      reader.cancel()
      _ = await reader.result
      #expect(await stopped.wait() == "stopped")
      // Drop a stream without reading it.
      do {
        let dropped = try await a.stream("b", "forever", payload: .empty)
        _ = dropped
      }
      #expect(await stopped.wait() == "stopped")
      // A stream with a timeout.
      let error = try await expectNodeError {
        for try await _ in try await a.stream("b", "forever", payload: .empty, timeout: .milliseconds(300)) {}
      }
      #expect(error.code == .timedOut)
      #expect(await stopped.wait() == "stopped")
    }
  }

  @Test("unknown stream methods fail; plain methods stream one item; streams refuse plain calls", arguments: TransportKind.allCases)
  func methodKinds(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.register("double") { (n: Int, _) in n * 2 }
      b.registerStream("stream") { _, _, sink in try await sink.send(.empty) }
    }) { a, _ in
      let unknown = try await expectNodeError {
        for try await _ in try await a.stream("b", "nope", payload: .empty) {}
      }
      #expect(unknown.code == .methodNotFound)
      var doubled: [Int] = []
      for try await n in try await a.stream("b", "double", 21, as: Int.self) { doubled.append(n) }
      #expect(doubled == [42])
      let plain = try await expectNodeError { _ = try await a.call("b", "stream", payload: .empty) }
      #expect(plain.code == .rejected)
      #expect(plain.message.contains("stream()"))
    }
  }

  @Test("large and small items keep their order", arguments: TransportKind.allCases)
  func largeItemsInOrder(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(
      configureB: { $0.limits.chunkSize = 64 << 10 },
      setUp: { _, b in
        b.registerStream("mixed") { _, _, sink in
          for i in 0..<20 {
            let size = i % 2 == 0 ? 300 << 10 : 10
            var data = patterned(count: size)
            data[0] = UInt8(i)
            try await sink.send(.raw(data))
          }
        }
      }
    ) { a, _ in
      var order: [Int] = []
      for try await item in try await a.stream("b", "mixed", payload: .empty) {
        order.append(Int(item.data[item.data.startIndex]))
        #expect(item.data.count == (order.count % 2 == 1 ? 300 << 10 : 10))
      }
      #expect(order == Array(0..<20))
    }
  }

  @Test("items sent together share frames, arrive in order and in batches within the window", arguments: TransportKind.allCases)
  func batchedItems(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("burst") { _, _, sink in
        try await sink.send(contentsOf: (0..<2000).map { Payload.raw(Data("\($0)".utf8)) })
        for i in 2000..<3000 { try await sink.send(.raw(Data("\(i)".utf8))) }
      }
    }) { a, _ in
      var received: [String] = []
      var largest = 0
      for try await batch in try await a.stream("b", "burst", payload: .empty, window: 16).batches {
        largest = max(largest, batch.count)
        received += batch.map(\.text)
      }
      #expect(received == (0..<3000).map(String.init))
      // A window's worth of items goes out under one credit; all but the first of them wait
      // for the writer together and travel as one frame.
      #expect(largest > 1 && largest <= 16)
      var count = 0
      for try await item in try await a.stream("b", "burst", payload: .empty, window: 16) {
        #expect(item.text == String(count))
        count += 1
      }
      #expect(count == 3000)
    }
  }

  @Test("a second loop over the same stream goes on where the first broke off", arguments: TransportKind.allCases)
  func resumedIteration(kind: TransportKind) async throws {
    try await TestCluster(kind).withPair(setUp: { _, b in
      b.registerStream("count") { (limit: Int, _) in
        AsyncStream<Int> { continuation in
          for i in 0..<limit { continuation.yield(i) }
          continuation.finish()
        }
      }
    }) { a, _ in
      let items = try await a.stream("b", "count", payload: try .json(2000), window: 16)
      var seen: [String] = []
      for try await item in items {
        seen.append(item.text)
        if seen.count == 5 { break }
      }
      for try await batch in items.batches {
        seen += batch.map(\.text)
        if seen.count >= 1000 { break }
      }
      for try await item in items { seen.append(item.text) }
      #expect(seen == (0..<2000).map(String.init), "no item lost or repeated, and credit kept flowing")
    }
  }

  @Test("a producer node that stops ends the stream with an error, not silence", arguments: TransportKind.allCases)
  func producerStops(kind: TransportKind) async throws {
    let cluster = TestCluster(kind)
    let a = cluster.node("a")
    let b = cluster.node("b")
    b.registerStream("forever") { _, _, sink in
      while true { try await sink.send(.empty) }  // (held back by the credit window)
    }
    try await b.start()
    try await a.start()
    try await a.connect(to: "b", at: try #require(b.listeningAddress))
    let flowing = Signal()
    let reader = Task {
      var count = 0
      do {
        for try await _ in try await a.stream("b", "forever", payload: .empty) {
          count += 1
          if count == 1 { flowing.fire() }
        }
        return (count, NodeError?.none)
      } catch {
        return (count, error as? NodeError)
      }
    }
    // Stop the producer once items flow (however loaded the machine is).
    #expect(await flowing.wait() != nil)
    await b.stop(gracePeriod: .milliseconds(100))
    let (count, error) = await reader.value
    #expect(count > 0)
    #expect(error?.code == .nodeStopping || error?.code == .connectionLost, "\(String(describing: error))")
    await a.stop(gracePeriod: .zero)
  }
}
