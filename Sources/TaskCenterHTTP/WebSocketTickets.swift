import Synchronization

/// Short-lived tickets for `/ws/updates`: a browser's WebSocket cannot send headers, and a
/// token in the URL ends up in logs and histories. A page that has the token asks
/// `POST /ws/ticket` (with it) for a ticket and opens `/ws/updates?ticket=<ticket>`; a ticket
/// is good for ``lifetime`` and says nothing about the token.
final class WebSocketTickets: Sendable {
  static let lifetime: Duration = .seconds(30)
  /// Tickets kept at most (the oldest go first).
  static let most = 10_000

  private let now: @Sendable () -> ContinuousClock.Instant
  private let tickets = Mutex<[String: ContinuousClock.Instant]>([:])

  init(now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) { self.now = now }

  /// A new ticket, good for ``lifetime``.
  func issue() -> String {
    var generator = SystemRandomNumberGenerator()
    let ticket = (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.joined(separator: "")
    let now = self.now()
    tickets.withLock { tickets in
      tickets = tickets.filter { $0.value > now }
      if tickets.count >= Self.most, let oldest = tickets.min(by: { $0.value < $1.value })?.key { tickets[oldest] = nil }
      tickets[ticket] = now + Self.lifetime
    }
    return ticket
  }

  /// Whether `ticket` was issued and has not expired.
  func isValid(_ ticket: String) -> Bool {
    let now = self.now()
    return tickets.withLock { tickets in tickets[ticket].map { $0 > now } ?? false }
  }
}
