public import Foundation
public import Logging
import EasyRemoteCore
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
public final class PostgresTaskStore: SharedTaskStore {
  public let gatewayID: String
  private let client: PostgresClient
  private let running: Task<Void, Never>
  private let logger: Logger
  /// Group commit of the two changes every task makes: inserts, and ends reported by nodes.
  private let inserts = PostgresBatcher<TaskRecord, Bool>(limit: 256)
  private let finishes = PostgresBatcher<Finish, TaskRecord?>(limit: 256)
  /// Subscribers of ``notices()``, and the task that listens for them.
  private let listeners = Mutex<Listeners>(Listeners())

  private struct Listeners {
    var subscribers: [UUID: AsyncStream<TaskNotice>.Continuation] = [:]
    var task: Task<Void, Never>?
    /// Whether the notification connection is listening now.
    var live = false
    /// Whether this store held its lease before (a lease taken anew after that was lost).
    var heldLease = false
  }

  /// Statements sent (each one round trip), for the benchmark.
  fileprivate let statements = Atomic<Int>(0)
  package var roundTrips: Int { statements.load(ordering: .relaxed) }

  /// `connection`, counting the statements sent on it.
  private func counted(_ connection: PostgresConnection) -> CountedConnection {
    CountedConnection(connection: connection, store: self)
  }

  /// The notification channel every change is announced on (a trigger on `easyremote_task`).
  static let channel = "easyremote_task"

