import EasyRemote
import Foundation
import Logging
import NodeComm
import Synchronization
import TestSupport
import Testing

/// Seed 000's server API beyond calls: a gateway-wide `maxWorkers`, the blocking `run()`,
/// logging set up by level.
@Suite("Seed 000 server API", .timeLimit(.minutes(2)))
struct SeedServerTests {
  /// Holds callers until released; counts how many are inside.
  final class Hold: Sendable {
    private let state = Mutex((inside: 0, peak: 0, released: false, waiters: [CheckedContinuation<Void, Never>]()))
    private let feed = ChangeFeed()

    /// A tick each time a caller came in.
    func arrivals() -> AsyncStream<Void> { feed.changes() }

    func pass() async {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let go = state.withLock { state -> Bool in
          state.inside += 1
          state.peak = max(state.peak, state.inside)
          if state.released { return true }
          state.waiters.append(continuation)
          return false
        }
        feed.changed()
        if go { continuation.resume() }
      }
      state.withLock { $0.inside -= 1 }
    }

    func release() {
      let waiters = state.withLock { state in
        state.released = true
        defer { state.waiters.removeAll() }
        return state.waiters
      }
      for waiter in waiters { waiter.resume() }
    }

    var inside: Int { state.withLock { $0.inside } }
    var peak: Int { state.withLock { $0.peak } }
  }

  /// A gateway bounded to `maxWorkers` calls, and one node with room for many serving
  /// `hold` (which waits for `hold.release()`): the gateway is what bounds the calls.
  func boundedGateway(_ kind: TransportKind, maxWorkers: Int, queueLimit: Int, hold: Hold) async throws -> Fabric {
    var fabric = try await Fabric.start(kind, maxWorkers: maxWorkers, queueLimit: queueLimit)
    _ = try await fabric.addNode("wide", maxWorkers: 16) { node in
      node.register("hold") { () async -> String in
        await hold.pass()
        return "done"
      }
    }
    return fabric
  }

  @Test("the gateway runs at most maxWorkers calls at once: the next wait in its queue, then are refused busy", arguments: TransportKind.allCases)
  func gatewayMaxWorkers(_ kind: TransportKind) async throws {
    let hold = Hold()
    let fabric = try await boundedGateway(kind, maxWorkers: 2, queueLimit: 1, hold: hold)
    let client = fabric.client()
    let first = (0..<2).map { _ in Task { try await client.execute("hold") as String } }
    #expect(try await until(hold.arrivals()) { hold.inside == 2 })
    let queued = Task { try await client.execute("hold") as String }
    #expect(try await until(fabric.server.changes()) { fabric.server.stats().waiting == 1 })
    #expect(hold.inside == 2)
    let refused = try await expectRemoteError { _ = try await client.execute("add", 1, 2) as Int }
    #expect(refused.code == .busy && refused.message.contains("gateway"), "\(refused)")
    #expect(fabric.server.stats().maxWorkers == 2)

    hold.release()
    for task in first + [queued] { #expect(try await task.value == "done") }
    #expect(hold.peak == 2)
    #expect(try await client.execute("add", 1, 2) as Int == 3)
    await client.close()
    await fabric.stop()
  }

  @Test("a call waiting for a gateway worker past its timeout fails timed_out and holds nothing")
  func waitingCallTimesOut() async throws {
    let hold = Hold()
    let fabric = try await boundedGateway(.memory, maxWorkers: 1, queueLimit: 4, hold: hold)
    let client = fabric.client()
    let holder = Task { try await client.execute("hold") as String }
    #expect(try await until(hold.arrivals()) { hold.inside == 1 })
    let late = try await expectRemoteError { _ = try await client.execute("add", 1, 2, timeout: .milliseconds(300)) as Int }
    #expect(late.code == .timedOut, "\(late)")
    #expect(try await until(fabric.server.changes()) { fabric.server.stats().waiting == 0 })
    hold.release()
    #expect(try await holder.value == "done")
    #expect(try await client.execute("add", 2, 2) as Int == 4)
    await client.close()
    await fabric.stop()
  }

  @Test("run() blocks while the gateway serves and returns, stopped, when its task ends", arguments: TransportKind.allCases)
  func blockingRun(_ kind: TransportKind) async throws {
    let transport = kind.make()
    let server = Server(port: 0, config: .defaults { $0.shutdownGracePeriod = .milliseconds(100) }, transport: transport)
    let running = Task { try await server.run() }
    #expect(try await until(server.changes()) { server.address != nil })
    let address = try #require(server.address)
    let node = ComputeNode(serverAddress: address, nodeID: "n", transport: transport)
    node.register("add") { (a: Int, b: Int) in a + b }
    try await node.start()
    let client = Client(serverAddress: address, transport: transport)
    #expect(try await client.execute("add", 2, 3) as Int == 5)
    #expect(server.isRunning)
    running.cancel()
    try await running.value
    #expect(!server.isRunning)
    await client.close()
    await node.stop()
  }

  @Test("setupLogging sets the process's level once, and later calls change it for every logger")
  func loggingSetup() {
    let before = Logger(label: "easyremote.test.before")
    // Nothing else in this process sets logging up.
    #expect(setupLogging(level: .error))
    var logger = Logger(label: "easyremote.test")
    #expect(logger.logLevel == .error && before.logLevel != .error)
    #expect(setupLogging(level: .debug) == false)
    #expect(logger.logLevel == .debug)
    logger.logLevel = .critical
    setupLogging(level: .trace)
    #expect(logger.logLevel == .critical, "a logger's own level stays its own")
    #expect(Logger(label: "easyremote.test.after").logLevel == .trace)
    setupLogging(level: .warning)
  }
}
