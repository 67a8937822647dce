public import CoreMetrics
import Synchronization

/// Counts and times calls through swift-metrics (seed 001's metrics interceptor), per method
/// and direction, for whatever backend the process bootstrapped (Prometheus in the gateway).
///
/// - `easyremote_node_calls_total{node, direction, method, outcome}`: calls finished;
///   `outcome` is `ok` or the ``NodeError`` code (`timed_out`, `execution_failed`, ...).
/// - `easyremote_node_call_duration_seconds{node, direction, method}`: a timer (a histogram
///   in Prometheus) of every finished call.
/// - `easyremote_node_calls_in_flight{node, direction, method}`: calls running now.
///
/// Payloads are never looked at. Method names are labels, so keep them a bounded set.
public struct MetricsInterceptor: CallInterceptor {
  public static let callsLabel = "easyremote_node_calls_total"
  public static let durationLabel = "easyremote_node_call_duration_seconds"
  public static let inFlightLabel = "easyremote_node_calls_in_flight"

  private let nodeID: String
  private let instruments: Instruments

  /// - Parameters:
  ///   - nodeID: the `node` label.
  ///   - factory: where the metrics go; the process's bootstrapped backend by default.
  public init(nodeID: String, factory: any MetricsFactory = MetricsSystem.factory) {
    self.nodeID = nodeID
    self.instruments = Instruments(factory: factory)
  }

  public func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    let direction = call.direction == .inbound ? "inbound" : "outbound"
    let perMethod = instruments.perMethod(node: nodeID, direction: direction, method: call.method)
    perMethod.inFlight.increment()
    let start = ContinuousClock.now
    defer { perMethod.inFlight.decrement() }
    do {
      let result = try await next(call)
      perMethod.record(since: start)
      instruments.calls(perMethod.key, outcome: "ok").increment()
      return result
    } catch {
      perMethod.record(since: start)
      let outcome = (error as? NodeError)?.code.rawValue ?? (error is CancellationError ? "cancelled" : "error")
      instruments.calls(perMethod.key, outcome: outcome).increment()
      throw error
    }
  }
}

extension MetricsInterceptor {
  /// The metric objects, made once per label set: a backend's factory call is a registry
  /// lookup under a lock, too dear for every call.
  final class Instruments: Sendable {
    struct Key: Hashable, Sendable {
      let node: String
      let direction: String
      let method: String
    }

    struct PerMethod: Sendable {
      let key: Key
      let duration: CoreMetrics.Timer
      let inFlight: Meter

      func record(since start: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - start).components
        duration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
      }
    }

    private let factory: any MetricsFactory
    private let methods = Mutex<[Key: PerMethod]>([:])
    private let counters = Mutex<[Key: [String: Counter]]>([:])

    init(factory: any MetricsFactory) { self.factory = factory }

    func perMethod(node: String, direction: String, method: String) -> PerMethod {
      let key = Key(node: node, direction: direction, method: method)
      if let known = methods.withLock({ $0[key] }) { return known }
      let dimensions = [("node", node), ("direction", direction), ("method", method)]
      let made = PerMethod(
        key: key,
        duration: CoreMetrics.Timer(label: MetricsInterceptor.durationLabel, dimensions: dimensions, factory: factory),
        inFlight: Meter(label: MetricsInterceptor.inFlightLabel, dimensions: dimensions, factory: factory))
      return methods.withLock { methods in
        if let raced = methods[key] { return raced }
        methods[key] = made
        return made
      }
    }

    func calls(_ key: Key, outcome: String) -> Counter {
      if let known = counters.withLock({ $0[key]?[outcome] }) { return known }
      let made = Counter(
        label: MetricsInterceptor.callsLabel,
        dimensions: [("node", key.node), ("direction", key.direction), ("method", key.method), ("outcome", outcome)],
        factory: factory)
      return counters.withLock { counters in
        if let raced = counters[key]?[outcome] { return raced }
        counters[key, default: [:]][outcome] = made
        return made
      }
    }
  }
}
