import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Hands batches of lines from a producer to the HTTP body writer one batch at a time: the
/// producer's `put` returns once the writer took the batch, so a slow HTTP reader holds the
/// producer (and, through the stream's credit, the node) back instead of filling memory.
final class LineStream: Sendable {
  enum Item: Sendable {
    case lines([Data])
    case end
  }

  struct Closed: Error {}

  private struct State {
    var consumer: CheckedContinuation<Item, Never>?
    var producer: (item: Item, resume: CheckedContinuation<Bool, Never>)?
    var closed = false
  }

  private let state = Mutex(State())

  /// Gives `item` to the writer; returns once it took it. Throws when the writer is gone.
  func put(_ item: Item) async throws {
    let taken = await withCheckedContinuation { (resume: CheckedContinuation<Bool, Never>) in
      let handoff = state.withLock { state -> (CheckedContinuation<Item, Never>?, Bool) in
        if state.closed { return (nil, false) }
        if let consumer = state.consumer {
          state.consumer = nil
          return (consumer, true)
        }
        state.producer = (item, resume)
        return (nil, true)
      }
      switch handoff {
      case (let consumer?, _):
        consumer.resume(returning: item)
        resume.resume(returning: true)
      case (nil, false):
        resume.resume(returning: false)
      case (nil, true):
        break
      }
    }
    if !taken { throw Closed() }
  }

  /// The next item the producer put.
  func take() async -> Item {
    await withCheckedContinuation { (consumer: CheckedContinuation<Item, Never>) in
      let waiting = state.withLock { state -> (Item, CheckedContinuation<Bool, Never>)? in
        if let producer = state.producer {
          state.producer = nil
          return producer
        }
        state.consumer = consumer
        return nil
      }
      if let (item, resume) = waiting {
        consumer.resume(returning: item)
        resume.resume(returning: true)
      }
    }
  }

  /// The writer is gone: a producer waiting (or to come) is told so.
  func close() {
    let waiting = state.withLock { state -> CheckedContinuation<Bool, Never>? in
      state.closed = true
      defer { state.producer = nil }
      return state.producer?.resume
    }
    waiting?.resume(returning: false)
  }

  /// Writes what the producer puts, each value on its own line, until it ends.
  func drain(into writer: inout any ResponseBodyWriter) async throws {
    defer { close() }
    while case .lines(let lines) = await take() {
      var buffer = ByteBuffer()
      for line in lines {
        buffer.writeBytes(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
      }
      try await writer.write(buffer)
    }
  }
}
