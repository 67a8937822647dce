/// Turns a total someone else counts (a node's executions, reported over its link) into the
/// increments of a Prometheus counter: each scrape adds what the total grew by. A total that
/// went down (its owner restarted) is all new.
public struct CounterFeed: Sendable {
  public private(set) var shown: Double = 0

  public init() {}

  /// What to add to the counter now that the total is `total`.
  public mutating func delta(to total: Double) -> Double {
    let added = total < shown ? total : total - shown
    shown = total
    return added
  }
}
