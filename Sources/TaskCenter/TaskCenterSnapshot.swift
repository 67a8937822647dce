public import EasyRemoteCore
public import Foundation

/// The task center and its gateway at one moment: the gateway's nodes and functions, each
/// node as the scheduler sees it (status, load, running tasks), the idle nodes in fair order,
/// and the tasks by status. The one source for metrics and the console.
public struct TaskCenterSnapshot: Sendable {
  public var gateway: GatewaySnapshot
  /// Every node that joined the task center (offline ones too), by id.
  public var nodes: [NodeInfo]
  /// The idle nodes, next to be served first, with the reason.
  public var fairOrder: [FairScheduler.QueueEntry]
  /// Tasks by status (every status, zeros included).
  public var tasks: [TaskStatus: Int]
  /// Tasks waiting for a node.
  public var queueLength: Int { tasks[.queued] ?? 0 }
}

extension TaskCenter {
  /// Everything the gateway and the task center know now.
  ///
  /// - Throws: ``TaskCenterError`` `internalError` when the store cannot count.
  public func snapshot() async throws -> TaskCenterSnapshot {
    let counts = try await store.counts()
    let now = self.now()
    var tasks: [TaskStatus: Int] = [:]
    for status in TaskStatus.allCases { tasks[status] = counts[status] ?? 0 }
    return TaskCenterSnapshot(gateway: server.snapshot(at: now), nodes: nodes(), fairOrder: await queue(), tasks: tasks)
  }
}
