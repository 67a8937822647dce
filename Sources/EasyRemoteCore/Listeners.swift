/// Handlers registered for events, called in the order they were added; kept inside an
/// owner's `Mutex` state (a value type) and called outside the lock.
struct Listeners<Event>: Sendable {
  private var handlers: [UInt64: @Sendable (Event) -> Void] = [:]
  private var next: UInt64 = 0

  /// Adds `handler`; returns its token for ``remove(_:)``.
  mutating func add(_ handler: @escaping @Sendable (Event) -> Void) -> UInt64 {
    next += 1
    handlers[next] = handler
    return next
  }

  mutating func remove(_ token: UInt64) { handlers[token] = nil }

  /// The handlers, in the order they were added (to call outside the lock).
  var all: [@Sendable (Event) -> Void] { handlers.sorted { $0.key < $1.key }.map(\.value) }
}
