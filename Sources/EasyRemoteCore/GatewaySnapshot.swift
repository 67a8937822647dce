public import Foundation

/// Everything the gateway knows at one moment, read under one lock: the nodes with their
/// work in flight, the functions with their counters. The one source that metrics and a
/// console read (``Server/snapshot(at:)``; the task center adds its queue and tasks).
public struct GatewaySnapshot: Sendable, Equatable {
  /// One function of the pool, with what the gateway counted of its calls.
  public struct Function: Sendable, Equatable {
    public var name: String
    public var nodes: [String]
    public var streaming: Bool
    /// Calls answered (or failed) since the gateway started.
    public var calls: Int
    public var failures: Int
    /// Average time of a call through the gateway, in milliseconds.
    public var averageMilliseconds: Double
  }

  public var takenAt: Date
  /// The connected nodes, by id.
  public var nodes: [NodeInfo]
  /// Functions by name: those served now, and those called before whose nodes are gone.
  public var functions: [Function]
  public var totalRequests: Int
  public var failedRequests: Int
  /// Calls in flight, all nodes together.
  public var callsInFlight: Int { nodes.reduce(0) { $0 + $1.inFlight } }
}
