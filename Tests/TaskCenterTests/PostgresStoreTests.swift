import EasyRemote
import Foundation
@testable import TaskCenter
import Testing

/// The task center on PostgreSQL (a real server the test starts): the store suite covers each
/// method (`TaskStoreTests`, `StoreKind.postgres`); here the whole path, and what survives.
@Suite("Task center on PostgreSQL", .enabled(if: PostgresServer.available, "needs Debian's postgresql and root"), .timeLimit(.minutes(2)))
struct PostgresStoreTests {
  @Test("the store is a service: when its run ends (shutdown, cancellation) it closes its connection pool")
  func storeAsAService() async throws {
    let store = try await PostgresTaskStore(url: try await PostgresServer.database())
    _ = try await store.counts()
    // (Cancelled before or after it starts: either way it ends, as in a group that stops.)
    let service = Task { try await store.run() }
    service.cancel()
    try await service.value  // no error: it was asked to stop
    await store.running.value  // the pool's run() has returned
    #expect(store.running.isCancelled)
  }

  @Test("code and function tasks run through a gateway whose store is PostgreSQL; a new gateway on the database finds them")
  func tasksThroughPostgres() async throws {
    let url = try await PostgresServer.database()
    let store = try await PostgresTaskStore(url: url)
    let fabric = try await TaskFabric(store: store)
    try await fabric.addNode("pg-node", slots: 2)
    let client = fabric.client()
    let code = try await client.submitCode("print(6 * 7)")
    let call = try await client.submit("sync_add", 2, 3)
    let codeDone = try await client.waitForTask(code, timeout: .seconds(60))
    let callDone = try await client.waitForTask(call, timeout: .seconds(60))
    #expect(codeDone.status == .completed && codeDone.result == "42", "\(codeDone)")
    #expect(callDone.status == .completed && callDone.result == "5", "\(callDone)")
    await fabric.stop()
    await store.close()

    // Another store (another gateway) on the same database: the records are there, exactly.
    let again = try await PostgresTaskStore(url: url)
    let stored = try #require(try await again.task(codeDone.id))
    #expect(stored.status == .completed && stored.result == "42" && stored.attempts == 1 && stored.nodeID == "pg-node")
    #expect(try await again.counts() == [.completed: 2])
    await again.close()
  }

  @Test("a URL that is not PostgreSQL's, or a server that does not answer, is a typed storage error")
  func badURLs() async throws {
    for url in ["mysql://x@127.0.0.1/db", "postgres://127.0.0.1/db", "postgres://u@127.0.0.1:1/db"] {
      do {
        let store = try await PostgresTaskStore(url: url, connectTimeout: .seconds(2))
        await store.close()
        Issue.record("\(url) was accepted")
      } catch let error as TaskCenterError {
        #expect(error.code == .internalError && error.message.contains("store"), "\(url): \(error)")
      }
    }
  }
}
