import EasyRemote
import Foundation
import Testing

@Suite("Routed payloads", .timeLimit(.minutes(1)))
struct RoutedPayloadTests {
  @Test("1 MiB of bytes goes through the gateway and back intact, by name or to a named node")
  func bytes() async throws {
    var fabric = try await Fabric.start()
    for id in ["a", "b"] {
      _ = try await fabric.addNode(id) { node in
        node.register("reverse", parameters: ["data"]) { (data: Data) in Data(data.reversed()) }
      }
    }
    let client = fabric.client()
    let bytes = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let back: Data = try await client.execute("reverse", bytes)
    #expect(back == Data(bytes.reversed()))
    let targeted: Data = try await client.execute("reverse", bytes, node: "b")
    #expect(targeted == Data(bytes.reversed()))
    let who: String = try await client.execute("whoami", node: "a")
    #expect(who == "a")
    await #expect(throws: EasyRemoteError.self) {
      let _: Data = try await client.execute("reverse", bytes, node: "nobody")
    }
    await client.close()
    await fabric.stop()
  }
}
