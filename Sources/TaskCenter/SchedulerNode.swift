public import Foundation

/// What a node's machine has (`{"cores": 8, "memory": 16384, "platform": "linux"}`; MiB).
public struct NodeResources: Codable, Sendable, Hashable {
  public var cores: Int
  public var memoryMB: Int
  public var platform: String

  public init(cores: Int, memoryMB: Int, platform: String) {
    self.cores = cores
    self.memoryMB = memoryMB
    self.platform = platform
  }

  /// This machine, read from the system.
  public static var current: NodeResources {
    #if os(Linux)
      let platform = "linux"
    #elseif os(macOS)
      let platform = "macos"
    #else
      let platform = "unknown"
    #endif
    return NodeResources(
      cores: ProcessInfo.processInfo.activeProcessorCount,
      memoryMB: Int(ProcessInfo.processInfo.physicalMemory / 1_048_576), platform: platform)
  }

  enum CodingKeys: String, CodingKey {
    case cores
    case memoryMB = "memory"
    case platform
  }

  /// Whether a task asking for `request` fits on this machine at all.
  public func fits(_ request: ResourceRequest) -> Bool {
    request.cpu <= Double(cores) && request.memoryMB <= memoryMB
  }
}

/// How busy a node's machine is right now, as its heartbeat reports it.
public struct NodeLoad: Codable, Sendable, Hashable {
  public var cpuPercent: Double
  public var memoryPercent: Double

  public init(cpuPercent: Double = 0, memoryPercent: Double = 0) {
    self.cpuPercent = cpuPercent
    self.memoryPercent = memoryPercent
  }

  enum CodingKeys: String, CodingKey {
    case cpuPercent = "cpu_percent"
    case memoryPercent = "memory_percent"
  }
}

/// Above these, a node's machine is busy with its owner's work and gets no tasks.
public struct LoadThresholds: Codable, Sendable, Hashable {
  public var maxCPUPercent: Double
  public var maxMemoryPercent: Double

  public init(maxCPUPercent: Double = 80, maxMemoryPercent: Double = 90) {
    self.maxCPUPercent = maxCPUPercent
    self.maxMemoryPercent = maxMemoryPercent
  }

  public func allows(_ load: NodeLoad) -> Bool {
    load.cpuPercent < maxCPUPercent && load.memoryPercent < maxMemoryPercent
  }
}

/// idle (a free slot and a quiet machine), busy, or offline (missed heartbeats or gone).
public enum NodeStatus: String, Codable, Sendable {
  case idle, busy, offline
}

/// One node as the ``FairScheduler`` keeps it.
public struct SchedulerNode: Sendable, Equatable {
  public var id: String
  public var resources: NodeResources
  public var thresholds: LoadThresholds
  public var load: NodeLoad
  /// Execution slots (the node's `maxWorkers`) and how many are taken.
  public var slots: Int
  public var running: Int
  public var completed: Int
  public var failed: Int
  /// Seconds of work done, all tasks together.
  public var totalComputeTime: Double
  public var joinedAt: Date
  public var lastHeartbeat: Date
  /// Since when the node has been waiting for work (join, or its last assignment).
  public var waitingSince: Date
  public var lastServedAt: Date?
  /// Left (link closed), or missed its heartbeats.
  public var offline: Bool
  /// Whether missed heartbeats make it offline (nodes that pull over HTTP); a node on a link
  /// is alive while its link is, and goes offline only when it leaves.
  public var expiresWithoutHeartbeats = true

  /// The node's status at `now`, given the heartbeat timeout.
  public func status(at now: Date, heartbeatTimeout: Double) -> NodeStatus {
    if offline || (expiresWithoutHeartbeats && now.timeIntervalSince(lastHeartbeat) > heartbeatTimeout) {
      return .offline
    }
    return running < slots && thresholds.allows(load) ? .idle : .busy
  }
}
