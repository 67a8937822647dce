package import Foundation

/// Every compute node connected to the gateway, in one place: what it serves, its workers,
/// and the calls and tasks it is running. The one list of nodes at the gateway.
///
/// A pure value type with time passed in (`at:`): the gateway keeps it in its `Mutex` and
/// feeds it what happens; routing a call and reserving a worker for a task are its
/// transitions, so the two kinds of work share one capacity:
///
/// - A task gets a worker only while the node's calls and tasks together are fewer than its
///   `maxWorkers` (``reserveTask(on:)``).
/// - A call goes to a node with a free worker first (calls and tasks counted); when every
///   node serving the function is full, the least busy one takes it and queues it.
/// - A node that leaves is gone from both at once (``leave(_:)`` returns what it was running).
package struct Membership: Sendable {
  /// How the next node is chosen among those serving a function.
  package enum Strategy: String, Sendable, Codable {
    /// The node with the least work in flight, calls and tasks (ties: the one picked least recently).
    case leastInFlight = "least_in_flight"
    /// Each serving node in turn.
    case roundRobin = "round_robin"
  }

  /// One connected compute node.
  package struct Member: Sendable, Equatable {
    package let id: String
    package var functions: [String: FunctionDescriptor]
    package var maxWorkers: Int
    /// Calls routed to it and not yet answered (queued on the node included).
    package var calls = 0
    /// Tasks the task center is running on it.
    package var tasks = 0
    package var joinedAt: Date
    var lastPicked: UInt64 = 0

    /// Calls and tasks in flight.
    package var busy: Int { calls + tasks }
    package var hasFreeWorker: Bool { busy < maxWorkers }
  }

  /// A call's node and the function as that node declared it.
  package struct Route: Sendable, Equatable {
    package var nodeID: String
    package var descriptor: FunctionDescriptor
  }

  package var strategy: Strategy
  package private(set) var members: [String: Member] = [:]
  private var turn: UInt64 = 0
  private var cursor: [String: Int] = [:]

  package init(strategy: Strategy = .leastInFlight) { self.strategy = strategy }

  // MARK: Joining and leaving

  /// A node announced itself (first time, after reconnecting, or with new functions).
  /// Work already counted on it stays counted. Returns whether it is new.
  @discardableResult
  package mutating func join(_ announcement: NodeAnnouncement, at now: Date) -> Bool {
    let functions = Dictionary(announcement.functions.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    if var member = members[announcement.nodeID] {
      member.functions = functions
      member.maxWorkers = InputBounds.clamp(announcement.maxWorkers, InputBounds.slots)
      members[announcement.nodeID] = member
      return false
    }
    members[announcement.nodeID] = Member(
      id: announcement.nodeID, functions: functions, maxWorkers: InputBounds.clamp(announcement.maxWorkers, InputBounds.slots), joinedAt: now)
    return true
  }

  /// Those of `functions` that no member serves.
  package func unserved(_ functions: some Sequence<String>) -> [String] {
    functions.filter { function in !members.values.contains { $0.functions[function] != nil } }
  }

  /// The node's link closed: it is gone from routing and scheduling. Returns it as it was
  /// (with the calls and tasks it was running), `nil` for a peer that never joined.
  @discardableResult
  package mutating func leave(_ nodeID: String) -> Member? {
    return members.removeValue(forKey: nodeID)
  }

  // MARK: Calls

  /// Picks the node for a call of `function` and counts the call on it.
  ///
  /// Nodes with a free worker go first; when all are full, the least busy takes the call
  /// (it queues it). `target` restricts the choice to one node; `excluding` skips nodes
  /// already tried.
  package mutating func routeCall(
    _ function: String, target: String? = nil, excluding: Set<String> = []
  ) -> Result<Route, EasyRemoteError> {
    var candidates = members.values.filter { $0.functions[function] != nil && !excluding.contains($0.id) }
    if let target {
      candidates = candidates.filter { $0.id == target }
      if candidates.isEmpty {
        let message =
          members[target] == nil ? "node '\(target)' is not connected" : "node '\(target)' does not serve '\(function)'"
        return .failure(EasyRemoteError(code: .functionNotFound, message: message, function: function))
      }
    }
    guard !candidates.isEmpty else {
      let message = excluding.isEmpty ? "no node serves '\(function)'" : "no other node serves '\(function)'"
      return .failure(EasyRemoteError(code: .functionNotFound, message: message, function: function))
    }
    let free = candidates.filter(\.hasFreeWorker)
    let pool = free.isEmpty ? candidates : free
    let chosen: String
    switch strategy {
    case .leastInFlight:
      chosen = pool.min { a, b in (a.busy, a.lastPicked, a.id) < (b.busy, b.lastPicked, b.id) }!.id
    case .roundRobin:
      let ids = pool.map(\.id).sorted()
      let next = cursor[function, default: 0] % ids.count
      cursor[function] = next + 1
      chosen = ids[next]
    }
    turn += 1
    members[chosen]!.calls += 1
    members[chosen]!.lastPicked = turn
    return .success(Route(nodeID: chosen, descriptor: members[chosen]!.functions[function]!))
  }

  /// A call on `nodeID` was answered (or failed). Returns whether that freed the node's
  /// only worker left for a task (it was full, now it is not): the one moment a waiting task
  /// can start there.
  @discardableResult
  package mutating func finishCall(on nodeID: String) -> Bool {
    guard let member = members[nodeID] else { return false }
    members[nodeID]!.calls = max(0, member.calls - 1)
    return !member.hasFreeWorker && members[nodeID]!.hasFreeWorker
  }

  // MARK: Tasks

  /// Takes a worker of `nodeID` for a task; `false` when the node is gone or its calls and
  /// tasks already fill its workers.
  package mutating func reserveTask(on nodeID: String) -> Bool {
    guard let member = members[nodeID], member.hasFreeWorker else { return false }
    members[nodeID]!.tasks += 1
    return true
  }

  /// A task on `nodeID` ended; its worker is free again.
  package mutating func finishTask(on nodeID: String) {
    guard let tasks = members[nodeID]?.tasks else { return }
    members[nodeID]!.tasks = max(0, tasks - 1)
  }

  // MARK: Views

  /// Whether `nodeID` is connected and has a free worker.
  package func hasFreeWorker(_ nodeID: String) -> Bool { members[nodeID]?.hasFreeWorker ?? false }

  /// Every function served, with its nodes, sorted by name.
  package var functions: [FunctionInfo] {
    var byName: [String: FunctionInfo] = [:]
    for member in members.values {
      for descriptor in member.functions.values {
        var info =
          byName[descriptor.name]
          ?? FunctionInfo(
            name: descriptor.name, description: descriptor.description, parameters: descriptor.parameters,
            streaming: descriptor.streaming, idempotent: descriptor.idempotent, nodes: [], available: false)
        info.nodes.append(member.id)
        info.available = info.available || member.hasFreeWorker
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
  package func nodes(serving function: String) -> Set<String> {
    Set(members.values.compactMap { $0.functions[function] == nil ? nil : $0.id })
  }

  /// Calls in flight, all nodes together.
  package var callsInFlight: Int { members.values.reduce(0) { $0 + $1.calls } }

  /// Every connected node, sorted by id.
  package var nodeInfos: [NodeInfo] {
    members.values.map { member in
      NodeInfo(
        id: member.id, functions: member.functions.keys.sorted(), maxWorkers: member.maxWorkers, inFlight: member.calls,
        tasks: member.tasks)
    }.sorted { $0.id < $1.id }
  }
}
