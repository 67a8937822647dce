/// The ranges a number from outside the gateway must fall in — from an HTTP body or query, a
/// link frame, a YAML file — before anything counts with it.
///
/// Each is wide enough for any real machine and narrow enough that sums and products over
/// every node of a large pool cannot overflow (4,096 slots × 1,000,000 nodes is far below
/// `Int.max`). A value outside is refused where it enters with an error naming its field
/// (``check(_:_:field:)``); where a refusal would cost more than it protects (a link
/// heartbeat's load), it is clamped (``clamp(_:_:)``).
public enum InputBounds {
  /// A node's CPU cores, and what a task may ask for.
  public static let cores: ClosedRange<Int> = 1...4096
  /// A node's memory and a task's, MiB (64 TiB).
  public static let memoryMB: ClosedRange<Int> = 1...(64 << 20)
  /// A node's task slots or workers.
  public static let slots: ClosedRange<Int> = 1...4096
  /// A load figure, percent.
  public static let percent: ClosedRange<Double> = 0...100
  /// A load threshold, percent (over 100: never busy by that measure).
  public static let threshold: ClosedRange<Double> = 0...1000
  /// Attempts a task may be given.
  public static let attempts: ClosedRange<Int> = 1...100
  /// Seconds of run time a node may report for one task (a year).
  public static let executionSeconds: ClosedRange<Double> = 0...31_622_400
  /// A process exit status as a node reports it.
  public static let exitStatus: ClosedRange<Int> = Int(Int32.min)...Int(Int32.max)
  /// Seconds a caller may give as a delay or a timeout of an example or a wait (an hour).
  public static let waitSeconds: ClosedRange<Double> = 0...3600

  /// `value` when it is in `range`, else an ``InputBoundsError`` naming `field`.
  @discardableResult
  public static func check<T: Comparable & CustomStringConvertible>(
    _ value: T, _ range: ClosedRange<T>, field: String
  ) throws(InputBoundsError) -> T {
    guard range.contains(value) else { throw InputBoundsError(field: field, value: "\(value)", range: "\(range)") }
    return value
  }

  /// `value` (finite) when it is in `range`, else an ``InputBoundsError`` naming `field`.
  @discardableResult
  public static func check(_ value: Double, _ range: ClosedRange<Double>, field: String) throws(InputBoundsError) -> Double {
    guard value.isFinite, range.contains(value) else {
      throw InputBoundsError(field: field, value: "\(value)", range: "\(range.lowerBound)...\(range.upperBound)")
    }
    return value
  }

  /// `value` moved into `range` (not a number: the upper bound, the cautious reading of a load).
  public static func clamp(_ value: Double, _ range: ClosedRange<Double>) -> Double {
    value.isNaN ? range.upperBound : min(max(value, range.lowerBound), range.upperBound)
  }

  /// `value` moved into `range`.
  public static func clamp(_ value: Int, _ range: ClosedRange<Int>) -> Int {
    min(max(value, range.lowerBound), range.upperBound)
  }
}

/// A number from outside that is out of its range (``InputBounds``).
public struct InputBoundsError: Error, Sendable, Equatable, CustomStringConvertible {
  public let code = "INVALID_REQUEST"
  /// The field at fault, as the caller spelled it (`resources.cpu_cores`).
  public var field: String
  public var value: String
  public var range: String

  public init(field: String, value: String, range: String) {
    self.field = field
    self.value = value
    self.range = range
  }

  public var message: String { "\(field) must be within \(range), got \(value)" }
  public var description: String { message }
}

extension Sequence {
  /// The sum of `value` over the elements, at `Int.max` rather than trapping on overflow.
  public func saturatingSum(_ value: (Element) throws -> Int) rethrows -> Int {
    var total = 0
    for element in self {
      let (sum, overflow) = total.addingReportingOverflow(try value(element))
      total = overflow ? (sum < 0 ? Int.max : Int.min) : sum
    }
    return total
  }
}
