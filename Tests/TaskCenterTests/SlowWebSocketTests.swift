import TestSupport
import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A WebSocket client that upgrades and then never reads: the server must drop it, and keep
/// serving everyone else meanwhile.
@Suite("Slow WebSocket client", .timeLimit(.minutes(2)))
struct SlowWebSocketTests {
  @Test("a WebSocket client that stops reading is dropped; the gateway goes on")
  func slowClientDropped() async throws {
    let stack = try await HTTPAPITests.Stack(live: true)
    let address = try #require(stack.http.address)
    let port = UInt16(address.split(separator: ":").last ?? "") ?? 0
    let socket = try RawSocket(port: port, receiveBuffer: 4096)
    defer { socket.close() }
    try socket.send(
      "GET /ws/updates HTTP/1.1\r\nHost: \(address)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    let head = try await offPool { try socket.readUntil("\r\n\r\n") }
    #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
    // The subscription starts after the upgrade.
    try #require(try await until(stack.fabric.center.eventSubscriberChanges()) { stack.fabric.center.eventSubscriberCount == 1 })

    // Events of 9 KB (the code travels in task_created): 1,500 of them are more than the
    // kernel's socket buffers hold.
    let total = 1500
    let padding = String(repeating: "#", count: 9000)
    for index in 0..<total {
      _ = try await stack.fabric.center.submit(.code("print(\(index))\n\(padding)"))
    }
    // Everyone else is still served.
    let health = try await stack.get("/health")
    #expect(health.status == 200)
    #expect(try await stack.get("/tasks?limit=1").object["total"] as? Int == total)

    // Now read what the slow client was sent: it ends early, and the server closed it.
    let (received, ended) = try await offPool { socket.readToEnd(deadline: .now + .seconds(20)) }
    let events = received.components(separatedBy: "\"task_created\"").count - 1
    #expect(ended, "the server closed the connection")
    #expect(events < total, "\(events) of \(total) events reached the slow client")
    await stack.stop()
  }
}

extension SlowWebSocketTests {
  @Test("stopping the HTTP server does not wait for open WebSockets")
  func stopWithOpenSocket() async throws {
    let stack = try await HTTPAPITests.Stack(live: true)
    let address = try #require(stack.http.address)
    let socket = try RawSocket(port: UInt16(address.split(separator: ":").last ?? "") ?? 0, receiveBuffer: 65536)
    defer { socket.close() }
    try socket.send(
      "GET /ws/updates HTTP/1.1\r\nHost: \(address)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    #expect(try await offPool { try socket.readUntil("\r\n\r\n") }.hasPrefix("HTTP/1.1 101"))
    let started = ContinuousClock.now
    await stack.http.stop()
    // Bounded, not instant: the close path takes ~3 s on a quiet machine (a close timeout in
    // the WebSocket layer), more on a busy one. Without the bound it would wait for the client.
    #expect(ContinuousClock.now - started < .seconds(15))
    await stack.stop()
  }
}
