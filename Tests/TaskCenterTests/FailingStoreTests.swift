import TestSupport
import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Runs blocking work on a thread of its own, not on the concurrency pool (whose few threads
/// the servers under test need).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { continuation in
    Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
  }
}

/// A store whose disk is gone: every operation fails (beside the real stores, to reach the
/// API's INTERNAL_ERROR path).
final class BrokenStore: TaskStore {
  struct DiskGone: Error {}
  func insert(_ task: TaskRecord) async throws { throw DiskGone() }
  func task(_ id: String) async throws -> TaskRecord? { throw DiskGone() }
  func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] { throw DiskGone() }
  func queued(limit: Int) async throws -> [TaskRecord] { throw DiskGone() }
  func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? { throw DiskGone() }
  func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
    throw DiskGone()
  }
  func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    throw DiskGone()
  }
  func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] { [] }
  func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date) async throws
    -> TaskRecord?
  { throw DiskGone() }
  func counts() async throws -> [TaskStatus: Int] { throw DiskGone() }
}

@Suite("Task center HTTP API with a failing store", .timeLimit(.minutes(1)))
struct FailingStoreTests {
  @Test("a store that fails gives INTERNAL_ERROR and an unhealthy /health, not a crash")
  func internalError() async throws {
    let server = Server(transport: MemoryTransport())
    let center = TaskCenter(server: server, store: BrokenStore())
    let http = TaskCenterHTTPServer(center: center, server: server, port: 0)
    try await server.start()
    try await center.start()
    try await http.start()
    let client = HTTPClient(base: "http://\(http.address ?? "")")
    let validator = try OpenAPIValidator()
    let posted = try await client.post("/tasks", ["code": "print(1)"])
    #expect(posted.status == 500)
    #expect(posted.errorCode == "INTERNAL_ERROR")
    #expect(validator.problems(method: "POST", path: "/tasks", status: 500, body: posted.body) == [])
    let fetched = try await client.get("/tasks/task_x")
    #expect(fetched.status == 500 && fetched.errorCode == "INTERNAL_ERROR")
    let health = try await client.get("/health")
    #expect(health.status == 503)
    #expect(health.object["status"] as? String == "unhealthy")
    #expect(validator.problems(method: "GET", path: "/health", status: 503, body: health.body) == [])
    await http.stop()
    await center.stop()
    await server.stop()
  }
}

/// A task database written by the v1 release (`easyremote gateway` of 2026-11-29, killed with
/// SIGKILL while a task ran): 3 completed, 2 failed, 1 running and 2 queued tasks.
let v1DatabaseFixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .appendingPathComponent("Fixtures/tasks-v1.sqlite").path
