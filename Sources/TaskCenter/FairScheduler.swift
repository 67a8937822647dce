public import Foundation
import EasyRemoteCore

/// Picks the node for the next task, fairly: a pure state machine over the nodes, with time
/// passed in (`at:`) so every decision can be replayed in a test.
///
/// Among the idle nodes whose machine fits the task, the lowest ``score(waitSeconds:completed:)``
/// wins:
///
///     score = −wait_seconds + min(completed × 0.1, 10) − newcomer_bonus
///     newcomer_bonus = 20 − 2 × completed   while completed < 10, else 0
///
/// Waiting counts most; a node that has done much yields a little (at most 10 points, so
/// nobody is starved by their own success); a newcomer gets up to 20 points of head start over
/// its first 10 tasks. A node waiting longer than ``Configuration/starvationAfter`` (5 minutes)
/// goes before every other, longest wait first. MISSION.md writes the newcomer term with a
/// plus; with "lower wins" that would hold newcomers *back*, against the seed's stated intent
/// ("new nodes get priority for their first 10 tasks", labelled `high`) — we subtract it.
public struct FairScheduler: Sendable {
  public struct Configuration: Sendable {
    /// A node is offline when it has not sent a heartbeat for this long (seconds).
    public var heartbeatTimeout: Double
    /// A node waiting longer than this (seconds) is served first.
    public var starvationAfter: Double
    /// A node served within this long (seconds) is labelled `recently_served`.
    public var recentlyServedWindow: Double

    public init(heartbeatTimeout: Double = 90, starvationAfter: Double = 300, recentlyServedWindow: Double = 1800) {
      self.heartbeatTimeout = heartbeatTimeout
      self.starvationAfter = starvationAfter
      self.recentlyServedWindow = recentlyServedWindow
    }
  }

  /// How `GET /stats/nodes/queue` labels a node.
  public enum Priority: String, Codable, Sendable {
    case high, medium, low
  }

  public enum Reason: String, Codable, Sendable {
    /// Fewer than 5 tasks done.
    case newNodePriority = "new_node_priority"
    /// Waiting longer than ``Configuration/starvationAfter``.
    case longWait = "long_wait"
    /// In turn with the others.
    case fairRotation = "fair_rotation"
    /// Served within ``Configuration/recentlyServedWindow`` and not waiting long.
    case recentlyServed = "recently_served"
  }

  /// One idle node in the queue for work, best first.
  public struct QueueEntry: Sendable, Equatable {
    public var nodeID: String
    public var status: NodeStatus
    public var waitingSince: Date
    public var waitSeconds: Double
    public var priority: Priority
    public var completedTasks: Int
    public var reason: Reason
    public var score: Double
  }

  public let configuration: Configuration
  public private(set) var nodes: [String: SchedulerNode] = [:]

  public init(configuration: Configuration = Configuration()) {
    self.configuration = configuration
  }

  /// The score of a node that has waited `waitSeconds` and completed `completed` tasks (lower
  /// goes first), before the starvation rule.
  public static func score(waitSeconds: Double, completed: Int) -> Double {
    let contribution = min(Double(completed) * 0.1, 10)
    let newcomer = completed < 10 ? Double(20 - 2 * completed) : 0
    return -waitSeconds + contribution - newcomer
  }

  // MARK: Nodes

  /// A node joins (or comes back, keeping its counts). Returns whether it is new.
  @discardableResult
  ///
  /// - Parameters:
  ///   - expiresWithoutHeartbeats: missed heartbeats make it offline (nodes that pull over
  ///     HTTP); `false` for a node on a link, alive while its link is.
  public mutating func join(
    _ id: String, resources: NodeResources, slots: Int, thresholds: LoadThresholds = LoadThresholds(),
    expiresWithoutHeartbeats: Bool = true, at now: Date
  ) -> Bool {
    if var node = nodes[id] {
      node.resources = resources
      node.slots = max(1, slots)
      node.thresholds = thresholds
      node.expiresWithoutHeartbeats = expiresWithoutHeartbeats
      node.offline = false
      node.running = 0
      node.lastHeartbeat = now
      node.waitingSince = now
      nodes[id] = node
      return false
    }
    nodes[id] = SchedulerNode(
      id: id, resources: resources, thresholds: thresholds, load: NodeLoad(), slots: max(1, slots), running: 0,
      completed: 0, failed: 0, totalComputeTime: 0, joinedAt: now, lastHeartbeat: now, waitingSince: now,
      lastServedAt: nil, offline: false, expiresWithoutHeartbeats: expiresWithoutHeartbeats)
    return true
  }

  /// Gives a node the history it had before (kept in the store across gateway restarts).
  public mutating func restore(
    _ id: String, completed: Int, failed: Int = 0, totalComputeTime: Double = 0, lastServedAt: Date? = nil
  ) {
    nodes[id]?.completed = completed
    nodes[id]?.failed = failed
    nodes[id]?.totalComputeTime = totalComputeTime
    nodes[id]?.lastServedAt = lastServedAt
  }

