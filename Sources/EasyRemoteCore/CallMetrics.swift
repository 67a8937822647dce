import CoreMetrics
import EasyRemoteMetrics
import Synchronization

/// The gateway's per-call instruments, made once per function, node and outcome and kept in
/// one dictionary: a routed call costs one lookup and three increments, not a registry walk.
///
/// The `function` label is bounded: the gateway names a call for a function no node serves
/// `unknown` (anyone may ask for any name; ``Server/record``), a function's series go when no
/// node serves it any more (``forget(_:)``), and past ``maxFunctions`` names the rest count as
/// `other`.
final class CallMetrics: Sendable {
  /// Function names labelled at most, at once.
  static let maxFunctions = 1000
  /// The label of calls for functions no node serves, and of names past the bound.
  static let unknown = "unknown"
  static let other = "other"
  static let names: Set<String> = [MetricCatalogue.calls, MetricCatalogue.callDuration, MetricCatalogue.streamItems]

  private struct Key: Hashable {
    let function: String
    let node: String
    let outcome: String
  }

  private struct Series {
    let calls: CoreMetrics.Counter
    let duration: CoreMetrics.Timer
    let items: CoreMetrics.Counter
  }

  private let instruments: Instruments
  private let series = Mutex<[Key: Series]>([:])
  /// The function names labelled now.
  private let functions = Mutex<Set<String>>([])
  private let bytesIn: CoreMetrics.Counter
  private let bytesOut: CoreMetrics.Counter

  init(instruments: Instruments) {
    self.instruments = instruments
    bytesIn = instruments.counter(MetricCatalogue.payloadBytes, ["direction": "in"])
    bytesOut = instruments.counter(MetricCatalogue.payloadBytes, ["direction": "out"])
  }

  func record(
    function: String, node: String, outcome: String, start: ContinuousClock.Instant, bytesIn: Int, bytesOut: Int, items: Int
  ) {
    let elapsed = (ContinuousClock.now - start).components
    let key = Key(function: function, node: node, outcome: outcome)
    let found = series.withLock { $0[key] }
    let series = found ?? make(key)
    series.calls.increment()
    series.duration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    if bytesIn > 0 { self.bytesIn.increment(by: bytesIn) }
    if bytesOut > 0 { self.bytesOut.increment(by: bytesOut) }
    if items > 0 { series.items.increment(by: items) }
  }

  /// The series of `functions` end: no node serves them any more.
  func forget(_ gone: some Sequence<String>) {
    for function in gone where functions.withLock({ $0.remove(function) }) != nil {
      // Under the series lock: a call recorded meanwhile makes its instruments after the old
      // ones are destroyed, not before.
      series.withLock { series in
        series = series.filter { $0.key.function != function }
        instruments.removeSeries(Self.names, where: "function", is: function)
      }
    }
  }

  private func make(_ key: Key) -> Series {
    // A new name past the bound counts as `other`.
    let admitted = functions.withLock { functions in
      if functions.contains(key.function) || [Self.unknown, Self.other].contains(key.function) { return true }
      guard functions.count < Self.maxFunctions else { return false }
      functions.insert(key.function)
      return true
    }
    if !admitted {
      let other = Key(function: Self.other, node: key.node, outcome: key.outcome)
      return series.withLock { $0[other] } ?? make(other)
    }
    let made = Series(
      calls: instruments.counter(
        MetricCatalogue.calls, ["function": key.function, "node": key.node, "outcome": key.outcome]),
      duration: instruments.timer(MetricCatalogue.callDuration, ["function": key.function]),
      items: instruments.counter(MetricCatalogue.streamItems, ["function": key.function]))
    return series.withLock { series in
      if let raced = series[key] { return raced }
      series[key] = made
      return made
    }
  }
}
