package import NodeComm

/// An error of the compute layer (gateway, compute nodes, clients), by ``code``.
///
/// ```swift
/// do {
///   let sum: Int = try await client.execute("add", 1, 2)
/// } catch let error as EasyRemoteError where error.code == .functionNotFound {
///   print(error.message)
/// }
/// ```
public struct EasyRemoteError: Error, Sendable, CustomStringConvertible {
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// The gateway cannot be reached.
    public static let connectionFailed = Code("connection_failed")
    /// The call did not finish in time.
    public static let timedOut = Code("timed_out")
    /// No node serves the function (or the named node does not serve it).
    public static let functionNotFound = Code("function_not_found")
    /// The function threw on the node; `remoteType` and `message` say what.
    public static let remoteExecutionFailed = Code("remote_execution_failed")
    /// The node running the call went away before answering.
    public static let nodeLost = Code("node_lost")
    /// The arguments do not fit the function's parameters.
    public static let invalidArguments = Code("invalid_arguments")
    /// Every node serving the function is at its `maxWorkers` and its queue is full.
    public static let busy = Code("busy")
    /// The result could not be decoded as the type asked for.
    public static let invalidResult = Code("invalid_result")
    /// The peer refused the call's token (or its lack of one).
    public static let authFailed = Code("auth_failed")
    /// Anything else, with the node-layer code in `details["node_code"]`.
    public static let internalError = Code("internal_error")

    static let all: [Code] = [
      connectionFailed, timedOut, functionNotFound, remoteExecutionFailed, nodeLost, invalidArguments, busy,
      invalidResult, authFailed, internalError,
    ]

    package init(wireValue: String) { self = Code.all.first { $0.rawValue == wireValue } ?? Code(wireValue) }

    public var description: String { rawValue }
  }

  public var code: Code
  public var message: String
  /// The function involved, if any.
  public var function: String?
  /// For remote failures: the type of the error the function threw.
  public var remoteType: String?
  public var details: [String: String]
  /// The error underneath (a `NodeError`, a decoding error), when this one wraps another.
  public var cause: (any Error)?

  public init(
    code: Code, message: String, function: String? = nil, remoteType: String? = nil, details: [String: String] = [:],
    cause: (any Error)? = nil
  ) {
    self.code = code
    self.message = message
    self.function = function
    self.remoteType = remoteType
    self.details = details
    self.cause = cause
  }

  public var description: String {
    "EasyRemoteError(\(code)): \(message)" + (cause.map { " (cause: \($0))" } ?? "")
  }
}

extension EasyRemoteError {
  /// The node-layer error that carries this error between processes.
  package var nodeError: NodeError {
    var details = self.details
    details["er_code"] = code.rawValue
    if let function { details["function"] = function }
    if let remoteType { details["type"] = remoteType }
    return NodeError(code: .rejected, message: message, method: function, details: details)
  }

  /// The compute-layer view of an error that came out of the node layer.
  package init(_ error: any Error, function: String?) {
    if let error = error as? EasyRemoteError {
      self = error
      return
    }
    guard let error = error as? NodeError else {
      self.init(code: .internalError, message: "\(error)", function: function, cause: error)
      return
    }
    if let code = error.details["er_code"] {
      self.init(
        code: Code(wireValue: code), message: error.message, function: error.details["function"] ?? function,
        remoteType: error.details["type"], details: error.details.filter { $0.key != "er_code" })
      return
    }
    let code: Code =
      switch error.code {
      case .timedOut: .timedOut
      case .notConnected, .connectFailed: .connectionFailed
      case .connectionLost, .nodeStopping: .nodeLost
      case .remoteExecutionFailed: .remoteExecutionFailed
      case .methodNotFound: .functionNotFound
      case .serializationFailed: .invalidArguments
      case .authFailed: .authFailed
      default: .internalError
      }
    self.init(
      code: code, message: error.message, function: function, remoteType: error.details["type"],
      details: ["node_code": error.code.rawValue], cause: error)
  }
}
