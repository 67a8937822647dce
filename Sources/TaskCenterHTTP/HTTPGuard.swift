import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NodeComm
import Synchronization

/// What the HTTP server lets a client do before it answers and closes.
public struct HTTPLimits: Sendable {
  /// Longest request line (method, target, version); longer is 414.
  public var maxRequestLine: Int
  /// Most header lines, and most bytes of all of them; more is 431.
  public var maxHeaderCount: Int
  public var maxHeaderBytes: Int
  /// Time from a request's first byte to the end of its head; slower is 408 (slowloris).
  public var headTimeout: Duration
  /// Time a connection may wait between requests before it is closed.
  public var idleTimeout: Duration
  /// Time a new connection may take to send the first byte of its first request (at most
  /// `idleTimeout`); silent connections are closed after it.
  public var firstRequestTimeout: Duration
  /// Connections open at once. At the cap a new connection takes the place of the oldest one
  /// that has not sent a byte yet; when every one has, the new one is answered 503 and closed.
  public var maxConnections: Int
  /// Connections open at once from one IP address; one more is answered 429 and closed.
  public var maxConnectionsPerAddress: Int

  public init(
    maxRequestLine: Int = 8192, maxHeaderCount: Int = 100, maxHeaderBytes: Int = 32 << 10, headTimeout: Duration = .seconds(10),
    idleTimeout: Duration = .seconds(120), maxConnections: Int = 1024, firstRequestTimeout: Duration = .seconds(10),
    maxConnectionsPerAddress: Int = 128
  ) {
    self.firstRequestTimeout = firstRequestTimeout
    self.maxConnectionsPerAddress = maxConnectionsPerAddress
    self.maxRequestLine = maxRequestLine
    self.maxHeaderCount = maxHeaderCount
    self.maxHeaderBytes = maxHeaderBytes
    self.headTimeout = headTimeout
    self.idleTimeout = idleTimeout
    self.maxConnections = maxConnections
  }
}

/// The HTTP server's child channel: Hummingbird's HTTP/1 + WebSocket channel with
/// ``HTTPGuardHandler`` first in every connection's pipeline.
struct GuardedHTTPChannel: ServerChildChannel {
  typealias Value = HTTP1WebSocketUpgradeChannel.Value
  let inner: HTTP1WebSocketUpgradeChannel
  let limits: HTTPLimits
  let maxBodyBytes: Int
  let connections: ConnectionTable<ObjectIdentifier>
  let token: TokenCheck?

  func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
    do {
      // Last so far: after TLS (which sees the bytes first when the server speaks HTTPS),
      // before everything HTTP that the inner setup adds.
      try channel.pipeline.syncOperations.addHandler(
        HTTPGuardHandler(limits: limits, maxBodyBytes: maxBodyBytes, connections: connections, token: token), position: .last)
    } catch {
      return channel.eventLoop.makeFailedFuture(error)
    }
    return inner.setup(channel: channel, logger: logger)
  }

  func handle(value: Value, logger: Logger) async {
    await inner.handle(value: value, logger: logger)
  }

  /// The server builder for `Application(server:)`; with `tls`, HTTPS (and `wss://`).
  ///
  /// With `token`, a WebSocket upgrade of `/ws/updates` without it is answered 401 here (the
  /// upgrade machinery behind could only answer an empty 400).
  static func builder<Responder: HTTPResponder>(
    webSocketResponder responder: Responder, limits: HTTPLimits, maxBodyBytes: Int, connections: ConnectionTable<ObjectIdentifier>,
    tls: TLSConfiguration?, token: TokenCheck?
  ) -> HTTPServerBuilder where Responder.Context: WebSocketRequestContext {
    return HTTPServerBuilder { serve in
      let channel = GuardedHTTPChannel(
        inner: HTTP1WebSocketUpgradeChannel(
          responder: serve, webSocketResponder: responder,
          configuration: .init(http1: .init(idleTimeout: TimeAmount(limits.idleTimeout)))),
        limits: limits, maxBodyBytes: maxBodyBytes, connections: connections, token: token)
      if let tls { return try TLSChannel(channel, tlsConfiguration: tls) }
      return channel
    }
  }
}

