import EasyRemoteCore
public import Foundation
import Logging
import PostgresNIO
import Synchronization

// The task statements: inserts (batched), reads, starts (one statement for a dispatch), finishes
// (batched), requeues — the same rules as `TaskRecord`'s pure transitions, in SQL.

extension PostgresTaskStore {
  // MARK: TaskStore

  /// Inserts arriving together go in one statement (``PostgresBatcher``).
  package func insert(_ task: TaskRecord) async throws {
    let inserted = try await storing {
      try await inserts.submit(task, run: { try await self.insertRows($0) }, single: { try await self.insertRows([$0])[0] })
    }
    if !inserted { throw TaskCenterError.duplicateTask(task.id) }
  }

  /// One `INSERT` of many rows; for each, whether it was inserted (`false`: its id was taken).
  func insertRows(_ tasks: [TaskRecord]) async throws -> [Bool] {
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

  package func insert(_ task: TaskRecord, idempotencyKey key: String, fingerprint: String) async throws -> IdempotentInsert {
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

  package func task(idempotencyKey key: String) async throws -> (task: TaskRecord, fingerprint: String)? {
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

  package func task(_ id: String) async throws -> TaskRecord? {
    try await storing { try await client.withConnection { try await self.fetch(id, on: $0) } }
  }

  package func tasks(status: TaskStatus?, limit: Int, offset: Int) async throws -> [TaskRecord] {
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

  package func queued(limit: Int) async throws -> [TaskRecord] {
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
  package func start(_ id: String, on nodeID: String, at date: Date) async throws -> TaskRecord? {
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
  package func startQueued(
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
  func finishRows(_ finishes: [Finish]) async throws -> [TaskRecord?] {
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

  package func count(_ status: TaskStatus) async throws -> Int {
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
  package func finish(_ id: String, with outcome: TaskOutcome, by nodeID: String?, at date: Date) async throws -> TaskRecord? {
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

  package func finishLate(_ id: String, attempt: Int, with outcome: TaskOutcome, by nodeID: String, at date: Date)
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

  package func requeue(_ id: String, from nodeID: String, reason: String, at date: Date) async throws -> TaskRecord? {
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
  package func requeueRunning(on nodeID: String?, reason: String, at date: Date) async throws -> [TaskRecord] {
    let query: PostgresQuery =
      if let nodeID {
        "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' AND node_id = \(nodeID) AND (gateway_id = \(gatewayID) OR gateway_id IS NULL) ORDER BY created_at FOR UPDATE"
      } else {
        "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE status = 'running' AND (gateway_id = \(gatewayID) OR gateway_id IS NULL) ORDER BY created_at FOR UPDATE"
      }
    return try await requeueAll(query, reason: reason, at: date)
  }

  /// Reads the running tasks `query` selects `FOR UPDATE` and requeues each, in one transaction.
  func requeueAll(_ query: PostgresQuery, reason: String, at date: Date) async throws -> [TaskRecord] {
    try await storing {
      try await self.transaction { try await self.requeue(query, reason: reason, at: date, on: $0) }
    }
  }

  /// Requeues each running task `query` selects `FOR UPDATE`, in the caller's transaction.
  func requeue(
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
}
