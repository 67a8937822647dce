import Foundation
import EasyRemoteCore
import NodeComm
import Synchronization

/// Methods every demo and test peer serves.
enum ExampleMethods {
  struct SleepRequest: Codable {
    var seconds: Double
  }

  struct SleepersRequest: Codable {
    var atLeast: Int
  }

  static func register(on node: Node) {
    let sleepers = Sleepers()
    node.register("echo") { payload, _ in payload }
    node.register("add") { (numbers: [Double], _) in numbers.reduce(0, +) }
    node.register("whoami") { (_: Empty, context) in "\(context.callerID) -> \(node.id)" }
    node.register("sleep") { (request: SleepRequest, _) in
      let seconds = try InputBounds.check(request.seconds, InputBounds.waitSeconds, field: "seconds")
      sleepers.began()
      defer { sleepers.ended() }
      try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
      return request.seconds
    }
    // Answers once at least `atLeast` sleep calls are running here: how a caller in another
    // process learns its call has arrived, without polling.
    node.register("sleepers") { (request: SleepersRequest, _) in
      try await sleepers.wait(atLeast: request.atLeast)
    }
  }

  /// How many sleep calls run now, and who waits for a number of them.
  final class Sleepers: Sendable {
    private struct State {
      var running = 0
      var waiters: [UUID: (atLeast: Int, continuation: CheckedContinuation<Int, any Error>)] = [:]
    }
    private let state = Mutex(State())

    func began() { changed(by: 1) }
    func ended() { changed(by: -1) }

    private func changed(by step: Int) {
      let woken: [(CheckedContinuation<Int, any Error>, Int)] = state.withLock { state in
        state.running += step
        let running = state.running
        let due = state.waiters.filter { $0.value.atLeast <= running }
        for key in due.keys { state.waiters[key] = nil }
        return due.values.map { ($0.continuation, running) }
      }
      for (continuation, running) in woken { continuation.resume(returning: running) }
    }

    func wait(atLeast: Int) async throws -> Int {
      let key = UUID()
      return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
          let now: Int? = state.withLock { state in
            if state.running >= atLeast { return state.running }
            state.waiters[key] = (atLeast, continuation)
            return nil
          }
          if let now { continuation.resume(returning: now) }
        }
      } onCancel: {
        let continuation = state.withLock { $0.waiters.removeValue(forKey: key)?.continuation }
        continuation?.resume(throwing: CancellationError())
      }
    }
  }
}
