/// The gateway's routing table as a pure state machine: which nodes serve which functions,
/// how many calls each is running, and which node takes the next call.
///
/// No I/O and no clock: the gateway feeds it events and asks it questions.
struct Router: Sendable {
  enum Strategy: String, Sendable, Codable {
    /// The node with the fewest calls in flight (ties: the one picked least recently).
    case leastInFlight = "least_in_flight"
    /// Each serving node in turn.
    case roundRobin = "round_robin"
  }

  struct NodeEntry: Sendable {
    var maxWorkers: Int
    var functions: [String: FunctionDescriptor]
    var inFlight = 0
    var lastPicked: UInt64 = 0
  }

  var strategy: Strategy
  private(set) var nodes: [String: NodeEntry] = [:]
  private var turn: UInt64 = 0
  private var cursor: [String: Int] = [:]

  init(strategy: Strategy = .leastInFlight) { self.strategy = strategy }

  mutating func add(_ announcement: NodeAnnouncement) {
    let functions = Dictionary(announcement.functions.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    let inFlight = nodes[announcement.nodeID]?.inFlight ?? 0
    nodes[announcement.nodeID] = NodeEntry(
      maxWorkers: max(1, announcement.maxWorkers), functions: functions, inFlight: inFlight)
  }

  mutating func remove(_ nodeID: String) { nodes[nodeID] = nil }

  /// Picks the node for a call of `function` and counts the call as in flight on it.
  ///
  /// Nodes with a free worker go first; when all are full, the least loaded takes the call
  /// (it queues it). `target` restricts the choice to one node; `excluding` skips nodes
  /// already tried.
  mutating func pick(
    _ function: String, target: String? = nil, excluding: Set<String> = []
  ) -> Result<(nodeID: String, descriptor: FunctionDescriptor), EasyRemoteError> {
    var candidates = nodes.filter { $0.value.functions[function] != nil && !excluding.contains($0.key) }
    if let target {
      candidates = candidates.filter { $0.key == target }
      if candidates.isEmpty {
        let message =
          nodes[target] == nil ? "node '\(target)' is not connected" : "node '\(target)' does not serve '\(function)'"
        return .failure(EasyRemoteError(code: .functionNotFound, message: message, function: function))
      }
    }
    guard !candidates.isEmpty else {
      let message =
        excluding.isEmpty ? "no node serves '\(function)'" : "no other node serves '\(function)'"
      return .failure(EasyRemoteError(code: .functionNotFound, message: message, function: function))
    }
    let free = candidates.filter { $0.value.inFlight < $0.value.maxWorkers }
    let pool = free.isEmpty ? candidates : free
    let chosen: String
    switch strategy {
    case .leastInFlight:
      chosen = pool.min { a, b in
        (a.value.inFlight, a.value.lastPicked, a.key) < (b.value.inFlight, b.value.lastPicked, b.key)
      }!.key
    case .roundRobin:
      let ids = pool.keys.sorted()
      let next = cursor[function, default: 0] % ids.count
      cursor[function] = next + 1
      chosen = ids[next]
    }
    turn += 1
    nodes[chosen]!.inFlight += 1
    nodes[chosen]!.lastPicked = turn
    return .success((chosen, nodes[chosen]!.functions[function]!))
  }

  /// Counts a call on `nodeID` as finished.
  mutating func finish(_ nodeID: String) {
    guard let entry = nodes[nodeID] else { return }
    nodes[nodeID]!.inFlight = max(0, entry.inFlight - 1)
  }

  /// Every function served, with its nodes, sorted by name.
  var functions: [FunctionInfo] {
    var byName: [String: FunctionInfo] = [:]
    for (nodeID, entry) in nodes {
      for descriptor in entry.functions.values {
        var info =
          byName[descriptor.name]
          ?? FunctionInfo(
            name: descriptor.name, description: descriptor.description, parameters: descriptor.parameters,
            streaming: descriptor.streaming, idempotent: descriptor.idempotent, nodes: [], available: false)
        info.nodes.append(nodeID)
        info.available = info.available || entry.inFlight < entry.maxWorkers
        byName[descriptor.name] = info
      }
    }
    return byName.values.map { info in
      var info = info
      info.nodes.sort()
      return info
    }.sorted { $0.name < $1.name }
  }

  /// The nodes serving `function`.
  func nodes(serving function: String) -> Set<String> {
    Set(nodes.compactMap { id, entry in entry.functions[function] == nil ? nil : id })
  }

  var inFlight: Int { nodes.values.reduce(0) { $0 + $1.inFlight } }

  /// Every connected node, sorted by id.
  var nodeInfos: [NodeInfo] {
    nodes.map { id, entry in
      NodeInfo(id: id, functions: entry.functions.keys.sorted(), maxWorkers: entry.maxWorkers, inFlight: entry.inFlight)
    }.sorted { $0.id < $1.id }
  }
}
