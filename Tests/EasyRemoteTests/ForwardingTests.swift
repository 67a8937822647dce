import EasyRemote
import Foundation
import NodeComm
import TestSupport
import Testing

/// Calls for functions served only behind other gateways (``Server/forwarding(to:)``): which
/// gateway gets them. (Forwarding itself, with the task center's directory over PostgreSQL,
/// is tested end to end in `MultiGatewayTests`.)
@Suite("Forwarding to other gateways", .timeLimit(.minutes(2)))
struct ForwardingTests {
  /// Peers as a fixed list (the task center's `GatewayDirectory` reads them from the store).
  struct FixedPeers: GatewayPeers {
    let peers: [PeerGateway]
    func gateways(serving function: String, node target: String?) -> [PeerGateway] { function == "hold" ? peers : [] }
    func serve(_ function: String) -> Bool { function == "hold" }
    func functions() -> [FunctionInfo] { [] }
    func nodes() -> [NodeInfo] { [] }
  }

  /// Over gRPC on loopback (three gateways cannot share one memory transport: each is `gateway`).
  @Test("calls go where the fewest forwarded calls per worker run: a gateway with four times the workers gets most")
  func weightedByWorkers() async throws {
    let kind = TransportKind.grpc
    let transport = kind.make()
    var small = try await Fabric.start(kind, transport: transport)
    var large = try await Fabric.start(kind, transport: transport)
    let front = try await Fabric.start(kind, transport: transport)
    let smallNode = try await small.addNode("small-node", maxWorkers: 1)
    let largeNode = try await large.addNode("large-node", maxWorkers: 4)
    front.server.forwarding(
      to: FixedPeers(peers: [
        PeerGateway(address: small.address, workers: 1), PeerGateway(address: large.address, workers: 4),
      ]))
    let client = front.client(timeout: .seconds(60))
    // Ten calls at once, all held on the nodes until the last has arrived: taken in turn, each
    // gateway would get five; by load, the larger gets about eight.
    let arrivals = (smallNode.changes(), largeNode.changes())
    let answers = try await withThrowingTaskGroup(of: String.self) { group in
      for _ in 0..<10 { group.addTask { try await client.execute("hold", timeout: .seconds(60)) as String } }
      let held = try await until(arrivals.0, arrivals.1) {
        [smallNode, largeNode].map { $0.stats().running + $0.stats().queued }.reduce(0, +) == 10
      }
      #expect(held)
      small.release.open()
      large.release.open()
      var answers: [String] = []
      for try await answer in group { answers.append(answer) }
      return answers
    }
    let counts = Dictionary(answers.map { ($0, 1) }, uniquingKeysWith: +)
    #expect(counts.values.reduce(0, +) == 10)
    #expect(counts["large-node", default: 0] >= 7, "\(counts)")
    #expect(front.server.stats().totalRequests >= 10, "counted at the front gateway too")
    await client.close()
    await front.stop()
    await small.stop()
    await large.stop()
  }
}
