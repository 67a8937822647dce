import TestSupport
import Foundation
import TaskCenterHTTP
import Testing

/// Lock-outs without the token (issue 22): idle connections, HTTP/1.0, huge declared bodies
/// and endless chunked bodies must neither hold a connection nor keep honest clients out.
@Suite("HTTP floods", .timeLimit(.minutes(3)))
struct HTTPFloodTests {
  typealias Stack = HTTPEdgeTests.Stack
  typealias RawConnection = HTTPEdgeTests.RawConnection

  @Test("HTTP/1.0 is answered and its connection closed at once; with keep-alive it stays")
  func http10() async throws {
    let stack = try await Stack(token: nil, live: true)
    let address = try #require(stack.http.address)
    let plain = try RawConnection(address)
    await plain.send("GET /health HTTP/1.0\r\n\r\n")
    let (text, closed) = await plain.readToClose()
    #expect(text.hasPrefix("HTTP/1.1 200 ") && text.contains("\"components\""), "\(text.prefix(200))")
    #expect(closed, "the server kept an HTTP/1.0 connection open")

    let kept = try RawConnection(address)
    await kept.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n")
    let (both, keptClosed) = await kept.readToClose()
    #expect(both.components(separatedBy: "HTTP/1.1 200 ").count - 1 == 2 && keptClosed, "\(both.prefix(300))")
    await stack.stop()
  }

  @Test("a declared 10 GB body is 413 at once and closed; a chunked body past the limit is cut off")
  func hugeBodies() async throws {
    let stack = try await Stack(token: nil, live: true)
    let address = try #require(stack.http.address)
    let declared = try RawConnection(address)
    await declared.send("POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
    let (text, closed) = await declared.readToClose()
    #expect(text.hasPrefix("HTTP/1.1 413 ") && text.contains("PAYLOAD_TOO_LARGE") && closed, "\(text.prefix(300))")

    // 8 MiB in 64 KiB chunks against a 2 MiB limit: the server answers and closes long before
    // the end (the sender's writes then fail).
    let chunked = try RawConnection(address)
    await chunked.send("POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    let chunk = "10000\r\n" + String(repeating: "a", count: 65_536) + "\r\n"
    let sender = Task.detached {
      for _ in 0..<128 { await chunked.send(chunk) }
    }
    let (answer, cut) = await chunked.readToClose()
    sender.cancel()
    #expect(cut, "the connection was read on past the limit")
    #expect(answer.contains(" 413 ") || answer.contains(" 400 "), "\(answer.prefix(300))")
    #expect(try await stack.send("GET", "/health", token: false).status == 200)
    await stack.stop()
  }

  @Test("silent connections give way to a client at the cap; one address holds only its share (429)")
  func idleFlood() async throws {
    let stack = try await Stack(
      token: nil,
      limits: HTTPLimits(
        headTimeout: .seconds(60), idleTimeout: .seconds(60), maxConnections: 40, firstRequestTimeout: .seconds(60),
        maxConnectionsPerAddress: 25), live: true)
    let address = try #require(stack.http.address)
    // 26 silent connections from 127.0.0.2: one of them (the last the server sets up, not
    // always the last made) is 429 at once.
    var silent = try (0..<26).map { _ in try RawConnection(address, from: "127.0.0.2") }
    let answered = await RawConnection.readable(silent, within: .seconds(20))
    #expect(answered.count == 1, "answered: \(answered)")
    let index = try #require(answered.first)
    let (refused, refusedClosed) = await silent[index].readToClose()
    #expect(refused.hasPrefix("HTTP/1.1 429 ") && refused.contains("TOO_MANY_CONNECTIONS") && refusedClosed, "\(refused.prefix(300))")
    #expect(refused.contains("Retry-After: 1"), "\(refused.prefix(300))")
    silent.remove(at: index)
    // 15 more from 127.0.0.3 fill the server to its cap of 40.
    silent += try (0..<15).map { _ in try RawConnection(address, from: "127.0.0.3") }
    try #require(try await until(stack.http.connectionChanges()) { stack.http.connectionCounts == (40, 40) }, "\(stack.http.connectionCounts)")
    // An honest client still gets in: the oldest silent connection gives way.
    for _ in 0..<3 {
      let health = try await stack.send("GET", "/health", token: false)
      #expect(health.status == 200, "\(health.text)")
    }
    let closed = await RawConnection.readable(silent, within: .seconds(20))
    #expect(!closed.isEmpty && closed.count <= 3, "silent connections closed: \(closed)")
    #expect(closed.allSatisfy { $0 < 25 }, "the oldest (from 127.0.0.2) give way first: \(closed)")
    silent.removeAll()
    await stack.stop()
  }

  @Test("connections that made one request and then wait give way to a newcomer at the cap; one mid-request does not")
  func idleAfterARequest() async throws {
    let stack = try await Stack(
      token: nil,
      limits: HTTPLimits(headTimeout: .seconds(60), idleTimeout: .seconds(60), maxConnections: 20, firstRequestTimeout: .seconds(60)), live: true)
    let address = try #require(stack.http.address)
    // 19 connections each ask once (kept alive) and read the answer; one more begins a
    // request and stops half-way.
    var held: [RawConnection] = []
    for _ in 0..<19 {
      let connection = try RawConnection(address)
      await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
      held.append(connection)
    }
    let slow = try RawConnection(address)
    await slow.send("GET /health HTTP/1.1\r\nHost: x\r\n")
    held.append(slow)
    // All answered and idle but the slow one: 20 open, 19 idle.
    try #require(try await until(stack.http.connectionChanges()) { stack.http.connectionCounts == (20, 19) }, "\(stack.http.connectionCounts)")
    for _ in 0..<3 {
      let health = try await stack.send("GET", "/health", token: false)
      #expect(health.status == 200, "\(health.text)")
    }
    // (Each got in only because an idle connection gave way: none was refused 503.)
    // The one mid-request was not shed: it finishes its request and is answered.
    await slow.send("Connection: close\r\n\r\n")
    let (answer, closed) = await slow.readToClose()
    #expect(answer.hasPrefix("HTTP/1.1 200 ") && closed, "\(answer.prefix(200))")
    held.removeAll()
    await stack.stop()
  }

  @Test("a connection that never sends a byte is closed after the first-request timeout, not the idle one")
  func silentConnectionClosesEarly() async throws {
    let stack = try await Stack(
      token: nil, limits: HTTPLimits(idleTimeout: .seconds(120), firstRequestTimeout: .seconds(1)), live: true)
    let silent = try RawConnection(try #require(stack.http.address))
    let started = ContinuousClock.now
    let (text, closed) = await silent.readToClose()
    // (readToClose gives up after 30 s: closed means the server closed it, well before 120 s.)
    #expect(text.isEmpty && closed)
    #expect(ContinuousClock.now - started < .seconds(30))
    await stack.stop()
  }
}