  /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`) and
  /// brings its schema up to date.
  ///
  /// - Parameter gatewayID: this gateway's id among those sharing the database; a new one for
  ///   each process by default (a restarted gateway is a new gateway: the tasks of the one that
  ///   died go back to the queue when its lease expires).
  /// - Throws: ``TaskCenterError`` when the URL is not one, or the server does not answer
  ///   within `connectTimeout`.
  public init(
    url: String, gatewayID: String = PostgresTaskStore.newGatewayID(), connectTimeout: Duration = .seconds(10),
    logger: Logger = Logger(label: "easyremote.postgres")
  ) async throws {
    self.gatewayID = gatewayID
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
      // The pool keeps trying a server that does not answer; the store gives up in time. (Only
      // the first answer is bounded: the migrations may take longer on a busy server.)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          try await client.withConnection { connection in _ = try await connection.query("SELECT 1", logger: logger) }
        }
        group.addTask {
          try await Task.sleep(for: connectTimeout)
          throw PostgresStoreError(message: "no answer from \(host):\(parts.port ?? 5432) within \(connectTimeout)")
        }
        defer { group.cancelAll() }
        try await group.next()
      }
      try await migrate()
    } catch {
      running.cancel()
      throw TaskCenterError.storage(error)
    }
  }

  /// A gateway id: `gw-` and 8 random hex digits.
  public static func newGatewayID() -> String {
    "gw-" + String(format: "%08x", UInt32.random(in: 0...UInt32.max))
  }

  /// Closes the connections (and ends every ``notices()`` stream).
  public func close() async {
    let (listener, subscribers) = listeners.withLock { state in
      defer { state.subscribers = [:] }
      return (state.task, state.subscribers.values)
    }
    listener?.cancel()
    await listener?.value
    for subscriber in subscribers { subscriber.finish() }
    running.cancel()
    await running.value
  }

  deinit {
    running.cancel()
    listeners.withLock { $0.task?.cancel() }
  }

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
    ),
    (
      2,
      [
        // Who started a running task (its lease says whether that gateway lives), and who
        // made the last change (so a gateway can tell its own notices from others').
        "ALTER TABLE easyremote_task ADD COLUMN IF NOT EXISTS gateway_id TEXT",
        "ALTER TABLE easyremote_task ADD COLUMN IF NOT EXISTS changed_by TEXT",
        "CREATE INDEX IF NOT EXISTS easyremote_task_running ON easyremote_task (gateway_id, node_id) WHERE status = 'running'",
        """
        CREATE TABLE IF NOT EXISTS easyremote_gateway (
          id TEXT PRIMARY KEY, address TEXT, started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
          lease_until TIMESTAMPTZ NOT NULL)
        """,
        """
        CREATE OR REPLACE FUNCTION easyremote_task_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('easyremote_task', NEW.id || ' ' || NEW.status || ' ' || coalesce(NEW.changed_by, ''));
          RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER easyremote_task_notify AFTER INSERT OR UPDATE OF status ON easyremote_task
          FOR EACH ROW EXECUTE FUNCTION easyremote_task_notify()
        """,
      ]
    ),
    (
      3,
      [
        // What each gateway's nodes serve, for calls forwarded between gateways.
        "ALTER TABLE easyremote_gateway ADD COLUMN IF NOT EXISTS functions TEXT[] NOT NULL DEFAULT '{}'",
        "ALTER TABLE easyremote_gateway ADD COLUMN IF NOT EXISTS nodes TEXT[] NOT NULL DEFAULT '{}'",
      ]
    ),
    (
      4,
      [
        // Its task-center nodes as `GET /nodes` shows them (JSON), for every gateway's listing.
        "ALTER TABLE easyremote_gateway ADD COLUMN IF NOT EXISTS node_infos TEXT NOT NULL DEFAULT '[]'",
        // And its functions as `GET /functions` shows them (JSON).
        "ALTER TABLE easyremote_gateway ADD COLUMN IF NOT EXISTS function_infos TEXT NOT NULL DEFAULT '[]'",
        // A new task's notice says so (` +`): a task read later may have moved on already.
        """
        CREATE OR REPLACE FUNCTION easyremote_task_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('easyremote_task', NEW.id || ' ' || NEW.status || ' ' || coalesce(NEW.changed_by, '')
            || CASE WHEN TG_OP = 'INSERT' THEN ' +' ELSE '' END);
          RETURN NULL;
        END $$
        """,
      ]
    ),
    (
      6,
      [
        // Its connected nodes as the clients' `listNodes` shows them (JSON).
        "ALTER TABLE easyremote_gateway ADD COLUMN IF NOT EXISTS member_infos TEXT NOT NULL DEFAULT '[]'"
      ]
    ),
    (
      7,
      [
        // Every gateway's nodes for the fair scheduler of all (``PoolNode``): free slots and
        // the seed-004 history, kept when a node leaves (it takes it to its next gateway).
        """
        CREATE TABLE IF NOT EXISTS easyremote_node (
          id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL, online BOOLEAN NOT NULL, available BOOLEAN NOT NULL,
          slots BIGINT NOT NULL, running BIGINT NOT NULL DEFAULT 0, waiting_since DOUBLE PRECISION NOT NULL,
          last_served_at DOUBLE PRECISION,
          completed BIGINT NOT NULL DEFAULT 0, failed BIGINT NOT NULL DEFAULT 0,
          compute_time DOUBLE PRECISION NOT NULL DEFAULT 0, cores BIGINT NOT NULL, memory_mb BIGINT NOT NULL,
          runs_code BOOLEAN NOT NULL, functions TEXT[] NOT NULL DEFAULT '{}',
          updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())
        """
      ]
    ),
  ]

  private func migrate() async throws {
    try await client.withConnection { connection in
      _ = try await self.counted(connection).query("SELECT pg_advisory_lock(7700001)", logger: self.logger)
      do {
        _ = try await self.counted(connection).query(
          "CREATE TABLE IF NOT EXISTS easyremote_schema (version BIGINT PRIMARY KEY)", logger: self.logger)
        var applied: Set<Int> = []
        for try await version in try await self.counted(connection).query("SELECT version FROM easyremote_schema", logger: self.logger)
          .decode(Int.self)
        {
          applied.insert(version)
        }
        for (version, statements) in Self.migrations where !applied.contains(version) {
          _ = try await self.counted(connection).query("BEGIN", logger: self.logger)
          for statement in statements { _ = try await self.counted(connection).query(PostgresQuery(unsafeSQL: statement), logger: self.logger) }
          _ = try await self.counted(connection).query("INSERT INTO easyremote_schema (version) VALUES (\(version))", logger: self.logger)
          _ = try await self.counted(connection).query("COMMIT", logger: self.logger)
        }
      } catch {
        _ = try? await self.counted(connection).query("ROLLBACK", logger: self.logger)
        _ = try? await self.counted(connection).query("SELECT pg_advisory_unlock(7700001)", logger: self.logger)
        throw error
      }
      _ = try await self.counted(connection).query("SELECT pg_advisory_unlock(7700001)", logger: self.logger)
    }
  }

  // MARK: TaskStore

  /// Inserts arriving together go in one statement (``PostgresBatcher``).
  public func insert(_ task: TaskRecord) async throws {
    let inserted = try await storing {
      try await inserts.submit(task, run: { try await self.insertRows($0) }, single: { try await self.insertRows([$0])[0] })
    }
    if !inserted { throw TaskCenterError.duplicateTask(task.id) }
  }

  /// One `INSERT` of many rows; for each, whether it was inserted (`false`: its id was taken).
  private func insertRows(_ tasks: [TaskRecord]) async throws -> [Bool] {
    let query = PostgresTaskRow.insert(tasks, changedBy: gatewayID)
    var inserted: Set<String> = []
    try await client.withConnection { connection in
      for try await id in try await self.counted(connection).query(query, logger: self.logger).decode(String.self) {
        inserted.insert(id)
      }
    }
    // The same id twice in one batch: the first is the one inserted.
    return tasks.map { inserted.remove($0.id) != nil }
  }

  public func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
    try await storing {
      try await self.transaction { connection -> IdempotentInsert in
        let claimed = try await self.counted(connection).query(
          """
          INSERT INTO easyremote_idempotency_key (key, task_id, fingerprint, created_at)
          VALUES (\(key), \(task.id), \(fingerprint), \(task.createdAt.timeIntervalSince1970))
          ON CONFLICT (key) DO NOTHING RETURNING key
          """, logger: self.logger
        ).collect()
        if claimed.isEmpty {
          // Made before (by this gateway or another): that task, as it is now.
          let rows = try await self.counted(connection).query(
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
        let rows = try await self.counted(connection).query(
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

  /// One statement (one round trip): the row changes only while it is still queued, so of two
  /// gateways starting the same task one gets it and the other `nil`.
  public func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
    try await storing {
      try await client.withConnection { connection in
        try await self.records(
          """
          UPDATE easyremote_task SET status = 'running', node_id = \(nodeID), started_at = \(date.timeIntervalSince1970),
            attempts = attempts + 1, gateway_id = \(self.gatewayID), changed_by = \(self.gatewayID)
          WHERE id = \(id) AND status = 'queued' RETURNING \(unescaped: PostgresTaskRow.columns)
          """, on: connection
        ).first
      }
    }
  }

  /// In one transaction: the oldest queued tasks no other gateway is choosing from (`FOR UPDATE
  /// SKIP LOCKED`, without their code and call), the choice, and one statement starting the
  /// chosen ones — four round trips for the whole batch.
  /// The oldest queued tasks `FOR UPDATE SKIP LOCKED` and the other gateways' free nodes are
  /// offered; the picks start in one statement, which also counts them running on their nodes
  /// (so another gateway reading the nodes after this commit sees those slots taken).
  public func startQueued(
    limit: Int, now: @escaping @Sendable () -> Date, choose: @escaping @Sendable (QueueOffer) -> QueueChoice
  ) async throws -> [TaskRecord] {
    try await storing {
      try await self.transaction { connection -> [TaskRecord] in
        // The other gateways' free nodes come with the tasks, as JSON in one more column (read
        // once per statement), in the same round trip.
        var candidates: [TaskRecord] = []
        var others: [PoolNode] = []
        for try await row in try await self.counted(connection).query(
          """
          SELECT \(unescaped: PostgresTaskRow.queueColumns), (SELECT coalesce(json_agg(o), '[]')::text FROM (
            \(unescaped: PostgresNodeRow.othersSelect) AND n.gateway_id <> \(self.gatewayID)) o)
          FROM easyremote_task WHERE status = 'queued'
          ORDER BY created_at, id LIMIT \(max(0, limit)) FOR UPDATE OF easyremote_task SKIP LOCKED
          """, logger: self.logger)
        {
          if candidates.isEmpty { others = try PostgresNodeRow.nodes(json: row.makeRandomAccess()[PostgresTaskRow.columnCount].decode(String.self)) }
          candidates.append(try PostgresTaskRow.record(from: row))
        }
        guard !candidates.isEmpty else { return [] }
        let date = now()
        let choice = choose(QueueOffer(tasks: candidates, others: others))
        if !choice.wake.isEmpty {
          // Delivered at the commit, when the tasks left to them can be taken.
          let payloads = choice.wake.sorted().map { "> \($0)" }
          _ = try await self.counted(connection).query(
            "SELECT pg_notify(\(Self.channel), p) FROM unnest(\(payloads)::text[]) AS p", logger: self.logger)
        }
        guard !choice.picks.isEmpty else { return [] }
        let ids = choice.picks.map(\.taskID)
        let nodes = choice.picks.map(\.nodeID)
        let seconds = date.timeIntervalSince1970
        return try await self.records(
          """
          WITH started AS (
            UPDATE easyremote_task t SET status = 'running', node_id = p.node, started_at = \(seconds),
              attempts = t.attempts + 1, gateway_id = \(self.gatewayID), changed_by = \(self.gatewayID)
            FROM unnest(\(ids)::text[], \(nodes)::text[]) AS p(id, node)
            WHERE t.id = p.id AND t.status = 'queued' RETURNING \(unescaped: PostgresTaskRow.columns(of: "t"))),
          served AS (
            UPDATE easyremote_node n SET running = n.running + s.k, waiting_since = \(seconds),
              last_served_at = \(seconds)
            FROM (SELECT node_id, count(*) AS k FROM started GROUP BY node_id) s
            WHERE n.id = s.node_id AND n.gateway_id = \(self.gatewayID))
          SELECT * FROM started
          """, on: connection)
      }
    }
  }

