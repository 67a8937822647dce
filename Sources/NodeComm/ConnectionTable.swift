import Synchronization

/// The connections a listener holds, so that no one address and no flood of silent
/// connections can lock everyone else out. Shared by the gRPC listener's and the HTTP
/// server's guards.
///
/// A connection is *unproven* until it shows it is a real client (a link's HELLO, a request's
/// first byte). Admission follows three rules:
/// - at most `perAddress` connections from one IP address (nodes behind one NAT share theirs);
/// - at most `total` in all; at the cap, the oldest unproven connection gives way to the
///   newcomer (it is closed), so a flood of silent connections cannot keep clients out;
/// - when every connection is proven, the newcomer is refused.
package final class ConnectionTable<Key: Hashable & Sendable>: Sendable {
  private struct Entry {
    let address: String
    let order: UInt64
    /// Closes the connection (on its own event loop).
    let close: @Sendable () -> Void
    /// Until the connection proves itself: what to do then. `nil` once proven (or shed).
    var prove: (@Sendable () -> Void)?
  }

  private struct State {
    var entries: [Key: Entry] = [:]
    var perAddress: [String: Int] = [:]
    var next: UInt64 = 0
    /// The most connections open since the last time the table drained, and when that was.
    var peak = 0
    var lastDrain: ContinuousClock.Instant?
  }

  /// A table that has held this many connections and is down to a quarter of them has
  /// drained (a flood went): `drained` runs — at most once a ``drainInterval``, and the peak
  /// is above what one address may hold, so no one client can have it run at will.
  static var drainPeak: Int { 1024 }
  static var drainInterval: Duration { .seconds(60) }

  package enum Admission: Sendable {
    case admitted
    case refusedForAddress
    case refusedFull
  }

  package let total: Int
  package let perAddress: Int
  private let state = Mutex(State())
  private let drained: @Sendable () -> Void

  /// - Parameter drained: runs when many connections have gone (by default malloc gives
  ///   their memory back, ``AllocatorTuning/releaseFreeMemory()``).
  package init(total: Int, perAddress: Int, drained: @escaping @Sendable () -> Void = AllocatorTuning.releaseFreeMemory) {
    self.total = total
    self.perAddress = perAddress
    self.drained = drained
  }

  /// Records a new connection from `address`, unproven. `close` closes it; `prove` runs when
  /// it proves itself (``prove(_:)``).
  package func admit(
    _ key: Key, address: String, close: @escaping @Sendable () -> Void, prove: @escaping @Sendable () -> Void = {}
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
        guard
          let (oldKey, old) = state.entries.lazy.filter({ $0.value.prove != nil }).min(by: { $0.value.order < $1.value.order })
        else { return (.refusedFull, nil) }
        state.entries[oldKey]?.prove = nil  // still counted until its close is seen
        shed = old.close
      }
      state.next += 1
      state.entries[key] = Entry(address: address, order: state.next, close: close, prove: prove)
      state.perAddress[address, default: 0] += 1
      state.peak = max(state.peak, state.entries.count)
      return (.admitted, shed)
    }
    shed?()
    return admission
  }

  /// The connection proved itself: it is never shed, and its `prove` runs (once).
  package func prove(_ key: Key) {
    let prove = state.withLock { state -> (@Sendable () -> Void)? in
      defer { state.entries[key]?.prove = nil }
      return state.entries[key]?.prove
    }
    prove?()
  }

  /// The connection closed.
  package func remove(_ key: Key) {
    let drained = state.withLock { state -> Bool in
      guard let entry = state.entries.removeValue(forKey: key) else { return false }
      let left = state.perAddress[entry.address, default: 1] - 1
      state.perAddress[entry.address] = left > 0 ? left : nil
      guard state.peak >= Self.drainPeak, state.entries.count <= state.peak / 4 else { return false }
      let now = ContinuousClock.now
      if let last = state.lastDrain, now - last < Self.drainInterval { return false }
      state.peak = state.entries.count
      state.lastDrain = now
      return true
    }
    if drained { self.drained() }
  }

  /// Connections open now, and those of them not yet proven.
  package var counts: (open: Int, unproven: Int) {
    state.withLock { state in (state.entries.count, state.entries.values.lazy.filter { $0.prove != nil }.count) }
  }
}
