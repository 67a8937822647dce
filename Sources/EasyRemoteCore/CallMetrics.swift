import CoreMetrics
import EasyRemoteMetrics
import Synchronization

/// The gateway's per-call instruments, made once per function, node and outcome and kept in
/// one dictionary: a routed call costs one lookup and three increments, not a registry walk.
final class CallMetrics: Sendable {
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

  private func make(_ key: Key) -> Series {
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
