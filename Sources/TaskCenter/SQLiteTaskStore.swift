public import Foundation
import GRDB
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Tasks in a SQLite file (WAL mode) through GRDB: what the gateway uses by default. Each
/// change is one transaction, committed before the method returns, so a task acknowledged to a
/// client survives a SIGKILL of the gateway.
public final class SQLiteTaskStore: TaskStore {
  /// The file.
  public let path: String
  private let pool: DatabasePool
  private let commits: GroupCommit
  /// Tasks by status, kept up to date by every committed change (read at open).
  private let statusCounts = Mutex<[TaskStatus: Int]>([:])

  /// What a committed change survives.
  public enum Durability: Sendable {
    /// A crash or SIGKILL of the process (WAL with `synchronous = NORMAL`: no fsync per
    /// commit). The default.
    case processCrash
    /// Also a power loss or kernel crash (`synchronous = FULL`: an fsync per commit, several
    /// times slower).
    case powerLoss
  }

  /// Opens (creating if needed) the store at `path`, creating the folders on the way.
  ///
  /// The store holds every task's code and results, so it is its owner's alone: the file is
  /// made (or made again) `0600` — SQLite gives its `-wal` and `-shm` files the same mode —
  /// and a folder made for it is `0700`.
  public init(path: String = SQLiteTaskStore.defaultPath, durability: Durability = .processCrash) throws {
    self.path = path
    do {
      try Self.makePrivate(path)
    } catch {
      throw TaskCenterError.storage(error)
    }
    var configuration = Configuration()
    configuration.busyMode = .timeout(5)
    let synchronous = durability == .powerLoss ? "FULL" : "NORMAL"
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
    do {
      pool = try DatabasePool(path: path, configuration: configuration)
      try Self.migrator.migrate(pool)
      commits = GroupCommit(pool: pool)
      let initial = try pool.read { db in
        try Row.fetchAll(db, sql: "SELECT status, COUNT(*) FROM task GROUP BY status").reduce(into: [TaskStatus: Int]()) {
          if let status = TaskStatus(rawValue: $1[0]) { $0[status] = $1[1] }
        }
      }
      statusCounts.withLock { $0 = initial }
    } catch {
      throw TaskCenterError.storage(error)
    }
  }

