public import Foundation
public import EasyRemoteCore

/// Picks the node for the next task, fairly: a pure ranking policy over the gateway's members
/// (``Membership``, the one registry of nodes), as routing a call is, with time passed in
/// (`at:`) so every decision can be replayed in a test.
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

  package init(configuration: Configuration = Configuration()) {
    self.configuration = configuration
  }

  /// The score of a node that has waited `waitSeconds` and completed `completed` tasks (lower
  /// goes first), before the starvation rule.
  package static func score(waitSeconds: Double, completed: Int) -> Double {
    let contribution = min(Double(completed) * 0.1, 10)
    let newcomer = completed < 10 ? Double(20 - 2 * completed) : 0
    return -waitSeconds + contribution - newcomer
  }

  // MARK: Ranking the members

  /// The idle task nodes among `members`, best first, with their labels (`GET /stats/nodes/queue`).
  package func queue(_ members: some Sequence<Membership.Member>, at now: Date) -> [QueueEntry] {
    members.compactMap { member -> QueueEntry? in
      guard member.taskStatus(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .idle else { return nil }
      return entry(for: member, at: now)
    }
    .sorted { ($0.score, $0.nodeID) < ($1.score, $1.nodeID) }
  }

  /// The idle node among `members` whose machine fits `request` and that `eligible` allows,
  /// with its score: the one the next such task goes to. Nothing is taken.
  package func best(
    _ request: ResourceRequest = ResourceRequest(), among members: some Sequence<Membership.Member>,
    where eligible: (Membership.Member) -> Bool = { _ in true }, at now: Date
  ) -> QueueEntry? {
    var best: QueueEntry?
    for member in members
    where member.taskStatus(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .idle
      && member.worker.map({ $0.resources.fits(request) }) == true && eligible(member)
    {
      let candidate = entry(for: member, at: now)
      if best.map({ (candidate.score, candidate.nodeID) < ($0.score, $0.nodeID) }) ?? true { best = candidate }
    }
    return best
  }

  /// Whether some member is idle now.
  package func hasIdleNode(_ members: some Sequence<Membership.Member>, at now: Date) -> Bool {
    members.contains { $0.taskStatus(at: now, heartbeatTimeout: configuration.heartbeatTimeout) == .idle }
  }

  /// Whether some online task node's machine could ever run a task needing `request` (`true`
  /// while none is online: the task waits for one).
  package func couldRun(_ request: ResourceRequest, among members: some Sequence<Membership.Member>, at now: Date) -> Bool {
    var anyOnline = false
    for member in members where member.taskStatus(at: now, heartbeatTimeout: configuration.heartbeatTimeout) != .offline {
      if member.worker?.resources.fits(request) == true { return true }
      anyOnline = true
    }
    return !anyOnline
  }

  /// The score of a node that has waited since `waitingSince` with `completed` tasks done —
  /// ``score(waitSeconds:completed:)``, or ahead of every other once it waited longer than
  /// ``Configuration/starvationAfter`` — for a node of this scheduler or another gateway's.
  package func rank(waitingSince: Date, completed: Int, at now: Date) -> Double {
    let wait = max(0, now.timeIntervalSince(waitingSince))
    // Starving nodes go before every other, longest wait first.
    return wait > configuration.starvationAfter ? -1e12 - wait : Self.score(waitSeconds: wait, completed: completed)
  }

  private func entry(for member: Membership.Member, at now: Date) -> QueueEntry {
    entry(
      nodeID: member.id, waitingSince: member.history.waitingSince, completed: member.history.completed,
      lastServedAt: member.history.lastServedAt, at: now)
  }

  /// The queue entry of an idle node with this history — one of this scheduler's, or another
  /// gateway's (``PoolNode``) — as ``queue(at:)`` lists it.
  package func entry(nodeID: String, waitingSince: Date, completed: Int, lastServedAt: Date?, at now: Date) -> QueueEntry {
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

extension NodeResources {
  /// Whether a task asking for `request` fits on this machine at all.
  package func fits(_ request: ResourceRequest) -> Bool {
    request.cpu <= Double(cores) && request.memoryMB <= memoryMB
  }
}
