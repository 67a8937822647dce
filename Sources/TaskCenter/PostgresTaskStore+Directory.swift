import EasyRemoteCore
public import Foundation
import Logging
import PostgresNIO
import Synchronization

// Several gateways on one database: leases, the gateway directory, every gateway's nodes for
// the fair scheduler.

extension PostgresTaskStore {
  // MARK: SharedTaskStore

  package func renewLease(for duration: Duration, publishing: GatewayPublication, announce: Bool) async throws -> Bool {
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

  package func reapExpiredLeases(reason: String, at date: Date) async throws -> [TaskRecord] {
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

  package func publishNodes(_ nodes: [PoolNode]) async throws {
    guard !nodes.isEmpty else { return }
    try await storing {
      try await client.withConnection { connection in
        _ = try await self.counted(connection).query(
          PostgresNodeRow.upsert(nodes, gatewayID: self.gatewayID), logger: self.logger)
      }
    }
  }

  package func idleNodes() async throws -> [PoolNode] {
    try await storing {
      try await nodes(PostgresQuery(unsafeSQL: PostgresNodeRow.json(of: PostgresNodeRow.othersSelect + " ORDER BY n.id")))
    }
  }

  package func poolNode(_ id: String) async throws -> PoolNode? {
    try await storing {
      try await nodes(
        "SELECT coalesce(json_agg(o), '[]')::text FROM (SELECT \(unescaped: PostgresNodeRow.columns) FROM easyremote_node n WHERE n.id = \(id)) o"
      ).first
    }
  }

  /// The nodes a query of one JSON text (``PostgresNodeRow/json(of:)``) gives.
  func nodes(_ query: PostgresQuery) async throws -> [PoolNode] {
    try await client.withConnection { connection -> [PoolNode] in
      for try await json in try await self.counted(connection).query(query, logger: self.logger).decode(String.self) {
        return try PostgresNodeRow.nodes(json: json)
      }
      return []
    }
  }

  package func releaseLease() async throws {
    try await storing {
      try await client.withConnection { connection in
        _ = try await self.counted(connection).query("DELETE FROM easyremote_gateway WHERE id = \(self.gatewayID)", logger: self.logger)
      }
    }
  }

  package func gateways() async throws -> [GatewayLease] {
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
            address: address, functions: functions, nodes: nodes, nodeInfos: decoded(infos, as: [NodeInfo].self),
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
}
