import Foundation
import Synchronization
import Testing

@testable import TaskCenter

/// The same behaviour from every store: in memory, in a SQLite file, and in PostgreSQL (a
/// real server the tests start, where the machine has it).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
  case memory, sqlite, postgres

  var testDescription: String { rawValue }

  /// The kinds this machine can run: PostgreSQL needs Debian's `postgresql` (and root, to run
  /// the server as its own user).
  static var available: [StoreKind] { PostgresServer.available ? allCases : [.memory, .sqlite] }

  func make() async throws -> any TaskStore {
    switch self {
    case .memory: MemoryTaskStore()
    case .sqlite: try SQLiteTaskStore(path: temporaryDatabasePath())
    case .postgres: try await PostgresTaskStore(url: try await PostgresServer.database())
    }
  }
}

func temporaryDatabasePath() -> String {
  FileManager.default.temporaryDirectory
    .appendingPathComponent("easyremote-tests-\(UUID().uuidString)/tasks.sqlite").path
}

@Suite("Task stores")
struct TaskStoreTests {
  let t0 = Date(timeIntervalSince1970: 1_800_000_000.123456)

  @Test("an insert under an idempotency key happens once; later ones get that task and its fingerprint", arguments: StoreKind.available)
  func idempotentInsert(kind: StoreKind) async throws {
    let store = try await kind.make()
    let first = TaskRecord(kind: .code, code: "print(1)", timeout: 10, resources: ResourceRequest(), createdAt: t0)
    let inserted = try await store.insert(first, idempotencyKey: "k1", fingerprint: "f1")
    #expect(inserted.inserted && inserted.task == first && inserted.fingerprint == "f1")
    let second = TaskRecord(kind: .code, code: "print(2)", timeout: 10, resources: ResourceRequest(), createdAt: t0)
    let repeated = try await store.insert(second, idempotencyKey: "k1", fingerprint: "f2")
    #expect(!repeated.inserted && repeated.task.id == first.id && repeated.fingerprint == "f1")
    #expect(try await store.task(second.id) == nil, "nothing stored for the repeat")
    #expect(try await store.task(idempotencyKey: "k1")?.task.id == first.id)
    #expect(try await store.task(idempotencyKey: "k1")?.fingerprint == "f1")
    #expect(try await store.task(idempotencyKey: "nope") == nil)
    let other = try await store.insert(second, idempotencyKey: "k2", fingerprint: "f2")
    #expect(other.inserted)
    #expect(try await store.counts()[.queued] == 2)
  }

  @Test("startQueued offers the oldest queued tasks and starts exactly those chosen, complete", arguments: StoreKind.available)
  func startQueued(kind: StoreKind) async throws {
    let store = try await kind.make()
    var tasks: [TaskRecord] = []
    for index in 0..<4 {
      let task = TaskRecord(
        kind: .code, code: "print(\(index))", timeout: 10, resources: ResourceRequest(), createdAt: t0.addingTimeInterval(Double(index)))
      try await store.insert(task)
      tasks.append(task)
    }
    _ = try await store.finish(tasks[0].id, with: TaskOutcome(status: .cancelled), by: nil, at: t0)
    let offered = Mutex<[String]>([])
    let later = t0.addingTimeInterval(9)
    let started = try await store.startQueued(limit: 2, now: { later }) { offer in
      offered.withLock { $0 = offer.tasks.map(\.id) }
      #expect(offer.others.isEmpty, "no other gateway's nodes")
      return QueueChoice(picks: [QueuePick(taskID: offer.tasks[1].id, nodeID: "n2")])
    }
    #expect(offered.withLock { $0 } == [tasks[1].id, tasks[2].id], "the oldest queued, in order")
    #expect(started.count == 1)
    let record = try #require(started.first)
    #expect(record.id == tasks[2].id && record.status == .running && record.nodeID == "n2" && record.attempts == 1)
    #expect(record.code == "print(2)" && record.startedAt == t0.addingTimeInterval(9), "the started record is complete")
    #expect(try await store.task(tasks[1].id)?.status == .queued, "not chosen, still queued")
    // Nothing to choose: nothing starts.
    let origin = t0
    let none = try await store.startQueued(limit: 10, now: { origin }, choose: { _ in QueueChoice() })
    #expect(none.isEmpty)
    #expect(try await store.count(.queued) == 2)
    #expect(try await store.count(.running) == 1)
  }

