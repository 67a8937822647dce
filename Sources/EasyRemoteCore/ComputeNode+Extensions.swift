public import Foundation
public import Logging
public import NodeComm

/// What a compute node offers the parts that extend it (the task worker is one): methods the
/// gateway calls on this node, calls to the gateway, word of each (re)connection, and its
/// workers, shared with the calls it runs.
///
/// ```swift
/// node.serve("my.ext.run") { (job: Job, _) -> Outcome in try await node.withWorker { work(job) } }
/// node.onGatewayConnected { Task { try await node.callGateway("my.ext.join", Hello(), as: Empty.self) } }
/// ```
extension ComputeNode {
  /// Serves `method` to the gateway on this node's link.
  public func serve<Request: Decodable & SendableMetatype, Response: Encodable & SendableMetatype>(
    _ method: String, _ handler: @escaping @Sendable (Request, CallContext) async throws -> Response
  ) {
    node.register(method, handler)
  }

  /// Calls `method` on the gateway.
  ///
  /// - Throws: `NodeError` (`not_connected` while the link is down, `timed_out`...) or the
  ///   gateway handler's error.
  public func callGateway<Request: Encodable, Response: Decodable & Sendable>(
    _ method: String, _ request: Request, as: Response.Type = Response.self, timeout: Duration? = nil
  ) async throws -> Response {
    try await node.call(Server.nodeID, method, request, as: Response.self, timeout: timeout)
  }

  /// Calls `handler` each time the node has (re)joined the gateway: linked, and its functions
  /// announced. Returns a token for ``removeGatewayListener(_:)``.
  @discardableResult
  public func onGatewayConnected(_ handler: @escaping @Sendable () -> Void) -> UInt64 {
    state.withLock { $0.connectListeners.add { _ in handler() } }
  }

  /// Stops calling a handler given to ``onGatewayConnected(_:)``.
  public func removeGatewayListener(_ token: UInt64) {
    state.withLock { $0.connectListeners.remove(token) }
  }

  /// Runs `body` in one of this node's workers, the ones its calls use, waiting in line
  /// when all `maxWorkers` are busy: so calls and tasks together never exceed `maxWorkers`.
  ///
  /// - Throws: ``EasyRemoteError`` `busy` when the queue is full; what `body` throws.
  public func withWorker<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    try await acquireWorker("task")
    let start = ContinuousClock.now
    do {
      let result = try await body()
      releaseWorker(start: start, failed: false)
      return result
    } catch {
      releaseWorker(start: start, failed: true)
      throw error
    }
  }

  /// Offers the gateway's task center this node's workers (`nil`: no more), in this and
  /// every later announcement; announced now when connected.
  ///
  /// - Throws: what the gateway answered (`invalid_arguments` naming the field out of range),
  ///   or `NodeError` when the link is down (the next connection announces it anyway).
  package func offerTasks(_ worker: Membership.Worker?) async throws {
    let connected = state.withLock { state in
      state.worker = worker
      return state.connected
    }
    if connected { try await announce() }
  }

  /// Runs `hook` before each announcement (the first, and after every reconnection), in the
  /// order given. Returns a token for ``removeAnnounceHook(_:)``.
  package func beforeAnnouncing(_ hook: @escaping @Sendable () async -> Void) -> UInt64 {
    state.withLock { state in
      defer { state.nextHook += 1 }
      state.announceHooks[state.nextHook] = hook
      return state.nextHook
    }
  }

  package func removeAnnounceHook(_ token: UInt64) {
    _ = state.withLock { $0.announceHooks.removeValue(forKey: token) }
  }

  /// Sets what this node's heartbeats carry to the gateway (and sends one now): the
  /// gateway keeps a ``NodeReport`` in the node's record and tells its extensions
  /// (``MembershipEvent/reported(nodeID:availabilityChanged:)``). The task worker reports the
  /// machine's load this way.
  public func reportStatus(_ payload: Data) { node.reportStatus(payload) }

  /// The node's logger (its id in the metadata).
  public var logger: Logger { node.logger }
}
