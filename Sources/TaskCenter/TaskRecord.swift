public import Foundation

/// Where a task is in its life: queued → running → completed | failed | timeout | cancelled.
public enum TaskStatus: String, Codable, Sendable, CaseIterable {
  case queued, running, completed, failed, timeout, cancelled

  /// Completed, failed, timed out or cancelled: nothing more happens to the task.
  public var isFinal: Bool { self != .queued && self != .running }
}

/// What a task runs: a piece of code in a sandbox, or a call of a registered function.
public enum TaskKind: String, Codable, Sendable {
  case code, function
}

/// What a task asks of the node that runs it (`{"cpu": 1, "memory": 512}` on the wire: cores
/// and MiB).
public struct ResourceRequest: Codable, Sendable, Hashable {
  public var cpu: Double
  public var memoryMB: Int

  public init(cpu: Double = 1, memoryMB: Int = 512) {
    self.cpu = cpu
    self.memoryMB = memoryMB
  }

  enum CodingKeys: String, CodingKey {
    case cpu
    case memoryMB = "memory"
  }
}

/// One task as the task center keeps it: what to run, where it is, and how it ended.
public struct TaskRecord: Codable, Sendable, Equatable, Identifiable {
  public var id: String
  public var kind: TaskKind
  public var status: TaskStatus
  /// The source of a code task.
  public var code: String?
  /// The function of a function task, and its arguments as a JSON array.
  public var function: String?
  public var arguments: String?
  /// Seconds the task may run before it is killed (status `timeout`).
  public var timeout: Double
  public var resources: ResourceRequest
  /// How many times the task was started; it fails after `maxAttempts` starts on nodes that
  /// went away.
  public var attempts: Int
  public var maxAttempts: Int
  /// The node running (or that ran) the task.
  public var nodeID: String?
  /// stdout of a code task, the JSON result of a function task.
  public var result: String?
  /// stderr of a code task.
  public var stderr: String?
  public var exitStatus: Int?
  public var errorMessage: String?
  public var createdAt: Date
  public var startedAt: Date?
  public var finishedAt: Date?
  /// Seconds the last attempt ran.
  public var executionTime: Double?

  public init(
    id: String = TaskRecord.newID(), kind: TaskKind, code: String? = nil, function: String? = nil,
    arguments: String? = nil, timeout: Double = 300, resources: ResourceRequest = ResourceRequest(),
    maxAttempts: Int = 3, createdAt: Date = Date()
  ) {
    self.id = id
    self.kind = kind
    self.status = .queued
    self.code = code
    self.function = function
    self.arguments = arguments
    self.timeout = timeout
    self.resources = resources
    self.attempts = 0
    self.maxAttempts = maxAttempts
    self.createdAt = createdAt
  }

  /// A code task.
  public static func code(
    _ source: String, timeout: Double = 300, resources: ResourceRequest = ResourceRequest(), maxAttempts: Int = 3
  ) -> TaskRecord {
    TaskRecord(kind: .code, code: source, timeout: timeout, resources: resources, maxAttempts: maxAttempts)
  }

  /// A queued call of a registered function; `arguments` is a JSON array.
  public static func function(
    _ name: String, arguments: String = "[]", timeout: Double = 300, resources: ResourceRequest = ResourceRequest(),
    maxAttempts: Int = 3
  ) -> TaskRecord {
    TaskRecord(
      kind: .function, function: name, arguments: arguments, timeout: timeout, resources: resources,
      maxAttempts: maxAttempts)
  }

  enum CodingKeys: String, CodingKey {
    case id = "task_id"
    case kind, status, code, function, arguments, timeout, resources, attempts
    case maxAttempts = "max_attempts"
    case nodeID = "node_id"
    case result, stderr
    case exitStatus = "exit_status"
    case errorMessage = "error_message"
    case createdAt = "created_at"
    case startedAt = "started_at"
    case finishedAt = "finished_at"
    case executionTime = "execution_time"
  }

  /// `task_` and 24 hex digits: unique, and sortable by nothing (order by `createdAt`).
  public static func newID() -> String {
    let uuid = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    return "task_" + uuid.prefix(24)
  }
}

/// How an attempt ended, as the node reports it.
public struct TaskOutcome: Codable, Sendable, Equatable {
  public var status: TaskStatus
  public var result: String?
  public var stderr: String?
  public var exitStatus: Int?
  public var errorMessage: String?
  public var executionTime: Double?

  public init(
    status: TaskStatus, result: String? = nil, stderr: String? = nil, exitStatus: Int? = nil,
    errorMessage: String? = nil, executionTime: Double? = nil
  ) {
    self.status = status
    self.result = result
    self.stderr = stderr
    self.exitStatus = exitStatus
    self.errorMessage = errorMessage
    self.executionTime = executionTime
  }

  enum CodingKeys: String, CodingKey {
    case status, result, stderr
    case exitStatus = "exit_status"
    case errorMessage = "error_message"
    case executionTime = "execution_time"
  }

  public static func completed(_ result: String, executionTime: Double? = nil) -> TaskOutcome {
    TaskOutcome(status: .completed, result: result, exitStatus: 0, executionTime: executionTime)
  }

  public static func failed(_ message: String, executionTime: Double? = nil) -> TaskOutcome {
    TaskOutcome(status: .failed, errorMessage: message, executionTime: executionTime)
  }
}
