/// Who to connect to and how to prove who we are: what `POST /api/remote/connect` carries.
public struct SSHLogin: Sendable {
  public enum Authentication: Sendable {
    /// A private key file (`nil` takes what `~/.ssh/config` and ssh's defaults name), with its
    /// passphrase when it has one.
    case key(path: String?, passphrase: String?)
    case password(String)
    /// The keys of the running `ssh-agent` (`SSH_AUTH_SOCK`).
    case agent
  }

  /// A host name, an address or a `~/.ssh/config` alias.
  public var host: String
  /// nil takes the port `~/.ssh/config` gives the host (else 22).
  public var port: Int?
  /// nil takes the user `~/.ssh/config` gives the host (else ours).
  public var username: String?
  public var authentication: Authentication
  /// Seconds to wait for the connection and the login.
  public var timeout: Double
  /// A host key fingerprint (`SHA256:...`) the user has checked and accepts: an unknown host
  /// presenting exactly this key is recorded in known_hosts; any other key is refused.
  public var acceptedHostKey: String?

  public init(
    host: String, port: Int? = nil, username: String? = nil, authentication: Authentication = .key(path: nil, passphrase: nil),
    timeout: Double = 30, acceptedHostKey: String? = nil
  ) {
    self.host = host
    self.port = port
    self.username = username
    self.authentication = authentication
    self.timeout = timeout
    self.acceptedHostKey = acceptedHostKey
  }

  /// Refuses what ssh would read as an option or what cannot be a host, user or secret.
  func validate() throws(RemoteHostError) {
    func plain(_ text: String, _ field: String) throws(RemoteHostError) {
      if text.isEmpty { throw .invalid("\(field) must not be empty") }
      if text.hasPrefix("-") { throw .invalid("\(field) must not start with '-': \(text)") }
      if text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } == true }) {
        throw .invalid("\(field) must not contain spaces or control characters")
      }
    }
    try plain(host, "host")
    if let username { try plain(username, "username") }
    if let port, !(1...65535).contains(port) { throw .invalid("port must be 1-65535, got \(port)") }
    if !(timeout > 0 && timeout <= 600) { throw .invalid("timeout must be between 0 and 600 seconds, got \(timeout)") }
    switch authentication {
    case .password(let secret), .key(_, .some(let secret)):
      if secret.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) {
        throw .invalid("a password or passphrase must be one line")
      }
      if secret.isEmpty { throw .invalid("an empty password or passphrase is not one") }
    default: break
    }
    if case .key(.some(let path), _) = authentication, path.isEmpty { throw .invalid("private_key_path must not be empty") }
    if let acceptedHostKey, !acceptedHostKey.hasPrefix("SHA256:") || acceptedHostKey.count < 20 {
      throw .invalid("accept_host_key must be a SHA256 fingerprint such as SHA256:J83dvJ5j..., got \(acceptedHostKey)")
    }
  }
}
