import EasyRemote
import Foundation
import Testing

@Suite("Routed payloads", .timeLimit(.minutes(1)))
struct RoutedPayloadTests {
  @Test("1 MiB of bytes goes through the gateway and back intact, by name or to a named node", arguments: TransportKind.allCases)
  func bytes(_ kind: TransportKind) async throws {
    var fabric = try await Fabric.start(kind)
    for id in ["a", "b"] {
      _ = try await fabric.addNode(id) { node in
        node.register("reverse", parameters: ["data"]) { (data: Data) in Data(data.reversed()) }
        node.register("split", parameters: ["data", "parts"]) { (data: Data, parts: Int) -> [Data] in
          let size = (data.count + parts - 1) / parts
          return stride(from: 0, to: data.count, by: size).map { Data(data[$0..<min($0 + size, data.count)]) }
        }
        node.registerStream("pieces", parameters: ["data", "size"]) { (data: Data, size: Int) -> AsyncStream<Data> in
          AsyncStream<Data> { continuation in
            for start in stride(from: 0, to: data.count, by: size) {
              continuation.yield(Data(data[start..<min(start + size, data.count)]))
            }
            continuation.finish()
          }
        }
      }
    }
    let client = fabric.client()
    let bytes = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let back: Data = try await client.execute("reverse", bytes)
    #expect(back == Data(bytes.reversed()))
    let targeted: Data = try await client.execute("reverse", bytes, node: "b")
    #expect(targeted == Data(bytes.reversed()))
    // Bytes travel as MessagePack bin; a JSON caller (the command line, HTTP) gets base64.
    let small = Data([1, 2, 3, 250])
    let viaJSON = try await client.executeJSON("reverse", args: [.string(small.base64EncodedString())])
    #expect(viaJSON == .string(Data(small.reversed()).base64EncodedString()))
    let viaBytes = try await client.executeJSON("reverse", args: [.bytes(small)])
    #expect(viaBytes == .bytes(Data(small.reversed())))
    let pairs: [Data] = try await client.execute("split", bytes, 3)
    #expect(pairs.count == 3 && pairs.reduce(Data(), +) == bytes)
    var streamed = Data()
    for try await piece in try await client.stream("pieces", bytes, 4096, as: Data.self) { streamed += piece }
    #expect(streamed == bytes)
    let who: String = try await client.execute("whoami", node: "a")
    #expect(who == "a")
    await #expect(throws: EasyRemoteError.self) {
      let _: Data = try await client.execute("reverse", bytes, node: "nobody")
    }
    await client.close()
    await fabric.stop()
  }
}