  @Test("a late answer ends a task requeued after that attempt and not started since; not one started again", arguments: StoreKind.available)
  func finishLate(kind: StoreKind) async throws {
    let store = try await kind.make()
    let task = TaskRecord.code("print(1)")
    try await store.insert(task)
    _ = try #require(try await store.start(task.id, on: "n1", at: t0))
    _ = try await store.requeueRunning(on: "n1", reason: "its gateway went away", at: t0)
    let outcome = TaskOutcome.completed(.text("1\n"))
    // Another attempt's answer, or a cancelled run, does not apply.
    #expect(try await store.finishLate(task.id, attempt: 2, with: outcome, by: "n1", at: t0) == nil)
    #expect(try await store.finishLate(task.id, attempt: 1, with: TaskOutcome(status: .cancelled), by: "n1", at: t0) == nil)
    let done = try #require(try await store.finishLate(task.id, attempt: 1, with: outcome, by: "n1", at: t0))
    #expect(done.status == .completed && done.nodeID == "n1" && done.attempts == 1 && done.output == .text("1\n"))
    #expect(try await store.task(task.id)?.status == .completed)
    #expect(try await store.finishLate(task.id, attempt: 1, with: outcome, by: "n1", at: t0) == nil, "final already")

    // Started again since: the late answer is not taken (the new attempt runs on).
    let again = TaskRecord.code("print(2)")
    try await store.insert(again)
    _ = try await store.start(again.id, on: "n1", at: t0)
    _ = try await store.requeueRunning(on: "n1", reason: "gone", at: t0)
    _ = try await store.start(again.id, on: "n2", at: t0)
    #expect(try await store.finishLate(again.id, attempt: 1, with: outcome, by: "n1", at: t0) == nil)
    #expect(try await store.task(again.id)?.status == .running)
  }

  @Test("insert, fetch, list newest first with paging, queued oldest first", arguments: StoreKind.available)
  func insertAndList(kind: StoreKind) async throws {
    let store = try await kind.make()
    var ids: [String] = []
    for index in 0..<5 {
      let task = TaskRecord(
        kind: index.isMultiple(of: 2) ? .code : .function, code: "print(\(index))", timeout: 10 + Double(index),
        resources: ResourceRequest(cpu: 0.5, memoryMB: 128), createdAt: t0.addingTimeInterval(Double(index)))
      try await store.insert(task)
      ids.append(task.id)
      #expect(try await store.task(task.id) == task)
    }
    #expect(try await store.task("task_missing") == nil)
    #expect(try await store.tasks(status: nil, limit: 2, offset: 0).map(\.id) == [ids[4], ids[3]])
    #expect(try await store.tasks(status: nil, limit: 2, offset: 2).map(\.id) == [ids[2], ids[1]])
    #expect(try await store.tasks(status: nil, limit: 10, offset: 4).map(\.id) == [ids[0]])
    #expect(try await store.queued(limit: 3).map(\.id) == Array(ids.prefix(3)))
    #expect(try await store.counts() == [.queued: 5])

    let duplicate = try TaskRecord(kind: .code, code: "x", createdAt: t0).with(id: ids[0])
    await #expect(throws: TaskCenterError.self) { try await store.insert(duplicate) }
    #expect(try await store.task(ids[0])?.code == "print(0)")
  }

  @Test("a task starts once, finishes once, and counts its attempts", arguments: StoreKind.available)
  func lifecycle(kind: StoreKind) async throws {
    let store = try await kind.make()
    let task = try TaskRecord.function("sync_add", args: [.int(1), .int(2)])
    try await store.insert(task)
    let started = try #require(try await store.start(task.id, on: "n1", at: t0))
    #expect(started.status == .running && started.nodeID == "n1" && started.attempts == 1 && started.startedAt == t0)
    #expect(try await store.start(task.id, on: "n2", at: t0) == nil)
    #expect(try await store.queued(limit: 10).isEmpty)

    let outcome = TaskOutcome.completed(.json("3"), executionTime: 0.25)
    let finished = try #require(try await store.finish(task.id, with: outcome, by: nil, at: t0.addingTimeInterval(1)))
    #expect(finished.status == .completed && finished.result == "3" && finished.executionTime == 0.25)
    #expect(finished.finishedAt == t0.addingTimeInterval(1))
    #expect(try await store.finish(task.id, with: .failed("late"), by: nil, at: t0) == nil)
    #expect(try await store.task(task.id) == finished)
    #expect(try await store.tasks(status: .completed, limit: 10, offset: 0).map(\.id) == [task.id])
    #expect(try await store.finish("task_missing", with: .failed("x"), by: nil, at: t0) == nil)
  }

  @Test("a late answer from a node the task was taken from changes nothing", arguments: StoreKind.available)
  func staleAnswers(kind: StoreKind) async throws {
    let store = try await kind.make()
    let task = TaskRecord.code("print(1)")
    try await store.insert(task)
    _ = try await store.start(task.id, on: "old", at: t0)
    #expect(try await store.requeue(task.id, from: "other", reason: "x", at: t0) == nil)
    #expect(try await store.requeue(task.id, from: "old", reason: "old left", at: t0)?.status == .queued)
    #expect(try await store.finish(task.id, with: .completed(.text("stale")), by: "old", at: t0) == nil)
    _ = try await store.start(task.id, on: "new", at: t0)
    #expect(try await store.finish(task.id, with: .completed(.text("stale")), by: "old", at: t0) == nil)
    #expect(try await store.requeue(task.id, from: "old", reason: "late", at: t0) == nil)
    let done = try await store.finish(task.id, with: .completed(.text("fresh")), by: "new", at: t0)
    #expect(done?.result == "fresh" && done?.attempts == 2)
  }

