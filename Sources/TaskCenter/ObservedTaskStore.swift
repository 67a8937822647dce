public import Foundation
import Synchronization

/// How the task store is doing, as `/health` reports it.
public enum StoreStatus: Sendable, Equatable {
  case healthy
  /// A write failed (a full disk, usually) and none has succeeded since.
  case degraded(reason: String, since: Date)
}

/// A task store that notes whether its writes succeed: a failed call makes it
/// ``StoreStatus/degraded(reason:since:)``, the next successful write healthy again.
struct ObservedTaskStore: TaskStore {
  let base: any TaskStore
  let health: StoreHealth

  func insert(_ task: TaskRecord) async throws { try await write { try await base.insert(task) } }

  func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    try await write { try await base.insert(task, idempotencyKey: key, fingerprint: fingerprint) }
  }

  func task(_ id: String) async throws -> TaskRecord? { try await read { try await base.task(id) } }

  func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
    try await read { try await base.task(idempotencyKey: key) }
  }

  func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    try await read { try await base.tasks(status: status, limit: limit, offset: offset) }
  }

  func queued(limit: Int) async throws -> [TaskRecord] { try await read { try await base.queued(limit: limit) } }

  func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    try await write { try await base.start(id, on: nodeID, at: date) }
  }

  func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
    try await write { try await base.finish(id, with: outcome, by: nodeID, at: date) }
  }

  func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    try await write { try await base.requeue(id, from: nodeID, reason: reason, at: date) }
  }

  func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await write { try await base.requeueRunning(on: nodeID, reason: reason, at: date) }
  }

  func counts() async throws -> [TaskStatus: Int] { try await read { try await base.counts() } }

  private func write<T>(_ body: () async throws -> T) async throws -> T {
    do {
      let value = try await body()
      health.succeeded()
      return value
    } catch {
      health.failed(error)
      throw error
    }
  }

  private func read<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch {
      health.failed(error)
      throw error
    }
  }
}

/// The store's status, shared by the observed store and the task center.
final class StoreHealth: Sendable {
  private let state = Mutex<StoreStatus>(.healthy)

  var status: StoreStatus { state.withLock { $0 } }

  func succeeded() {
    state.withLock { $0 = .healthy }
  }

  func failed(_ error: any Error) {
    let reason = (error as? TaskCenterError)?.details ?? String(describing: error)
    state.withLock { status in
      if case .degraded = status { return }
      status = .degraded(reason: reason, since: Date())
    }
  }
}
