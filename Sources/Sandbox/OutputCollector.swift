package import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads one pipe to its end on a thread of its own, keeping the first `limit` bytes.
package final class OutputCollector: Sendable {
  private struct State {
    var data = Data()
    var truncated = false
    var done = false
    var waiter: CheckedContinuation<(Data, Bool), Never>?
  }

  private let state = Mutex(State())

  package init(_ fd: Int32, limit: Int) {
    Thread.detachNewThread { [self] in
      var buffer = [UInt8](repeating: 0, count: 65_536)
      while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        state.withLock { state in
          let room = max(0, limit - state.data.count)
          if count > room { state.truncated = true }
          if room > 0 { state.data.append(contentsOf: buffer[0..<min(room, count)]) }
        }
      }
      close(fd)
      let waiter = state.withLock { state -> CheckedContinuation<(Data, Bool), Never>? in
        state.done = true
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume(returning: state.withLock { ($0.data, $0.truncated) })
    }
  }

  /// The bytes kept and whether some were dropped, once the pipe is closed.
  package func result() async -> (Data, Bool) {
    await withCheckedContinuation { continuation in
      let ready = state.withLock { state -> (Data, Bool)? in
        if state.done { return (state.data, state.truncated) }
        state.waiter = continuation
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }
}
