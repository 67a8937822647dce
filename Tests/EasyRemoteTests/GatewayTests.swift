import EasyRemote
import Foundation
import NodeComm
import Synchronization
import TestSupport
import Testing

/// The gateway, compute nodes and clients, over the memory transport and real gRPC on loopback.
@Suite("Gateway, nodes and clients", .timeLimit(.minutes(2)))
struct GatewayTests {
  @Test("typed calls with positional and keyword arguments; results decode", arguments: TransportKind.allCases)
  func execute(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    _ = try await fabric.addNode("n1")
    let client = fabric.client()
    let sum: Int = try await client.execute("add", 2, 3)
    #expect(sum == 5)
    let scaled: Point = try await client.execute("scale", Point(x: 1, y: -2), 2.5)
    #expect(scaled == Point(x: 2.5, y: -5))
    let byName: Int = try await client.execute("add", kwargs: ["a": .int(40), "b": .int(2)])
    #expect(byName == 42)
    let mixed: Int = try await client.execute("add", 1, kwargs: ["b": .int(9)])
    #expect(mixed == 10)
    let optionalOmitted: String = try await client.execute("greet", "ada")
    #expect(optionalOmitted == "hello, ada!")
    let optionalGiven: String = try await client.execute("greet", "ada", "?")
    #expect(optionalGiven == "hello, ada?")
    let who: String = try await client.execute("whoami")
    #expect(who == "n1")
    let json = try await client.executeJSON("add", args: [.int(1), .int(1)])
    #expect(json == .int(2))
    #expect(fabric.server.nodeCount == 1)
    #expect(fabric.server.stats().totalRequests >= 8)
    await client.close()
    await fabric.stop()
  }

  @Test("the gateway's event stream: nodes connecting and leaving, extensions' events, the end at stop", arguments: TransportKind.allCases)
  func events(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    let events = fabric.server.events()
    var iterator = events.makeAsyncIterator()
    let node = try await fabric.addNode("n1", maxWorkers: 3)
    let connected = try #require(await iterator.next())
    #expect(connected.name == "node_connected")
    guard case .object(let data) = connected.data else { Issue.record("no data: \(connected)"); return }
    #expect(data["node_id"] == .string("n1") && data["max_workers"] == .int(3))
    #expect(data["functions"].map { "\($0)".contains("add") } == true)

    // An extension's event goes to the same stream, encoded once.
    struct Custom: Encodable { var when: Date }
    fabric.server.publish("custom_thing", Custom(when: Date(timeIntervalSince1970: 0)))
    let custom = try #require(await iterator.next())
    #expect(custom.name == "custom_thing")
    #expect(String(decoding: custom.json, as: UTF8.self) == #"{"data":{"when":"1970-01-01T00:00:00Z"},"event":"custom_thing"}"#)

    await node.stop()
    let left = try #require(await iterator.next())
    #expect(left.name == "node_disconnected")
    guard case .object(let leftData) = left.data else { Issue.record("no data: \(left)"); return }
    #expect(leftData["node_id"] == .string("n1"))
    #expect(leftData["reason"] != nil)
    await fabric.stop()
    #expect(await iterator.next() == nil, "the stream ends when the gateway stops")
  }

  @Test("a streaming function called plainly answers all its items as one list (seed 002)", arguments: TransportKind.allCases)
  func executeStream(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    _ = try await fabric.addNode("n1")
    let client = fabric.client()
    let all: [Int] = try await client.execute("count", 5, 0)
    #expect(all == [0, 1, 2, 3, 4])
    let none: [Int] = try await client.execute("count", 0, 0)
    #expect(none == [])
    let json = try await client.executeJSON("count", args: [.int(3), .int(0)])
    #expect(json == .array([.int(0), .int(1), .int(2)]))
    // Its items can still be streamed one by one.
    var streamed: [Int] = []
    for try await item in try await client.stream("count", 3, 0, as: Int.self) { streamed.append(item) }
    #expect(streamed == [0, 1, 2])
    await client.close()
    await fabric.stop()
  }

