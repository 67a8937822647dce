import EasyRemoteCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

// LISTEN/NOTIFY: what other gateways change, as `TaskNotice`s; and the status counts.

extension PostgresTaskStore {
  package func notices() -> AsyncStream<TaskNotice> {
    let (stream, continuation) = AsyncStream.makeStream(of: TaskNotice.self, bufferingPolicy: .bufferingNewest(65_536))
    let key = UUID()
    listeners.withLock { state in
      state.subscribers[key] = continuation
      if state.live { continuation.yield(.resync) }
      // Unstructured: one LISTEN connection for all subscribers, started by the first and
      // cancelled by ``close()`` (the store's lifetime, not a subscriber's).
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
  func listen() async {
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

  func deliver(_ notice: TaskNotice) {
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

  package func counts() async throws -> [TaskStatus: Int] {
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
}
