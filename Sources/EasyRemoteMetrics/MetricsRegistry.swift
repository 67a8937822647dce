public import CoreMetrics
public import Prometheus
import Synchronization

/// One process part's metrics (a gateway's, a compute node's), in Prometheus form.
///
/// Code records through swift-metrics (`Counter(label:dimensions:factory:)` with ``factory``);
/// swift-prometheus is the backend, its registry renders the text `/metrics` answers. Figures
/// that are state rather than events (nodes by status, tasks by status, subscribers) are set
/// by collectors at scrape time (``onCollect(_:)``), from the same snapshots the API shows.
public final class MetricsRegistry: Sendable {
  /// The Prometheus registry behind ``factory``.
  public let prometheus: PrometheusCollectorRegistry
  /// Where instruments are made: swift-prometheus's factory, with each of our metrics'
  /// help text and buckets (``MetricCatalogue``).
  public let factory: any MetricsFactory
  /// Instruments made from ``factory``, cached by name and labels.
  public let instruments: Instruments
  private let collectors = Mutex<[@Sendable () async -> Void]>([])

  /// The `Content-Type` of ``exposition()``.
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

  public init() {
    let prometheus = PrometheusCollectorRegistry()
    self.prometheus = prometheus
    let factory = DocumentedMetricsFactory(registry: prometheus)
    self.factory = factory
    self.instruments = Instruments(factory: factory)
  }

  /// Runs `collect` before every exposition (to set gauges from a snapshot).
  public func onCollect(_ collect: @escaping @Sendable () async -> Void) {
    collectors.withLock { $0.append(collect) }
  }

  /// The Prometheus text exposition, after the collectors ran.
  public func exposition() async -> [UInt8] {
    for collect in collectors.withLock({ $0 }) { await collect() }
    var buffer: [UInt8] = []
    buffer.reserveCapacity(16 * 1024)
    prometheus.emit(into: &buffer)
    return buffer
  }
}
