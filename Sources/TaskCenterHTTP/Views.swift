import EasyRemoteCore
import Foundation
import TaskCenter

// The JSON shapes of the HTTP API (MISSION.md section 004; `openapi.yaml` documents them).

/// `POST /tasks`.
struct NewTaskRequest: Decodable {
  var code: String?
  var function: String?
  var args: [JSONValue]?
  var timeout: Double?
  var resources: Resources?
  var maxAttempts: Int?

  struct Resources: Decodable {
    var cpu: Double?
    var memory: Int?
  }

  enum CodingKeys: String, CodingKey {
    case code, function, args, timeout, resources
    case maxAttempts = "max_attempts"
  }

  /// A field may be left out, but not given as null: the schema says what each one is.
  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    code = try container.decodeIfPresent(String.self, forKey: .code, notNull: "a string")
    function = try container.decodeIfPresent(String.self, forKey: .function, notNull: "a string")
    args = try container.decodeIfPresent([JSONValue].self, forKey: .args, notNull: "an array")
    timeout = try container.decodeIfPresent(Double.self, forKey: .timeout, notNull: "a number")
    resources = try container.decodeIfPresent(Resources.self, forKey: .resources, notNull: "an object")
    maxAttempts = try container.decodeIfPresent(Int.self, forKey: .maxAttempts, notNull: "an integer")
  }
}

extension NewTaskRequest.Resources {
  enum CodingKeys: String, CodingKey { case cpu, memory }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    cpu = try container.decodeIfPresent(Double.self, forKey: .cpu, notNull: "a number")
    memory = try container.decodeIfPresent(Int.self, forKey: .memory, notNull: "an integer")
  }
}

extension KeyedDecodingContainer {
  /// `decodeIfPresent` that takes an explicit null for a wrong type.
  func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key, notNull what: String) throws -> T? {
    guard contains(key) else { return nil }
    if try decodeNil(forKey: key) {
      throw DecodingError.typeMismatch(
        T.self, .init(codingPath: codingPath + [key], debugDescription: "'\(key.stringValue)' must be \(what), not null"))
    }
    return try decode(T.self, forKey: key)
  }
}

struct NewTaskResponse: Encodable {
  var taskID: String
  var status: TaskStatus
  /// `nil` (JSON `null`) while no node is online: nobody can say.
  var estimatedWait: Double?

  enum CodingKeys: String, CodingKey {
    case taskID = "task_id"
    case status
    case estimatedWait = "estimated_wait"
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(taskID, forKey: .taskID)
    try container.encode(status, forKey: .status)
    try container.encode(estimatedWait, forKey: .estimatedWait)  // null, not left out
  }
}

struct TaskList: Encodable {
  var tasks: [TaskView]
  var total: Int
  var limit: Int
  var offset: Int
}

struct NodeList: Encodable {
  var nodes: [NodeView]
  var totalIdle: Int
  var totalNodes: Int

  enum CodingKeys: String, CodingKey {
    case nodes
    case totalIdle = "total_idle"
    case totalNodes = "total_nodes"
  }
}

/// `GET /stats/nodes/queue`.
struct QueueView: Encodable {
  struct Entry: Encodable {
    var nodeID: String
    var status: NodeStatus
    var waitingSince: Date
    var waitTimeSeconds: Double
    var priority: FairScheduler.Priority
    var completedTasks: Int
    var reason: FairScheduler.Reason
    var score: Double

    enum CodingKeys: String, CodingKey {
      case nodeID = "node_id"
      case status
      case waitingSince = "waiting_since"
      case waitTimeSeconds = "wait_time_seconds"
      case priority
      case completedTasks = "completed_tasks"
      case reason, score
    }
  }

  var schedulingPolicy = "fair_queue_with_priority"
  var totalNodesInQueue: Int
  var nodes: [Entry]

  enum CodingKeys: String, CodingKey {
    case schedulingPolicy = "scheduling_policy"
    case totalNodesInQueue = "total_nodes_in_queue"
    case nodes
  }
}

