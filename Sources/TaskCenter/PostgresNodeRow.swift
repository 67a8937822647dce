import Foundation
import PostgresNIO

/// A ``PoolNode`` as a row of `easyremote_node` (dates as seconds since 1970, as for tasks).
enum PostgresNodeRow {
  static let columns = """
    n.id, n.gateway_id, n.online, n.available, n.slots, n.running, n.waiting_since, n.last_served_at, n.completed, \
    n.failed, n.compute_time, n.cores, n.memory_mb, n.runs_code, n.functions
    """

  /// `query`'s rows (of ``columns``) as one JSON text, for ``nodes(json:)``.
  static func json(of query: String) -> String {
    "SELECT coalesce(json_agg(o), '[]')::text FROM (\(query)) o"
  }

  /// The nodes that could take a task now (online, available, a free slot, their gateway's
  /// lease alive); the caller may add `AND n.gateway_id <> …` for the other gateways' only.
  static let othersSelect = """
    SELECT \(columns) FROM easyremote_node n JOIN easyremote_gateway g ON g.id = n.gateway_id
    WHERE n.online AND n.available AND n.running < n.slots AND g.lease_until >= clock_timestamp()
    """

  /// The rows of a query of ``columns`` as `json_agg` gives them.
  static func nodes(json: String) throws -> [PoolNode] {
    try JSONDecoder().decode([Row].self, from: Data(json.utf8)).map(\.node)
  }

  /// One statement for all of a gateway's nodes. What the gateway alone knows is written (online,
  /// available, slots, what it serves); `running` and the history are the tasks' statements' to
  /// change, written here only for a new row or a node that (re)joins (its row was offline or
  /// another gateway's). A node offline here does not overwrite the row of a gateway it moved to.
  static func upsert(_ nodes: [PoolNode], gatewayID: String) -> PostgresQuery {
    let rows = nodes.map(Row.init)
    let json = String(decoding: (try? JSONEncoder().encode(rows)) ?? Data("[]".utf8), as: UTF8.self)
    return """
      INSERT INTO easyremote_node AS n (id, gateway_id, online, available, slots, running, waiting_since, last_served_at,
        completed, failed, compute_time, cores, memory_mb, runs_code, functions, updated_at)
      SELECT r.id, \(gatewayID), r.online, r.available, r.slots, r.running, r.waiting_since, r.last_served_at,
        r.completed, r.failed, r.compute_time, r.cores, r.memory_mb, r.runs_code,
        ARRAY(SELECT json_array_elements_text(r.functions)), clock_timestamp()
      FROM json_to_recordset(\(json)::json) AS r(id text, online boolean, available boolean, slots bigint,
        running bigint, waiting_since float8, last_served_at float8, completed bigint, failed bigint,
        compute_time float8, cores bigint, memory_mb bigint, runs_code boolean, functions json)
      ON CONFLICT (id) DO UPDATE SET gateway_id = EXCLUDED.gateway_id, online = EXCLUDED.online,
        available = EXCLUDED.available, slots = EXCLUDED.slots,
        running = CASE WHEN n.online AND n.gateway_id = EXCLUDED.gateway_id THEN n.running ELSE EXCLUDED.running END,
        waiting_since = CASE WHEN n.online AND n.gateway_id = EXCLUDED.gateway_id THEN n.waiting_since
          ELSE EXCLUDED.waiting_since END,
        cores = EXCLUDED.cores, memory_mb = EXCLUDED.memory_mb, runs_code = EXCLUDED.runs_code,
        functions = EXCLUDED.functions, updated_at = EXCLUDED.updated_at
      WHERE n.gateway_id = EXCLUDED.gateway_id OR EXCLUDED.online
      """
  }

  /// A node as JSON with the table's column names (written by ``upsert(_:gatewayID:)``, read
  /// from `json_agg`).
  private struct Row: Codable {
    var id: String
    var gateway_id: String
    var online: Bool
    var available: Bool
    var slots: Int
    var running: Int
    var waiting_since: Double
    var last_served_at: Double?
    var completed: Int
    var failed: Int
    var compute_time: Double
    var cores: Int
    var memory_mb: Int
    var runs_code: Bool
    var functions: [String]

    init(_ node: PoolNode) {
      (id, gateway_id, online, available, slots, running) =
        (node.id, node.gatewayID, node.online, node.available, node.slots, node.running)
      (waiting_since, last_served_at) = (node.waitingSince.timeIntervalSince1970, node.lastServedAt?.timeIntervalSince1970)
      (completed, failed, compute_time) = (node.completed, node.failed, node.computeTime)
      (cores, memory_mb, runs_code, functions) = (node.cores, node.memoryMB, node.runsCode, node.functions)
    }

    var node: PoolNode {
      PoolNode(
        id: id, gatewayID: gateway_id, online: online, available: available, slots: slots, running: running,
        waitingSince: Date(timeIntervalSince1970: waiting_since),
        lastServedAt: last_served_at.map { Date(timeIntervalSince1970: $0) }, completed: completed, failed: failed,
        computeTime: compute_time, cores: cores, memoryMB: memory_mb, runsCode: runs_code, functions: functions)
    }
  }
}
