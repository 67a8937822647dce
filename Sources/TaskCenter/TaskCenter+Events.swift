import EasyRemoteCore
import Foundation

// Events: encoded once when they happen, fanned out to every subscriber.
extension TaskCenter {
  /// Events as they happen. A subscriber more than `buffer` events behind is dropped (its
  /// sequence ends), so a slow reader never holds the task center back.
  public func events(buffer: Int = 1024) -> AsyncStream<TaskCenterEvent> {
    let (stream, continuation) = AsyncStream.makeStream(
      of: TaskCenterEvent.self, bufferingPolicy: .bufferingOldest(buffer))
    let key = UUID()
    continuation.onTermination = { [weak self] _ in
      _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
    }
    state.withLock { $0.subscribers[key] = continuation }
    return stream
  }

  /// How many subscribers ``events(buffer:)`` has now (tests wait on it).
  package var eventSubscriberCount: Int { state.withLock { $0.subscribers.count } }

  func emit(_ kind: TaskCenterEvent.Kind, _ data: some Encodable) {
    let subscribers = state.withLock { $0.subscribers }
    guard !subscribers.isEmpty else { return }
    guard let event = try? TaskCenterEvent(event: kind, data: data) else {
      logger.error("an event could not be encoded", metadata: ["event": "\(kind.rawValue)"])
      return
    }
    for (key, subscriber) in subscribers {
      if case .dropped = subscriber.yield(event) {
        subscriber.finish()
        _ = state.withLock { $0.subscribers.removeValue(forKey: key) }
      }
    }
  }
}
