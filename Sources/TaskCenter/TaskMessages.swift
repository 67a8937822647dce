public import EasyRemoteCore
public import Foundation
public import Sandbox

// What clients, the gateway's task center and task-running nodes say to each other, as
// node-layer methods over their existing links.

enum TaskMethods {
  // client → gateway
  static let submit = "er.tasks.submit"
  static let get = "er.tasks.get"
  static let wait = "er.tasks.wait"
  static let list = "er.tasks.list"
  static let cancel = "er.tasks.cancel"
  static let nodes = "er.tasks.nodes"
  // node → gateway (it joins and leaves the task center by its announcement, `er.gateway.announce`)
  static let handIn = "er.tasks.hand_in"
  // gateway → node
  static let run = "er.node.task.run"
  static let abort = "er.node.task.cancel"
}

/// A new task, as a client (or the HTTP API) asks for it.
public struct TaskSubmission: Codable, Sendable, Equatable {
  /// The source of a code task.
  public var code: String?
  /// The function of a function task and its positional arguments.
  public var function: String?
  public var args: [JSONValue]?
  /// Seconds; 300 by default.
  public var timeout: Double?
  public var resources: ResourceRequest?
  public var maxAttempts: Int?

  public init(
    code: String? = nil, function: String? = nil, args: [JSONValue]? = nil, timeout: Double? = nil,
    resources: ResourceRequest? = nil, maxAttempts: Int? = nil
  ) {
    self.code = code
    self.function = function
    self.args = args
    self.timeout = timeout
    self.resources = resources
    self.maxAttempts = maxAttempts
  }

  enum CodingKeys: String, CodingKey {
    case code, function, args, timeout, resources
    case maxAttempts = "max_attempts"
  }

  public static func code(_ source: String, timeout: Double? = nil, resources: ResourceRequest? = nil) -> TaskSubmission {
    TaskSubmission(code: source, timeout: timeout, resources: resources)
  }

  public static func function(_ name: String, args: [JSONValue] = [], timeout: Double? = nil) -> TaskSubmission {
    TaskSubmission(function: name, args: args, timeout: timeout)
  }
}

/// How a task ended on a node, kept by the node for a while after it answered: a gateway killed
/// before it recorded the answer has lost it, and the task would run again. The node hands its
/// reports to the gateway it joins next (the same one restarted, or another on the same store),
/// before it announces itself there (`er.tasks.hand_in`); that gateway records those whose
/// task is still running on that node.
struct TaskReport: Codable, Sendable {
  var id: String
  var outcome: TaskOutcome
  /// When it ended (reports older than ``TaskReport/keep`` are dropped).
  var at: Date
  /// The attempt it answers (absent from older nodes).
  var attempt: Int?

  static let keep: TimeInterval = 120
  static let most = 512
  static let mostBytes = 16 << 20
}

struct TaskQuery: Codable, Sendable {
  var id: String
  /// For `wait`: seconds to wait at most.
  var timeout: Double?
}

struct TaskListQuery: Codable, Sendable {
  var status: TaskStatus?
  var limit: Int
  var offset: Int
}

/// Something that happened in the task center, as `GET /ws/updates` sends it.
///
/// The data of a task or node event is the object `GET /tasks/{id}` or `GET /nodes/{id}`
/// answers at that moment: the same keys, dates as ISO-8601 text. An event is encoded once,
/// when it happens; every subscriber gets the same bytes (``json``).
public struct TaskCenterEvent: Sendable, Equatable {
  public enum Kind: String, Codable, Sendable {
    case nodeJoined = "node_joined"
    case nodeLeft = "node_left"
    case taskCreated = "task_created"
    case taskStarted = "task_started"
    case taskCompleted = "task_completed"
    case taskFailed = "task_failed"
  }

  public let event: Kind
  /// The gateway event it is (``Server/events(buffer:)``), with its JSON text.
  public let gatewayEvent: GatewayEvent

  /// The whole event as JSON text: `{"data":{…},"event":"task_completed"}`.
  public var json: Data { gatewayEvent.json }

  /// The event's data, read back from ``json``.
  public var data: JSONValue { gatewayEvent.data }

  /// The task-center event a gateway event is, if it is one.
  public init?(_ event: GatewayEvent) {
    guard let kind = Kind(rawValue: event.name) else { return nil }
    self.event = kind
    self.gatewayEvent = event
  }
}

/// The task center's counters (`GET /stats`).
public struct TaskCenterStats: Codable, Sendable, Equatable {
  public struct Tasks: Codable, Sendable, Equatable {
    public var total, queued, running, completed, failed, timeout, cancelled: Int
    /// Average run time of finished tasks, seconds.
    public var averageSeconds: Double

    enum CodingKeys: String, CodingKey {
      case total, queued, running, completed, failed, timeout, cancelled
      case averageSeconds = "avg_time"
    }
  }

  public struct Nodes: Codable, Sendable, Equatable {
    public var total, idle, busy, offline: Int
  }

  public struct Throughput: Codable, Sendable, Equatable {
    public var tasksPerHour: Int
    public var computeHours: Double

    enum CodingKeys: String, CodingKey {
      case tasksPerHour = "tasks_per_hour"
      case computeHours = "compute_hours"
    }
  }

  public var tasks: Tasks
  public var nodes: Nodes
  public var throughput: Throughput
}