  /// A heartbeat with the machine's current load. `false` for an unknown node, and for a
  /// node on a link that left (it comes back by joining, not by a heartbeat).
  @discardableResult
  public mutating func heartbeat(_ id: String, load: NodeLoad, resources: NodeResources? = nil, at now: Date) -> Bool {
    guard var node = nodes[id], node.expiresWithoutHeartbeats || !node.offline else { return false }
    let wasOffline = node.status(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .offline
    node.load = load
    if let resources { node.resources = resources }
    node.lastHeartbeat = now
    if wasOffline {
      node.offline = false
      node.waitingSince = now
    }
    nodes[id] = node
    return true
  }

  /// The node left (its link closed). It stays listed as offline with its history.
  public mutating func leave(_ id: String) {
    guard var node = nodes[id] else { return }
    node.offline = true
    node.running = 0
    nodes[id] = node
  }

  /// Marks nodes that missed their heartbeats as offline; returns their ids (to requeue their
  /// tasks and announce them).
  public mutating func expire(at now: Date) -> [String] {
    var expired: [String] = []
    for (id, node) in nodes where !node.offline && node.expiresWithoutHeartbeats {
      if now.timeIntervalSince(node.lastHeartbeat) > configuration.heartbeatTimeout {
        nodes[id]?.offline = true
        nodes[id]?.running = 0
        expired.append(id)
      }
    }
    return expired.sorted()
  }

  public func status(of id: String, at now: Date) -> NodeStatus? {
    nodes[id]?.status(at: now, heartbeatTimeout: configuration.heartbeatTimeout)
  }

  // MARK: Scheduling

  /// The idle nodes, best first, with their labels (`GET /stats/nodes/queue`).
  public func queue(at now: Date) -> [QueueEntry] {
    nodes.values.compactMap { node -> QueueEntry? in
      guard node.status(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .idle else { return nil }
      return entry(for: node, at: now)
    }
    .sorted { ($0.score, $0.nodeID) < ($1.score, $1.nodeID) }
  }

  /// Chooses the node for a task needing `request` and takes one of its slots; `nil` when no
  /// idle node fits.
  public mutating func assign(
    _ request: ResourceRequest = ResourceRequest(), where eligible: (SchedulerNode) -> Bool = { _ in true },
    at now: Date
  ) -> String? {
    guard let id = best(request, where: eligible, at: now)?.nodeID else { return nil }
    take(id, at: now)
    return id
  }

  /// The idle node ``assign(_:where:at:)`` would choose, with its score; nothing is taken.
  public func best(
    _ request: ResourceRequest = ResourceRequest(), where eligible: (SchedulerNode) -> Bool = { _ in true },
    at now: Date
  ) -> QueueEntry? {
    queue(at: now).first { entry in
      guard let node = nodes[entry.nodeID] else { return false }
      return node.resources.fits(request) && eligible(node)
    }
  }

  /// Takes a slot of node `id` for a task starting `now` (its wait starts again).
  public mutating func take(_ id: String, at now: Date) {
    nodes[id]?.running += 1
    nodes[id]?.waitingSince = now
    nodes[id]?.lastServedAt = now
  }

  /// The score of a node that has waited since `waitingSince` with `completed` tasks done —
  /// ``score(waitSeconds:completed:)``, or ahead of every other once it waited longer than
  /// ``Configuration/starvationAfter`` — for a node of this scheduler or another gateway's.
  public func rank(waitingSince: Date, completed: Int, at now: Date) -> Double {
    let wait = max(0, now.timeIntervalSince(waitingSince))
    // Starving nodes go before every other, longest wait first.
    return wait > configuration.starvationAfter ? -1e12 - wait : Self.score(waitSeconds: wait, completed: completed)
  }

  /// Gives back a slot taken by ``assign(_:where:at:)`` for a task that did not start.
  public mutating func unassign(_ id: String) {
    guard let running = nodes[id]?.running else { return }
    nodes[id]?.running = max(0, running - 1)
  }

  /// Whether some node is idle now.
  public func hasIdleNode(at now: Date) -> Bool {
    nodes.values.contains { $0.status(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .idle }
  }

  /// A task on `id` ended (after `computeTime` seconds); frees its slot.
  public mutating func release(_ id: String, computeTime: Double = 0, succeeded: Bool = true, at now: Date) {
    guard var node = nodes[id] else { return }
    node.running = max(0, node.running - 1)
    if succeeded { node.completed += 1 } else { node.failed += 1 }
    node.totalComputeTime += InputBounds.clamp(computeTime, InputBounds.executionSeconds)  // a node's word: never NaN or ∞
    nodes[id] = node
  }

  /// Whether some online node's machine could ever run a task needing `request` (`true` while
  /// no node is online: the task waits for one).
  public func couldRun(_ request: ResourceRequest, at now: Date) -> Bool {
    let online = nodes.values.filter {
      $0.status(at: now, heartbeatTimeout: configuration.heartbeatTimeout) != .offline
    }
    return online.isEmpty || online.contains { $0.resources.fits(request) }
  }

  private func entry(for node: SchedulerNode, at now: Date) -> QueueEntry {
    entry(nodeID: node.id, waitingSince: node.waitingSince, completed: node.completed, lastServedAt: node.lastServedAt, at: now)
  }

  /// The queue entry of an idle node with this history — one of this scheduler's, or another
  /// gateway's (``PoolNode``) — as ``queue(at:)`` lists it.
  public func entry(nodeID: String, waitingSince: Date, completed: Int, lastServedAt: Date?, at now: Date) -> QueueEntry {
    let wait = max(0, now.timeIntervalSince(waitingSince))
    let starving = wait > configuration.starvationAfter
    let score = rank(waitingSince: waitingSince, completed: completed, at: now)
    let priority: Priority
    let reason: Reason
    if completed < 5 {
      (priority, reason) = (.high, .newNodePriority)
    } else if starving {
      (priority, reason) = (.high, .longWait)
    } else if wait >= 60 {
      (priority, reason) = (.medium, .fairRotation)
    } else if let served = lastServedAt, now.timeIntervalSince(served) <= configuration.recentlyServedWindow {
      (priority, reason) = (.low, .recentlyServed)
    } else {
      (priority, reason) = (.low, .fairRotation)
    }
    return QueueEntry(
      nodeID: nodeID, status: .idle, waitingSince: waitingSince, waitSeconds: wait, priority: priority,
      completedTasks: completed, reason: reason, score: score)
  }
}