  /// Creates the folders on the way to `path` (`0700`) and the file itself (`0600`), or
  /// takes group and world access away from an existing file and its `-wal` and `-shm`.
  static func makePrivate(_ path: String) throws {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
    try FileManager.default.createDirectory(
      at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    if !FileManager.default.fileExists(atPath: path) {
      let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
      if fd >= 0 { close(fd) }
    }
    for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
      var info = stat()
      guard stat(file, &info) == 0, info.st_mode & 0o077 != 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
      _ = chmod(file, info.st_mode & 0o700)
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
  package func journalMode() async throws -> String {
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
    // v2: a function task's call and every task's output as payload bytes plus the name of
    // their serializer, instead of JSON text inside a column (`arguments`, `result`).
    migrator.registerMigration("v2-payloads") { db in
      try db.alter(table: TaskRow.databaseTableName) { table in
        table.add(column: "invocation", .blob)
        table.add(column: "invocationSerializer", .text)
        table.add(column: "output", .blob)
        table.add(column: "outputSerializer", .text)
      }
      try db.execute(
        sql: """
          UPDATE task SET invocation = CAST(json_object('function', function, 'args', json(arguments),
            'kwargs', json_object()) AS BLOB), invocationSerializer = 'json'
          WHERE kind = 'function' AND arguments IS NOT NULL;
          UPDATE task SET output = CAST(result AS BLOB),
            outputSerializer = CASE kind WHEN 'function' THEN 'json' ELSE 'text' END
          WHERE result IS NOT NULL;
          """)
      try db.alter(table: TaskRow.databaseTableName) { table in
        table.drop(column: "arguments")
        table.drop(column: "result")
      }
    }
    // v3: `Idempotency-Key`s of POST /tasks, with the task each made and its request's
    // fingerprint.
    migrator.registerMigration("v3-idempotency") { db in
      try db.create(table: "idempotency_key") { table in
        table.primaryKey("key", .text)
        table.column("taskID", .text).notNull()
        table.column("fingerprint", .text).notNull()
        table.column("createdAt", .double).notNull()
      }
    }
    return migrator
  }

  package func insert(_ task: TaskRecord) async throws {
    try await writing { db in
      if try Row.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM task WHERE id = ?"), arguments: [task.id]) != nil {
        throw TaskCenterError.duplicateTask(task.id)
      }
      try db.cachedStatement(sql: TaskRow.insertSQL).execute(arguments: TaskRow(task).arguments)
    }
    count(from: nil, to: task.status)
  }

  package func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    let result = try await writing { db -> IdempotentInsert in
      if let row = try Row.fetchOne(
        db.cachedStatement(sql: "SELECT taskID, fingerprint FROM idempotency_key WHERE key = ?"), arguments: [key]),
        let existing = try TaskRow.fetch(db, id: row["taskID"])?.record
      {
        return IdempotentInsert(task: existing, fingerprint: row["fingerprint"], inserted: false)
      }
      if try Row.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM task WHERE id = ?"), arguments: [task.id]) != nil {
        throw TaskCenterError.duplicateTask(task.id)
      }
      try db.cachedStatement(sql: TaskRow.insertSQL).execute(arguments: TaskRow(task).arguments)
      try db.cachedStatement(
        sql: "INSERT OR REPLACE INTO idempotency_key (key, taskID, fingerprint, createdAt) VALUES (?, ?, ?, ?)"
      ).execute(arguments: [key, task.id, fingerprint, task.createdAt.timeIntervalSince1970])
      return IdempotentInsert(task: task, fingerprint: fingerprint, inserted: true)
    }
    if result.inserted { count(from: nil, to: task.status) }
    return result
  }

  package func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
    try await reading { db -> (task: TaskRecord, fingerprint: String)? in
      guard
        let row = try Row.fetchOne(
          db.cachedStatement(sql: "SELECT taskID, fingerprint FROM idempotency_key WHERE key = ?"), arguments: [key]),
        let task = try TaskRow.fetch(db, id: row["taskID"])?.record
      else { return nil }
      return (task, row["fingerprint"])
    }
  }

  package func task(_ id: String) async throws -> TaskRecord? {
    try await reading { db in try TaskRow.fetch(db, id: id)?.record }
  }

  package func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    try await reading { db in
      let filter = status == nil ? "" : "WHERE status = ?"
      let sql = "SELECT \(TaskRow.columnList) FROM task \(filter) ORDER BY createdAt DESC, id DESC LIMIT ? OFFSET ?"
      var arguments: StatementArguments = status.map { [$0.rawValue] } ?? []
      arguments += [max(0, limit), max(0, offset)]
      return try TaskRow.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map(\.record)
    }
  }

  package func queued(limit: Int) async throws -> [TaskRecord] {
    try await reading { db in
      let sql = "SELECT \(TaskRow.columnList) FROM task WHERE status = 'queued' ORDER BY createdAt, id LIMIT ?"
      return try TaskRow.fetchAll(db.cachedStatement(sql: sql), arguments: [max(0, limit)]).map(\.record)
    }
  }

  package func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { $0.starting(on: nodeID, at: date) }
  }

  package func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws
    -> TaskRecord?
  {
    try await changing(id) { $0.finishing(with: outcome, by: nodeID, at: date) }
  }

  package func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date)
    async throws -> TaskRecord?
  {
    try await changing(id) { $0.finishingLate(with: outcome, attempt: attempt, by: nodeID, at: date) }
  }

  package func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { task in
      task.status == .running && task.nodeID == nodeID ? task.requeued(reason: reason, at: date) : nil
    }
  }

  package func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await writing { db in
      let filter = nodeID == nil ? "" : "AND nodeID = ?"
      let sql = "SELECT \(TaskRow.columnList) FROM task WHERE status = 'running' \(filter) ORDER BY createdAt"
      let arguments: StatementArguments = nodeID.map { [$0] } ?? []
      return try TaskRow.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { row in
        let changed = row.record.requeued(reason: reason, at: date)
        try db.cachedStatement(sql: TaskRow.updateSQL).execute(arguments: TaskRow(changed).updateArguments)
        return changed
      }
    }
    .map { changed in
      count(from: .running, to: changed.status)
      return changed
    }
  }

  package func counts() async throws -> [TaskStatus: Int] {
    statusCounts.withLock { $0.filter { $0.value != 0 } }
  }

  private func count(from old: TaskStatus?, to new: TaskStatus) {
    guard old != new else { return }
    statusCounts.withLock { counts in
      if let old { counts[old, default: 0] -= 1 }
      counts[new, default: 0] += 1
    }
  }

  /// Reads, changes and writes one task in one transaction.
  private func changing(_ id: String, _ change: @escaping @Sendable (TaskRecord) -> TaskRecord?) async throws
    -> TaskRecord?
  {
    let outcome = try await writing { db -> (TaskStatus, TaskRecord)? in
      guard let current = try TaskRow.fetch(db, id: id), let changed = change(current.record) else { return nil }
      try db.cachedStatement(sql: TaskRow.updateSQL).execute(arguments: TaskRow(changed).updateArguments)
      return (current.record.status, changed)
    }
    guard let (old, changed) = outcome else { return nil }
    count(from: old, to: changed.status)
    return changed
  }

  /// Runs `body` in the next group commit: the changes waiting together go into one
  /// transaction (each in a savepoint of its own, so one failing leaves the others), and each
  /// caller resumes once that transaction is committed.
  private func writing<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do {
      return try await commits.submit(body)
    } catch let error as TaskCenterError {
      throw error
    } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
      throw TaskCenterError(
        code: .insufficientStorage, message: "the task store's disk is full: nothing was written", details: "\(error)")
    } catch {
      throw TaskCenterError.storage(error)
    }
  }

  package func diskSpace() -> DiskSpace? { DiskSpace.of(path) }

  private func reading<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do {
      return try await pool.read(body)
    } catch {
      throw TaskCenterError.storage(error)
    }
  }
}

