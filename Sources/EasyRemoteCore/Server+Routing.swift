package import Foundation
import NodeComm

// The data path of a routed call and a routed stream: pick a node in the membership, forward
// the payload unparsed, count the call until it is answered.
extension Server {
  /// A client's `execute`: the function from metadata (or the payload), then ``route``.
  func execute(_ payload: Payload, context: CallContext) async throws -> Payload {
    // Clients name the function (and node) in the call's metadata, so the arguments pass
    // through without being parsed here; other callers' payloads are read for them.
    if let function = context.metadata[Methods.functionKey] {
      return try await route(
        function, node: context.metadata[Methods.nodeKey], payload: payload, timeout: context.remaining,
        metadata: context.metadata)
    }
    let invocation = try node.serializers.decode(Invocation.self, from: payload, method: Methods.execute)
    return try await route(
      invocation.function, node: invocation.node, payload: payload, timeout: context.remaining, metadata: context.metadata)
  }

  /// Calls a function of the pool from inside the gateway (the HTTP API's
  /// `POST /functions/{name}/call`), balanced like a client's call. Returns the JSON result.
  ///
  /// - Throws: ``EasyRemoteError``.
  package func call(_ invocation: Invocation, timeout: Duration) async throws -> Data {
    do {
      // JSON whatever the gateway's default serializer: the node answers in kind, and the
      // HTTP API passes the answer on as JSON.
      let payload = try node.serializers.encode(invocation, method: Methods.execute, explicit: JSONSerializer.name)
      return try await route(invocation.function, node: invocation.node, payload: payload, timeout: timeout).data
    } catch {
      throw EasyRemoteError(error, function: invocation.function)
    }
  }

  /// Streams a function of the pool from inside the gateway (the HTTP API's
  /// `POST /functions/{name}/stream`), through the same routing, counting and `maxWorkers`
  /// as a client's stream: `each` gets the items (JSON) as they come, and the producer waits
  /// while `each` does (a slow HTTP reader slows the node, nothing piles up).
  ///
  /// - Throws: ``EasyRemoteError``.
  package func stream(
    _ invocation: Invocation, timeout: Duration?, each: @escaping @Sendable ([Data]) async throws -> Void
  ) async throws {
    do {
      let payload = try node.serializers.encode(invocation, method: Methods.stream, explicit: JSONSerializer.name)
      var metadata = [Methods.functionKey: invocation.function]
      if let target = invocation.node { metadata[Methods.nodeKey] = target }
      let context = CallContext(
        callerID: node.id, method: Methods.stream, metadata: metadata, deadline: timeout.map { ContinuousClock.now + $0 })
      try await forwardStream(payload, context: context, sink: ClosureSink(each: each))
    } catch {
      throw EasyRemoteError(error, function: invocation.function)
    }
  }

  /// Routes one call: picks a node, runs the call there, retries an idempotent function once
  /// on another node when the first is lost. A function none of this gateway's nodes serve
  /// goes to another gateway that serves it (``forwarding(to:)``).
  func route(
    _ function: String, node target: String?, payload: Payload, timeout: Duration?, metadata: [String: String] = [:]
  ) async throws -> Payload {
    let start = ContinuousClock.now
    try await enterWorker(function, timeout: timeout, start: start, bytesIn: payload.data.count)
    defer { workers?.leave() }
    var tried: Set<String> = []
    var lastError: EasyRemoteError?
    while true {
      let pick = state.withLock { state in
        state.membership.routeCall(function, target: target, excluding: tried)
      }
      let chosen: Membership.Route
      switch pick {
      case .success(let value): chosen = value
      case .failure(let error):
        if tried.isEmpty, error.code == .functionNotFound,
          let peer = peerAddress(for: function, node: target, metadata: metadata)
        {
          return try await forward(function, node: target, payload: payload, timeout: timeout, to: peer, start: start)
        }
        let failure = lastError ?? error
        record(function, node: nil, start: start, error: failure, bytesIn: payload.data.count)
        throw failure.nodeError
      }
      tried.insert(chosen.nodeID)
      if chosen.descriptor.streaming {
        // A plain call of a streaming function (seed 002's `execute("async_data_stream")`):
        // its items, collected into one list, within the payload limit.
        defer { finishedCall(on: chosen.nodeID) }
        do {
          let result = try await collect(function, on: chosen.nodeID, payload: payload, timeout: timeout)
          record(function, node: chosen.nodeID, start: start, error: nil, bytesIn: payload.data.count, bytesOut: result.data.count)
          return result
        } catch {
          record(function, node: chosen.nodeID, start: start, error: error, bytesIn: payload.data.count)
          throw EasyRemoteError(error, function: function).nodeError
        }
      }
      do {
        let result = try await node.call(
          chosen.nodeID, Methods.run, payload: payload, timeout: timeout, metadata: [Methods.functionKey: function])
        finishedCall(on: chosen.nodeID)
        record(function, node: chosen.nodeID, start: start, error: nil, bytesIn: payload.data.count, bytesOut: result.data.count)
        return result
      } catch {
        finishedCall(on: chosen.nodeID)
        let failure = EasyRemoteError(error, function: function)
        if failure.code == .nodeLost {
          lastError = EasyRemoteError(
            code: .nodeLost, message: "node '\(chosen.nodeID)' was lost while running '\(function)'",
            function: function, details: ["node": chosen.nodeID])
          if chosen.descriptor.idempotent, tried.count < 2, target == nil { continue }
          record(function, node: chosen.nodeID, start: start, error: lastError, bytesIn: payload.data.count)
          throw lastError!.nodeError
        }
        record(function, node: chosen.nodeID, start: start, error: failure, bytesIn: payload.data.count)
        throw failure.nodeError
      }
    }
  }

