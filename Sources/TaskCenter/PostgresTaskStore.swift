public import Foundation
public import Logging
import PostgresNIO
import Synchronization

/// Tasks in PostgreSQL through postgres-nio (a connection pool, statements with bound
/// parameters): `easyremote gateway --db postgres://user@host/db`. The same ``TaskStore``
/// behaviour as ``SQLiteTaskStore`` — each change is one transaction, committed before the
/// method returns — on a server several gateways can share.
///
/// A change reads its row `FOR UPDATE`, applies the same pure transition as the SQLite store
/// (``TaskRecord/starting(on:at:)`` …) and writes it back, so two gateways never both start,
/// finish or requeue the same task.
public final class PostgresTaskStore: TaskStore {
  private let client: PostgresClient
  private let running: Task<Void, Never>
  private let logger: Logger

  /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`) and
  /// brings its schema up to date.
  ///
  /// - Throws: ``TaskCenterError`` when the URL is not one, or the server does not answer
  ///   within `connectTimeout`.
  public init(
    url: String, connectTimeout: Duration = .seconds(10), logger: Logger = Logger(label: "easyremote.postgres")
  ) async throws {
    guard let parts = URLComponents(string: url), parts.scheme == "postgres" || parts.scheme == "postgresql",
      let host = parts.host, let user = parts.user
    else {
      throw TaskCenterError.storage(PostgresURLError(url: url))
    }
    let database = parts.path.split(separator: "/").first.map(String.init) ?? user
    var configuration = PostgresClient.Configuration(
      host: host, port: parts.port ?? 5432, username: user, password: parts.password, database: database, tls: .disable)
    configuration.options.maximumConnections = 8
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    self.client = client
    self.logger = logger
    running = Task { await client.run() }
    do {
      // The pool keeps trying a server that does not answer; the store gives up in time.
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await self.migrate() }
        group.addTask {
          try await Task.sleep(for: connectTimeout)
          throw PostgresStoreError(message: "no answer from \(host):\(parts.port ?? 5432) within \(connectTimeout)")
        }
        defer { group.cancelAll() }
        try await group.next()
      }
    } catch {
      running.cancel()
      throw TaskCenterError.storage(error)
    }
  }

  /// Closes the connections.
  public func close() async {
    running.cancel()
    await running.value
  }

  deinit { running.cancel() }

  struct PostgresURLError: Error, CustomStringConvertible {
    let url: String
    var description: String { "'\(url)' is not a PostgreSQL URL (postgres://user[:password]@host[:port]/database)" }
  }

  // MARK: Schema

  /// Migrations by version, each run once in its own transaction (an advisory lock keeps two
  /// gateways starting together from running one twice).
  private static let migrations: [(Int, [String])] = [
    (
      1,
      [
        """
        CREATE TABLE IF NOT EXISTS easyremote_task (
          id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, code TEXT, function TEXT,
          invocation BYTEA, invocation_serializer TEXT, timeout DOUBLE PRECISION NOT NULL,
          cpu DOUBLE PRECISION NOT NULL, memory_mb BIGINT NOT NULL, attempts BIGINT NOT NULL,
          max_attempts BIGINT NOT NULL, node_id TEXT, output BYTEA, output_serializer TEXT, stderr TEXT,
          exit_status BIGINT, error_message TEXT, created_at DOUBLE PRECISION NOT NULL,
          started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, execution_time DOUBLE PRECISION)
        """,
        "CREATE INDEX IF NOT EXISTS easyremote_task_by_status ON easyremote_task (status, created_at, id)",
        "CREATE INDEX IF NOT EXISTS easyremote_task_by_age ON easyremote_task (created_at DESC, id DESC)",
        """
        CREATE TABLE IF NOT EXISTS easyremote_idempotency_key (
          key TEXT PRIMARY KEY, task_id TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)
        """,
      ]
    )
  ]

  private func migrate() async throws {
    try await client.withConnection { connection in
      _ = try await connection.query("SELECT pg_advisory_lock(7700001)", logger: self.logger)
      do {
        _ = try await connection.query(
          "CREATE TABLE IF NOT EXISTS easyremote_schema (version BIGINT PRIMARY KEY)", logger: self.logger)
        var applied: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM easyremote_schema", logger: self.logger)
          .decode(Int.self)
        {
          applied.insert(version)
        }
        for (version, statements) in Self.migrations where !applied.contains(version) {
          _ = try await connection.query("BEGIN", logger: self.logger)
          for statement in statements { _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger) }
          _ = try await connection.query("INSERT INTO easyremote_schema (version) VALUES (\(version))", logger: self.logger)
          _ = try await connection.query("COMMIT", logger: self.logger)
        }
      } catch {
        _ = try? await connection.query("ROLLBACK", logger: self.logger)
        _ = try? await connection.query("SELECT pg_advisory_unlock(7700001)", logger: self.logger)
        throw error
      }
      _ = try await connection.query("SELECT pg_advisory_unlock(7700001)", logger: self.logger)
    }
  }

  // MARK: TaskStore

  public func insert(_ task: TaskRecord) async throws {
    try await storing {
      try await client.withConnection { connection in
        try await self.insertRow(task, on: connection)
      }
    }
  }

  public func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    try await storing {
      try await self.transaction { connection -> IdempotentInsert in
        let claimed = try await connection.query(
          """
          INSERT INTO easyremote_idempotency_key (key, task_id, fingerprint, created_at)
          VALUES (\(key), \(task.id), \(fingerprint), \(task.createdAt.timeIntervalSince1970))
          ON CONFLICT (key) DO NOTHING RETURNING key
          """, logger: self.logger
        ).collect()
        if claimed.isEmpty {
          // Made before (by this gateway or another): that task, as it is now.
          let rows = try await connection.query(
            "SELECT task_id, fingerprint FROM easyremote_idempotency_key WHERE key = \(key)", logger: self.logger
          ).collect()
          guard let row = rows.first, let (taskID, existingFingerprint) = try? row.decode((String, String).self),
            let existing = try await self.fetch(taskID, on: connection)
          else {
            throw TaskCenterError.storage(PostgresStoreError(message: "idempotency key '\(key)' names no task"))
          }
          return IdempotentInsert(task: existing, fingerprint: existingFingerprint, inserted: false)
        }
        try await self.insertRow(task, on: connection)
        return IdempotentInsert(task: task, fingerprint: fingerprint, inserted: true)
      }
    }
  }

  public func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
    try await storing {
      try await client.withConnection { connection -> (task: TaskRecord, fingerprint: String)? in
        let rows = try await connection.query(
          "SELECT task_id, fingerprint FROM easyremote_idempotency_key WHERE key = \(key)", logger: self.logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (taskID, fingerprint) = try row.decode((String, String).self)
        return try await self.fetch(taskID, on: connection).map { ($0, fingerprint) }
      }
    }
  }

  public func task(_ id: String) async throws -> TaskRecord? {
    try await storing { try await client.withConnection { try await self.fetch(id, on: $0) } }
  }

  public func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
    try await storing {
      let limit = max(0, limit)
      let offset = max(0, offset)
      let query: PostgresQuery =
        if let status {
          "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = \(status.rawValue) ORDER BY created_at DESC, id DESC LIMIT \(limit) OFFSET \(offset)"
        } else {
          "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task ORDER BY created_at DESC, id DESC LIMIT \(limit) OFFSET \(offset)"
        }
      return try await client.withConnection { try await self.records(query, on: $0) }
    }
  }

  public func queued(limit: Int) async throws -> [TaskRecord] {
    try await storing {
      try await client.withConnection { connection in
        try await self.records(
          "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'queued' ORDER BY created_at, id LIMIT \(max(0, limit))",
          on: connection)
      }
    }
  }

  public func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { $0.starting(on: nodeID, at: date) }
  }

  public func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { $0.finishing(with: outcome, by: nodeID, at: date) }
  }

  public func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    try await changing(id) { task in
      task.status == .running && task.nodeID == nodeID ? task.requeued(reason: reason, at: date) : nil
    }
  }

  public func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await storing {
      try await self.transaction { connection -> [TaskRecord] in
        let query: PostgresQuery =
          if let nodeID {
            "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' AND node_id = \(nodeID) ORDER BY created_at FOR UPDATE"
          } else {
            "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' ORDER BY created_at FOR UPDATE"
          }
        var changed: [TaskRecord] = []
        for task in try await self.records(query, on: connection) {
          let requeued = task.requeued(reason: reason, at: date)
          try await self.update(requeued, on: connection)
          changed.append(requeued)
        }
        return changed
      }
    }
  }

  public func counts() async throws -> [TaskStatus: Int] {
    try await storing {
      try await client.withConnection { connection in
        var counts: [TaskStatus: Int] = [:]
        let rows = try await connection.query(
          "SELECT status, COUNT(*) FROM easyremote_task GROUP BY status", logger: self.logger)
        for try await (status, count) in rows.decode((String, Int).self) {
          if let status = TaskStatus(rawValue: status), count > 0 { counts[status] = count }
        }
        return counts
      }
    }
  }

  // MARK: Rows

  /// Reads task `id` `FOR UPDATE`, applies `change`, writes what it gives, in one transaction.
  private func changing(_ id: String, _ change: @escaping @Sendable (TaskRecord) -> TaskRecord?) async throws -> TaskRecord? {
    try await storing {
      try await self.transaction { connection -> TaskRecord? in
        guard
          let current = try await self.records(
            "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE id = \(id) FOR UPDATE", on: connection
          ).first,
          let changed = change(current)
        else { return nil }
        try await self.update(changed, on: connection)
        return changed
      }
    }
  }

  private func insertRow(_ task: TaskRecord, on connection: PostgresConnection) async throws {
    let row = PostgresTaskRow(task)
    do {
      _ = try await connection.query(
        """
        INSERT INTO easyremote_task (\(unescaped: PostgresTaskRow.columns)) VALUES (\(row.id), \(row.kind), \(row.status),
          \(row.code), \(row.function), \(row.invocation), \(row.invocationSerializer), \(row.timeout), \(row.cpu),
          \(row.memoryMB), \(row.attempts), \(row.maxAttempts), \(row.nodeID), \(row.output), \(row.outputSerializer),
          \(row.stderr), \(row.exitStatus), \(row.errorMessage), \(row.createdAt), \(row.startedAt), \(row.finishedAt),
          \(row.executionTime))
        """, logger: logger)
    } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
      throw TaskCenterError.duplicateTask(task.id)
    }
  }

  private func update(_ task: TaskRecord, on connection: PostgresConnection) async throws {
    let row = PostgresTaskRow(task)
    _ = try await connection.query(
      """
      UPDATE easyremote_task SET status = \(row.status), attempts = \(row.attempts), node_id = \(row.nodeID),
        output = \(row.output), output_serializer = \(row.outputSerializer), stderr = \(row.stderr),
        exit_status = \(row.exitStatus), error_message = \(row.errorMessage), started_at = \(row.startedAt),
        finished_at = \(row.finishedAt), execution_time = \(row.executionTime)
      WHERE id = \(row.id)
      """, logger: logger)
  }

  private func fetch(_ id: String, on connection: PostgresConnection) async throws -> TaskRecord? {
    try await records(
      "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE id = \(id)", on: connection
    ).first
  }

  private func records(_ query: PostgresQuery, on connection: PostgresConnection) async throws -> [TaskRecord] {
    var records: [TaskRecord] = []
    for try await row in try await connection.query(query, logger: logger) {
      records.append(try PostgresTaskRow.record(from: row))
    }
    return records
  }

  /// Runs `body` in a transaction on one connection: committed when it returns, rolled back
  /// when it throws.
  private func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
    try await client.withConnection { connection in
      _ = try await connection.query("BEGIN", logger: self.logger)
      do {
        let value = try await body(connection)
        _ = try await connection.query("COMMIT", logger: self.logger)
        return value
      } catch {
        _ = try? await connection.query("ROLLBACK", logger: self.logger)
        throw error
      }
    }
  }

  private func storing<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch let error as TaskCenterError {
      throw error
    } catch {
      throw TaskCenterError.storage(error)
    }
  }
}

struct PostgresStoreError: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}

/// A ``TaskRecord`` as the columns of `easyremote_task` (dates as seconds since 1970, so they
/// round-trip exactly, as in SQLite).
struct PostgresTaskRow {
  static let columns = """
    id, kind, status, code, function, invocation, invocation_serializer, timeout, cpu, memory_mb, attempts, \
    max_attempts, node_id, output, output_serializer, stderr, exit_status, error_message, created_at, started_at, \
    finished_at, execution_time
    """

  var id: String
  var kind: String
  var status: String
  var code: String?
  var function: String?
  var invocation: ByteBuffer?
  var invocationSerializer: String?
  var timeout: Double
  var cpu: Double
  var memoryMB: Int
  var attempts: Int
  var maxAttempts: Int
  var nodeID: String?
  var output: ByteBuffer?
  var outputSerializer: String?
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
    invocation = task.invocation.map { ByteBuffer(bytes: $0.data) }
    invocationSerializer = task.invocation?.serializer
    timeout = task.timeout
    cpu = task.resources.cpu
    memoryMB = task.resources.memoryMB
    attempts = task.attempts
    maxAttempts = task.maxAttempts
    nodeID = task.nodeID
    output = task.output.map { ByteBuffer(bytes: $0.data) }
    outputSerializer = task.output?.serializer
    stderr = task.stderr
    exitStatus = task.exitStatus
    errorMessage = task.errorMessage
    createdAt = task.createdAt.timeIntervalSince1970
    startedAt = task.startedAt?.timeIntervalSince1970
    finishedAt = task.finishedAt?.timeIntervalSince1970
    executionTime = task.executionTime
  }

  static func record(from row: PostgresRow) throws -> TaskRecord {
    let cells = row.makeRandomAccess()
    func value<T: PostgresDecodable>(_ index: Int, _ type: T.Type) throws -> T { try cells[index].decode(T.self) }
    func payload(_ data: Int, _ serializer: Int) throws -> TaskPayload? {
      guard let bytes = try value(data, ByteBuffer?.self) else { return nil }
      return TaskPayload(data: Data(bytes.readableBytesView), serializer: try value(serializer, String?.self) ?? TaskPayload.text)
    }
    var task = TaskRecord(
      id: try value(0, String.self), kind: TaskKind(rawValue: try value(1, String.self)) ?? .code,
      code: try value(3, String?.self), function: try value(4, String?.self), invocation: try payload(5, 6),
      timeout: try value(7, Double.self),
      resources: ResourceRequest(cpu: try value(8, Double.self), memoryMB: try value(9, Int.self)),
      maxAttempts: try value(11, Int.self), createdAt: Date(timeIntervalSince1970: try value(18, Double.self)))
    task.status = TaskStatus(rawValue: try value(2, String.self)) ?? .failed
    task.attempts = try value(10, Int.self)
    task.nodeID = try value(12, String?.self)
    task.output = try payload(13, 14)
    task.stderr = try value(15, String?.self)
    task.exitStatus = try value(16, Int?.self)
    task.errorMessage = try value(17, String?.self)
    task.startedAt = try value(19, Double?.self).map(Date.init(timeIntervalSince1970:))
    task.finishedAt = try value(20, Double?.self).map(Date.init(timeIntervalSince1970:))
    task.executionTime = try value(21, Double?.self)
    return task
  }
}
