public import Logging

/// Logs each call: direction, peer, method, payload size and serializer, duration and outcome.
///
/// Payload contents are never logged.
public struct LoggingInterceptor: CallInterceptor {
  private let logger: Logger
  private let level: Logger.Level

  public init(logger: Logger = Logger(label: "easyremote.calls"), level: Logger.Level = .debug) {
    self.logger = logger
    self.level = level
  }

  public func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    let start = ContinuousClock.now
    let metadata: Logger.Metadata = [
      "direction": "\(call.direction)", "peer": "\(call.peerID)", "method": "\(call.method)",
      "bytes": "\(call.payload.data.count)", "serializer": "\(call.payload.serializer)",
    ]
    do {
      let result = try await next(call)
      var done = metadata
      done["duration"] = "\(ContinuousClock.now - start)"
      done["result_bytes"] = "\(result.data.count)"
      logger.log(level: level, "call ok", metadata: done)
      return result
    } catch {
      var failed = metadata
      failed["duration"] = "\(ContinuousClock.now - start)"
      failed["error"] = "\(error)"
      logger.log(level: level, "call failed", metadata: failed)
      throw error
    }
  }
}
