public import EasyRemoteCore
public import Foundation
public import NodeComm

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

/// Bytes and the name of the serializer that wrote them: how a task keeps a function call's
/// arguments and result, encoded once (`json`; `binary`, MessagePack, when they carry bytes;
/// `text` for a code task's stdout).
public struct TaskPayload: Codable, Sendable, Equatable {
  public var data: Data
  public var serializer: String

  public init(data: Data, serializer: String) {
    self.data = data
    self.serializer = serializer
  }

  /// The serializer name of plain UTF-8 text (a code task's stdout).
  public static let text = "text"

  /// UTF-8 text.
  public static func text(_ string: String) -> TaskPayload { TaskPayload(data: Data(string.utf8), serializer: text) }

  /// JSON text, as it is.
  public static func json(_ text: String) -> TaskPayload {
    TaskPayload(data: Data(text.utf8), serializer: JSONSerializer.name)
  }

  /// The value as JSON: JSON parsed, MessagePack converted, text as a string, raw bytes as
  /// base64; `nil` when the bytes do not read as their serializer says.
  public var json: JSONValue? {
    switch serializer {
    case JSONSerializer.name: try? JSONValue(parsing: String(decoding: data, as: UTF8.self))
    case BinarySerializer.name: try? BinarySerializer().decode(JSONValue.self, from: data)
    case RawSerializer.name: .bytes(data)
    default: .string(String(decoding: data, as: UTF8.self))
    }
  }

  /// The payload as the node layer carries it.
  var payload: Payload { Payload(data: data, serializer: serializer) }
  init(_ payload: Payload) { self.init(data: payload.data, serializer: payload.serializer) }
}

/// One task as the task center keeps it: what to run, where it is, and how it ended.
///
/// In JSON (the REST API, the client's methods) `arguments` is the argument list and `result`
/// a function task's result as a JSON value, or a code task's stdout as text.
public struct TaskRecord: Codable, Sendable, Equatable, Identifiable {
  public var id: String
  public var kind: TaskKind
  public var status: TaskStatus
  /// The source of a code task.
  public var code: String?
  /// The function of a function task.
  public var function: String?
  /// A function task's call (function, arguments), encoded once when it was submitted; the
  /// node decodes its parameters straight from it.
  public var invocation: TaskPayload?
  /// Seconds the task may run before it is killed (status `timeout`).
  public var timeout: Double
  public var resources: ResourceRequest
  /// How many times the task was started; it fails after `maxAttempts` starts on nodes that
  /// went away.
  public var attempts: Int
  public var maxAttempts: Int
  /// The node running (or that ran) the task.
  public var nodeID: String?
  /// What it produced: a code task's stdout (`text`), a function task's result as its node
  /// encoded it.
  public var output: TaskPayload?
  /// stderr of a code task.
  public var stderr: String?
  public var exitStatus: Int?
  public var errorMessage: String?
  public var createdAt: Date
  public var startedAt: Date?
  public var finishedAt: Date?
  /// Seconds the last attempt ran.
  public var executionTime: Double?