/// Reads each request head as bytes before Hummingbird parses it, and answers what a hostile
/// or broken client sends — 400 for a malformed request line or header, `Content-Length` that
/// is not a number or comes with `Transfer-Encoding`; 413 for a declared body over the
/// limit (at once, unread) or a chunked one that grows past it; 414 for a request line over
/// the limit; 431 for too many or too large headers; 408 for a head that does not arrive in
/// time; 429 beyond the connections one address may hold; 503 beyond the connection cap when
/// no silent connection can give way — with the API's error JSON, then closes the connection
/// (the parser behind it would otherwise leave such a connection open and silent). Bodies are
/// counted by their `Content-Length` so every request head on a kept-alive connection is
/// checked. A request that ends its connection — HTTP/1.0 without keep-alive, a chunked body —
/// reaches Hummingbird with `Connection: close`, so the connection closes after its answer; an
/// upgraded connection (WebSocket) passes through as it is.
final class HTTPGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private enum State {
    case head(ByteBuffer?)
    case body(remaining: Int)
    /// A chunked body, and the bytes of it so far (its framing too).
    case chunked(seen: Int)
    case passthrough
    case closed
  }

  private let limits: HTTPLimits
  private let maxBodyBytes: Int
  private let connections: ConnectionTable<ObjectIdentifier>
  private let token: TokenCheck?
  private var state = State.head(nil)
  private var timer: Scheduled<Void>?
  private var key: ObjectIdentifier?
  /// The client the connection comes from (its IP; an IPv6 one's /64), read once at connect.
  private var address = "unknown"

  init(limits: HTTPLimits, maxBodyBytes: Int, connections: ConnectionTable<ObjectIdentifier>, token: TokenCheck? = nil) {
    self.limits = limits
    self.maxBodyBytes = maxBodyBytes
    self.connections = connections
    self.token = token
  }

  // A server's child channel may be active before its pipeline is set up: count it and arm
  // its timer at whichever comes first.
  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { activate(context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    activate(context)
    context.fireChannelActive()
  }

  private func activate(_ context: ChannelHandlerContext) {
    guard key == nil else { return }
    let channel = context.channel
    let key = ObjectIdentifier(channel)
    self.key = key
    address = channel.remoteAddress?.ipAddress.map(AuthFailureLimiter.client(ip:)) ?? "unknown"
    switch connections.admit(key, address: address, close: { channel.close(promise: nil) }) {
    case .admitted:
      arm(context, min(limits.firstRequestTimeout, limits.idleTimeout), answer: false)
    case .refusedForAddress:
      refuse(
        context, 429, "TOO_MANY_CONNECTIONS",
        "\(limits.maxConnectionsPerAddress) connections from \(address) are open already; use fewer, or try again later")
    case .refusedFull:
      refuse(context, 503, "RESOURCE_UNAVAILABLE", "the server has \(limits.maxConnections) connections open; try again later")
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    if let key {
      self.key = nil
      connections.remove(key)
    }
    timer?.cancel()
    context.fireChannelInactive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var buffer = unwrapInboundIn(data)
    while buffer.readableBytes > 0 {
      switch state {
      case .closed:
        return
      case .passthrough:
        context.fireChannelRead(wrapInboundOut(buffer))
        return
      case .chunked(let seen):
        // The request ends its connection (`Connection: close`), so all that follows is its body.
        let total = seen + buffer.readableBytes
        // Chunk framing on top of the body: a hex size and two CRLFs per chunk.
        guard total <= maxBodyBytes + maxBodyBytes / 8 + 4096 else {
          refuse(context, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than \(maxBodyBytes) bytes")
          return
        }
        state = .chunked(seen: total)
        context.fireChannelRead(wrapInboundOut(buffer))
        return
      case .body(let remaining):
        let count = min(remaining, buffer.readableBytes)
        let slice = buffer.readSlice(length: count)!
        context.fireChannelRead(wrapInboundOut(slice))
        state = remaining == count ? .head(nil) : .body(remaining: remaining - count)
      case .head(let pending):
        var head = pending ?? context.channel.allocator.buffer(capacity: buffer.readableBytes)
        if pending == nil {
          arm(context, limits.headTimeout, answer: true)
          // A request begins: the connection is busy until its answer is written (the
          // server's `SafeResponder` says so), and gives way to no newcomer meanwhile.
          if let key { connections.began(key) }
        }
        head.writeBuffer(&buffer)
        guard let end = Self.endOfHead(in: head) else {
          state = .head(head)
          if let failure = checkIncomplete(head) { refuse(context, failure.status, failure.code, failure.message) }
          return
        }
        let headBytes = head.readSlice(length: end)!
        buffer = head  // what came after the head: its body, or the next request
        switch check(headBytes, from: address) {
        case .failure(let failure):
          refuse(context, failure.status, failure.code, failure.message)
          return
        case .success(let (next, closes)):
          timer?.cancel()
          timer = nil
          state = next
          context.fireChannelRead(wrapInboundOut(closes ? Self.closing(headBytes, allocator: context.channel.allocator) : headBytes))
        }
      }
    }
  }

  struct Failure: Error {
    var status: Int
    var code: String
    var message: String
  }

  /// What a method or a header name may be made of (RFC 9110 `tchar`).
  private static let tokenCharacters = Set("!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

  /// The index just past `\r\n\r\n`, when the head is complete.
  private static func endOfHead(in buffer: ByteBuffer) -> Int? {
    let bytes = buffer.readableBytesView
    var index = bytes.startIndex
    while let found = bytes[index...].firstIndex(of: UInt8(ascii: "\r")) {
      if bytes.index(found, offsetBy: 3, limitedBy: bytes.endIndex.advanced(by: -1)) != nil,
        bytes[found + 1] == UInt8(ascii: "\n"), bytes[found + 2] == UInt8(ascii: "\r"), bytes[found + 3] == UInt8(ascii: "\n")
      {
        return found + 4 - bytes.startIndex
      }
      index = found + 1
    }
    return nil
  }

  /// A head still arriving that is already too long.
  private func checkIncomplete(_ head: ByteBuffer) -> Failure? {
    let bytes = head.readableBytesView
    let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\n"))
    if lineEnd == nil && bytes.count > limits.maxRequestLine {
      return Failure(status: 414, code: "URI_TOO_LONG", message: "the request line is longer than \(limits.maxRequestLine) bytes")
    }
    if bytes.count > limits.maxRequestLine + limits.maxHeaderBytes {
      return Failure(status: 431, code: "HEADERS_TOO_LARGE", message: "the headers are larger than \(limits.maxHeaderBytes) bytes")
    }
    return nil
  }

  /// `head` with its `Connection` headers replaced by `Connection: close`.
  static func closing(_ head: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    let text = String(decoding: head.readableBytesView, as: UTF8.self)
    var lines = text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
    lines.removeAll { $0.lowercased().hasPrefix("connection:") }
    lines.append("Connection: close")
    let rewritten = lines.joined(separator: "\r\n") + "\r\n\r\n"
    var buffer = allocator.buffer(capacity: rewritten.utf8.count)
    buffer.writeString(rewritten)
    return buffer
  }

  /// Checks a whole head; gives the state for what follows it, and whether the request ends
  /// its connection (it goes on with `Connection: close`).
  private func check(_ head: ByteBuffer, from address: String) -> Result<(State, Bool), Failure> {
    func bad(_ message: String) -> Result<(State, Bool), Failure> {
      .failure(Failure(status: 400, code: "INVALID_REQUEST", message: message))
    }
    let text = String(decoding: head.readableBytesView, as: UTF8.self)
    var lines = text.components(separatedBy: "\r\n")
    while lines.last == "" { lines.removeLast() }
    guard let requestLine = lines.first else { return bad("an empty request") }
    if requestLine.utf8.count > limits.maxRequestLine {
      return .failure(Failure(status: 414, code: "URI_TOO_LONG", message: "the request line is longer than \(limits.maxRequestLine) bytes"))
    }
    let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
    guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ Self.tokenCharacters.contains($0) }),
      parts[1].hasPrefix("/") || parts[1] == "*" || parts[1].hasPrefix("http://") || parts[1].hasPrefix("https://"),
      parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0"
    else { return bad("a malformed request line: \(requestLine.prefix(80))") }
    let headers = lines.dropFirst()
    if headers.count > limits.maxHeaderCount {
      return .failure(Failure(status: 431, code: "HEADERS_TOO_LARGE", message: "more than \(limits.maxHeaderCount) headers"))
    }
    if head.readableBytes - requestLine.utf8.count > limits.maxHeaderBytes {
      return .failure(Failure(status: 431, code: "HEADERS_TOO_LARGE", message: "the headers are larger than \(limits.maxHeaderBytes) bytes"))
    }
    var contentLength: Int?
    var chunked = false
    var webSocket = false
    var authorization: String?
    var alternateToken: String?
    var keepAlive = false
    for line in headers {
      guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
        line[..<colon].allSatisfy({ Self.tokenCharacters.contains($0) })
      else { return bad("a malformed header line: \(line.prefix(80))") }
      let name = line[..<colon].lowercased()
      let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      switch name {
      case "content-length":
        guard !value.isEmpty, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber), let length = Int(value),
          contentLength == nil || contentLength == length
        else { return bad("Content-Length must be one number of bytes, got '\(value.prefix(40))'") }
        contentLength = length
      case "transfer-encoding":
        chunked = true
      case "upgrade":
        webSocket = value.lowercased() == "websocket"
      case "connection":
        keepAlive = keepAlive || value.lowercased().split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "keep-alive" }
      case "authorization":
        authorization = value
      case TokenCheck.alternateHeader:
        alternateToken = value
      default:
        break
      }
    }
    if chunked && contentLength != nil { return bad("a request must not have both Content-Length and Transfer-Encoding") }
    if webSocket, let token {
      let uri = URI(String(parts[1]))
      if uri.path == TokenCheck.webSocketPath {
        // Guesses here count as anywhere else (an upgrade is no way around the limit).
        if let wait = token.limiter?.refusal(for: address) {
          let refusal = TokenCheck.tooManyAttempts(address: address, retryAfter: wait)
          return .failure(Failure(status: 429, code: refusal.code, message: refusal.message))
        }
        if !token.accepts(authorization: authorization, alternate: alternateToken, uri: uri) {
          token.limiter?.failed(address)
          let refusal = TokenCheck.refusal
          return .failure(Failure(status: 401, code: refusal.code, message: refusal.message))
        }
      }
    }
    if let contentLength, contentLength > maxBodyBytes {
      return .failure(
        Failure(status: 413, code: "PAYLOAD_TOO_LARGE", message: "the request body is larger than \(maxBodyBytes) bytes: \(contentLength)"))
    }
    // Only a WebSocket upgrade of the events path hands the connection over; any other
    // `Upgrade` is an ordinary request, checked like the rest.
    if webSocket, URI(String(parts[1])).path == TokenCheck.webSocketPath { return .success((.passthrough, false)) }
    // HTTP/1.0 closes after each answer unless the client asked to keep the connection.
    let closes = parts[2] == "HTTP/1.0" && !keepAlive
    if chunked { return .success((.chunked(seen: 0), true)) }
    if let contentLength, contentLength > 0 { return .success((.body(remaining: contentLength), closes)) }
    return .success((.head(nil), closes))
  }

  /// Answers with the API's error JSON and closes the connection.
  private func refuse(_ context: ChannelHandlerContext, _ status: Int, _ code: String, _ message: String) {
    if case .closed = state { return }
    state = .closed
    timer?.cancel()
    let reason =
      [
        400: "Bad Request", 401: "Unauthorized", 408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
        429: "Too Many Requests", 431: "Request Header Fields Too Large", 503: "Service Unavailable",
      ][status] ?? "Error"
    let body = APIError(code: code, message: message).jsonText
    var buffer = context.channel.allocator.buffer(capacity: 256 + body.utf8.count)
    // Refusals for load (too many connections) say when to come back.
    let retry = status == 429 || status == 503 ? "Retry-After: 1\r\n" : ""
    buffer.writeString(
      "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n\(retry)"
        + "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n\(body)"
    )
    let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
    context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in Self.close(bound.value) }
    // The answer may never be written (TLS holds writes until a handshake the client never
    // starts): the connection closes a little later all the same.
    let channel = context.channel
    context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
  }

  /// Input first, so that what waits for a request behind us sees the end of input (and says
  /// nothing) rather than a failed channel; then the rest.
  private static func close(_ context: ChannelHandlerContext) {
    let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
    context.close(mode: .input).whenComplete { _ in bound.value.close(promise: nil) }
  }

  /// Closes the connection after `delay` unless re-armed or cancelled: a connection that
  /// sends nothing (armed at connect, with the idle timeout), or a head that does not arrive
  /// in time (armed at its first byte; `answer` sends 408 first). Between requests Hummingbird's
  /// own idle timeout applies, which knows when a response is still being written.
  private func arm(_ context: ChannelHandlerContext, _ delay: Duration, answer: Bool) {
    timer?.cancel()
    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: TimeAmount(delay)) {
      let (handler, context) = bound.value
      if answer {
        handler.refuse(context, 408, "REQUEST_TIMEOUT", "the request's head did not arrive within \(delay)")
      } else {
        handler.state = .closed
        Self.close(context)
      }
    }
  }
}