  @Test("wrong arguments name the parameter; unknown functions and remote errors are typed", arguments: TransportKind.allCases)
  func typedErrors(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    _ = try await fabric.addNode("n1")
    let client = fabric.client()
    let wrongType = try await expectRemoteError { let _: Int = try await client.execute("add", 1, "two") }
    #expect(wrongType.code == .invalidArguments)
    #expect(wrongType.message.contains("'b'"))
    #expect(wrongType.message.contains("Int"))
    let tooMany = try await expectRemoteError { let _: Int = try await client.execute("add", 1, 2, 3) }
    #expect(tooMany.code == .invalidArguments)
    #expect(tooMany.message.contains("takes 2 arguments, got 3"))
    let missing = try await expectRemoteError { let _: Int = try await client.execute("add", 1) }
    #expect(missing.message.contains("missing its argument 'b'"))
    let unknownKeyword = try await expectRemoteError {
      let _: Int = try await client.execute("add", 1, 2, kwargs: ["c": .int(3)])
    }
    #expect(unknownKeyword.message.contains("no parameter named 'c'"))
    let unknown = try await expectRemoteError { let _: Int = try await client.execute("nope") }
    #expect(unknown.code == .functionNotFound)
    #expect(unknown.function == "nope")
    let remote = try await expectRemoteError { let _: Int = try await client.execute("fail", "hot") }
    #expect(remote.code == .remoteExecutionFailed)
    #expect(remote.message == "the GPU is too hot")
    #expect(remote.remoteType?.contains("Overheated") == true)
    let wrongResult = try await expectRemoteError { let _: String = try await client.execute("add", 1, 2) }
    #expect(wrongResult.code == .invalidResult)
    let timeout = try await expectRemoteError {
      let _: String = try await client.execute("hold", timeout: .milliseconds(300))
    }
    #expect(timeout.code == .timedOut)
    // After all these the link and the fabric still work.
    let sum: Int = try await client.execute("add", 1, 2)
    #expect(sum == 3)
    #expect(fabric.server.stats().failedRequests >= 7)
    await client.close()
    await fabric.stop()
  }

  @Test("functions are listed with their parameters, nodes and availability", arguments: TransportKind.allCases)
  func listing(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    _ = try await fabric.addNode("n1")
    _ = try await fabric.addNode("n2")
    let client = fabric.client()
    let functions = try await client.listFunctions()
    #expect(functions.map(\.name).contains("add"))
    let add = try await client.functionInfo("add")
    #expect(add.parameters == ["a", "b"])
    #expect(add.description == "Adds two integers")
    #expect(add.nodes == ["n1", "n2"])
    #expect(add.available)
    #expect(!add.streaming)
    #expect(try await client.functionInfo("count").streaming)
    let missing = try await expectRemoteError { _ = try await client.functionInfo("nope") }
    #expect(missing.code == .functionNotFound)
    let health = try await healthCheck(fabric.address, transport: fabric.transport)
    #expect(health == HealthReport(status: "healthy", nodes: 2, functions: functions.count))
    await client.close()
    await fabric.stop()
  }

