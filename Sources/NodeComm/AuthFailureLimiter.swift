import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Slows token guessing: after `maxFailures` wrong or missing tokens from one IP address
/// within `window`, that address is refused — whatever it presents — until the window ends.
/// Shared by the HTTP API and the links of one gateway, so guesses count wherever they come
/// from.
///
/// A pure fixed window per address, with time injected (`now`), so it is tested without
/// waiting. At most `maxAddresses` are remembered; past that, the oldest windows are dropped.
public final class AuthFailureLimiter: Sendable {
  public struct Configuration: Sendable, Equatable {
    /// Failures one address may have in a window before it is refused.
    public var maxFailures: Int
    /// How long a window lasts from its first failure (and a refusal, at most).
    public var window: Duration
    /// Addresses remembered at most.
    public var maxAddresses: Int

    public init(maxFailures: Int = 10, window: Duration = .seconds(60), maxAddresses: Int = 10_000) {
      self.maxFailures = maxFailures
      self.window = window
      self.maxAddresses = maxAddresses
    }
  }

  /// What a failure did.
  public struct Failure: Sendable, Equatable {
    /// The address's first failure of its window (worth a log line; the rest are counted).
    public var first: Bool
    /// Set when the address is now refused: for how long.
    public var refusedFor: Duration?

    public init(first: Bool, refusedFor: Duration?) {
      self.first = first
      self.refusedFor = refusedFor
    }
  }

  private struct Window {
    var start: ContinuousClock.Instant
    var failures: Int
  }

  public let configuration: Configuration
  private let now: @Sendable () -> ContinuousClock.Instant
  private let windows = Mutex<[String: Window]>([:])

  public init(configuration: Configuration = .init(), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
    self.configuration = configuration
    self.now = now
  }

  /// How long `address` is still refused; `nil` when it may try.
  public func refusal(for address: String) -> Duration? {
    let now = self.now()
    return windows.withLock { windows in
      guard let window = windows[address] else { return nil }
      let end = window.start + configuration.window
      if now >= end {
        windows[address] = nil
        return nil
      }
      return window.failures >= configuration.maxFailures ? end - now : nil
    }
  }

  /// `address` presented a wrong token, or none.
  @discardableResult
  public func failed(_ address: String) -> Failure {
    let now = self.now()
    return windows.withLock { windows in
      var window = windows[address].flatMap { now < $0.start + configuration.window ? $0 : nil } ?? Window(start: now, failures: 0)
      window.failures += 1
      if windows[address] == nil && windows.count >= configuration.maxAddresses {
        // Forget the oldest tenth, not one at a time.
        for (old, _) in windows.sorted(by: { $0.value.start < $1.value.start }).prefix(max(1, configuration.maxAddresses / 10)) {
          windows[old] = nil
        }
      }
      windows[address] = window
      let refused = window.failures >= configuration.maxFailures ? window.start + configuration.window - now : nil
      return Failure(first: window.failures == 1, refusedFor: refused)
    }
  }

  /// The client a peer description (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`, `1.2.3.4:5678`)
  /// stands for: what a limit applies to (``client(ip:)``).
  public static func address(of peer: String) -> String {
    var text = Substring(peer)
    for scheme in ["ipv4:", "ipv6:"] where text.hasPrefix(scheme) { text = text.dropFirst(scheme.count) }
    if text.hasPrefix("["), let end = text.firstIndex(of: "]") { return client(ip: String(text[text.index(after: text.startIndex)..<end])) }
    if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon { return String(text[..<colon]) }
    return client(ip: String(text))
  }

  /// The client an IP address stands for: an IPv4 address itself; an IPv6 address its /64
  /// (`2001:db8:1:2::/64`), which one host or network commonly holds whole — so that a limit
  /// per address is not a limit per one of its 2^64 addresses.
  public static func client(ip: String) -> String {
    guard ip.contains(":") else { return ip }
    var address = in6_addr()
    guard inet_pton(AF_INET6, ip, &address) == 1 else { return ip }
    let bytes = withUnsafeBytes(of: &address) { Array($0) }
    if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {  // ::ffff:1.2.3.4
      return bytes[12..<16].map(String.init).joined(separator: ".")
    }
    let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
    return groups.joined(separator: ":") + "::/64"
  }
}
