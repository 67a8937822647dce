import NodeComm
import Synchronization

/// Where a running function's result or stream items go: the stream's sink, or a box that
/// keeps the one result.
struct FunctionOutput: Sendable {
  private let sink: StreamSink?
  private let box: ResultBox?

  /// Items go to the caller's stream.
  static func stream(_ sink: StreamSink) -> FunctionOutput { FunctionOutput(sink: sink, box: nil) }

  /// The one result is kept for ``result``.
  static func single() -> FunctionOutput { FunctionOutput(sink: nil, box: ResultBox()) }

  /// The result a single call produced.
  var result: Payload? { box?.value }

  /// Sends without suspending when it can: returns false when the stream's consumer has no
  /// credit left, and then ``send(_:)`` waits for it. (Producers call this first: a stream
  /// of small items then costs no suspension point per item.)
  func offer(_ payload: Payload) throws -> Bool {
    guard let sink else {
      box?.set(payload)
      return true
    }
    return try sink.offer(payload)
  }

  /// Sends, waiting for the consumer's credit.
  func send(_ payload: Payload) async throws {
    if let sink {
      try await sink.send(payload)
    } else {
      box?.set(payload)
    }
  }
}

/// The result of a single call, set once by the function's body.
final class ResultBox: Sendable {
  private let stored = Mutex<Payload?>(nil)
  var value: Payload? { stored.withLock { $0 } }
  func set(_ payload: Payload) { stored.withLock { $0 = payload } }
}