  @Test("calls spread over the nodes sharing a function; a call can name its node", arguments: TransportKind.allCases)
  func balancing(_ kind: TransportKind) async throws {
    for balancing in [Server.Balancing.leastInFlight, .roundRobin] {
      var fabric = try await Fabric.start(kind, balancing: balancing)
      let n1 = try await fabric.addNode("n1")
      let n2 = try await fabric.addNode("n2")
      let client = fabric.client()
      // Forty calls held on the nodes at once, then let go: each was routed while the others
      // were in flight.
      let arrivals = (n1.changes(), n2.changes())
      let served = try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<40 { group.addTask { try await client.execute("hold") } }
        let held = try await until(arrivals.0, arrivals.1) {
          [n1, n2].map { $0.stats().running + $0.stats().queued }.reduce(0, +) == 40
        }
        #expect(held)
        fabric.release.open()
        return try await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
      }
      #expect(served["n1", default: 0] >= 5, "\(served)")
      #expect(served["n2", default: 0] >= 5, "\(served)")
      #expect(n1.stats().executions + n2.stats().executions == 40)
      let pinned: String = try await client.execute("whoami", node: "n2")
      #expect(pinned == "n2")
      let absent = try await expectRemoteError { let _: String = try await client.execute("whoami", node: "n9") }
      #expect(absent.code == .functionNotFound)
      await client.close()
      await fabric.stop()
    }
  }

  @Test("at most maxWorkers run at once; beyond the queue calls are refused as busy", arguments: TransportKind.allCases)
  func maxWorkers(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    let small = try await fabric.addNode("small", maxWorkers: 2, queueLimit: 2)
    let client = fabric.client()
    let changes = small.changes()
    let refusals = Recorder<EasyRemoteError>()
    let (refused, tellRefused) = AsyncStream.makeStream(of: Void.self)
    let outcomes = await withTaskGroup(of: Result<String, EasyRemoteError>.self) { group in
      for _ in 0..<6 {
        group.addTask {
          do { return .success(try await client.execute("hold")) } catch let error as EasyRemoteError {
            refusals.append(error)
            tellRefused.yield()
            return .failure(error)
          } catch { return .failure(EasyRemoteError(code: .internalError, message: "\(error)")) }
        }
      }
      // Two run, two wait, and the other two were refused: then all are let go.
      let full = try? await until(changes, refused) { small.stats().running == 2 && small.stats().queued == 2 && refusals.all.count == 2 }
      #expect(full == true, "\(small.stats()) \(refusals.all)")
      #expect(small.stats().running == 2, "never more than maxWorkers")
      fabric.release.open()
      return await group.reduce(into: []) { $0.append($1) }
    }
    let succeeded = outcomes.filter { if case .success = $0 { true } else { false } }.count
    let busy = outcomes.filter { if case .failure(let e) = $0 { e.code == .busy } else { false } }.count
    #expect(succeeded == 4)  // 2 running + 2 queued
    #expect(busy == 2, "\(outcomes)")
    await client.close()
    await fabric.stop()
  }

  @Test("a node lost mid-call: idempotent calls retry elsewhere, others fail fast with node_lost", arguments: TransportKind.allCases)
  func nodeLost(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    let doomed = try await fabric.addNode("doomed")
    let client = fabric.client()
    // Only the doomed node serves at first, so the call lands there.
    let started = doomed.changes()
    let plain = Task { () async throws -> String in try await client.execute("hold", timeout: .seconds(60)) }
    #expect(try await until(started) { doomed.stats().running == 1 })
    let start = ContinuousClock.now
    await doomed.stop()
    let lost = try await expectRemoteError { _ = try await plain.value }
    #expect(lost.code == .nodeLost)
    #expect(ContinuousClock.now - start < .seconds(30), "failed when the node went, not at the call's end")

    let doomed2 = try await fabric.addNode("doomed2")
    // Pin the first attempt by having only doomed2 at first, then add a survivor.
    let startedAgain = doomed2.changes()
    let retried = Task { () async throws -> String in try await client.execute("holdIdempotent") }
    #expect(try await until(startedAgain) { doomed2.stats().running == 1 })
    let survivor = try await fabric.addNode("survivor")
    let retriedThere = survivor.changes()
    await doomed2.stop()
    // Retried on the survivor (it holds it there too), then let go.
    #expect(try await until(retriedThere) { survivor.stats().running == 1 })
    fabric.release.open()
    #expect(try await retried.value == "survivor")
    await client.close()
    await fabric.stop()
  }

  @Test("streams deliver items as produced; breaking out cancels the node's producer", arguments: TransportKind.allCases)
  func streaming(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    let stopped = Signal()
    _ = try await fabric.addNode("streamer") { node in
      node.registerStream("ticks", parameters: []) { () in
        // (What the reader does not take is dropped: a producer that never ends, in bounded memory.)
        AsyncThrowingStream<Int, any Error>(bufferingPolicy: .bufferingOldest(64)) { continuation in
          let task = Task {
            var i = 0
            while !Task.isCancelled {
              continuation.yield(i)
              i += 1
              await Task.yield()
            }
            stopped.fire()
            continuation.finish()
          }
          continuation.onTermination = { _ in task.cancel() }
        }
      }
    }
    let client = fabric.client()
    var numbers: [Int] = []
    for try await n in try await client.stream("count", 5, 0, as: Int.self) { numbers.append(n) }
    #expect(numbers == [0, 1, 2, 3, 4])
    var ticks = 0
    for try await _ in try await client.stream("ticks", as: Int.self) {
      ticks += 1
      if ticks == 10 { break }
    }
    // The producer ticks forever unless cancelled; how fast the cancel arrives is measured
    // by the bench (routed.stream.cancel_to_node), here only that it does.
    #expect(await stopped.wait() != nil)
    let unknown = try await expectRemoteError {
      for try await _ in try await client.stream("nope", as: Int.self) {}
    }
    #expect(unknown.code == .functionNotFound)
    await client.close()
    await fabric.stop()
  }

  @Test("a node comes back by itself when the gateway restarts", arguments: TransportKind.allCases)
  func gatewayRestart(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    let port = kind == .grpc ? try #require(Int(fabric.address.split(separator: ":").last ?? "")) : 0
    let node = try await fabric.addNode("faithful")
    #expect(node.isConnected)
    let changes = node.changes()
    await fabric.server.stop()
    #expect(try await until(changes) { !node.isConnected })
    let again = try await Fabric.start(kind, port: port, transport: fabric.transport)
    let client = again.client()
    #expect(try await until(again.server.changes()) { again.server.nodeCount == 1 })
    let answer: Int = try await client.execute("add", 20, 22)
    #expect(answer == 42)
    #expect(node.isConnected)
    await client.close()
    await node.stop()
    await again.stop()
  }

  @Test("10,000 concurrent calls from 8 clients are all answered correctly", arguments: TransportKind.allCases)
  func manyCalls(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    _ = try await fabric.addNode("w1", maxWorkers: 64)
    _ = try await fabric.addNode("w2", maxWorkers: 64)
    let clients = (0..<8).map { _ in fabric.client(timeout: .seconds(60)) }
    let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
      for (index, client) in clients.enumerated() {
        group.addTask {
          try await withThrowingTaskGroup(of: Bool.self) { calls in
            for i in 0..<1250 {
              calls.addTask {
                let sum: Int = try await client.execute("add", index * 10_000, i)
                return sum == index * 10_000 + i
              }
            }
            return try await calls.reduce(0) { $0 + ($1 ? 0 : 1) }
          }
        }
      }
      return try await group.reduce(0, +)
    }
    #expect(wrong == 0)
    #expect(fabric.server.stats().totalRequests == 10_000)
    for client in clients { await client.close() }
    await fabric.stop()
  }
}
