import NodeComm
import Foundation
import Synchronization

/// The gateway's one event stream: what is published goes to every subscriber, each through
/// a buffer of its own. A subscriber more than its buffer behind is dropped (its sequence
/// ends), so a slow reader never holds the gateway back.
final class EventHub: Sendable {
  /// Hands an event to one subscriber; `false` when the subscriber is to be dropped.
  private typealias Delivery = @Sendable (GatewayEvent) -> Bool

  private let subscribers = Mutex<[UUID: (deliver: Delivery, finish: @Sendable () -> Void)]>([:])
  /// Who watches the number of subscribers; usually no one.
  private let feed = ChangeFeed()

  /// A tick each time a subscriber comes or goes, from now until the sequence is dropped.
  func subscriberChanges() -> AsyncStream<Void> { feed.changes() }

  /// Events (those `transform` keeps, as it makes them) from now on.
  func subscribe<Event: Sendable>(
    buffer: Int, _ transform: @escaping @Sendable (GatewayEvent) -> Event?
  ) -> AsyncStream<Event> {
    let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(buffer))
    let key = UUID()
    continuation.onTermination = { [weak self] _ in
      _ = self?.subscribers.withLock { $0.removeValue(forKey: key) }
      self?.feed.changed()
    }
    let deliver: Delivery = { event in
      guard let value = transform(event) else { return true }
      if case .dropped = continuation.yield(value) {
        continuation.finish()
        return false
      }
      return true
    }
    subscribers.withLock { $0[key] = (deliver, { continuation.finish() }) }
    feed.changed()
    return stream
  }

  var subscriberCount: Int { subscribers.withLock { $0.count } }

  /// Publishes the event `make` encodes — called only when someone listens.
  func publish(_ make: () throws -> GatewayEvent) rethrows {
    let current = subscribers.withLock { $0 }
    guard !current.isEmpty else { return }
    let event = try make()
    for (key, subscriber) in current where !subscriber.deliver(event) {
      _ = subscribers.withLock { $0.removeValue(forKey: key) }
      feed.changed()
    }
  }

  /// Ends every subscriber's sequence (the gateway stopped).
  func finishAll() {
    let all = subscribers.withLock { state in
      defer { state.removeAll() }
      return Array(state.values)
    }
    for subscriber in all { subscriber.finish() }  // (outside the lock: it calls back)
    feed.changed()
  }
}