  @Test("a queued task cancelled before it starts never starts", arguments: StoreKind.available)
  func cancelQueued(kind: StoreKind) async throws {
    let store = try await kind.make()
    let task = TaskRecord.code("print(1)")
    try await store.insert(task)
    let cancelled = try await store.finish(task.id, with: TaskOutcome(status: .cancelled), by: nil, at: t0)
    #expect(cancelled?.status == .cancelled)
    #expect(try await store.start(task.id, on: "n1", at: t0) == nil)
    #expect(try await store.queued(limit: 10).isEmpty)
  }

  @Test("a lost node's tasks go back to the queue until their attempts run out", arguments: StoreKind.available)
  func requeue(kind: StoreKind) async throws {
    let store = try await kind.make()
    let mine = TaskRecord.code("print(1)", maxAttempts: 2)
    let other = TaskRecord.code("print(2)")
    try await store.insert(mine)
    try await store.insert(other)
    _ = try await store.start(mine.id, on: "lost", at: t0)
    _ = try await store.start(other.id, on: "alive", at: t0)

    let first = try await store.requeueRunning(on: "lost", reason: "node lost has gone", at: t0)
    #expect(first.map(\.id) == [mine.id])
    #expect(first.first?.status == .queued && first.first?.attempts == 1 && first.first?.nodeID == nil)
    #expect(try await store.task(other.id)?.status == .running)
    #expect(try await store.queued(limit: 10).map(\.id) == [mine.id])

    _ = try await store.start(mine.id, on: "lost", at: t0)
    let second = try await store.requeueRunning(on: "lost", reason: "node lost has gone", at: t0)
    #expect(second.first?.status == .failed)
    #expect(second.first?.attempts == 2)
    #expect(second.first?.errorMessage == "node lost has gone (after 2 attempts)")

    // At startup every running task is requeued, whatever its node.
    let all = try await store.requeueRunning(on: nil, reason: "gateway restarted", at: t0)
    #expect(all.map(\.id) == [other.id])
    #expect(try await store.counts() == [.queued: 1, .failed: 1])
  }
}

@Suite("SQLite task store")
struct SQLiteTaskStoreTests {
  @Test("the file is in WAL mode and everything survives reopening it")
  func survivesReopen() async throws {
    let path = temporaryDatabasePath()
    var records: [TaskRecord] = []
    do {
      let store = try SQLiteTaskStore(path: path)
      #expect(try await store.journalMode() == "wal")
      for index in 0..<3 {
        let task = try TaskRecord.function("f\(index)", args: [.int(Int64(index))], timeout: 7.5, maxAttempts: 4)
        try await store.insert(task)
      }
      let all = try await store.tasks(status: nil, limit: 10, offset: 0)
      _ = try await store.start(all[0].id, on: "n1", at: Date())
      _ = try await store.start(all[1].id, on: "n1", at: Date())
      _ = try await store.finish(all[1].id, with: .completed(.json("{\"ok\":true}"), executionTime: 1.5), by: "n1", at: Date())
      records = try await store.tasks(status: nil, limit: 10, offset: 0)
    }
    let reopened = try SQLiteTaskStore(path: path)
    #expect(try await reopened.tasks(status: nil, limit: 10, offset: 0) == records)
    #expect(try await reopened.counts() == [.running: 1, .completed: 1, .queued: 1])
  }

  @Test("a path that cannot be a database fails with a typed error")
  func unusablePath() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    // A folder where the file should be.
    #expect(throws: TaskCenterError.self) { try SQLiteTaskStore(path: folder.path) }
  }

  @Test("the database is its owner's alone: 0600 with its -wal and -shm, a new folder 0700, an old file tightened")
  func fileModes() async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("data/tasks.sqlite").path
    let store = try SQLiteTaskStore(path: path)
    try await store.insert(TaskRecord(kind: .code, code: "print(1)"))
    #expect(try mode(of: folder.appendingPathComponent("data").path) == 0o700)
    for file in [path, path + "-wal", path + "-shm"] {
      #expect(try mode(of: file) == 0o600, "\(file)")
    }

    // A database made world-readable by an older version is tightened when it is opened.
    let old = folder.appendingPathComponent("old.sqlite").path
    _ = try SQLiteTaskStore(path: old)
    for file in [old, old + "-wal", old + "-shm"] where FileManager.default.fileExists(atPath: file) {
      try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
    }
    let reopened = try SQLiteTaskStore(path: old)
    try await reopened.insert(TaskRecord(kind: .code, code: "print(2)"))
    for file in [old, old + "-wal", old + "-shm"] {
      #expect(try mode(of: file) == 0o600, "\(file)")
    }
  }

  func mode(of path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
  }

  @Test("the default path is in the user's data folder")
  func defaultPath() {
    #expect(SQLiteTaskStore.defaultPath.hasSuffix("easyremote/tasks.sqlite"))
  }
}

extension TaskRecord {
  fileprivate func with(id: String) throws -> TaskRecord {
    var copy = self
    copy.id = id
    return copy
  }
}
