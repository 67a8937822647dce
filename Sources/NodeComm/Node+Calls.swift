import Foundation

// Calls from this node: one to a peer (typed or raw), notifications, broadcasts.
extension Node {
  /// Calls `method` on node `target` with a payload as it is.
  ///
  /// - Parameters:
  ///   - timeout: when the call gives up; `config.defaultTimeout` when nil. The remote handler
  ///     is cancelled when it passes.
  /// - Throws: ``NodeError``: `notConnected`, `timedOut`, `methodNotFound`,
  ///   `serializationFailed`, `remoteExecutionFailed`, `nodeStopping`, `authFailed`,
  ///   `payloadTooLarge`, `connectionLost`, `cancelled`.
  public func call(
    _ target: String, _ method: String, payload: Payload, timeout: Duration? = nil, metadata: [String: String] = [:]
  ) async throws -> Payload {
    let timeout = timeout ?? config.defaultTimeout
    let interceptors = outboundInterceptors
    if interceptors.isEmpty {
      return try await link(to: target, method: method).call(
        method: method, payload: payload, metadata: metadata, timeout: timeout, target: target)
    }
    let call = InterceptedCall(
      direction: .outbound, peerID: target, method: method, payload: payload, metadata: metadata, isNotification: false)
    // The link is looked up per attempt, inside the chain: a retry interceptor sees
    // `not_connected` and may wait for the link to come (back).
    return try await interceptors.run(call) { [self] call in
      try await link(to: target, method: call.method).call(
        method: call.method, payload: call.payload, metadata: call.metadata, timeout: timeout, target: target)
    }
  }

  /// Calls `method` on node `target` with a typed argument and result.
  ///
  /// - Parameter serializer: the serializer's name (`json`, `binary`, or a registered one);
  ///   the method's or the node's default when nil.
  public func call<Response: Decodable>(
    _ target: String, _ method: String, _ argument: some Encodable, as: Response.Type = Response.self,
    serializer: String? = nil, timeout: Duration? = nil, metadata: [String: String] = [:]
  ) async throws -> Response {
    let payload = try serializers.encode(argument, method: method, explicit: serializer)
    let result = try await call(target, method, payload: payload, timeout: timeout, metadata: metadata)
    return try serializers.decode(Response.self, from: result, method: method)
  }

  /// Sends a one-way call: no result, no error from the handler comes back.
  public func notify(_ target: String, _ method: String, payload: Payload, metadata: [String: String] = [:]) async throws {
    let interceptors = outboundInterceptors
    let call = InterceptedCall(
      direction: .outbound, peerID: target, method: method, payload: payload, metadata: metadata, isNotification: true)
    _ = try await interceptors.run(call) { [self] call in
      try link(to: target, method: call.method).notify(
        method: call.method, payload: call.payload, metadata: call.metadata, target: target)
      return .empty
    }
  }

  /// Sends a one-way call with a typed argument.
  public func notify(
    _ target: String, _ method: String, _ argument: some Encodable, serializer: String? = nil
  ) async throws {
    try await notify(target, method, payload: try serializers.encode(argument, method: method, explicit: serializer))
  }

  /// Calls `method` on every linked node except those in `exclude`, concurrently.
  ///
  /// - Returns: each peer's result or error, by node id.
  public func broadcast(
    _ method: String, payload: Payload, exclude: Set<String> = [], timeout: Duration? = nil
  ) async -> [String: Result<Payload, NodeError>] {
    let targets = linkedPeers.filter { !exclude.contains($0) }
    return await withTaskGroup(of: (String, Result<Payload, NodeError>).self) { group in
      for target in targets {
        group.addTask {
          do {
            return (target, .success(try await self.call(target, method, payload: payload, timeout: timeout)))
          } catch let error as NodeError {
            return (target, .failure(error))
          } catch {
            return (target, .failure(NodeError(code: .remoteExecutionFailed, message: "\(error)", nodeID: target, method: method)))
          }
        }
      }
      var results: [String: Result<Payload, NodeError>] = [:]
      for await (target, result) in group { results[target] = result }
      return results
    }
  }

  /// Broadcasts a typed argument; see ``broadcast(_:payload:exclude:timeout:)``.
  public func broadcast<Response: Decodable>(
    _ method: String, _ argument: some Encodable, as: Response.Type = Response.self, exclude: Set<String> = [],
    serializer: String? = nil, timeout: Duration? = nil
  ) async throws -> [String: Result<Response, NodeError>] {
    let payload = try serializers.encode(argument, method: method, explicit: serializer)
    let raw = await broadcast(method, payload: payload, exclude: exclude, timeout: timeout)
    return raw.mapValues { result in
      result.flatMap { payload in
        Result { () throws(NodeError) in try serializers.decode(Response.self, from: payload, method: method) }
      }
    }
  }
}