  /// Most items a plain call of a streaming function collects.
  static let collectedItemsLimit = 100_000

  /// Runs streaming `function` on `nodeID` and answers its items as one list — a JSON array,
  /// or a MessagePack array — in the items' serializer. Bounded: more than
  /// ``collectedItemsLimit`` items, or more bytes than the payload limit, fail with a
  /// message saying to use `stream()`.
  func collect(_ function: String, on nodeID: String, payload: Payload, timeout: Duration?) async throws -> Payload {
    let items = try await node.stream(
      nodeID, Methods.runStream, payload: payload, timeout: timeout, window: Methods.streamWindow,
      metadata: [Methods.functionKey: function])
    let byteLimit = node.config.limits.maxPayloadSize
    var collected: [Payload] = []
    var bytes = 0
    for try await batch in items.batches {
      for item in batch {
        bytes += item.data.count + 1
        collected.append(item)
        if collected.count > Self.collectedItemsLimit || bytes > byteLimit {
          throw EasyRemoteError(
            code: .invalidResult,
            message: "'\(function)' streams more than one answer can hold (\(Self.collectedItemsLimit) items or "
              + "\(byteLimit) bytes): use stream()", function: function)
        }
      }
    }
    let serializer = collected.first?.serializer ?? payload.serializer
    var list = Data()
    list.reserveCapacity(bytes + 8)
    switch serializer {
    case JSONSerializer.name:
      list.append(UInt8(ascii: "["))
      for (index, item) in collected.enumerated() {
        if index > 0 { list.append(UInt8(ascii: ",")) }
        list.append(item.data)
      }
      list.append(UInt8(ascii: "]"))
    case BinarySerializer.name:
      // A MessagePack array header, then the items as they are.
      let count = collected.count
      if count < 16 {
        list.append(0x90 | UInt8(count))
      } else if count <= Int(UInt16.max) {
        list.append(0xdc)
        withUnsafeBytes(of: UInt16(count).bigEndian) { list.append(contentsOf: $0) }
      } else {
        list.append(0xdd)
        withUnsafeBytes(of: UInt32(count).bigEndian) { list.append(contentsOf: $0) }
      }
      for item in collected { list.append(item.data) }
    default:
      throw EasyRemoteError(
        code: .invalidResult, message: "'\(function)' streams \(serializer) items, which cannot be put in one list: use stream()",
        function: function)
    }
    return Payload(data: list, serializer: serializer)
  }

  /// Opens the stream on a node and passes its items on as they come, within the client's
  /// credit; when the client goes away the node's stream is cancelled with it.
  func forwardStream(_ payload: Payload, context: CallContext, sink: some ItemSink) async throws {
    // Clients name the function (and node) in metadata; other callers' payloads are read for them.
    let function: String
    let target: String?
    if let named = context.metadata[Methods.functionKey] {
      (function, target) = (named, context.metadata[Methods.nodeKey])
    } else {
      let invocation = try node.serializers.decode(Invocation.self, from: payload, method: Methods.stream)
      (function, target) = (invocation.function, invocation.node)
    }
    let start = ContinuousClock.now
    try await enterWorker(function, timeout: context.remaining, start: start, bytesIn: payload.data.count)
    defer { workers?.leave() }
    let pick = state.withLock { $0.membership.routeCall(function, target: target) }
    if case .failure(let error) = pick, error.code == .functionNotFound,
      let peer = peerAddress(for: function, node: target, metadata: context.metadata)
    {
      return try await forwardStream(
        function, node: target, payload: payload, timeout: context.remaining, to: peer, sink: sink, start: start)
    }
    guard case .success(let chosen) = pick else {
      if case .failure(let error) = pick {
        record(function, node: nil, start: start, error: error, bytesIn: payload.data.count)
        throw error.nodeError
      }
      return
    }
    defer { finishedCall(on: chosen.nodeID) }
    var count = 0
    var bytes = 0
    let counting = metrics != nil
    do {
      let items = try await node.stream(
        chosen.nodeID, Methods.runStream, payload: payload, timeout: context.remaining, window: Methods.streamWindow,
        metadata: [Methods.functionKey: function])
      for try await batch in items.batches {
        count += batch.count
        if counting { for item in batch { bytes += item.data.count } }
        try await sink.send(contentsOf: batch)
      }
      record(function, node: chosen.nodeID, start: start, error: nil, bytesIn: payload.data.count, bytesOut: bytes, items: count)
    } catch {
      record(function, node: chosen.nodeID, start: start, error: error, bytesIn: payload.data.count, bytesOut: bytes, items: count)
      var failure = EasyRemoteError(error, function: function)
      if failure.code == .nodeLost {
        failure.message = "node '\(chosen.nodeID)' was lost while streaming '\(function)'"
      }
      throw failure.nodeError
    }
  }

