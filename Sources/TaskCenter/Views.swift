public import EasyRemoteCore
public import Foundation

// The JSON shapes of a task and a node, shared by the REST API (`GET /tasks/{id}`,
// `GET /nodes/{id}`) and the events of `/ws/updates`, so both say the same thing the same way:
// the same keys, dates as ISO-8601 text (``TaskCenterJSON/encoder``).

/// The one JSON encoder of the task center's public JSON: REST bodies and events.
package enum TaskCenterJSON {
  package static let encoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }()
}

/// A task (`GET /tasks/{id}`): the stored record, plus `completed_at` and `executed_on` as the
/// seed document names them.
package struct TaskView: Encodable, Sendable {
  package var task: TaskRecord

  package init(task: TaskRecord) { self.task = task }

  enum CodingKeys: String, CodingKey {
    case completedAt = "completed_at"
    case executedOn = "executed_on"
  }

  package func encode(to encoder: any Encoder) throws {
    try task.encode(to: encoder)
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encodeIfPresent(task.finishedAt, forKey: .completedAt)
    try container.encodeIfPresent(task.nodeID, forKey: .executedOn)
  }
}

/// A node (`GET /nodes`, `GET /nodes/{id}`).
package struct NodeView: Encodable, Sendable {
  package var node: NodeInfo

  package init(node: NodeInfo) { self.node = node }

  struct Resources: Encodable {
    var cpuCores: Int
    var memoryMB: Int

    enum CodingKeys: String, CodingKey {
      case cpuCores = "cpu_cores"
      case memoryMB = "memory_mb"
    }
  }

  enum CodingKeys: String, CodingKey {
    case nodeID = "node_id"
    case status, platform, resources, slots, running
    case currentLoad = "current_load"
    case lastHeartbeat = "last_heartbeat"
    case joinedAt = "joined_at"
    case completedTasks = "completed_tasks"
    case failedTasks = "failed_tasks"
    case totalComputeTime = "total_compute_time"
    case runsCode = "runs_code"
    case idleSince = "idle_since"
    case isolation, thresholds, gateway
  }

  struct Thresholds: Encodable {
    var maxCPUPercent: Double
    var maxMemoryPercent: Double
    enum CodingKeys: String, CodingKey {
      case maxCPUPercent = "max_cpu_percent"
      case maxMemoryPercent = "max_memory_percent"
    }
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(node.id, forKey: .nodeID)
    try container.encode(node.status, forKey: .status)
    try container.encode(node.resources.platform, forKey: .platform)
    try container.encode(Resources(cpuCores: node.resources.cores, memoryMB: node.resources.memoryMB), forKey: .resources)
    try container.encode(node.load, forKey: .currentLoad)
    try container.encode(node.slots, forKey: .slots)
    try container.encode(node.tasks, forKey: .running)
    try container.encode(node.lastHeartbeat, forKey: .lastHeartbeat)
    try container.encode(node.joinedAt, forKey: .joinedAt)
    try container.encode(node.completedTasks, forKey: .completedTasks)
    try container.encode(node.failedTasks, forKey: .failedTasks)
    try container.encode(node.totalComputeTime, forKey: .totalComputeTime)
    try container.encode(node.runsCode, forKey: .runsCode)
    try container.encode(node.isolation, forKey: .isolation)
    try container.encode(node.idleSince, forKey: .idleSince)  // null while busy or offline
    try container.encode(
      Thresholds(maxCPUPercent: node.thresholds.maxCPUPercent, maxMemoryPercent: node.thresholds.maxMemoryPercent),
      forKey: .thresholds)
    try container.encodeIfPresent(node.gateway, forKey: .gateway)  // only where several gateways share the store
  }
}

