import Foundation
public import Logging
import EasyRemoteCore
import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// Tasks in PostgreSQL through postgres-nio (a connection pool, statements with bound
/// parameters): `easyremote gateway --db postgres://user@host/db`. The same ``TaskStore``
/// behaviour as ``SQLiteTaskStore`` — each change is one transaction, committed before the
/// method returns — on a server several gateways can share.
///
/// The hot changes are single statements with the rules of ``TaskRecord``'s pure transitions in
/// SQL (a start is `UPDATE … WHERE status = 'queued'`), so two gateways never both start or
/// finish the same task; requeues read their rows `FOR UPDATE` and apply
/// ``TaskRecord/requeued(reason:at:)``. By job: this file (the pool, rows, transactions),
/// `+Schema` (migrations), `+Tasks` (task statements), `+Directory` (leases, gateways, nodes),
/// `+Notices` (LISTEN/NOTIFY, counts).
public final class PostgresTaskStore: SharedTaskStore {
  public let gatewayID: String
  let client: PostgresClient
  let running: Task<Void, Never>
  /// Finishes when the pool's `run()` has returned (``run()`` watches it).
  let poolEnded: AsyncStream<Void>
  let logger: Logger
  /// Group commit of the two changes every task makes: inserts, and ends reported by nodes.
  let inserts = PostgresBatcher<TaskRecord, Bool>(limit: 256)
  let finishes = PostgresBatcher<Finish, TaskRecord?>(limit: 256)
  /// Subscribers of ``notices()``, and the task that listens for them.
  let listeners = Mutex<Listeners>(Listeners())

  struct Listeners {
    var subscribers: [UUID: AsyncStream<TaskNotice>.Continuation] = [:]
    var task: Task<Void, Never>?
    /// Whether the notification connection is listening now.
    var live = false
    /// Whether this store held its lease before (a lease taken anew after that was lost).
    var heldLease = false
  }

  /// Statements sent (each one round trip), for the benchmark.
  let statements = Atomic<Int>(0)
  package var roundTrips: Int { statements.load(ordering: .relaxed) }

  /// `connection`, counting the statements sent on it.
  func counted(_ connection: PostgresConnection) -> CountedConnection {
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
    // Unstructured on purpose: the pool must run before the store can answer (the migrations
    // below), that is before any service group does. As a service (``run()``) the store
    // watches it, and closes it at shutdown; embedders call ``close()``.
    let (poolEnded, endPool) = AsyncStream.makeStream(of: Void.self)
    self.poolEnded = poolEnded
    running = Task {
      await client.run()
      endPool.finish()
    }
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

  // MARK: Rows

  /// The same statement as a batch insert, for one task inside a transaction.
  func insertRow(_ task: TaskRecord, on connection: PostgresConnection) async throws {
    let inserted = try await self.counted(connection).query(
      PostgresTaskRow.insert([task], changedBy: gatewayID), logger: logger
    ).collect()
    if inserted.isEmpty { throw TaskCenterError.duplicateTask(task.id) }
  }

  func update(_ task: TaskRecord, on connection: PostgresConnection) async throws {
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

  func fetch(_ id: String, on connection: PostgresConnection) async throws -> TaskRecord? {
    try await records(
      "SELECT \(unescaped: PostgresTaskRow.columns) FROM easyremote_task WHERE id = \(id)", on: connection
    ).first
  }

  func records(_ query: PostgresQuery, on connection: PostgresConnection) async throws -> [TaskRecord] {
    var records: [TaskRecord] = []
    for try await row in try await self.counted(connection).query(query, logger: logger) {
      records.append(try PostgresTaskRow.record(from: row))
    }
    return records
  }

  /// Runs `body` in a transaction on one connection: committed when it returns, rolled back
  /// when it throws.
  func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
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

  func storing<T>(_ body: () async throws -> T) async throws -> T {
    do {
      return try await body()
    } catch let error as TaskCenterError {
      throw error
    } catch {
      throw TaskCenterError.storage(error)
    }
  }
}

extension PostgresTaskStore: Service {
  /// Runs as a service: watches the connection pool (a pool that ends by itself ends the
  /// service, which stops the group), and at graceful shutdown closes the store — after the
  /// services started after it (the task center) have stopped, when it is given first.
  public func run() async throws {
    await cancelWhenGracefulShutdown {
      for await _ in self.poolEnded {}  // ends when the pool does, or at once when cancelled
    }
    let ended = !Task.isShuttingDownGracefully && !Task.isCancelled
    await close()
    if ended { throw PostgresStoreError(message: "the PostgreSQL connection pool stopped") }
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