/// `POST /internal/heartbeat` from a node written in another language.
struct HeartbeatRequest: Decodable {
  struct Resources: Decodable {
    var cpuCores: Int
    var memoryMB: Int
    var platform: String?

    enum CodingKeys: String, CodingKey {
      case cpuCores = "cpu_cores"
      case memoryMB = "memory_mb"
      case platform
    }
  }

  var nodeID: String
  var resources: Resources
  var currentLoad: NodeLoad?
  var slots: Int?
  var nodeKey: String?

  enum CodingKeys: String, CodingKey {
    case nodeID = "node_id"
    case resources
    case currentLoad = "current_load"
    case slots
    case nodeKey = "node_key"
  }
}

/// `GET /internal/task/request`.
struct TaskOffer: Encodable {
  struct Offered: Encodable {
    var taskID: String
    var code: String
    var timeout: Double
    /// Which attempt this is: a result may name it, and is refused for any other.
    var attempt: Int

    enum CodingKeys: String, CodingKey {
      case taskID = "task_id"
      case code, timeout, attempt
    }
  }

  var hasTask: Bool
  var task: Offered?
  var waitTime: Double?

  enum CodingKeys: String, CodingKey {
    case hasTask = "has_task"
    case task
    case waitTime = "wait_time"
  }
}

/// `POST /internal/task/result`.
struct TaskResultRequest: Decodable {
  var taskID: String
  /// Who ran it; a key-less worker that follows the seed's bodies leaves it out.
  var nodeID: String?
  var nodeKey: String?
  var attempt: Int?
  /// success | failed | timeout
  var status: String
  var result: String?
  var stderr: String?
  var exitStatus: Int?
  var executionTime: Double?
  var errorMessage: String?

  enum CodingKeys: String, CodingKey {
    case taskID = "task_id"
    case nodeID = "node_id"
    case nodeKey = "node_key"
    case status, result, stderr, attempt
    case exitStatus = "exit_status"
    case executionTime = "execution_time"
    case errorMessage = "error_message"
  }
}

/// `POST /functions/{name}/call`.
struct FunctionCallRequest: Decodable {
  var args: [JSONValue]?
  var kwargs: [String: JSONValue]?
  var node: String?
  var timeout: Double?

  init() {}

  enum CodingKeys: String, CodingKey { case args, kwargs, node, timeout }

  /// A field sent as null is refused (the schema has none nullable), not taken as absent.
  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    args = try container.decodeIfPresent([JSONValue].self, forKey: .args, notNull: "an array")
    kwargs = try container.decodeIfPresent([String: JSONValue].self, forKey: .kwargs, notNull: "an object")
    node = try container.decodeIfPresent(String.self, forKey: .node, notNull: "a string")
    timeout = try container.decodeIfPresent(Double.self, forKey: .timeout, notNull: "a number")
  }
}

struct FunctionCallResponse: Encodable {
  var function: String
  var result: JSONValue
}

/// `GET /stats/gateway`: the gateway's call counters (seed 000's `Server.stats()`).
struct GatewayStatsView: Encodable {
  var stats: GatewayStats

  enum CodingKeys: String, CodingKey {
    case nodes, functions
    case totalRequests = "total_requests", failedRequests = "failed_requests", inFlight = "in_flight"
    case perFunction = "per_function"
    case maxWorkers = "max_workers", waiting
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(stats.nodes, forKey: .nodes)
    try container.encode(stats.functions, forKey: .functions)
    try container.encode(stats.totalRequests, forKey: .totalRequests)
    try container.encode(stats.failedRequests, forKey: .failedRequests)
    try container.encode(stats.inFlight, forKey: .inFlight)
    try container.encode(stats.maxWorkers, forKey: .maxWorkers)
    try container.encode(stats.waiting ?? 0, forKey: .waiting)
    try container.encode(
      stats.perFunction.mapValues(StatsTick.Function.init),
      forKey: .perFunction)
  }
}
