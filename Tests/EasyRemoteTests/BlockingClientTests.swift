import EasyRemote
import Foundation
import Synchronization
import Testing

@Suite("Blocking client", .timeLimit(.minutes(1)))
struct BlockingClientTests {
  /// Runs `body` on a plain thread, as a script would, and hands back what it returns.
  func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      Thread.detachNewThread {
        do {
          continuation.resume(returning: try body())
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  @Test("calls, streams and errors from a plain thread")
  func blocking() async throws {
    var fabric = try await Fabric.start(.grpc)  // BlockingClient(serverAddress:) is the gRPC edge
    _ = try await fabric.addNode("n1")
    let address = fabric.address
    let (sum, items, functions) = try await onThread { () throws -> (Int, [Int], Int) in
      let client = BlockingClient(serverAddress: address)
      defer { client.close() }
      let sum: Int = try client.execute("add", 20, 22)
      let items = Mutex<[Int]>([])
      try client.stream("count", 4, 1, as: Int.self) { item in items.withLock { $0.append(item) } }
      return (sum, items.withLock { $0 }, try client.listFunctions().count)
    }
    #expect(sum == 42)
    #expect(items == [0, 1, 2, 3])
    #expect(functions >= 5)

    let failure = try await onThread { () -> EasyRemoteError? in
      let client = BlockingClient(serverAddress: address)
      defer { client.close() }
      do {
        let _: Int = try client.execute("nope")
        return nil
      } catch {
        return error as? EasyRemoteError
      }
    }
    #expect(failure?.code == .functionNotFound)
    await fabric.stop()
  }
}
