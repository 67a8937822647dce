import Synchronization

/// The connections a listener holds, so that no one address and no flood of idle
/// connections can lock everyone else out. Shared by the gRPC listener's and the HTTP
/// server's guards.
///
/// A connection is *idle* — it may give way — while it does nothing for anyone: from its
/// connect until it shows it is a real client (a gRPC link's HELLO, ``prove(_:)``, which
/// makes it busy for good), and for HTTP between requests (``began(_:)`` at a request's first
/// byte, ``ended(_:)`` when its answer is written). Admission follows three rules:
/// - at most `perAddress` connections from one IP address (nodes behind one NAT share theirs);
/// - at most `total` in all; at the cap, the connection idle longest gives way to the
///   newcomer (it is closed), so a flood of idle connections cannot keep clients out;
/// - when none is idle, the newcomer is refused.
package final class ConnectionTable<Key: Hashable & Sendable>: Sendable {
  private struct Entry {
    let address: String
    /// When it last became idle (connected, or answered its last request), in admissions.
    var idleSince: UInt64
    /// Closes the connection (on its own event loop).
    let close: @Sendable () -> Void
    /// Until a gRPC connection's link says HELLO: what to do then.
    var prove: (@Sendable () -> Void)?
    /// A link said HELLO on it: never idle again.
    var linked = false
    /// HTTP requests begun and not yet answered.
    var requests = 0
    /// Closed to make room; counted until its close is seen.
    var shed = false

    var idle: Bool { !linked && requests == 0 && !shed }
  }

  private struct State {
    var entries: [Key: Entry] = [:]
    var perAddress: [String: Int] = [:]
    var next: UInt64 = 0
    /// The most connections open since the last time the table drained.
    var peak = 0

    mutating func tick() -> UInt64 {
      next += 1
      return next
    }
  }

  /// A table that has held this many connections and is down to a quarter of them has
  /// drained (a flood went): `drained` runs, once for that flood. The peak is above what one
  /// address may hold, and the default `drained` gives memory back at most once a minute
  /// (``AllocatorTuning/releaseFreeMemory()``): no one client has it run at will.
  static var drainPeak: Int { 1024 }

  package enum Admission: Sendable {
    case admitted
    case refusedForAddress
    case refusedFull
  }

  package let total: Int
  package let perAddress: Int
  private let state = Mutex(State())
  private let drained: @Sendable () -> Void
  private let feed = ChangeFeed()

  /// - Parameter drained: runs when many connections have gone (by default malloc gives
  ///   their memory back, ``AllocatorTuning/releaseFreeMemory()``).
  package init(total: Int, perAddress: Int, drained: @escaping @Sendable () -> Void = AllocatorTuning.releaseFreeMemory) {
    self.total = total
    self.perAddress = perAddress
    self.drained = drained
  }

  /// Records a new connection from `address`, idle. `close` closes it; `prove` runs when a
  /// link proves it (``prove(_:)``).
  package func admit(
    _ key: Key, address: String, close: @escaping @Sendable () -> Void, prove: (@Sendable () -> Void)? = nil
  ) -> Admission {
    let (admission, shed) = state.withLock { state -> (Admission, (@Sendable () -> Void)?) in
      // A key seen again before its old connection's close was noticed: that one is gone.
      if let old = state.entries.removeValue(forKey: key) {
        let left = state.perAddress[old.address, default: 1] - 1
        state.perAddress[old.address] = left > 0 ? left : nil
      }
      if state.perAddress[address, default: 0] >= perAddress { return (.refusedForAddress, nil) }
      var shed: (@Sendable () -> Void)?
      if state.entries.count >= total {
        guard let (oldKey, old) = state.entries.lazy.filter({ $0.value.idle }).min(by: { $0.value.idleSince < $1.value.idleSince })
        else { return (.refusedFull, nil) }
        state.entries[oldKey]?.shed = true
        shed = old.close
      }
      state.entries[key] = Entry(address: address, idleSince: state.tick(), close: close, prove: prove)
      state.perAddress[address, default: 0] += 1
      state.peak = max(state.peak, state.entries.count)
      return (.admitted, shed)
    }
    feed.changed()
    shed?()
    return admission
  }

  /// A link said HELLO on the connection: it is busy for good, and its `prove` runs (once).
  package func prove(_ key: Key) {
    let prove = state.withLock { state -> (@Sendable () -> Void)? in
      guard var entry = state.entries[key] else { return nil }
      defer { state.entries[key] = entry }
      entry.linked = true
      defer { entry.prove = nil }
      return entry.prove
    }
    feed.changed()
    prove?()
  }

  /// A request began on the connection: it is busy until its answer is written (``ended(_:)``).
  package func began(_ key: Key) {
    state.withLock { state in state.entries[key]?.requests += 1 }
    feed.changed()
  }

  /// A request's answer was written: with no other request begun, the connection is idle.
  package func ended(_ key: Key) {
    state.withLock { state in
      guard var entry = state.entries[key], entry.requests > 0 else { return }
      entry.requests -= 1
      if entry.requests == 0 { entry.idleSince = state.tick() }
      state.entries[key] = entry
    }
    feed.changed()
  }

  /// The connection closed.
  package func remove(_ key: Key) {
    let drained = state.withLock { state -> Bool in
      guard let entry = state.entries.removeValue(forKey: key) else { return false }
      let left = state.perAddress[entry.address, default: 1] - 1
      state.perAddress[entry.address] = left > 0 ? left : nil
      guard state.peak >= Self.drainPeak, state.entries.count <= state.peak / 4 else { return false }
      state.peak = state.entries.count
      return true
    }
    feed.changed()
    if drained { self.drained() }
  }

  /// A tick each time ``counts`` may have changed (tests wait on it).
  package func changes() -> AsyncStream<Void> { feed.changes() }

  /// Connections open now, and those of them idle (they would give way to a newcomer).
  package var counts: (open: Int, idle: Int) {
    state.withLock { state in (state.entries.count, state.entries.values.lazy.filter(\.idle).count) }
  }
}