  /// A node's answer for a task running on it.
  struct Finish: Sendable {
    var id: String
    var nodeID: String
    var outcome: TaskOutcome
    var date: Date
  }

  /// One `UPDATE` for many answers, each applied only while its task runs on its node (the
  /// rule of ``TaskRecord/finishing(with:by:at:)``); the records changed, by position.
  private func finishRows(_ finishes: [Finish]) async throws -> [TaskRecord?] {
    var sql = PostgresQuery.StringInterpolation(literalCapacity: 512, interpolationCount: finishes.count * 10)
    sql.appendLiteral(
      """
      WITH done AS (UPDATE easyremote_task t SET status = v.status, output = v.output, output_serializer = v.output_serializer,
        stderr = v.stderr, exit_status = v.exit_status, error_message = v.error_message,
        execution_time = v.execution_time, finished_at = v.finished_at, changed_by = 
      """)
    sql.appendInterpolation(gatewayID)
    sql.appendLiteral(" FROM (VALUES ")
    // Each value with its type (the first row's types are the VALUES list's).
    func value<Value: PostgresDynamicTypeEncodable>(_ value: Value?, _ type: String, last: Bool = false) {
      sql.appendInterpolation(value)
      sql.appendLiteral("::\(type)" + (last ? ")" : ", "))
    }
    for (index, finish) in finishes.enumerated() {
      let outcome = finish.outcome
      sql.appendLiteral(index == 0 ? "(" : ", (")
      value(finish.id, "text")
      value(finish.nodeID, "text")
      value(outcome.status.rawValue, "text")
      value(outcome.output.map { ByteBuffer(bytes: $0.data) }, "bytea")
      value(outcome.output?.serializer, "text")
      value(outcome.stderr, "text")
      value(outcome.exitStatus, "bigint")
      value(outcome.errorMessage, "text")
      value(outcome.executionTime, "float8")
      value(finish.date.timeIntervalSince1970, "float8", last: true)
    }
    sql.appendLiteral(
      """
      ) AS v(id, node, status, output, output_serializer, stderr, exit_status, error_message, execution_time, finished_at)
      WHERE t.id = v.id AND t.status = 'running' AND t.node_id = v.node RETURNING \(PostgresTaskRow.columns(of: "t"))),
      -- The nodes' slots come back and their counts grow in the same statement.
      freed AS (
        UPDATE easyremote_node n SET running = greatest(n.running - d.k, 0), completed = n.completed + d.ok,
          failed = n.failed + d.k - d.ok, compute_time = n.compute_time + d.seconds
        FROM (SELECT node_id, count(*) AS k, count(*) FILTER (WHERE status = 'completed') AS ok,
          coalesce(sum(execution_time), 0) AS seconds FROM done GROUP BY node_id) d
        WHERE n.id = d.node_id)
      SELECT * FROM done
      """)
    let query = PostgresQuery(stringInterpolation: sql)
    var changed: [String: TaskRecord] = [:]
    try await client.withConnection { connection in
      for record in try await self.records(query, on: connection) { changed[record.id] = record }
    }
    // The same task twice in one batch: the first answer is the one applied.
    return finishes.map { changed.removeValue(forKey: $0.id) }
  }

