import EasyRemoteCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

// The schema: tables, triggers and indexes, versioned migrations run once under an advisory lock.

extension PostgresTaskStore {
  // MARK: Schema

  /// Migrations by version, each run once in its own transaction (an advisory lock keeps two
  /// gateways starting together from running one twice).
  static let migrations: [(Int, [String])] = [
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

  func migrate() async throws {
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
}