  /// Takes one of the gateway's `maxWorkers` places (at once when one is free, else after
  /// the calls before it): the caller's time runs while it waits.
  ///
  /// - Throws: `busy` when the queue is full, `timedOut` when `timeout` passes first.
  func enterWorker(_ function: String, timeout: Duration?, start: ContinuousClock.Instant, bytesIn: Int) async throws {
    guard workers != nil else { return }
    do {
      try await waitForWorker(function, timeout: timeout)
    } catch {
      record(function, node: nil, start: start, error: error, bytesIn: bytesIn)
      throw error
    }
  }

  private func waitForWorker(_ function: String, timeout: Duration?) async throws {
    guard let workers else { return }
    let refusal: @Sendable () -> any Error = {
      EasyRemoteError(
        code: .busy,
        message: "the gateway is running \(workers.limit) calls and has \(workers.queueLimit) waiting (maxWorkers)",
        function: function
      ).nodeError
    }
    guard let timeout else { return try await workers.enter(refusal: refusal) }
    guard try await workers.enter(within: timeout, refusal: refusal) else {
      throw EasyRemoteError(
        code: .timedOut, message: "'\(function)' waited \(timeout) for one of the gateway's \(workers.limit) workers",
        function: function
      ).nodeError
    }
  }

  /// Counts a call as answered; tells the extensions when that frees a full node's worker.
  func finishedCall(on nodeID: String) {
    if state.withLock({ $0.membership.finishCall(on: nodeID) }) { announce(.workerFree(nodeID: nodeID)) }
  }

  func record(
    _ function: String, node: String?, start: ContinuousClock.Instant, error: (any Error)?, bytesIn: Int,
    bytesOut: Int = 0, items: Int = 0
  ) {
    // A name is counted as itself only when the pool serves it: anyone may ask for any name,
    // and counters by name must not grow with them (a call that was answered was served).
    let function = error == nil || isServed(function) ? function : CallMetrics.unknown
    countCall(function, node: node, start: start, error: error, bytesIn: bytesIn, bytesOut: bytesOut, items: items)
    let failed = error != nil
    let elapsed = ContinuousClock.now - start
    let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    state.withLock { state in
      state.totalRequests += 1
      if failed { state.failedRequests += 1 }
      let name = state.perFunction[function] != nil || state.perFunction.count < CallMetrics.maxFunctions ? function : CallMetrics.other
      var entry = state.perFunction[name] ?? (0, 0, 0)
      entry.calls += 1
      if failed { entry.failures += 1 }
      entry.totalMilliseconds += milliseconds
      state.perFunction[name] = entry
    }
  }

  /// Whether a node here or behind another gateway serves `function`.
  func isServed(_ function: String) -> Bool {
    !state.withLock { $0.membership.nodes(serving: function).isEmpty } || peersServe(function)
  }

  /// `functions` no node serves any more: their counters end (metrics and per-function stats).
  func forgetFunctions(_ functions: [String]) {
    guard !functions.isEmpty else { return }
    state.withLock { state in for function in functions { state.perFunction[function] = nil } }
    callMetrics?.forget(functions)
  }
}

/// Where a routed stream's items go: a client's stream (over its link) or a closure (the
/// HTTP API).
protocol ItemSink: Sendable {
  func send(contentsOf items: [Payload]) async throws
}

extension StreamSink: ItemSink {}

struct ClosureSink: ItemSink {
  let each: @Sendable ([Data]) async throws -> Void

  func send(contentsOf items: [Payload]) async throws { try await each(items.map(\.data)) }
}
