import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A blocking TCP client socket for speaking raw protocol in tests: bytes that are not a
/// whole request, a connection held open and silent, or a client at another loopback address
/// (127.0.0.2 is this host too, but another client to the server). Call it through
/// ``offPool(_:)`` from async code.
final class RawSocket: Sendable {
  let descriptor: Int32

  init(port: UInt16, receiveBuffer: Int32 = 65_536, host: String = "127.0.0.1", source: String? = nil) throws {
    descriptor = try connectedSocket(host: host, port: port, source: source, receiveBuffer: receiveBuffer)
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  func send(_ text: String) throws {
    let bytes = Array(text.utf8)
    guard Glibc.send(descriptor, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { throw CocoaError(.fileWriteUnknown) }
  }

  /// Reads byte by byte until `marker` has been read.
  func readUntil(_ marker: String) throws -> String {
    var data: [UInt8] = []
    var byte: UInt8 = 0
    while !String(decoding: data, as: UTF8.self).hasSuffix(marker) {
      guard recv(descriptor, &byte, 1, 0) == 1 else { throw CocoaError(.fileReadUnknown) }
      data.append(byte)
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// Reads until the peer closes (`true`) or the deadline passes (`false`).
  func readToEnd(deadline: ContinuousClock.Instant) -> (String, Bool) {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while ContinuousClock.now < deadline {
      let count = recv(descriptor, &buffer, buffer.count, 0)
      if count == 0 { return (String(decoding: data, as: UTF8.self), true) }
      if count < 0 {
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
        return (String(decoding: data, as: UTF8.self), errno == ECONNRESET)
      }
      data += buffer[0..<count]
    }
    return (String(decoding: data, as: UTF8.self), false)
  }

  func close() { _ = Glibc.close(descriptor) }

  /// One HTTP/1.1 request with `Connection: close` from `source`: the status, the JSON body
  /// and the head as text.
  static func request(
    _ method: String, _ base: String, _ path: String, json: Any? = nil, headers: [String: String] = [:],
    from source: String
  ) async throws -> (status: Int, body: [String: Any], head: String) {
    guard let url = URL(string: base), let port = url.port else { throw CocoaError(.fileReadUnknown) }
    let host = url.host ?? "127.0.0.1"
    let body = try json.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
    var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
    for (name, value) in headers { head += "\(name): \(value)\r\n" }
    if json != nil { head += "Content-Type: application/json\r\n" }
    head += "Content-Length: \(body.utf8.count)\r\n\r\n"
    let request = head + body
    let reply = try await offPool {
      let socket = try RawSocket(port: UInt16(port), host: host, source: source)
      defer { socket.close() }
      try socket.send(request)
      return socket.readToEnd(deadline: .now + .seconds(30)).0
    }
    let status = Int(reply.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
    let parts = reply.components(separatedBy: "\r\n\r\n")
    let text = parts.dropFirst().joined(separator: "\r\n\r\n")
    let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    return (status, object, parts.first ?? "")
  }
}

/// A TCP socket connected to `host:port` (IPv4), from `source` when given (another loopback
/// address: another client to the server), with a receive buffer of `receiveBuffer` bytes.
func connectedSocket(host: String, port: UInt16, source: String? = nil, receiveBuffer: Int32? = nil) throws -> Int32 {
  let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
  func at(_ address: String, port: UInt16) -> sockaddr_in {
    var result = sockaddr_in()
    result.sin_family = sa_family_t(AF_INET)
    result.sin_port = port.bigEndian
    result.sin_addr.s_addr = inet_addr(address)
    return result
  }
  if let source {
    var local = at(source, port: 0)
    let bound = withUnsafePointer(to: &local) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
      _ = Glibc.close(fd)
      throw SSHServer.Failure(message: "cannot bind \(source)")
    }
  }
  var target = at(host, port: port)
  let connected = withUnsafePointer(to: &target) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  guard connected == 0 else {
    _ = Glibc.close(fd)
    throw SSHServer.Failure(message: "cannot connect to \(host):\(port)")
  }
  return fd
}
