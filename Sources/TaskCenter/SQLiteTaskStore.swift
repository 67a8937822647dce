public import Foundation
import GRDB

/// Tasks in a SQLite file (WAL mode) through GRDB: what the gateway uses by default. Each
/// change is one transaction, committed before the method returns, so a task acknowledged to a
/// client survives a SIGKILL of the gateway.
public final class SQLiteTaskStore: TaskStore {
  /// The file.
  public let path: String
  private let pool: DatabasePool

  /// Opens (creating if needed) the store at `path`, creating the folders on the way.
  public init(path: String = SQLiteTaskStore.defaultPath) throws {
    self.path = path
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var configuration = Configuration()
    configuration.busyMode = .timeout(5)
    do {
      pool = try DatabasePool(path: path, configuration: configuration)
      try Self.migrator.migrate(pool)
    } catch {
      throw TaskCenterError.storage(error)
    }
  }

  /// `tasks.sqlite` in the user's data folder (`$XDG_DATA_HOME/easyremote` or
  /// `~/.local/share/easyremote` on Linux, Application Support on macOS).
  public static var defaultPath: String {
    let base =
      FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask).first
      ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".local/share")
    return base.appendingPathComponent("easyremote/tasks.sqlite").path
  }

  /// SQLite's journal mode of the open file (`wal`).
  public func journalMode() async throws -> String {
    try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
  }

  private static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.create(table: TaskRow.databaseTableName) { table in
        table.primaryKey("id", .text)
        table.column("kind", .text).notNull()
        table.column("status", .text).notNull()
        table.column("code", .text)
        table.column("function", .text)
        table.column("arguments", .text)
        table.column("timeout", .double).notNull()
        table.column("cpu", .double).notNull()
        table.column("memoryMB", .integer).notNull()
        table.column("attempts", .integer).notNull()
        table.column("maxAttempts", .integer).notNull()
        table.column("nodeID", .text)
        table.column("result", .text)
        table.column("stderr", .text)
        table.column("exitStatus", .integer)
        table.column("errorMessage", .text)
        table.column("createdAt", .double).notNull()
        table.column("startedAt", .double)
        table.column("finishedAt", .double)
        table.column("executionTime", .double)
      }
      try db.create(index: "task_by_status", on: TaskRow.databaseTableName, columns: ["status", "createdAt"])
      try db.create(index: "task_by_age", on: TaskRow.databaseTableName, columns: ["createdAt"])
    }
    return migrator
  }

  public func insert(_ task: TaskRecord) async throws {
    try await writing { db in
      if try TaskRow.exists(db, key: task.id) { throw TaskCenterError.duplicateTask(task.id) }
      try TaskRow(task).insert(db)
    }
  }

  public func task(_ id: String) async throws -> TaskRecord? {
    try await reading { db in try TaskRow.fetchOne(db, key: id)?.record }
  }

  public func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    try await reading { db in
      var request = TaskRow.order(Column("createdAt").desc, Column("id").desc)
      if let status { request = request.filter(Column("status") == status.rawValue) }
      return try request.limit(max(0, limit), offset: max(0, offset)).fetchAll(db).map(\.record)
    }
  }

  public func queued(limit: Int) async throws -> [TaskRecord] {
    try await reading { db in
      try TaskRow.filter(Column("status") == TaskStatus.queued.rawValue)
        .order(Column("createdAt"), Column("id"))
        .limit(max(0, limit))
        .fetchAll(db).map(\.record)
    }
  }

  public func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { $0.starting(on: nodeID, at: date) }
  }

  public func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws
    -> TaskRecord?
  {
    try await changing(id) { $0.finishing(with: outcome, by: nodeID, at: date) }
  }

  public func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { task in
      task.status == .running && task.nodeID == nodeID ? task.requeued(reason: reason, at: date) : nil
    }
  }

  public func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await writing { db in
      var request = TaskRow.filter(Column("status") == TaskStatus.running.rawValue)
      if let nodeID { request = request.filter(Column("nodeID") == nodeID) }
      return try request.order(Column("createdAt")).fetchAll(db).map { row in
        let changed = row.record.requeued(reason: reason, at: date)
        try TaskRow(changed).update(db)
        return changed
      }
    }
  }

  public func counts() async throws -> [TaskStatus: Int] {
    try await reading { db in
      let rows = try Row.fetchAll(
        db, sql: "SELECT status, COUNT(*) AS n FROM \(TaskRow.databaseTableName) GROUP BY status")
      var counts: [TaskStatus: Int] = [:]
      for row in rows {
        if let status = TaskStatus(rawValue: row["status"]) { counts[status] = row["n"] }
      }
      return counts
    }
  }

  /// Reads, changes and writes one task in one transaction.
  private func changing(_ id: String, _ change: @escaping @Sendable (TaskRecord) -> TaskRecord?) async throws
    -> TaskRecord?
  {
    try await writing { db in
      guard let current = try TaskRow.fetchOne(db, key: id), let changed = change(current.record) else { return nil }
      try TaskRow(changed).update(db)
      return changed
    }
  }

  private func writing<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do {
      return try await pool.write(body)
    } catch let error as TaskCenterError {
      throw error
    } catch {
      throw TaskCenterError.storage(error)
    }
  }

  private func reading<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do {
      return try await pool.read(body)
    } catch {
      throw TaskCenterError.storage(error)
    }
  }
}

/// One row of the `task` table: a ``TaskRecord`` flattened, dates as seconds since 1970 (so
/// they round-trip exactly).
private struct TaskRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "task"

  var id: String
  var kind: String
  var status: String
  var code: String?
  var function: String?
  var arguments: String?
  var timeout: Double
  var cpu: Double
  var memoryMB: Int
  var attempts: Int
  var maxAttempts: Int
  var nodeID: String?
  var result: String?
  var stderr: String?
  var exitStatus: Int?
  var errorMessage: String?
  var createdAt: Double
  var startedAt: Double?
  var finishedAt: Double?
  var executionTime: Double?

  init(_ task: TaskRecord) {
    id = task.id
    kind = task.kind.rawValue
    status = task.status.rawValue
    code = task.code
    function = task.function
    arguments = task.arguments
    timeout = task.timeout
    cpu = task.resources.cpu
    memoryMB = task.resources.memoryMB
    attempts = task.attempts
    maxAttempts = task.maxAttempts
    nodeID = task.nodeID
    result = task.result
    stderr = task.stderr
    exitStatus = task.exitStatus
    errorMessage = task.errorMessage
    createdAt = task.createdAt.timeIntervalSince1970
    startedAt = task.startedAt?.timeIntervalSince1970
    finishedAt = task.finishedAt?.timeIntervalSince1970
    executionTime = task.executionTime
  }

  var record: TaskRecord {
    var task = TaskRecord(
      id: id, kind: TaskKind(rawValue: kind) ?? .code, code: code, function: function, arguments: arguments,
      timeout: timeout, resources: ResourceRequest(cpu: cpu, memoryMB: memoryMB), maxAttempts: maxAttempts,
      createdAt: Date(timeIntervalSince1970: createdAt))
    task.status = TaskStatus(rawValue: status) ?? .failed
    task.attempts = attempts
    task.nodeID = nodeID
    task.result = result
    task.stderr = stderr
    task.exitStatus = exitStatus
    task.errorMessage = errorMessage
    task.startedAt = startedAt.map(Date.init(timeIntervalSince1970:))
    task.finishedAt = finishedAt.map(Date.init(timeIntervalSince1970:))
    task.executionTime = executionTime
    return task
  }
}
