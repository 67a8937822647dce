/// Why a remote-host operation failed, with the seed 003 error code the HTTP API answers.
public struct RemoteHostError: Error, Sendable, Equatable, CustomStringConvertible {
  public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let invalidParameters = Code(rawValue: "invalid_parameters")
    public static let authenticationFailed = Code(rawValue: "authentication_failed")
    public static let connectionNotFound = Code(rawValue: "connection_not_found")
    public static let environmentNotFound = Code(rawValue: "environment_not_found")
    public static let connectionTimeout = Code(rawValue: "connection_timeout")
    public static let viewerAlreadyRunning = Code(rawValue: "viewer_already_running")
    public static let viewerNotRunning = Code(rawValue: "viewer_not_running")
    public static let hostKeyUnknown = Code(rawValue: "host_key_unknown")
    public static let hostKeyMismatch = Code(rawValue: "host_key_mismatch")
    public static let connectionLost = Code(rawValue: "connection_lost")
    public static let agentUnavailable = Code(rawValue: "agent_unavailable")
    public static let serviceUnavailable = Code(rawValue: "service_unavailable")
    /// The host is not among those the gateway may dial (``RemoteTargetPolicy``).
    public static let targetNotAllowed = Code(rawValue: "target_not_allowed")
    public static let sshError = Code(rawValue: "ssh_error")
    public static let internalError = Code(rawValue: "internal_error")

    /// The HTTP status the API answers this code with.
    public var httpStatus: Int {
      switch self {
      case .invalidParameters: 400
      case .authenticationFailed: 401
      case .targetNotAllowed: 403
      case .connectionNotFound, .environmentNotFound: 404
      case .connectionTimeout: 408
      case .viewerAlreadyRunning, .viewerNotRunning, .hostKeyUnknown, .hostKeyMismatch: 409
      case .connectionLost, .agentUnavailable, .serviceUnavailable: 503
      default: 500
      }
    }
  }

  public var code: Code
  public var message: String
  /// Context a client can act on (the host key's fingerprint, the host, ...).
  public var details: [String: String]

  public init(code: Code, message: String, details: [String: String] = [:]) {
    self.code = code
    self.message = message
    self.details = details
  }

  public var description: String { "\(code): \(message)" }

  static func invalid(_ message: String) -> RemoteHostError { RemoteHostError(code: .invalidParameters, message: message) }
}
