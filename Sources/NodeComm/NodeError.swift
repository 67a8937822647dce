import Foundation

/// An error of the node layer that a caller can switch on by ``code``.
///
/// ```swift
/// do {
///   _ = try await node.call("worker", "add", payload: .json([1, 2]))
/// } catch let error as NodeError where error.code == .timedOut {
///   print("\(error.nodeID ?? "") did not answer \(error.method ?? "") in time")
/// }
/// ```
public struct NodeError: Error, Sendable, CustomStringConvertible {
  /// A stable, growable error code. Its `rawValue` is what travels on the wire.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    private init(_ rawValue: String) { self.rawValue = rawValue }

    /// There is no link to the node.
    public static let notConnected = Code("not_connected")
    /// The call's deadline passed; the remote handler was cancelled.
    public static let timedOut = Code("timed_out")
    /// The remote node has no handler for the method.
    public static let methodNotFound = Code("method_not_found")
    /// A payload could not be encoded or decoded.
    public static let serializationFailed = Code("serialization_failed")
    /// The remote handler threw.
    public static let remoteExecutionFailed = Code("execution_failed")
    /// The node (local or remote) is stopping and takes no new calls.
    public static let nodeStopping = Code("node_stopping")
    /// An interceptor refused the call's credentials.
    public static let authFailed = Code("auth_failed")
    /// The payload is larger than the configured maximum.
    public static let payloadTooLarge = Code("payload_too_large")
    /// The link broke while the call was in flight.
    public static let connectionLost = Code("connection_lost")
    /// The caller cancelled the call.
    public static let cancelled = Code("cancelled")
    /// Dialing or handshaking with a peer failed.
    public static let connectFailed = Code("connect_failed")
    /// A peer broke the protocol (bad frame order, unknown frame).
    public static let protocolViolation = Code("protocol_violation")
    /// The node was used in a state that does not allow the operation.
    public static let invalidState = Code("invalid_state")
    /// Rejected by an interceptor or a handler for another reason.
    public static let rejected = Code("rejected")
    /// The node's listener stopped accepting links by itself (its socket failed).
    public static let listenerFailed = Code("listener_failed")

    static let known: [String: Code] = Dictionary(
      uniqueKeysWithValues: [
        notConnected, timedOut, methodNotFound, serializationFailed, remoteExecutionFailed,
        nodeStopping, authFailed, payloadTooLarge, connectionLost, cancelled, connectFailed,
        protocolViolation, invalidState, rejected, listenerFailed,
      ].map { ($0.rawValue, $0) })

    /// The code named on the wire; unknown codes from newer peers keep their name.
    package init(wireValue: String) { self = Code.known[wireValue] ?? Code(wireValue) }

    public var description: String { rawValue }
  }

  public var code: Code
  public var message: String
  /// The peer node involved: the call's target, or the node that was lost.
  public var nodeID: String?
  /// The method of the call, if any.
  public var method: String?
  /// Structured details, for example the remote error type.
  public var details: [String: String]
  /// Debug detail from a remote node running in debug mode.
  public var debugDetail: String?
  /// The error underneath, when this one wraps another in this process (a transport's,
  /// a decoder's). It does not travel to peers; ``description`` shows it.
  public var cause: (any Error)?

  public init(
    code: Code, message: String, nodeID: String? = nil, method: String? = nil,
    details: [String: String] = [:], debugDetail: String? = nil, cause: (any Error)? = nil
  ) {
    self.code = code
    self.message = message
    self.nodeID = nodeID
    self.method = method
    self.details = details
    self.debugDetail = debugDetail
    self.cause = cause
  }

  public var description: String {
    var text = "NodeError(\(code)): \(message)"
    if let nodeID { text += " [node: \(nodeID)" + (method.map { ", method: \($0)]" } ?? "]") }
    if let cause { text += " (cause: \(cause))" }
    return text
  }

  /// Builds the error a caller sees from the structured error a peer sent.
  package init(remote info: ErrorInfo, nodeID: String, method: String) {
    self.init(
      code: Code(wireValue: info.code), message: info.message, nodeID: nodeID, method: method,
      details: info.details, debugDetail: info.debugDetail)
  }

  /// The structured form sent to the peer.
  package var info: ErrorInfo {
    ErrorInfo(code: code.rawValue, message: message, details: details, debugDetail: debugDetail)
  }
}

extension NodeError {
  static func notConnected(_ nodeID: String, method: String? = nil) -> NodeError {
    NodeError(code: .notConnected, message: "not connected to node '\(nodeID)'", nodeID: nodeID, method: method)
  }

  static func timedOut(_ nodeID: String, method: String, after timeout: Duration) -> NodeError {
    NodeError(
      code: .timedOut, message: "call to '\(method)' on node '\(nodeID)' timed out after \(timeout)",
      nodeID: nodeID, method: method)
  }

  static func methodNotFound(_ method: String, on nodeID: String) -> NodeError {
    NodeError(code: .methodNotFound, message: "node '\(nodeID)' has no method '\(method)'", nodeID: nodeID, method: method)
  }

  static func stopping(_ nodeID: String, method: String? = nil) -> NodeError {
    NodeError(code: .nodeStopping, message: "node '\(nodeID)' is stopping", nodeID: nodeID, method: method)
  }

  static func payloadTooLarge(size: Int, limit: Int, method: String? = nil) -> NodeError {
    NodeError(
      code: .payloadTooLarge, message: "payload of \(size) bytes exceeds the limit of \(limit) bytes",
      method: method, details: ["size": String(size), "limit": String(limit)])
  }
}