/// Group commit: changes that arrive while a transaction is being written wait, then all go
/// into the next one.
private final class GroupCommit: Sendable {
  /// A change: `run` applies it in the open transaction and returns how to answer its caller
  /// once the transaction's fate (nil: committed) is known; `fail` answers a change that never
  /// ran.
  struct Change: Sendable {
    let run: @Sendable (Database) -> @Sendable ((any Error)?) -> Void
    let fail: @Sendable (any Error) -> Void
  }

  /// The answers of the changes that ran in a transaction, by position.
  private final class Answers: Sendable {
    let answers: Mutex<[(@Sendable ((any Error)?) -> Void)?]>
    init(count: Int) { answers = Mutex(Array(repeating: nil, count: count)) }
  }

  private let pool: DatabasePool
  private let state = Mutex<(waiting: [Change], writing: Bool)>(([], false))
  /// Most changes in one transaction.
  private let batchLimit = 512

  init(pool: DatabasePool) {
    self.pool = pool
  }

  func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
      let change = Change(
        run: { db in
          let result: Result<T, any Error>
          do {
            let value = Mutex<T?>(nil)
            try db.inSavepoint {
              let computed = try body(db)
              value.withLock { $0 = computed }
              return .commit
            }
            result = .success(value.withLock { $0! })
          } catch {
            result = .failure(error)
          }
          return { transactionError in
            if let transactionError {
              continuation.resume(throwing: transactionError)
            } else {
              continuation.resume(with: result)
            }
          }
        },
        fail: { continuation.resume(throwing: $0) })
      let startWriter = state.withLock { state -> Bool in
        state.waiting.append(change)
        defer { state.writing = true }
        return !state.writing
      }
      // Unstructured: the writer serves every waiting caller's change, not this caller's
      // alone (each caller awaits its own answer), and ends when the queue is empty.
      if startWriter { Task.detached { await self.drain() } }
    }
  }

  private func drain() async {
    while true {
      let batch = state.withLock { state -> [Change] in
        let batch = Array(state.waiting.prefix(batchLimit))
        state.waiting.removeFirst(batch.count)
        if batch.isEmpty { state.writing = false }
        return batch
      }
      if batch.isEmpty { return }
      let answers = Answers(count: batch.count)
      do {
        try await pool.write { db in
          for (index, change) in batch.enumerated() {
            let answer = change.run(db)
            answers.answers.withLock { $0[index] = answer }
          }
        }
        for answer in answers.answers.withLock({ $0 }) { answer?(nil) }
      } catch {
        // The transaction failed as a whole (disk full, I/O): every change in it failed.
        let ran = answers.answers.withLock { $0 }
        for (index, change) in batch.enumerated() {
          if let answer = ran[index] { answer(error) } else { change.fail(error) }
        }
      }
    }
  }
}

