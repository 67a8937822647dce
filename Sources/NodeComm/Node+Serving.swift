import Foundation

// Serving a peer's request: the inbound interceptors, the handler, errors as the wire says them.
extension Node {
  /// Runs one inbound request or notification through the interceptors and its handler.
  func serve(_ frame: Frame, peerID: String, link: Link) async -> Result<Payload, NodeError> {
    let (handler, streamHandler, interceptors, running) = inboundRoute(frame.method)
    let isStream = streamHandler != nil
    guard running else { return .failure(.stopping(id, method: frame.method)) }
    let timeout: Duration? = frame.timeoutMicros > 0 ? .microseconds(frame.timeoutMicros) : nil
    do {
      let payload = try link.unpacked(Payload(data: frame.payload, serializer: frame.serializer), method: frame.method)
      let call = InterceptedCall(
        direction: .inbound, peerID: peerID, method: frame.method, payload: payload, metadata: frame.metadata,
        isNotification: frame.type == .notify, remoteAddress: link.channel.remoteDescription)
      let result = try await interceptors.run(call) { [id, timeline] call in
        guard let handler else {
          if isStream {
            throw NodeError(
              code: .rejected, message: "'\(call.method)' on node '\(id)' is a streaming method: open it with stream()",
              nodeID: id, method: call.method)
          }
          throw NodeError.methodNotFound(call.method, on: id)
        }
        let context = CallContext(
          callerID: peerID, method: call.method, metadata: call.metadata, timeout: timeout, on: timeline,
          isNotification: call.isNotification)
        return try await handler(call.payload, context)
      }
      return .success(result)
    } catch {
      return .failure(describe(error, method: frame.method))
    }
  }

  /// The structured error a peer receives for a handler's error.
  func describe(_ error: any Error, method: String) -> NodeError {
    if var error = error as? NodeError {
      if error.nodeID == nil { error.nodeID = id }
      if error.method == nil { error.method = method }
      if config.debug, error.debugDetail == nil { error.debugDetail = String(reflecting: error) }
      return error
    }
    if error is CancellationError {
      return isRunning
        ? NodeError(code: .cancelled, message: "'\(method)' was cancelled", nodeID: id, method: method)
        : .stopping(id, method: method)
    }
    return NodeError(
      code: .remoteExecutionFailed, message: "\(error)", nodeID: id, method: method,
      details: ["type": String(reflecting: type(of: error))],
      debugDetail: config.debug ? String(reflecting: error) : nil)
  }
}

/// Which paths an interceptor is added to.
public struct InterceptorPaths: OptionSet, Sendable {
  public let rawValue: Int
  public init(rawValue: Int) { self.rawValue = rawValue }
  public static let inbound = InterceptorPaths(rawValue: 1)
  public static let outbound = InterceptorPaths(rawValue: 2)
  public static let both: InterceptorPaths = [.inbound, .outbound]
}
