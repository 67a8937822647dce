import Dispatch
import Foundation
import Synchronization

/// The blocking form of ``Client`` for scripts and synchronous code: each method waits for its
/// answer on the calling thread.
///
/// ```swift
/// let client = BlockingClient(serverAddress: "127.0.0.1:8080")
/// let sum: Int = try client.execute("add", 2, 3)
/// try client.stream("count", 5, as: Int.self) { print($0) }
/// ```
///
/// Call it from plain threads (a `main.swift` script, a `Thread`, a dispatch queue), not from
/// `async` code: there, use ``Client``, whose methods do not hold a thread while they wait.
public final class BlockingClient: Sendable {
  public let client: Client

  /// Wraps `client` (any transport).
  public init(client: Client) {
    self.client = client
  }

  /// Runs `name` and decodes its result; throws what ``Client/execute(_:_:kwargs:node:timeout:as:)`` throws.
  public func execute<R: Decodable & Sendable, each A: Encodable>(
    _ name: String, _ arguments: repeat each A, kwargs: [String: JSONValue] = [:], node: String? = nil,
    timeout: Duration? = nil, as: R.Type = R.self
  ) throws -> R {
    var positional: [JSONValue] = []
    for argument in repeat each arguments { positional.append(try JSONValue(encoding: argument)) }
    let client = self.client
    let json = try wait { [positional] in
      try await client.executeJSON(name, args: positional, kwargs: kwargs, node: node, timeout: timeout)
    }
    do {
      return try json.decode(as: R.self)
    } catch {
      throw EasyRemoteError(code: .invalidResult, message: "the result of '\(name)' is not \(R.self)", function: name)
    }
  }

  /// Opens a stream and calls `body` with each item as it arrives; returns when the stream
  /// ends. Throwing from `body` stops the stream (the node's producer is cancelled).
  public func stream<Item: Decodable & Sendable, each A: Encodable>(
    _ name: String, _ arguments: repeat each A, node: String? = nil, as: Item.Type = Item.self,
    _ body: @escaping @Sendable (Item) throws -> Void
  ) throws {
    var positional: [JSONValue] = []
    for argument in repeat each arguments { positional.append(try JSONValue(encoding: argument)) }
    let client = self.client
    try wait { [positional] in
      for try await item in try await client.streamJSON(name, args: positional, node: node) {
        let decoded: Item
        do {
          decoded = try item.decode(as: Item.self)
        } catch {
          throw EasyRemoteError(code: .invalidResult, message: "an item of '\(name)' is not \(Item.self)", function: name)
        }
        try body(decoded)
      }
    }
  }

  public func listFunctions() throws -> [FunctionInfo] {
    let client = self.client
    return try wait { try await client.listFunctions() }
  }

  public func close() {
    let client = self.client
    wait { await client.close() }
  }

  /// Runs `operation` on the concurrency pool and blocks this thread until it is done.
  private func wait<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Outcome<T>()
    // Unstructured: the caller is a plain thread, outside the concurrency pool; it blocks on
    // `outcome` until this task has run `operation`.
    Task {
      do {
        outcome.set(.success(try await operation()))
      } catch {
        outcome.set(.failure(error))
      }
    }
    return try outcome.wait().get()
  }

  private func wait(_ operation: @escaping @Sendable () async -> Void) {
    _ = try? wait { () async throws -> Bool in
      await operation()
      return true
    }
  }
}

/// A result handed from a task to a waiting thread.
private final class Outcome<T: Sendable>: Sendable {
  private let result = Mutex<Result<T, any Error>?>(nil)
  private let ready = DispatchSemaphore(value: 0)

  func set(_ value: Result<T, any Error>) {
    result.withLock { $0 = value }
    ready.signal()
  }

  func wait() -> Result<T, any Error> {
    ready.wait()
    return result.withLock { $0! }
  }
}
