import EasyRemoteCore
import Foundation

// Events: published on the gateway's one event stream (`Server.events`), encoded once.
extension TaskCenter {
  /// The task center's events as they happen (the gateway's other events left out). A
  /// subscriber more than `buffer` events behind is dropped (its sequence ends), so a slow
  /// reader never holds the task center back.
  public func events(buffer: Int = 1024) -> AsyncStream<TaskCenterEvent> {
    server.events(buffer: buffer) { TaskCenterEvent($0) }
  }

  /// How many subscribers the gateway's events have now (tests wait on it).
  package var eventSubscriberCount: Int { server.eventSubscriberCount }

  /// A tick each time ``eventSubscriberCount`` changes.
  package func eventSubscriberChanges() -> AsyncStream<Void> { server.eventSubscriberChanges() }

  func emit(_ kind: TaskCenterEvent.Kind, _ data: some Encodable) {
    server.publish(kind.rawValue, data, encoder: TaskCenterJSON.encoder)
  }
}
