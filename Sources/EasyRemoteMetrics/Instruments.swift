public import CoreMetrics
import Synchronization

/// swift-metrics instruments made once per name and label set, then reused: a backend's
/// factory call is a registry lookup under a lock, too dear for every call.
///
/// ```swift
/// let instruments = Instruments(factory: registry.factory)
/// instruments.counter(MetricCatalogue.calls, ["function": "add", "outcome": "ok"]).increment()
/// ```
public final class Instruments: Sendable {
  public let factory: any MetricsFactory
  private let counters = Mutex<[Key: Counter]>([:])
  private let floatingCounters = Mutex<[Key: FloatingPointCounter]>([:])
  private let timers = Mutex<[Key: CoreMetrics.Timer]>([:])
  private let gauges = Mutex<[Key: Gauge]>([:])

  /// A series: the metric's name and its labels, in order.
  struct Key: Hashable, Sendable {
    let name: String
    let labels: [String]
    let values: [String]

    func has(_ label: String, _ value: String) -> Bool {
      zip(labels, values).contains { $0 == (label, value) }
    }
  }

  public init(factory: any MetricsFactory) { self.factory = factory }

  /// Labels as Prometheus sees them: in the order given.
  public typealias Labels = KeyValuePairs<String, String>

  public func counter(_ name: String, _ labels: Labels = [:]) -> Counter {
    let key = Self.key(name, labels)
    if let known = counters.withLock({ $0[key] }) { return known }
    let made = Counter(label: name, dimensions: labels.map { ($0.key, $0.value) }, factory: factory)
    return counters.withLock { Self.keep(&$0, key, made) }
  }

  public func floatingCounter(_ name: String, _ labels: Labels = [:]) -> FloatingPointCounter {
    let key = Self.key(name, labels)
    if let known = floatingCounters.withLock({ $0[key] }) { return known }
    let made = FloatingPointCounter(label: name, dimensions: labels.map { ($0.key, $0.value) }, factory: factory)
    return floatingCounters.withLock { Self.keep(&$0, key, made) }
  }

  public func timer(_ name: String, _ labels: Labels = [:]) -> CoreMetrics.Timer {
    let key = Self.key(name, labels)
    if let known = timers.withLock({ $0[key] }) { return known }
    let made = CoreMetrics.Timer(label: name, dimensions: labels.map { ($0.key, $0.value) }, factory: factory)
    return timers.withLock { Self.keep(&$0, key, made) }
  }

  /// A gauge (a swift-metrics `Gauge`: a non-aggregating recorder).
  public func gauge(_ name: String, _ labels: Labels = [:]) -> Gauge {
    let key = Self.key(name, labels)
    if let known = gauges.withLock({ $0[key] }) { return known }
    let made = Gauge(label: name, dimensions: labels.map { ($0.key, $0.value) }, factory: factory)
    return gauges.withLock { Self.keep(&$0, key, made) }
  }

  /// Removes the gauges of `name` whose `label` is `value` (`node` = a node that left), so
  /// their series end.
  public func removeGauges(_ name: String, where label: String, is value: String) {
    for gauge in Self.take(from: gauges, { $0.name == name && $0.has(label, value) }) { gauge.destroy() }
  }

  /// Removes every series of `names` (counters, timers, gauges) whose `label` is `value` (a
  /// function no node serves any more), so they leave the exposition.
  public func removeSeries(_ names: Set<String>, where label: String, is value: String) {
    let matches: @Sendable (Key) -> Bool = { key in names.contains(key.name) && key.has(label, value) }
    for counter in Self.take(from: counters, matches) { counter.destroy() }
    for counter in Self.take(from: floatingCounters, matches) { counter.destroy() }
    for timer in Self.take(from: timers, matches) { timer.destroy() }
    for gauge in Self.take(from: gauges, matches) { gauge.destroy() }
  }

  private static func take<Value: Sendable>(
    from store: borrowing Mutex<[Key: Value]>, _ matches: @Sendable (Key) -> Bool
  ) -> [Value] {
    store.withLock { store in
      store.keys.filter(matches).compactMap { store.removeValue(forKey: $0) }
    }
  }

  /// Records a duration since `start`.
  public func record(_ name: String, _ labels: Labels = [:], since start: ContinuousClock.Instant) {
    let elapsed = (ContinuousClock.now - start).components
    timer(name, labels).recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
  }

  /// Records a duration in seconds.
  public func record(_ name: String, _ labels: Labels = [:], seconds: Double) {
    guard seconds.isFinite, seconds >= 0 else { return }
    timer(name, labels).recordNanoseconds(Int64(min(seconds, 1e9) * 1e9))
  }

  /// The entry already kept under `key` (made by a racing caller), else `made`, now kept.
  private static func keep<Value>(_ store: inout [Key: Value], _ key: Key, _ made: Value) -> Value {
    if let kept = store[key] { return kept }
    store[key] = made
    return made
  }

  private static func key(_ name: String, _ labels: Labels) -> Key {
    Key(name: name, labels: labels.map(\.key), values: labels.map(\.value))
  }
}
