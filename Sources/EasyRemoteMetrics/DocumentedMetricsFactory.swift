import CoreMetrics
import Prometheus

/// swift-prometheus's factory, with help text and buckets for the metrics in
/// ``MetricCatalogue`` (swift-metrics has no help text; `promtool check metrics` wants it).
/// Metrics not in the catalogue (a library's own) go through as swift-prometheus makes them.
struct DocumentedMetricsFactory: MetricsFactory {
  let registry: PrometheusCollectorRegistry
  let base: PrometheusMetricsFactory

  init(registry: PrometheusCollectorRegistry) {
    self.registry = registry
    var base = PrometheusMetricsFactory(registry: registry)
    base.defaultDurationHistogramBuckets = MetricCatalogue.callBuckets.map(Self.duration)
    self.base = base
  }

  func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
    guard let entry = MetricCatalogue.entries[label] else { return base.makeCounter(label: label, dimensions: dimensions) }
    return registry.makeCounter(descriptor: entry.descriptor(label), labels: dimensions)
  }

  func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
    guard let entry = MetricCatalogue.entries[label] else {
      return base.makeFloatingPointCounter(label: label, dimensions: dimensions)
    }
    return registry.makeCounter(descriptor: entry.descriptor(label), labels: dimensions)
  }

  func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
    guard let entry = MetricCatalogue.entries[label] else {
      return base.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
    }
    if aggregate {
      return registry.makeValueHistogram(
        descriptor: entry.descriptor(label), labels: dimensions, buckets: entry.buckets ?? MetricCatalogue.callBuckets)
    }
    return registry.makeGauge(descriptor: entry.descriptor(label), labels: dimensions)
  }

  func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
    guard let entry = MetricCatalogue.entries[label] else { return base.makeMeter(label: label, dimensions: dimensions) }
    return registry.makeGauge(descriptor: entry.descriptor(label), labels: dimensions)
  }

  func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
    guard let entry = MetricCatalogue.entries[label] else { return base.makeTimer(label: label, dimensions: dimensions) }
    let buckets = (entry.buckets ?? MetricCatalogue.callBuckets).map(Self.duration)
    return registry.makeDurationHistogram(descriptor: entry.descriptor(label), labels: dimensions, buckets: buckets)
  }

  static func duration(_ seconds: Double) -> Duration { .nanoseconds(Int64(seconds * 1e9)) }

  func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
  func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
  func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
  func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
  func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}