  package init(
    id: String = TaskRecord.newID(), kind: TaskKind, code: String? = nil, function: String? = nil,
    invocation: TaskPayload? = nil, timeout: Double = 300, resources: ResourceRequest = ResourceRequest(),
    maxAttempts: Int = 3, createdAt: Date = Date()
  ) {
    self.id = id
    self.kind = kind
    self.status = .queued
    self.code = code
    self.function = function
    self.invocation = invocation
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

  /// A queued call of a registered function with positional arguments, encoded once (JSON,
  /// or MessagePack when they carry bytes).
  public static func function(
    _ name: String, args: [JSONValue] = [], timeout: Double = 300, resources: ResourceRequest = ResourceRequest(),
    maxAttempts: Int = 3
  ) throws -> TaskRecord {
    let call = Invocation(function: name, args: args)
    let serializer: any PayloadSerializer = call.serializer == BinarySerializer.name ? BinarySerializer() : JSONSerializer()
    return TaskRecord(
      kind: .function, function: name,
      invocation: TaskPayload(data: try serializer.encode(call), serializer: serializer.name),
      timeout: timeout, resources: resources, maxAttempts: maxAttempts)
  }

  /// A code task's stdout without its final newline (`print(1+1)` gives `"2"`, as the seed
  /// shows it), or a function task's result as JSON text.
  public var result: String? {
    guard let output else { return nil }
    if output.serializer == TaskPayload.text { return Self.withoutFinalNewline(String(decoding: output.data, as: UTF8.self)) }
    if output.serializer == JSONSerializer.name { return String(decoding: output.data, as: UTF8.self) }
    return output.json.map { String(decoding: (try? JSONEncoder().encode($0)) ?? Data(), as: UTF8.self) }
  }

  /// A code task's stdout, whole.
  public var stdout: String? {
    guard let output, output.serializer == TaskPayload.text else { return nil }
    return String(decoding: output.data, as: UTF8.self)
  }

  static func withoutFinalNewline(_ text: String) -> String {
    // ("\r\n" is one Character in Swift: one dropLast takes either ending.)
    text.hasSuffix("\n") || text.hasSuffix("\r\n") ? String(text.dropLast()) : text
  }

  /// A function task's positional arguments, as JSON values.
  public var arguments: [JSONValue]? {
    guard let invocation else { return nil }
    guard case .object(let fields)? = invocation.json, case .array(let args)? = fields["args"] else { return nil }
    return args
  }

  enum CodingKeys: String, CodingKey {
    case id = "task_id"
    case kind, status, code, function, arguments, timeout, resources, attempts
    case maxAttempts = "max_attempts"
    case nodeID = "node_id"
    case result, stdout, stderr
    case exitStatus = "exit_status"
    case errorMessage = "error_message"
    case createdAt = "created_at"
    case startedAt = "started_at"
    case finishedAt = "finished_at"
    case executionTime = "execution_time"
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(id, forKey: .id)
    try container.encode(kind, forKey: .kind)
    try container.encode(status, forKey: .status)
    try container.encodeIfPresent(code, forKey: .code)
    try container.encodeIfPresent(function, forKey: .function)
    try container.encodeIfPresent(arguments, forKey: .arguments)
    try container.encode(timeout, forKey: .timeout)
    try container.encode(resources, forKey: .resources)
    try container.encode(attempts, forKey: .attempts)
    try container.encode(maxAttempts, forKey: .maxAttempts)
    try container.encodeIfPresent(nodeID, forKey: .nodeID)
    if let output {
      if kind == .function, output.serializer != TaskPayload.text {
        try container.encode(output.json ?? .null, forKey: .result)
      } else {
        // The result without the final newline (as the seed shows it), stdout whole beside it.
        let text = String(decoding: output.data, as: UTF8.self)
        try container.encode(Self.withoutFinalNewline(text), forKey: .result)
        try container.encode(text, forKey: .stdout)
      }
    }
    try container.encodeIfPresent(stderr, forKey: .stderr)
    try container.encodeIfPresent(exitStatus, forKey: .exitStatus)
    try container.encodeIfPresent(errorMessage, forKey: .errorMessage)
    try container.encode(createdAt, forKey: .createdAt)
    try container.encodeIfPresent(startedAt, forKey: .startedAt)
    try container.encodeIfPresent(finishedAt, forKey: .finishedAt)
    try container.encodeIfPresent(executionTime, forKey: .executionTime)
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    kind = try container.decode(TaskKind.self, forKey: .kind)
    status = try container.decode(TaskStatus.self, forKey: .status)
    code = try container.decodeIfPresent(String.self, forKey: .code)
    function = try container.decodeIfPresent(String.self, forKey: .function)
    if let function, let args = try container.decodeIfPresent([JSONValue].self, forKey: .arguments) {
      invocation = TaskPayload(data: try JSONSerializer().encode(Invocation(function: function, args: args)), serializer: JSONSerializer.name)
    }
    timeout = try container.decode(Double.self, forKey: .timeout)
    resources = try container.decode(ResourceRequest.self, forKey: .resources)
    attempts = try container.decode(Int.self, forKey: .attempts)
    maxAttempts = try container.decode(Int.self, forKey: .maxAttempts)
    nodeID = try container.decodeIfPresent(String.self, forKey: .nodeID)
    if kind == .function, let value = try container.decodeIfPresent(JSONValue.self, forKey: .result) {
      output = TaskPayload(data: try JSONSerializer().encode(value), serializer: JSONSerializer.name)
    } else if let text = try container.decodeIfPresent(String.self, forKey: .stdout)
      ?? container.decodeIfPresent(String.self, forKey: .result)
    {
      output = .text(text)
    }
    stderr = try container.decodeIfPresent(String.self, forKey: .stderr)
    exitStatus = try container.decodeIfPresent(Int.self, forKey: .exitStatus)
    errorMessage = try container.decodeIfPresent(String.self, forKey: .errorMessage)
    createdAt = try container.decode(Date.self, forKey: .createdAt)
    startedAt = try container.decodeIfPresent(Date.self, forKey: .startedAt)
    finishedAt = try container.decodeIfPresent(Date.self, forKey: .finishedAt)
    executionTime = try container.decodeIfPresent(Double.self, forKey: .executionTime)
  }

  /// `task_` and 24 hex digits: unique, and sortable by nothing (order by `createdAt`).
  package static func newID() -> String {
    let uuid = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    return "task_" + uuid.prefix(24)
  }
}

/// How an attempt ended, as the node reports it.
public struct TaskOutcome: Codable, Sendable, Equatable {
  public var status: TaskStatus
  /// What the task produced (see ``TaskRecord/output``).
  public var output: TaskPayload?
  public var stderr: String?
  public var exitStatus: Int?
  public var errorMessage: String?
  public var executionTime: Double?

  package init(
    status: TaskStatus, output: TaskPayload? = nil, stderr: String? = nil, exitStatus: Int? = nil,
    errorMessage: String? = nil, executionTime: Double? = nil
  ) {
    self.status = status
    self.output = output
    self.stderr = stderr
    self.exitStatus = exitStatus
    self.errorMessage = errorMessage
    self.executionTime = executionTime
  }

  enum CodingKeys: String, CodingKey {
    case status, output, stderr
    case exitStatus = "exit_status"
    case errorMessage = "error_message"
    case executionTime = "execution_time"
  }

  package static func completed(_ output: TaskPayload, executionTime: Double? = nil) -> TaskOutcome {
    TaskOutcome(status: .completed, output: output, exitStatus: 0, executionTime: executionTime)
  }

  package static func failed(_ message: String, executionTime: Double? = nil) -> TaskOutcome {
    TaskOutcome(status: .failed, errorMessage: message, executionTime: executionTime)
  }
}

/// What the gateway sends a node to run (`er.node.task.run`), in MessagePack so a function
/// task's call travels as the bytes it was stored as.
struct TaskAssignment: Codable, Sendable {
  var id: String
  var kind: TaskKind
  var code: String?
  var function: String?
  var invocation: TaskPayload?
  var timeout: Double
  /// Which attempt this is (absent from older gateways): a late answer names it.
  var attempt: Int?

  init(_ task: TaskRecord) {
    id = task.id
    kind = task.kind
    code = task.code
    function = task.function
    invocation = task.invocation
    timeout = task.timeout
    attempt = task.attempts
  }
}
