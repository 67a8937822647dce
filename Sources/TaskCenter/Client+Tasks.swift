public import EasyRemoteCore
import Foundation
import NodeComm

extension Client {
  /// Queues a call of `name` in the gateway's durable task queue; returns the task's id at
  /// once (the task survives a gateway restart). Fetch the result with ``result(_:as:timeout:)``.
  public func submit<each A: Encodable>(
    _ name: String, _ arguments: repeat each A, timeout: Double? = nil, maxAttempts: Int? = nil
  ) async throws -> String {
    var args: [JSONValue] = []
    for argument in repeat each arguments { args.append(try JSONValue(encoding: argument)) }
    return try await submit(TaskSubmission(function: name, args: args, timeout: timeout, maxAttempts: maxAttempts)).id
  }

  /// Queues a code task (Python source by default); returns the task's id.
  public func submitCode(_ code: String, timeout: Double? = nil, resources: ResourceRequest? = nil) async throws
    -> String
  {
    try await submit(.code(code, timeout: timeout, resources: resources)).id
  }

  /// Queues a task; returns it as stored.
  ///
  /// - Throws: ``TaskCenterError`` (`invalidRequest` naming the field, `resourceUnavailable`),
  ///   or ``EasyRemoteError`` `connectionFailed`.
  public func submit(_ submission: TaskSubmission) async throws -> TaskRecord {
    try await taskCall(TaskMethods.submit, submission)
  }

  /// The task as it is now. - Throws: ``TaskCenterError`` `taskNotFound`.
  public func task(_ id: String) async throws -> TaskRecord {
    try await taskCall(TaskMethods.get, TaskQuery(id: id))
  }

  /// Waits until the task is final (or `timeout` passes) and returns it.
  public func waitForTask(_ id: String, timeout: Duration = .seconds(60)) async throws -> TaskRecord {
    let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
    return try await taskCall(TaskMethods.wait, TaskQuery(id: id, timeout: seconds), timeout: timeout + .seconds(10))
  }

  /// Waits for a function task and decodes its result.
  ///
  /// - Throws: ``TaskCenterError`` `taskTimeout` when it timed out (or is still not done after
  ///   `timeout`), `internalError` with the task's error when it failed or was cancelled.
  public func result<R: Decodable>(_ id: String, as: R.Type = R.self, timeout: Duration = .seconds(60)) async throws
    -> R
  {
    let task = try await waitForTask(id, timeout: timeout)
    switch task.status {
    case .completed:
      do {
        // Straight from the result's bytes, with the serializer that wrote them.
        let output = task.output ?? TaskPayload(data: Data("null".utf8), serializer: JSONSerializer.name)
        if output.serializer == BinarySerializer.name { return try BinarySerializer().decode(R.self, from: output.data) }
        return try JSONDecoder().decode(R.self, from: output.data)
      } catch {
        throw EasyRemoteError(
          code: .invalidResult, message: "the result of task \(id) is not \(R.self): \((task.result ?? "").prefix(200))")
      }
    case .timeout:
      throw TaskCenterError(code: .taskTimeout, message: task.errorMessage ?? "task \(id) timed out", details: "task_id: \(id)")
    case .queued, .running:
      throw TaskCenterError(code: .taskTimeout, message: "task \(id) is still \(task.status.rawValue)", details: "task_id: \(id)")
    case .failed, .cancelled:
      throw TaskCenterError(
        code: .internalError, message: "task \(id) \(task.status.rawValue): \(task.errorMessage ?? "")",
        details: task.stderr)
    }
  }

  /// Tasks newest first, optionally of one status.
  public func tasks(status: TaskStatus? = nil, limit: Int = 100, offset: Int = 0) async throws -> [TaskRecord] {
    try await taskCall(TaskMethods.list, TaskListQuery(status: status, limit: limit, offset: offset))
  }

  /// Cancels a task (kills it if it is running); returns it as it is then.
  @discardableResult
  public func cancelTask(_ id: String) async throws -> TaskRecord {
    try await taskCall(TaskMethods.cancel, TaskQuery(id: id))
  }

  /// The nodes of the task center.
  public func taskNodes() async throws -> [NodeInfo] {
    try await taskCall(TaskMethods.nodes, Empty())
  }

  private func taskCall<R: Decodable & Sendable>(_ method: String, _ argument: some Encodable, timeout: Duration? = nil)
    async throws -> R
  {
    do {
      return try await callGateway(method, argument, as: R.self, timeout: timeout ?? self.timeout)
    } catch let error as EasyRemoteError {
      throw error
    } catch {
      throw TaskCenterError.fromWire(error)
    }
  }
}
