public import Foundation
public import Sandbox

/// A compute node as the gateway shows it — the one public view of a node, for clients'
/// `listNodes`, the task center's `nodes()`, the HTTP API (as `NodeView` writes it), the CLI
/// and the console. Made from the registry's record (``Membership/Member/info(at:heartbeatTimeout:)``).
public struct NodeInfo: Codable, Sendable, Equatable {
  public var id: String
  public var functions: [String]
  /// Calls and tasks at once at most.
  public var maxWorkers: Int
  /// Calls routed to it and not yet answered.
  public var inFlight: Int
  /// Tasks of the task center running on it; they share its `maxWorkers` with the calls.
  public var tasks: Int
  /// The other gateway it is connected to (several gateways on one store); `nil` for the
  /// gateway that answered (and, in the task center's lists, on a store of its own).
  public var gateway: String?
  /// idle (it could take work now), busy, or offline (gone, or — pulling over HTTP — silent
  /// for longer than the scheduler's heartbeat timeout).
  public var status: NodeStatus
  public var joinedAt: Date
  public var lastHeartbeat: Date
  /// Its machine's load, as its last heartbeat said.
  public var load: NodeLoad

  // What it offers the task center (zero slots: it serves calls only).
  public var slots: Int
  public var resources: NodeResources
  /// Above these its machine is busy with its owner's work and gets no tasks.
  public var thresholds: LoadThresholds
  public var runsCode: Bool
  /// How its code tasks are isolated; `nil` when it runs none or did not say (HTTP pull).
  public var isolation: SandboxIsolation?
  public var completedTasks: Int
  public var failedTasks: Int
  /// Seconds of task work done, all tasks together.
  public var totalComputeTime: Double
  /// Since when it has been idle (waiting for work); `nil` while busy or offline.
  public var idleSince: Date?

  public init(
    id: String, functions: [String], maxWorkers: Int, inFlight: Int = 0, tasks: Int = 0, gateway: String? = nil,
    status: NodeStatus = .idle, joinedAt: Date = Date(timeIntervalSince1970: 0), lastHeartbeat: Date? = nil,
    load: NodeLoad = NodeLoad(), slots: Int = 0, resources: NodeResources = NodeResources(cores: 0, memoryMB: 0, platform: ""),
    thresholds: LoadThresholds = LoadThresholds(), runsCode: Bool = false, isolation: SandboxIsolation? = nil,
    completedTasks: Int = 0, failedTasks: Int = 0, totalComputeTime: Double = 0, idleSince: Date? = nil
  ) {
    self.id = id
    self.functions = functions
    self.maxWorkers = maxWorkers
    self.inFlight = inFlight
    self.tasks = tasks
    self.gateway = gateway
    self.status = status
    self.joinedAt = joinedAt
    self.lastHeartbeat = lastHeartbeat ?? joinedAt
    self.load = load
    self.slots = slots
    self.resources = resources
    self.thresholds = thresholds
    self.runsCode = runsCode
    self.isolation = isolation
    self.completedTasks = completedTasks
    self.failedTasks = failedTasks
    self.totalComputeTime = totalComputeTime
    self.idleSince = idleSince
  }

  /// Reads what older gateways sent too: everything but the id, functions, workers and calls
  /// may be missing.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    id = try container.decode(String.self, forKey: .id)
    functions = try container.decode([String].self, forKey: .functions)
    maxWorkers = try container.decode(Int.self, forKey: .maxWorkers)
    inFlight = try container.decode(Int.self, forKey: .inFlight)
    tasks = try container.decodeIfPresent(Int.self, forKey: .tasks) ?? 0
    gateway = try container.decodeIfPresent(String.self, forKey: .gateway)
    status = try container.decodeIfPresent(NodeStatus.self, forKey: .status) ?? .idle
    joinedAt = try container.decodeIfPresent(Date.self, forKey: .joinedAt) ?? Date(timeIntervalSince1970: 0)
    lastHeartbeat = try container.decodeIfPresent(Date.self, forKey: .lastHeartbeat) ?? joinedAt
    load = try container.decodeIfPresent(NodeLoad.self, forKey: .load) ?? NodeLoad()
    slots = try container.decodeIfPresent(Int.self, forKey: .slots) ?? 0
    resources =
      try container.decodeIfPresent(NodeResources.self, forKey: .resources) ?? NodeResources(cores: 0, memoryMB: 0, platform: "")
    thresholds = try container.decodeIfPresent(LoadThresholds.self, forKey: .thresholds) ?? LoadThresholds()
    runsCode = try container.decodeIfPresent(Bool.self, forKey: .runsCode) ?? false
    isolation = try container.decodeIfPresent(SandboxIsolation.self, forKey: .isolation)
    completedTasks = try container.decodeIfPresent(Int.self, forKey: .completedTasks) ?? 0
    failedTasks = try container.decodeIfPresent(Int.self, forKey: .failedTasks) ?? 0
    totalComputeTime = try container.decodeIfPresent(Double.self, forKey: .totalComputeTime) ?? 0
    idleSince = try container.decodeIfPresent(Date.self, forKey: .idleSince)
  }
}

extension Membership.Member {
  /// This node as ``NodeInfo`` shows it. `heartbeatTimeout`: seconds after which a node that
  /// pulls over HTTP and says nothing counts as offline.
  package func info(at now: Date, heartbeatTimeout: Double = .infinity) -> NodeInfo {
    // A task node as the scheduler sees it; a node that serves calls only, by its workers.
    let status: NodeStatus =
      if worker != nil || !online {
        taskStatus(at: now, heartbeatTimeout: heartbeatTimeout)
      } else {
        hasFreeWorker ? .idle : .busy
      }
    return NodeInfo(
      id: id, functions: functions.keys.sorted(), maxWorkers: maxWorkers, inFlight: calls, tasks: tasks, status: status,
      joinedAt: joinedAt, lastHeartbeat: lastHeartbeat, load: load, slots: worker?.taskSlots ?? 0,
      resources: worker?.resources ?? NodeResources(cores: 0, memoryMB: 0, platform: ""),
      thresholds: worker?.thresholds ?? LoadThresholds(), runsCode: worker?.runsCode ?? false, isolation: worker?.isolation,
      completedTasks: history.completed, failedTasks: history.failed, totalComputeTime: history.computeSeconds,
      idleSince: status == .idle ? history.waitingSince : nil)
  }
}
