package import Foundation
package import Sandbox

/// Every compute node at the gateway, in one place: what it serves, its workers, the calls
/// and tasks it is running, what it offers the task center (its machine, task slots, load
/// thresholds, sandbox), its load and its history of tasks. The one registry of nodes — for
/// nodes on a link and nodes that pull tasks over HTTP alike.
///
/// A pure value type with time passed in (`at:`): the gateway keeps it in its `Mutex` and
/// feeds it what happens; routing a call and taking a worker for a task are its transitions,
/// so the two kinds of work share one capacity, and every fact is counted once:
///
/// - A task gets a worker only while the node's calls and tasks together are fewer than its
///   `maxWorkers` (and its tasks fewer than its task slots) (``take(_:at:)``).
/// - A call goes to a node with a free worker first (calls and tasks counted); when every
///   node serving the function is full, the least busy one takes it and queues it.
/// - A node that leaves is gone from both at once (``leave(_:)`` returns what it was running);
///   a task node's record stays in ``departed`` (offline, with its history) until it comes back.
package struct Membership: Sendable {
  /// How the next node is chosen among those serving a function.
  package enum Strategy: String, Sendable, Codable {
    /// The node with the least work in flight, calls and tasks (ties: the one picked least recently).
    case leastInFlight = "least_in_flight"
    /// Each serving node in turn.
    case roundRobin = "round_robin"
  }

  /// How the gateway reaches a node.
  package enum Attachment: Sendable, Equatable {
    /// Over the link the node dialled: calls and tasks are pushed to it; alive while the link is.
    case link
    /// It pulls code tasks over HTTP (`/internal/…`); alive while its heartbeats come.
    case pull
  }

  /// What a node offers the task center: the task section of its announcement
  /// (``NodeAnnouncement/worker``), kept in its record.
  package struct Worker: Codable, Sendable, Equatable {
    package var resources: NodeResources
    /// Tasks at once at most (within its `maxWorkers`, which calls share).
    package var taskSlots: Int
    /// Above these its machine is its owner's, and gets no tasks.
    package var thresholds: LoadThresholds
    /// Whether it runs code tasks (it has an interpreter).
    package var runsCode: Bool
    /// How its code tasks are isolated (`nil`: it runs none, or did not say).
    package var isolation: SandboxIsolation?

    package init(
      resources: NodeResources, taskSlots: Int, thresholds: LoadThresholds = LoadThresholds(), runsCode: Bool,
      isolation: SandboxIsolation? = nil
    ) {
      self.resources = resources
      self.taskSlots = InputBounds.clamp(taskSlots, InputBounds.slots)
      self.thresholds = thresholds
      self.runsCode = runsCode
      self.isolation = isolation
    }

    enum CodingKeys: String, CodingKey {
      case resources
      case taskSlots = "slots"
      case thresholds, runsCode, isolation
    }
  }

  /// What an announcement changed.
  package struct JoinChange: Sendable, Equatable {
    /// The node is new on its link (or back after its link dropped).
    package var isNew: Bool
    /// It offers tasks now and did not before (``Member/worker``).
    package var joinedTasks: Bool
    /// It offered tasks and does not any more.
    package var leftTasks: Bool
  }

  /// A node's tasks so far, kept while it is away (the fair scheduler weighs it).
  package struct History: Sendable, Equatable {
    package var completed = 0
    package var failed = 0
    /// Seconds of task work done, all tasks together.
    package var computeSeconds = 0.0
    /// Since when it has been waiting for a task (its join, or its last task's start).
    package var waitingSince: Date
    package var lastServedAt: Date?

    package init(
      completed: Int = 0, failed: Int = 0, computeSeconds: Double = 0, waitingSince: Date, lastServedAt: Date? = nil
    ) {
      self.completed = completed
      self.failed = failed
      self.computeSeconds = computeSeconds
      self.waitingSince = waitingSince
      self.lastServedAt = lastServedAt
    }
  }

  /// One compute node.
  package struct Member: Sendable, Equatable {
    package let id: String
    package var attachment: Attachment
    package var functions: [String: FunctionDescriptor]
    package var maxWorkers: Int
    /// Calls routed to it and not yet answered (queued on the node included).
    package var calls = 0
    /// Tasks running on it.
    package var tasks = 0
    package var joinedAt: Date
    /// What it offers the task center; `nil` until it joins it (calls only).
    package var worker: Worker?
    /// Its machine's load, as its last heartbeat said.
    package var load = NodeLoad()
    /// Its own counters, as its last heartbeat said.
    package var stats: NodeStats?
    package var lastHeartbeat: Date
    package var history: History
    /// `false` once it left (a record in ``Membership/departed``).
    package var online = true
    var lastPicked: UInt64 = 0

    init(id: String, attachment: Attachment, functions: [String: FunctionDescriptor], maxWorkers: Int, at now: Date) {
      self.id = id
      self.attachment = attachment
      self.functions = functions
      self.maxWorkers = InputBounds.clamp(maxWorkers, InputBounds.slots)
      self.joinedAt = now
      self.lastHeartbeat = now
      self.history = History(waitingSince: now)
    }

    /// Calls and tasks in flight.
    package var busy: Int { calls + tasks }
    package var hasFreeWorker: Bool { busy < maxWorkers }
    package var isLinked: Bool { online && attachment == .link }

    /// Whether a task may take one of its workers now: it joined the task center, has a task
    /// slot and a worker free, and its machine is under its thresholds.
    package var canTakeTask: Bool {
      guard online, let worker else { return false }
      return tasks < worker.taskSlots && hasFreeWorker && worker.thresholds.allows(load)
    }

    /// idle (it could take a task now), busy, or offline (gone, or — pulling over HTTP —
    /// silent for longer than `heartbeatTimeout` seconds).
    package func taskStatus(at now: Date, heartbeatTimeout: Double) -> NodeStatus {
      if !online || worker == nil { return .offline }
      if attachment == .pull && now.timeIntervalSince(lastHeartbeat) > heartbeatTimeout { return .offline }
      return canTakeTask ? .idle : .busy
    }
  }

  /// A call's node and the function as that node declared it.
  package struct Route: Sendable, Equatable {
    package var nodeID: String
    package var descriptor: FunctionDescriptor
  }

  /// Records of task nodes that left kept at most (the oldest departure goes first).
  package static let departedLimit = 4096

  package var strategy: Strategy
  /// The connected nodes.
  package private(set) var members: [String: Member] = [:]
  /// Task nodes that left, offline, with their history (``departedLimit`` at most).
  package private(set) var departed: [String: Member] = [:]
  private var turn: UInt64 = 0
  private var cursor: [String: Int] = [:]

  package init(strategy: Strategy = .leastInFlight) { self.strategy = strategy }

  // MARK: Joining and leaving

  /// A node announced itself over its link — the one join: first time, after reconnecting,
  /// with new functions, or offering tasks (``NodeAnnouncement/worker``) or no longer. Work
  /// already counted on it stays counted; a node that left earlier gets its history back.
  @discardableResult
  package mutating func join(_ announcement: NodeAnnouncement, at now: Date) -> JoinChange {
    let id = announcement.nodeID
    let functions = Dictionary(announcement.functions.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    var change = JoinChange(isNew: false, joinedTasks: false, leftTasks: false)
    if var member = members[id] {
      member.functions = functions
      member.maxWorkers = InputBounds.clamp(announcement.maxWorkers, InputBounds.slots)
      if member.attachment == .pull {
        // A pulling node's id, now on a link: the link is who it is from now on.
        member.attachment = .link
        member.worker = nil
      }
      members[id] = member
    } else {
      var member = Member(id: id, attachment: .link, functions: functions, maxWorkers: announcement.maxWorkers, at: now)
      member.history = returning(id, at: now)
      members[id] = member
      change.isNew = true
    }
    if let worker = announcement.worker {
      change.joinedTasks = joinTasks(id, worker, at: now) == true
    } else {
      change.leftTasks = leaveTasks(id)
    }
    return change
  }

  /// Linked node `id` offers tasks (its announcement's worker section). A node new to tasks
  /// waits for one from now; one that offered already keeps its place in the queue. `nil`
  /// for a node that is not connected; otherwise whether it was not a task node before.
  package mutating func joinTasks(_ id: String, _ worker: Worker, at now: Date) -> Bool? {
    guard var member = members[id], member.attachment == .link else { return nil }
    let wasWorker = member.worker != nil
    departed.removeValue(forKey: id)  // it left the tasks but kept its link: its record is here
    member.worker = worker
    if !wasWorker {
      member.lastHeartbeat = now
      member.history.waitingSince = now
    }
    members[id] = member
    return !wasWorker
  }

  /// Linked node `id` stops taking tasks but keeps its link (and its calls): its record,
  /// offline, is kept in ``departed``. `false` when it was not a task node.
  package mutating func leaveTasks(_ id: String) -> Bool {
    guard let member = members[id], member.worker != nil else { return false }
    depart(member)
    members[id]!.worker = nil
    return true
  }

  /// Keeps `member`'s record, offline and idle, in ``departed`` (the oldest goes past the limit).
  private mutating func depart(_ member: Member) {
    var record = member
    record.online = false
    record.calls = 0
    record.tasks = 0
    departed[record.id] = record
    if departed.count > Self.departedLimit,
      let oldest = departed.values.min(by: { ($0.lastHeartbeat, $0.id) < ($1.lastHeartbeat, $1.id) })
    {
      departed.removeValue(forKey: oldest.id)
    }
  }

  /// A heartbeat of a node that pulls its tasks over HTTP: the first (or the first after it
  /// went silent) joins it with `slots` workers. Returns whether it joined now. A node on a
  /// link is not touched (`false`): nobody speaks for it over HTTP.
  package mutating func pullHeartbeat(
    _ id: String, resources: NodeResources, load: NodeLoad, slots: Int, heartbeatTimeout: Double, at now: Date
  ) -> Bool {
    if var member = members[id] {
      guard member.attachment == .pull else { return false }
      let silent = member.taskStatus(at: now, heartbeatTimeout: heartbeatTimeout) == .offline
      member.worker?.resources = resources
      member.load = load
      member.lastHeartbeat = now
      if silent { member.history.waitingSince = now }
      members[id] = member
      return silent
    }
    var member = Member(id: id, attachment: .pull, functions: [:], maxWorkers: slots, at: now)
    member.worker = Worker(resources: resources, taskSlots: slots, runsCode: true)
    member.load = load
    member.history = returning(id, at: now)
    members[id] = member
    return true
  }

  /// The history of a node joining now: what it had when it left, its wait starting again.
  private mutating func returning(_ id: String, at now: Date) -> History {
    guard var history = departed.removeValue(forKey: id)?.history else { return History(waitingSince: now) }
    history.waitingSince = now
    return history
  }

  /// A linked node's heartbeat carried its report (load, counters). `false` for a node that
  /// is not connected over a link.
  @discardableResult
  package mutating func report(_ id: String, _ report: NodeReport, at now: Date) -> Bool {
    guard var member = members[id], member.attachment == .link else { return false }
    member.load = report.load
    member.stats = report.stats ?? member.stats
    member.lastHeartbeat = now
    members[id] = member
    return true
  }

  /// Those of `functions` that no member serves.
  package func unserved(_ functions: some Sequence<String>) -> [String] {
    functions.filter { function in !members.values.contains { $0.functions[function] != nil } }
  }

  /// The node left (its link closed, it said goodbye, or it stopped pulling): it is gone from
  /// routing and scheduling. Returns it as it was (with the calls and tasks it was running),
  /// `nil` for a peer that never joined. A task node's record stays in ``departed``.
  @discardableResult
  package mutating func leave(_ nodeID: String) -> Member? {
    guard let member = members.removeValue(forKey: nodeID) else { return nil }
    if member.worker != nil { depart(member) }
    return member
  }

  /// Takes out the pulling nodes silent for longer than `heartbeatTimeout` seconds; returns
  /// their ids, sorted (their tasks are to be queued again).
  package mutating func expire(heartbeatTimeout: Double, at now: Date) -> [String] {
    let silent = members.values.filter {
      $0.attachment == .pull && now.timeIntervalSince($0.lastHeartbeat) > heartbeatTimeout
    }.map(\.id).sorted()
    for id in silent { leave(id) }
    return silent
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
          members[target]?.isLinked != true
          ? "node '\(target)' is not connected" : "node '\(target)' does not serve '\(function)'"
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

  /// Takes a worker of task node `nodeID` for a task starting `now` (``Member/canTakeTask``),
  /// and its wait for work starts again; `false` when it cannot take one.
  package mutating func take(_ nodeID: String, at now: Date) -> Bool {
    guard members[nodeID]?.canTakeTask == true else { return false }
    members[nodeID]!.tasks += 1
    members[nodeID]!.history.waitingSince = now
    members[nodeID]!.history.lastServedAt = now
    return true
  }

  /// A task on `nodeID` ended, or did not start after all; its worker is free again.
  package mutating func finishTask(on nodeID: String) {
    guard let tasks = members[nodeID]?.tasks else { return }
    members[nodeID]!.tasks = max(0, tasks - 1)
  }

  /// How a task on `nodeID` ended, for its history (the node may have left meanwhile).
  package mutating func recordTask(on nodeID: String, computeSeconds: Double, succeeded: Bool) {
    func add(_ history: inout History) {
      if succeeded { history.completed += 1 } else { history.failed += 1 }
      history.computeSeconds += InputBounds.clamp(computeSeconds, InputBounds.executionSeconds)  // a node's word
    }
    if members[nodeID] != nil { add(&members[nodeID]!.history) } else if departed[nodeID] != nil { add(&departed[nodeID]!.history) }
  }

  /// Gives a node the history it built elsewhere (another gateway on a shared store), when
  /// that one is longer than what it has here.
  package mutating func restore(_ nodeID: String, _ history: History) {
    guard let member = members[nodeID] else { return }
    let here = member.history
    guard history.completed + history.failed >= here.completed + here.failed else { return }
    members[nodeID]!.history = History(
      completed: history.completed, failed: history.failed, computeSeconds: history.computeSeconds,
      waitingSince: here.waitingSince, lastServedAt: history.lastServedAt ?? here.lastServedAt)
  }

  // MARK: Views

  /// Whether `nodeID` is connected and has a free worker.
  package func hasFreeWorker(_ nodeID: String) -> Bool { members[nodeID]?.hasFreeWorker ?? false }

  /// The nodes on links (those that pull over HTTP are the task center's alone).
  package var linked: some Collection<Member> { members.values.filter { $0.attachment == .link } }

  /// Every node that joined the task center, online or not, sorted by id.
  package var taskNodes: [Member] {
    (members.values.filter { $0.worker != nil } + departed.values).sorted { $0.id < $1.id }
  }

  /// A task node by id, online or not.
  package func taskNode(_ id: String) -> Member? {
    if let member = members[id], member.worker != nil { return member }
    return departed[id]
  }

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

  /// Every node on a link, sorted by id, as it is at `now`.
  package func nodeInfos(at now: Date) -> [NodeInfo] {
    linked.map { $0.info(at: now) }.sorted { $0.id < $1.id }
  }
}
