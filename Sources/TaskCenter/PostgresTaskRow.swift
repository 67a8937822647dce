import EasyRemoteCore
import Foundation
import PostgresNIO

/// A ``TaskRecord`` as the columns of `easyremote_task` (dates as seconds since 1970, so they
/// round-trip exactly, as in SQLite).
struct PostgresTaskRow {
  static let columns = """
    id, kind, status, code, function, invocation, invocation_serializer, timeout, cpu, memory_mb, attempts, \
    max_attempts, node_id, output, output_serializer, stderr, exit_status, error_message, created_at, started_at, \
    finished_at, execution_time
    """

  /// `INSERT … VALUES (…), (…) ON CONFLICT (id) DO NOTHING RETURNING id`: the ids it returns
  /// are those inserted (a taken id is not).
  static func insert(_ tasks: [TaskRecord], changedBy: String) -> PostgresQuery {
    var sql = PostgresQuery.StringInterpolation(literalCapacity: 256, interpolationCount: tasks.count * 23)
    sql.appendLiteral("INSERT INTO easyremote_task (\(columns), changed_by) VALUES ")
    for (index, task) in tasks.enumerated() {
      let row = PostgresTaskRow(task)
      sql.appendLiteral(index == 0 ? "(" : ", (")
      func value<Value: PostgresDynamicTypeEncodable>(_ value: Value?) {
        sql.appendInterpolation(value)
        sql.appendLiteral(", ")
      }
      value(row.id)
      value(row.kind)
      value(row.status)
      value(row.code)
      value(row.function)
      value(row.invocation)
      value(row.invocationSerializer)
      value(row.timeout)
      value(row.cpu)
      value(row.memoryMB)
      value(row.attempts)
      value(row.maxAttempts)
      value(row.nodeID)
      value(row.output)
      value(row.outputSerializer)
      value(row.stderr)
      value(row.exitStatus)
      value(row.errorMessage)
      value(row.createdAt)
      value(row.startedAt)
      value(row.finishedAt)
      value(row.executionTime)
      sql.appendInterpolation(changedBy)
      sql.appendLiteral(")")
    }
    sql.appendLiteral(" ON CONFLICT (id) DO NOTHING RETURNING id")
    return PostgresQuery(stringInterpolation: sql)
  }

  /// ``columns``, each prefixed with `table.`.
  static func columns(of table: String) -> String {
    columns.split(separator: ",").map { "\(table).\($0.trimmingCharacters(in: .whitespacesAndNewlines))" }
      .joined(separator: ", ")
  }

  /// ``columns`` without the code and the call (NULL in their place): what choosing needs.
  /// How many columns ``columns`` names (a query may add its own after them).
  static let columnCount = columns.split(separator: ",").count

  static let queueColumns = columns.split(separator: ",").map { column -> String in
    switch column.trimmingCharacters(in: .whitespacesAndNewlines) {
    case "code": "NULL::text"
    case "invocation": "NULL::bytea"
    case let name: name
    }
  }.joined(separator: ", ")

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
