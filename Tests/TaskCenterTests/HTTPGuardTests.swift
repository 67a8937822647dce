import NIOCore
import NIOEmbedded
import NodeComm
@testable import TaskCenterHTTP
import Testing

/// ``HTTPGuardHandler`` alone on an embedded channel: what it passes on and what it cuts off,
/// byte by byte, where the server behind it would answer first.
@Suite("HTTP guard")
struct HTTPGuardTests {
  static func channel(maxBodyBytes: Int = 1024) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    let table = ConnectionTable<ObjectIdentifier>(total: 10, perAddress: 10)
    try channel.pipeline.syncOperations.addHandler(HTTPGuardHandler(limits: HTTPLimits(), maxBodyBytes: maxBodyBytes, connections: table))
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    return channel
  }

  static func send(_ channel: EmbeddedChannel, _ text: String) throws {
    try channel.writeInbound(channel.allocator.buffer(string: text))
  }

  static func passedOn(_ channel: EmbeddedChannel) throws -> String {
    var text = ""
    while let buffer = try channel.readInbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
    return text
  }

  static func answered(_ channel: EmbeddedChannel) throws -> String {
    var text = ""
    while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
    return text
  }

  @Test("a chunked body goes on with Connection: close and is cut off past the limit: 413, closed")
  func chunkedCutOff() throws {
    let channel = try Self.channel()
    try Self.send(channel, "POST /tasks HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n")
    let head = try Self.passedOn(channel)
    #expect(head.contains("Connection: close") && !head.contains("keep-alive"), "\(head)")
    let chunk = "400\r\n" + String(repeating: "a", count: 1024) + "\r\n"
    try Self.send(channel, chunk)
    #expect(try Self.passedOn(channel) == chunk, "within the limit it passes")
    for _ in 0..<5 { try? Self.send(channel, chunk) }
    let answer = try Self.answered(channel)
    #expect(answer.hasPrefix("HTTP/1.1 413 ") && answer.contains("PAYLOAD_TOO_LARGE"), "\(answer)")
    #expect(!channel.isActive, "the connection is closed")
  }

  @Test("HTTP/1.0 goes on with Connection: close unless it asks to be kept alive")
  func http10() throws {
    let plain = try Self.channel()
    try Self.send(plain, "GET /health HTTP/1.0\r\n\r\n")
    #expect(try Self.passedOn(plain).contains("Connection: close"))
    let kept = try Self.channel()
    try Self.send(kept, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    #expect(!(try Self.passedOn(kept)).contains("Connection: close"))
  }

  @Test("an Upgrade that is not the events WebSocket does not switch the guard off")
  func otherUpgrade() throws {
    let channel = try Self.channel()
    try Self.send(channel, "GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    #expect(try Self.passedOn(channel).hasPrefix("GET /health"))
    // The next head on the connection is still checked.
    try Self.send(channel, "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\n\r\n")
    #expect(try Self.answered(channel).hasPrefix("HTTP/1.1 414 "))
    #expect(!channel.isActive)
  }
}
