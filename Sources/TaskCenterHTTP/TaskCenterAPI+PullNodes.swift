import EasyRemoteCore
import Foundation
import Hummingbird
import NIOCore
import HTTPTypes
import TaskCenter

// The nodes that pull their work over HTTP (`/internal/…`): heartbeats, task offers, results.
extension TaskCenterAPI {
  /// The node key a pulling node presents: the `X-Node-Key` header, else `fallback` (from the
  /// body or the query).
  static func nodeKey(_ request: Request, _ fallback: String?) -> String? {
    request.headers.first { $0.name.canonicalName == "x-node-key" }?.value ?? fallback
  }

  func heartbeat(_ request: Request, from address: String?) async throws -> Response {
    let beat = try await JSONBody.decode(HeartbeatRequest.self, from: request, limit: 64 << 10)
    // The task center checks every number against its bounds (400 naming the field).
    let reply = try center.pullHeartbeat(
      .init(nodeID: beat.nodeID, key: Self.nodeKey(request, beat.nodeKey), address: address),
      resources: NodeResources(
        cores: beat.resources.cpuCores, memoryMB: beat.resources.memoryMB, platform: beat.resources.platform ?? "unknown"),
      load: beat.currentLoad ?? NodeLoad(), slots: beat.slots ?? 1)
    var answer = ["status": "ok", "timestamp": ISO8601DateFormatter().string(from: Date())]
    if let key = reply.nodeKey { answer["node_key"] = key }
    return JSONBody.response(answer)
  }

  func offer(_ request: Request, from address: String?) async throws -> Response {
    let query = request.uri.queryParameters
    let caller = TaskCenter.PullCaller(
      nodeID: query.get("node_id"), key: Self.nodeKey(request, query.get("node_key")), address: address)
    guard let task = try await center.claim(for: caller) else {
      return JSONBody.response(TaskOffer(hasTask: false, waitTime: 5))
    }
    return JSONBody.response(
      TaskOffer(
        hasTask: true,
        task: .init(taskID: task.id, code: task.code ?? "", timeout: task.timeout, attempt: task.attempts)))
  }

  func result(_ request: Request, from address: String?) async throws -> Response {
    let report = try await JSONBody.decode(TaskResultRequest.self, from: request, limit: configuration.maxBodyBytes)
    let status: TaskStatus
    switch report.status {
    case "success", "completed": status = .completed
    case "failed", "error": status = .failed
    case "timeout": status = .timeout
    default: throw APIError.invalid("status", "status must be success, failed or timeout")
    }
    let outcome = TaskOutcome(
      status: status, output: report.result.map(TaskPayload.text), stderr: report.stderr, exitStatus: report.exitStatus,
      errorMessage: report.errorMessage, executionTime: report.executionTime)
    let caller = TaskCenter.PullCaller(
      nodeID: report.nodeID, key: Self.nodeKey(request, report.nodeKey), address: address)
    let task = try await center.report(report.taskID, from: caller, attempt: report.attempt, outcome: outcome)
    return JSONBody.response(TaskView(task: task))
  }
}
