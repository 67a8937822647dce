import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Which hosts `POST /api/remote/connect` may dial (`easyremote gateway --remote-allow`): a
/// gateway must not become a way to probe its own network. Entries are networks in CIDR form
/// (`10.0.0.0/8`, `192.168.1.7/32`, `fd00::/8`) or host names (`gpu-box.lan`, or
/// `*.lab.example.org` for a domain). A host name is allowed when it is listed, or when every
/// address it resolves to is in a listed network; an address when it is in one.
public struct RemoteTargetPolicy: Sendable, Equatable {
  struct Network: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    func contains(_ address: [UInt8]) -> Bool {
      guard address.count == bytes.count else { return false }
      var left = prefix
      for (a, b) in zip(address, bytes) {
        guard left > 0 else { return true }
        let bits = min(8, left)
        let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        if a & mask != b & mask { return false }
        left -= bits
      }
      return true
    }
  }

  let networks: [Network]
  let names: [String]

  /// - Throws: ``RemoteHostError`` `invalid_parameters` for an entry that is neither.
  public init(_ entries: [String]) throws(RemoteHostError) {
    var networks: [Network] = []
    var names: [String] = []
    for entry in entries.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !entry.isEmpty {
      let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
      if let bytes = Self.address(parts[0]) {
        let bits = bytes.count * 8
        guard let prefix = parts.count == 2 ? Int(parts[1]) : bits, (0...bits).contains(prefix) else {
          throw RemoteHostError(code: .invalidParameters, message: "'\(entry)' is not a network (address/prefix)")
        }
        networks.append(Network(bytes: bytes, prefix: prefix))
      } else if parts.count == 1, entry.allSatisfy({ $0.isLetter || $0.isNumber || "-.*".contains($0) }) {
        names.append(entry)
      } else {
        throw RemoteHostError(code: .invalidParameters, message: "'\(entry)' is neither a network nor a host name")
      }
    }
    self.networks = networks
    self.names = names
  }

  /// Whether `host` may be dialed, resolving it on a thread of its own (a slow resolver must
  /// not hold one of the few threads of Swift's pool). A name that does not resolve is
  /// refused. (ssh resolves the name again when it dials: a name whose addresses change in
  /// between is not caught; list addresses, not names, where that matters.)
  public func allows(_ host: String) async -> Bool {
    await withCheckedContinuation { continuation in
      Thread.detachNewThread { continuation.resume(returning: self.allowsNow(host)) }
    }
  }

  /// ``allows(_:)``, resolving on the calling thread.
  public func allowsNow(_ host: String) -> Bool {
    let host = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    if names.contains(where: { $0 == host || ($0.hasPrefix("*.") && host.hasSuffix($0.dropFirst())) }) { return true }
    let addresses = Self.address(host).map { [$0] } ?? Self.resolve(host)
    return !addresses.isEmpty && addresses.allSatisfy { address in networks.contains { $0.contains(address) } }
  }

  /// The bytes of an IPv4 or IPv6 address in text.
  static func address(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }

  /// The addresses `host` resolves to.
  static func resolve(_ host: String) -> [[UInt8]] {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
    defer { freeaddrinfo(list) }
    var addresses: [[UInt8]] = []
    var next = list
    while let entry = next {
      if let address = entry.pointee.ai_addr {
        switch Int32(entry.pointee.ai_family) {
        case AF_INET:
          var sin = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
          addresses.append(withUnsafeBytes(of: &sin) { Array($0) })
        case AF_INET6:
          var sin6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
          addresses.append(withUnsafeBytes(of: &sin6) { Array($0) })
        default:
          break
        }
      }
      next = entry.pointee.ai_next
    }
    return addresses
  }
}