  public func count(_ status: TaskStatus) async throws -> Int {
    try await storing {
      try await client.withConnection { connection -> Int in
        let rows = try await self.counted(connection).query(
          "SELECT count(*) FROM easyremote_task WHERE status = \(status.rawValue)", logger: self.logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
      }
    }
  }

  /// One statement, the same rule as ``TaskRecord/finishing(with:by:at:)``: only a task that
  /// is not final, and with `nodeID` only while it runs there.
  public func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
    if let nodeID {
      // A node's answer (the hot path): answers arriving together go in one statement.
      let finish = Finish(id: id, nodeID: nodeID, outcome: outcome, date: date)
      return try await storing {
        try await finishes.submit(
          finish, run: { try await self.finishRows($0) }, single: { try await self.finishRows([$0])[0] })
      }
    }
    let output = outcome.output.map { ByteBuffer(bytes: $0.data) }
    let outputSerializer = outcome.output?.serializer
    let exitStatus = outcome.exitStatus
    let finishedAt = date.timeIntervalSince1970
    // Not a node's answer: a cancel (queued or running, any node).
    let query: PostgresQuery = """
      UPDATE easyremote_task SET status = \(outcome.status.rawValue), output = \(output),
        output_serializer = \(outputSerializer), stderr = \(outcome.stderr), exit_status = \(exitStatus),
        error_message = \(outcome.errorMessage), execution_time = \(outcome.executionTime), finished_at = \(finishedAt),
        changed_by = \(gatewayID)
      WHERE id = \(id) AND status IN ('queued', 'running') RETURNING \(unescaped: PostgresTaskRow.columns)
      """
    return try await storing {
      try await client.withConnection { try await self.records(query, on: $0).first }
    }
  }

