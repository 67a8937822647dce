import Foundation
import NodeComm
import NodeCommGRPC
import Testing

/// Deflate on links: negotiated in HELLO, chosen per method or serializer, bounded inflating.
@Suite("Payload compression", .timeLimit(.minutes(2)))
struct CompressionTests {
  /// Two nodes whose written frames are recorded; `a` dials `b`.
  func withPair(
    _ kind: TransportKind, a configureA: (inout NodeConfig) -> Void, b configureB: (inout NodeConfig) -> Void,
    setUp: (Node) -> Void, _ body: (Node, RecordingTransport, RecordingTransport) async throws -> Void
  ) async throws {
    let memory = MemoryTransport()
    func make(_ id: String, _ configure: (inout NodeConfig) -> Void) -> (Node, RecordingTransport) {
      var config = NodeConfig.defaults
      config.transport = TransportConfig(mode: kind == .grpc ? .grpc : .memory, host: "127.0.0.1", port: 0)
      config.shutdownGracePeriod = .zero
      configure(&config)
      let transport = RecordingTransport(kind == .grpc ? GRPCTransport() : memory)
      return (Node(id: id, config: config, transport: transport), transport)
    }
    let (a, wireA) = make("a", configureA)
    let (b, wireB) = make("b", configureB)
    setUp(b)
    try await b.start()
    try await a.start()
    do {
      try await a.connect(to: "b", at: try #require(b.listeningAddress))
      try await body(a, wireA, wireB)
    } catch {
      await a.stop()
      await b.stop()
      throw error
    }
    await a.stop()
    await b.stop()
  }

  static let text = String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 5_000)

  static func register(_ b: Node) {
    b.register("upload") { (text: String, _) in text.uppercased() }
    b.register("echo") { payload, _ in payload }
    b.registerStream("lines") { (count: Int, _) in
      AsyncStream { continuation in
        for index in 0..<count { continuation.yield("\(index): " + CompressionTests.text) }
        continuation.finish()
      }
    }
  }

  @Test("a selected method's large payloads travel deflated both ways, when both sides agree", arguments: TransportKind.allCases)
  func negotiated(kind: TransportKind) async throws {
    try await withPair(kind, a: { $0.compression.methods = ["upload"] }, b: { _ in }, setUp: Self.register) { a, wireA, wireB in
      let answer: String = try await a.call("b", "upload", Self.text)
      #expect(answer == Self.text.uppercased())
      let request = try #require(wireA.frames.first { $0.type == .request && $0.method == "upload" })
      #expect(request.serializer == "json+deflate")
      #expect(request.payload.count < Self.text.utf8.count / 10, "\(request.payload.count) bytes")
      // The answer to a deflated request is deflated too, though b selects nothing itself.
      let response = try #require(wireB.frames.first { $0.type == .response })
      #expect(response.serializer == "json+deflate" && response.payload.count < Self.text.utf8.count / 10)

      // Not selected, or too small: as they are.
      _ = try await a.call("b", "echo", payload: try .json(Self.text))
      _ = try await a.call("b", "upload", "tiny") as String
      let plain = wireA.frames.filter { $0.type == .request && !$0.serializer.hasSuffix("+deflate") }
      #expect(plain.map(\.method).sorted() == ["echo", "upload"])
    }
  }

  @Test("a peer that does not offer deflate gets payloads as they are", arguments: TransportKind.allCases)
  func notNegotiated(kind: TransportKind) async throws {
    try await withPair(
      kind, a: { $0.compression.methods = ["upload"] }, b: { $0.compression.enabled = false }, setUp: Self.register
    ) { a, wireA, _ in
      let answer: String = try await a.call("b", "upload", Self.text)
      #expect(answer == Self.text.uppercased())
      #expect(wireA.frames.allSatisfy { !$0.serializer.hasSuffix("+deflate") })
      #expect(wireA.frames.contains { $0.type == .request && $0.method == "upload" && $0.payload.count > Self.text.utf8.count })
    }
  }

  @Test("stream items of a selected serializer travel deflated and arrive whole", arguments: TransportKind.allCases)
  func streamItems(kind: TransportKind) async throws {
    try await withPair(kind, a: { _ in }, b: { $0.compression.serializers = ["json"] }, setUp: Self.register) { a, _, wireB in
      var lines: [String] = []
      for try await line in try await a.stream("b", "lines", 5, as: String.self) { lines.append(line) }
      #expect(lines == (0..<5).map { "\($0): " + Self.text })
      let items = wireB.frames.filter { $0.type == .streamItem }
      #expect(!items.isEmpty && items.allSatisfy { $0.serializer == "json+deflate" })
      let bytes = items.reduce(0) { $0 + $1.payload.count + $1.moreItems.reduce(0) { $0 + $1.count } }
      #expect(bytes < 5 * Self.text.utf8.count / 10, "\(bytes) bytes")
    }
  }

  @Test("a payload that inflates past the limit is refused as too large; garbage is refused; the link goes on", arguments: TransportKind.allCases)
  func hostilePayloads(kind: TransportKind) async throws {
    try await withPair(kind, a: { _ in }, b: { $0.limits.maxPayloadSize = 1 << 20 }, setUp: Self.register) { a, _, _ in
      // 16 MiB of zeros deflate to a few KiB: a bomb for a node that accepts 1 MiB.
      let bomb = PayloadCompression.compress(.raw(Data(count: 16 << 20)))
      #expect(bomb.serializer == "raw+deflate" && bomb.data.count < 100_000)
      let tooLarge = try await expectNodeError { _ = try await a.call("b", "echo", payload: bomb) }
      #expect(tooLarge.code == .payloadTooLarge, "\(tooLarge)")
      let garbage = try await expectNodeError {
        _ = try await a.call("b", "echo", payload: Payload(data: Data("not deflate".utf8), serializer: "json+deflate"))
      }
      #expect(garbage.code == .serializationFailed, "\(garbage)")
      let fine: String = try await a.call("b", "upload", "still here")
      #expect(fine == "STILL HERE")
    }
  }
}
