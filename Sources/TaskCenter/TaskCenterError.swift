import EasyRemoteCore
import NodeComm

/// An error of the task center, by ``code`` (the HTTP API maps each to a status).
public struct TaskCenterError: Error, Sendable, Equatable, CustomStringConvertible {
  public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A request that cannot be run as given (HTTP 400); `field` names what is wrong.
    public static let invalidRequest = Code(rawValue: "INVALID_REQUEST")
    /// No task with that id (HTTP 404).
    public static let taskNotFound = Code(rawValue: "TASK_NOT_FOUND")
    /// No node with that id (HTTP 404).
    public static let nodeNotFound = Code(rawValue: "NODE_NOT_FOUND")
    /// A function task for a function no node serves.
    public static let functionNotFound = Code(rawValue: "FUNCTION_NOT_FOUND")
    /// The caller may not speak for that node, or finish that task (HTTP 403).
    public static let forbidden = Code(rawValue: "FORBIDDEN")
    /// An `Idempotency-Key` used before for another request.
    public static let idempotencyConflict = Code(rawValue: "IDEMPOTENCY_CONFLICT")
    /// The task ran past its timeout (HTTP 408).
    public static let taskTimeout = Code(rawValue: "TASK_TIMEOUT")
    /// No node could ever meet the task's resource request (HTTP 503).
    public static let resourceUnavailable = Code(rawValue: "RESOURCE_UNAVAILABLE")
    /// One address brought more pulling nodes than it may (HTTP 429).
    public static let tooManyNodes = Code(rawValue: "TOO_MANY_NODES")
    /// The store's disk is full: nothing was written (HTTP 507).
    public static let insufficientStorage = Code(rawValue: "INSUFFICIENT_STORAGE")
    /// The store failed, or anything unexpected (HTTP 500).
    public static let internalError = Code(rawValue: "INTERNAL_ERROR")

    public var description: String { rawValue }
  }

  public var code: Code
  public var message: String
  public var details: String?

  public init(code: Code, message: String, details: String? = nil) {
    self.code = code
    self.message = message
    self.details = details
  }

  public var description: String { "\(code): \(message)" + (details.map { " (\($0))" } ?? "") }

  static func invalid(_ field: String, _ message: String) -> TaskCenterError {
    TaskCenterError(code: .invalidRequest, message: message, details: "field: \(field)")
  }

  static func notFound(_ id: String) -> TaskCenterError {
    TaskCenterError(code: .taskNotFound, message: "task \(id) does not exist", details: "task_id: \(id)")
  }

  static func duplicateTask(_ id: String) -> TaskCenterError {
    TaskCenterError(code: .invalidRequest, message: "a task with id \(id) already exists", details: "field: id")
  }

  static func storage(_ error: any Error) -> TaskCenterError {
    TaskCenterError(code: .internalError, message: "the task store failed", details: String(describing: error))
  }
}

extension TaskCenterError {
  /// The node-layer error that carries this error to a client.
  var nodeError: NodeError {
    var details = ["tc_code": code.rawValue]
    if let extra = self.details { details["tc_details"] = extra }
    return NodeError(code: .rejected, message: message, details: details)
  }

  /// A task-center error that came back over a link, or the compute layer's view of any other.
  static func fromWire(_ error: any Error) -> any Error {
    guard let error = error as? NodeError, let code = error.details["tc_code"] else {
      return EasyRemoteError(error, function: nil)
    }
    return TaskCenterError(code: Code(rawValue: code), message: error.message, details: error.details["tc_details"])
  }
}
