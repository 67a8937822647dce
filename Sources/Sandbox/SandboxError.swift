/// Why a sandboxed run could not start.
public struct SandboxError: Error, Sendable, Equatable, CustomStringConvertible {
  public struct Code: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The interpreter is not installed.
    public static let interpreterNotFound = Code(rawValue: "interpreter_not_found")
    /// The scratch directory could not be made, or the process not started.
    public static let launchFailed = Code(rawValue: "launch_failed")
    /// A timeout that is not a positive number of seconds.
    public static let invalidTimeout = Code(rawValue: "invalid_timeout")
  }

  public var code: Code
  public var message: String

  public init(code: Code, message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}
