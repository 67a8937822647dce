import EasyRemoteCore
public import Foundation

/// A task-center node as a shared store records it, for the fair scheduler of every gateway:
/// which gateway it is on, how many tasks it runs, and its seed-004 history (when it last
/// started waiting, how many tasks it completed). Its gateway writes what only it knows
/// (``SharedTaskStore/publishNodes(_:)``: online, available, what it serves); its tasks'
/// starts and answers change `running` and the history in the same statement as the task — so
/// a gateway that reads the row after a task's notice reads it as of that change, and a write
/// of the other kind never undoes one. A node that moves to another gateway takes its history
/// along (``SharedTaskStore/poolNode(_:)``).
package struct PoolNode: Sendable, Equatable {
  package var id: String
  package var gatewayID: String
  /// Whether it is connected to ``gatewayID``.
  package var online: Bool
  /// Whether it takes tasks now: `false` while its machine is busy with its owner's work (its
  /// load thresholds), or its workers with calls.
  package var available: Bool
  /// Execution slots, and how many tasks it runs.
  package var slots: Int
  package var running: Int
  /// Since when it has been waiting for work (its join, or its last task's start).
  package var waitingSince: Date
  package var lastServedAt: Date?
  package var completed: Int
  package var failed: Int
  /// Seconds of work done, all tasks together.
  package var computeTime: Double
  /// What its machine has (a task's request must fit).
  package var cores: Int
  package var memoryMB: Int
  /// Whether it runs code tasks, and the functions it serves (function tasks).
  package var runsCode: Bool
  package var functions: [String]

  package init(
    id: String, gatewayID: String, online: Bool = true, available: Bool = true, slots: Int, running: Int = 0,
    waitingSince: Date,
    lastServedAt: Date? = nil, completed: Int = 0, failed: Int = 0, computeTime: Double = 0, cores: Int,
    memoryMB: Int, runsCode: Bool, functions: [String] = []
  ) {
    self.id = id
    self.gatewayID = gatewayID
    self.online = online
    self.available = available
    self.slots = slots
    self.running = running
    self.waitingSince = waitingSince
    self.lastServedAt = lastServedAt
    self.completed = completed
    self.failed = failed
    self.computeTime = computeTime
    self.cores = cores
    self.memoryMB = memoryMB
    self.runsCode = runsCode
    self.functions = functions
  }

  /// How many more tasks it could take now.
  package var free: Int { online && available ? max(0, slots - running) : 0 }

  /// Whether it could take `task` now (a free slot, the task's request fits, and it runs that
  /// kind of task).
  package func canTake(_ task: TaskRecord) -> Bool {
    guard free > 0, NodeResources(cores: cores, memoryMB: memoryMB, platform: "").fits(task.resources) else {
      return false
    }
    return task.kind == .function ? functions.contains(task.function ?? "") : runsCode
  }
}