/// One row of the `task` table: a ``TaskRecord`` flattened, dates as seconds since 1970 (so
/// they round-trip exactly). Read and written with cached statements and columns by position.
private struct TaskRow: FetchableRecord {
  static let databaseTableName = "task"
  static let columns = [
    "id", "kind", "status", "code", "function", "invocation", "timeout", "cpu", "memoryMB", "attempts", "maxAttempts",
    "nodeID", "output", "stderr", "exitStatus", "errorMessage", "createdAt", "startedAt", "finishedAt", "executionTime",
    "invocationSerializer", "outputSerializer",
  ]
  static let columnList = columns.joined(separator: ", ")
  static let insertSQL =
    "INSERT INTO task (\(columnList)) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
  static let updateSQL =
    "UPDATE task SET \(columns.dropFirst().map { "\($0) = ?" }.joined(separator: ", ")) WHERE id = ?"

  var record: TaskRecord

  init(_ task: TaskRecord) {
    record = task
  }

  init(row: Row) throws {
    var task = TaskRecord(
      id: row[0], kind: TaskKind(rawValue: row[1]) ?? .code, code: row[3], function: row[4],
      invocation: Self.payload(row[5], row[20]), timeout: row[6], resources: ResourceRequest(cpu: row[7], memoryMB: row[8]),
      maxAttempts: row[10], createdAt: Date(timeIntervalSince1970: row[16]))
    task.status = TaskStatus(rawValue: row[2]) ?? .failed
    task.attempts = row[9]
    task.nodeID = row[11]
    task.output = Self.payload(row[12], row[21])
    task.stderr = row[13]
    task.exitStatus = row[14]
    task.errorMessage = row[15]
    task.startedAt = (row[17] as Double?).map(Date.init(timeIntervalSince1970:))
    task.finishedAt = (row[18] as Double?).map(Date.init(timeIntervalSince1970:))
    task.executionTime = row[19]
    record = task
  }

  private static func payload(_ data: Data?, _ serializer: String?) -> TaskPayload? {
    guard let data else { return nil }
    return TaskPayload(data: data, serializer: serializer ?? TaskPayload.text)
  }

  static func fetch(_ db: Database, id: String) throws -> TaskRow? {
    try fetchOne(db.cachedStatement(sql: "SELECT \(columnList) FROM task WHERE id = ?"), arguments: [id])
  }

  /// The values of every column but `id`, in order.
  private var values: [(any DatabaseValueConvertible)?] {
    let task = record
    return [
      task.kind.rawValue, task.status.rawValue, task.code, task.function, task.invocation?.data, task.timeout,
      task.resources.cpu, task.resources.memoryMB, task.attempts, task.maxAttempts, task.nodeID, task.output?.data,
      task.stderr, task.exitStatus, task.errorMessage, task.createdAt.timeIntervalSince1970,
      task.startedAt?.timeIntervalSince1970, task.finishedAt?.timeIntervalSince1970, task.executionTime,
      task.invocation?.serializer, task.output?.serializer,
    ]
  }

  var arguments: StatementArguments { StatementArguments([record.id] + values) }
  var updateArguments: StatementArguments { StatementArguments(values + [record.id]) }
}
