import EasyRemoteCore
import Foundation
import NodeComm

// The task center's methods on the gateway, for clients and task workers, through the gateway-extension API.
extension TaskCenter {
  func registerMethods() {
    let gateway = server
    gateway.serve(TaskMethods.submit) { [weak self] (submission: TaskSubmission, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.submit(submission) }
    }
    gateway.serve(TaskMethods.get) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.task(query.id) }
    }
    gateway.serve(TaskMethods.wait) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire {
        _ = try await self.task(query.id)
        // (Clamped, NaN too: a frame may carry any Double.)
        return try await self.wait(query.id, timeout: .seconds(InputBounds.clamp(query.timeout ?? 30, InputBounds.waitSeconds)))
      }
    }
    gateway.serve(TaskMethods.list) { [weak self] (query: TaskListQuery, _) -> [TaskRecord] in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.tasks(status: query.status, limit: query.limit, offset: query.offset) }
    }
    gateway.serve(TaskMethods.cancel) { [weak self] (query: TaskQuery, _) -> TaskRecord in
      guard let self else { throw Self.gone }
      return try await self.wire { try await self.cancel(query.id) }
    }
    gateway.serve(TaskMethods.nodes) { [weak self] (_: Empty, _) -> [NodeInfo] in
      self?.nodes() ?? []
    }
    // What a node finished is recorded before it announces itself: a task queued again after
    // its gateway died must not be started anew (on this node, once it joined) before its
    // answer is taken.
    gateway.serve(TaskMethods.handIn) { [weak self] (reports: [TaskReport], context) -> Empty in
      guard reports.count <= TaskReport.most else {
        throw TaskCenterError.invalid("reports", "at most \(TaskReport.most) reports at once, got \(reports.count)").nodeError
      }
      await self?.adopt(reports, from: context.callerID)
      return Empty()
    }
  }

  static var gone: NodeError { TaskCenterError(code: .internalError, message: "the task center is gone").nodeError }

  func wire<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch let error as TaskCenterError {
      throw error.nodeError
    }
  }
}