  public func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date)
    async throws -> TaskRecord?
  {
    try await storing {
      try await self.transaction { connection -> TaskRecord? in
        guard
          let task = try await self.records(
            "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE id = \(id) FOR UPDATE", on: connection
          ).first,
          let finished = task.finishingLate(with: outcome, attempt: attempt, by: nodeID, at: date)
        else { return nil }
        try await self.update(finished, on: connection)
        return finished
      }
    }
  }

  public func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
    try await storing {
      try await self.transaction { connection -> TaskRecord? in
        try await self.requeue(
          "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE id = \(id) AND status = 'running' AND node_id = \(nodeID) FOR UPDATE",
          reason: reason, at: date, on: connection
        ).first
      }
    }
  }

  /// This gateway's running tasks only (of one node, or all): another gateway's are its own.
  /// Tasks started before gateways were tagged count as this gateway's.
  public func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    let query: PostgresQuery =
      if let nodeID {
        "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' AND node_id = \(nodeID) AND (gateway_id = \(gatewayID) OR gateway_id IS NULL) ORDER BY created_at FOR UPDATE"
      } else {
        "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' AND (gateway_id = \(gatewayID) OR gateway_id IS NULL) ORDER BY created_at FOR UPDATE"
      }
    return try await requeueAll(query, reason: reason, at: date)
  }

  /// Reads the running tasks `query` selects `FOR UPDATE` and requeues each, in one transaction.
  private func requeueAll(_ query: PostgresQuery, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await storing {
      try await self.transaction { try await self.requeue(query, reason: reason, at: date, on: $0) }
    }
  }

  /// Requeues each running task `query` selects `FOR UPDATE`, in the caller's transaction.
  private func requeue(
    _ query: PostgresQuery, reason: String, at date: Date, on connection: PostgresConnection
  ) async throws -> [TaskRecord] {
    var changed: [TaskRecord] = []
    var nodes: [String] = []
    for task in try await records(query, on: connection) {
      let requeued = task.requeued(reason: reason, at: date)
      try await update(requeued, on: connection)
      changed.append(requeued)
      if let node = task.nodeID { nodes.append(node) }
    }
    if !nodes.isEmpty {
      // They no longer run there (``PoolNode/running``).
      _ = try await counted(connection).query(
        """
        UPDATE easyremote_node n SET running = greatest(n.running - c.k, 0)
        FROM (SELECT node, count(*) AS k FROM unnest(\(nodes)::text[]) AS node GROUP BY node) c WHERE n.id = c.node
        """, logger: logger)
    }
    return changed
  }

  // MARK: SharedTaskStore

  public func renewLease(for duration: Duration, publishing: GatewayPublication, announce: Bool) async throws -> Bool {
    let (address, functions, nodes) = (publishing.address, publishing.functions, publishing.nodes)
    func json(_ value: some Encodable) -> String {
      String(decoding: (try? JSONEncoder().encode(value)) ?? Data("[]".utf8), as: UTF8.self)
    }
    let functionInfos = json(publishing.functionInfos)
    let memberInfos = json(publishing.memberInfos)
    let infos = json(publishing.nodeInfos)
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    // Told on the task channel, marked apart from task changes (task ids never start with `!`).
    let notice = announce ? "! \(gatewayID)" : ""
    let taken = try await storing {
      try await client.withConnection { connection -> Bool in
        // `xmax = 0`: the row was inserted now, not updated (the lease was new or lost).
        let rows = try await self.counted(connection).query(
          """
          WITH lease AS (
            INSERT INTO easyremote_gateway (id, address, lease_until, functions, nodes, node_infos, function_infos,
              member_infos)
            VALUES (\(self.gatewayID), \(address), clock_timestamp() + make_interval(secs => \(seconds)), \(functions),
              \(nodes), \(infos), \(functionInfos), \(memberInfos))
            ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until, address = EXCLUDED.address,
              functions = EXCLUDED.functions, nodes = EXCLUDED.nodes, node_infos = EXCLUDED.node_infos,
              function_infos = EXCLUDED.function_infos, member_infos = EXCLUDED.member_infos
            RETURNING (xmax = 0) AS inserted)
          SELECT inserted, CASE WHEN \(notice) = '' THEN NULL ELSE pg_notify('easyremote_task', \(notice)) END IS NULL
          FROM lease
          """, logger: self.logger)
        for try await (inserted, _) in rows.decode((Bool, Bool).self) { return inserted }
        return false
      }
    }
    return listeners.withLock { state in
      defer { state.heldLease = true }
      return !(taken && state.heldLease)
    }
  }

  public func reapExpiredLeases(reason: String, at date: Date) async throws -> [TaskRecord] {
    try await storing {
      try await self.transaction { connection -> [TaskRecord] in
        _ = try await self.counted(connection).query(
          "DELETE FROM easyremote_gateway WHERE lease_until < clock_timestamp()", logger: self.logger)
        // Rows another reaper holds are skipped (it requeues them).
        return try await self.requeue(
          """
          SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task t WHERE status = 'running'
            AND (gateway_id IS NULL OR NOT EXISTS (SELECT 1 FROM easyremote_gateway g WHERE g.id = t.gateway_id))
          ORDER BY created_at FOR UPDATE SKIP LOCKED
          """, reason: reason, at: date, on: connection)
      }
    }
  }

  public func publishNodes(_ nodes: [PoolNode]) async throws {
    guard !nodes.isEmpty else { return }
    try await storing {
      try await client.withConnection { connection in
        _ = try await self.counted(connection).query(
          PostgresNodeRow.upsert(nodes, gatewayID: self.gatewayID), logger: self.logger)
      }
    }
  }

  public func idleNodes() async throws -> [PoolNode] {
    try await storing {
      try await nodes(PostgresQuery(unsafeSQL: PostgresNodeRow.json(of: PostgresNodeRow.othersSelect + " ORDER BY n.id")))
    }
  }

  public func poolNode(_ id: String) async throws -> PoolNode? {
    try await storing {
      try await nodes(
        "SELECT coalesce(json_agg(o), '[]')::text FROM (SELECT \(unescaped: PostgresNodeRow.columns) FROM easyremote_node n WHERE n.id = \(id)) o"
      ).first
    }
  }

  /// The nodes a query of one JSON text (``PostgresNodeRow/json(of:)``) gives.
  private func nodes(_ query: PostgresQuery) async throws -> [PoolNode] {
    try await client.withConnection { connection -> [PoolNode] in
      for try await json in try await self.counted(connection).query(query, logger: self.logger).decode(String.self) {
        return try PostgresNodeRow.nodes(json: json)
      }
      return []
    }
  }

  public func releaseLease() async throws {
    try await storing {
      try await client.withConnection { connection in
        _ = try await self.counted(connection).query("DELETE FROM easyremote_gateway WHERE id = \(self.gatewayID)", logger: self.logger)
      }
    }
  }

  public func gateways() async throws -> [GatewayLease] {
    try await storing {
      try await client.withConnection { connection -> [GatewayLease] in
        let rows = try await self.counted(connection).query(
          """
          SELECT id, address, extract(epoch FROM started_at)::float8, extract(epoch FROM lease_until)::float8, functions,
            nodes, node_infos, function_infos, member_infos
          FROM easyremote_gateway WHERE lease_until >= clock_timestamp() ORDER BY started_at, id
          """, logger: self.logger)
        var leases: [GatewayLease] = []
        for try await (id, address, started, until, functions, nodes, infos, functionInfos, memberInfos) in rows.decode(
          (String, String?, Double, Double, [String], [String], String, String, String).self)
        {
          func decoded<T: Decodable>(_ text: String, as type: [T].Type) -> [T] {
            (try? JSONDecoder().decode(type, from: Data(text.utf8))) ?? []
          }
          let published = GatewayPublication(
            address: address, functions: functions, nodes: nodes, nodeInfos: decoded(infos, as: [TaskNodeInfo].self),
            functionInfos: decoded(functionInfos, as: [FunctionInfo].self),
            memberInfos: decoded(memberInfos, as: [NodeInfo].self))
          leases.append(
            GatewayLease(
              id: id, startedAt: Date(timeIntervalSince1970: started), leaseUntil: Date(timeIntervalSince1970: until),
              published: published))
        }
        return leases
      }
    }
  }

  public func notices() -> AsyncStream<TaskNotice> {
    let (stream, continuation) = AsyncStream.makeStream(of: TaskNotice.self, bufferingPolicy: .bufferingNewest(65_536))
    let key = UUID()
    listeners.withLock { state in
      state.subscribers[key] = continuation
      if state.live { continuation.yield(.resync) }
      if state.task == nil { state.task = Task { [weak self] in await self?.listen() } }
    }
    continuation.onTermination = { [weak self] _ in
      _ = self?.listeners.withLock { $0.subscribers.removeValue(forKey: key) }
    }
    return stream
  }

  /// Listens on ``channel`` on a connection of its own, again after the connection is lost.
  /// Each time it is listening, the subscribers get a `resync` (notices may have been missed
  /// before it; a subscriber also gets one when it subscribes to a live listener).
  private func listen() async {
    while !Task.isCancelled {
      do {
        try await client.withConnection { connection in
          try await connection.listen(on: Self.channel) { notifications in
            // LISTEN has been answered: from here on nothing is missed.
            self.listeners.withLock { $0.live = true }
            self.deliver(.resync)
            for try await notification in notifications {
              if let notice = Self.notice(notification.payload) { self.deliver(notice) }
            }
          }
        }
      } catch {
        listeners.withLock { $0.live = false }
        if Task.isCancelled { return }
        logger.warning("lost the notification connection; listening again", metadata: ["error": "\(error)"])
      }
      listeners.withLock { $0.live = false }
      try? await Task.sleep(for: .milliseconds(200))
    }
  }

  private func deliver(_ notice: TaskNotice) {
    for subscriber in listeners.withLock({ Array($0.subscribers.values) }) { subscriber.yield(notice) }
  }

  /// `<task id> <status> <gateway>[ +]` as the trigger writes it (` +`: inserted); `! <gateway>`
  /// when a gateway published what its nodes serve; `> <gateway>` when another left tasks to
  /// that gateway's nodes.
  static func notice(_ payload: String) -> TaskNotice? {
    if payload.hasPrefix("! ") { return .gateways(gateway: String(payload.dropFirst(2))) }
    if payload.hasPrefix("> ") { return .wake(gateway: String(payload.dropFirst(2))) }
    let parts = payload.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
    guard parts.count >= 2, let status = TaskStatus(rawValue: parts[1]) else { return nil }
    let gateway = parts.count > 2 ? parts[2] : ""
    if parts.count > 3, parts[3] == "+" { return .created(id: parts[0], gateway: gateway) }
    return .changed(id: parts[0], status: status, gateway: gateway)
  }

  public func counts() async throws -> [TaskStatus: Int] {
    try await storing {
      try await client.withConnection { connection in
        var counts: [TaskStatus: Int] = [:]
        let rows = try await self.counted(connection).query(
          "SELECT status, COUNT(*) FROM easyremote_task GROUP BY status", logger: self.logger)
        for try await (status, count) in rows.decode((String, Int).self) {
          if let status = TaskStatus(rawValue: status), count > 0 { counts[status] = count }
        }
        return counts
      }
    }
  }

  // MARK: Rows

  /// The same statement as a batch insert, for one task inside a transaction.
  private func insertRow(_ task: TaskRecord, on connection: PostgresConnection) async throws {
    let inserted = try await self.counted(connection).query(
      PostgresTaskRow.insert([task], changedBy: gatewayID), logger: logger
    ).collect()
    if inserted.isEmpty { throw TaskCenterError.duplicateTask(task.id) }
  }

  private func update(_ task: TaskRecord, on connection: PostgresConnection) async throws {
    let row = PostgresTaskRow(task)
    let claimedBy: String? = task.status == .running ? gatewayID : nil
    _ = try await self.counted(connection).query(
      """
      UPDATE easyremote_task SET status = \(row.status), attempts = \(row.attempts), node_id = \(row.nodeID),
        output = \(row.output), output_serializer = \(row.outputSerializer), stderr = \(row.stderr),
        exit_status = \(row.exitStatus), error_message = \(row.errorMessage), started_at = \(row.startedAt),
        finished_at = \(row.finishedAt), execution_time = \(row.executionTime), changed_by = \(gatewayID),
        gateway_id = \(claimedBy)
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
    for try await row in try await self.counted(connection).query(query, logger: logger) {
      records.append(try PostgresTaskRow.record(from: row))
    }
    return records
  }

  /// Runs `body` in a transaction on one connection: committed when it returns, rolled back
  /// when it throws.
  private func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
    try await client.withConnection { connection in
      _ = try await self.counted(connection).query("BEGIN", logger: self.logger)
      do {
        let value = try await body(connection)
        _ = try await self.counted(connection).query("COMMIT", logger: self.logger)
        return value
      } catch {
        _ = try? await self.counted(connection).query("ROLLBACK", logger: self.logger)
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

/// A connection whose statements are counted (``PostgresTaskStore/roundTrips``).
struct CountedConnection {
  let connection: PostgresConnection
  let store: PostgresTaskStore

  func query(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
    store.statements.add(1, ordering: .relaxed)
    return try await connection.query(query, logger: logger)
  }
}

struct PostgresStoreError: Error, CustomStringConvertible {
  let message: String
  var description: String { message }
}
