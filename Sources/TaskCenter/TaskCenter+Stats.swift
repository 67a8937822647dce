package import EasyRemoteCore
import Foundation

/// The `stats` event: what changes all the time and no other event carries — calls by
/// function, calls in flight, tasks by status, each node's load and running work — sent to
/// `/ws/updates` subscribers every `statsInterval` while there are any (the console charts
/// it; nothing polls).
package struct StatsTick: Encodable, Sendable {
  /// One function's calls, failures and average duration (also `GET /stats/gateway`'s).
  package struct Function: Encodable, Sendable {
    var calls: Int
    var failures: Int
    var avgMS: Double

    package init(_ stats: GatewayStats.FunctionStats) {
      calls = stats.calls
      failures = stats.failures
      avgMS = stats.averageMilliseconds
    }

    enum CodingKeys: String, CodingKey {
      case calls, failures
      case avgMS = "avg_ms"
    }
  }

  struct Node: Encodable {
    var nodeID: String
    var status: NodeStatus
    var load: NodeLoad
    var running: Int
    var slots: Int
    var calls: Int
    enum CodingKeys: String, CodingKey {
      case nodeID = "node_id"
      case status, load, running, slots, calls
    }
  }

  /// One idle node in the fair queue, in order: who gets the next task, and why.
  struct QueueEntry: Encodable {
    var nodeID: String
    var priority: String
    var reason: String
    var waitTimeSeconds: Double
    var score: Double
    enum CodingKeys: String, CodingKey {
      case nodeID = "node_id"
      case priority, reason
      case waitTimeSeconds = "wait_time_seconds"
      case score
    }
  }

  var time: Date
  var callsTotal: Int
  var callsFailed: Int
  var callsInFlight: Int
  var functions: [String: Function]
  var tasks: [String: Int]
  var queueLength: Int
  var nodes: [Node]
  var queue: [QueueEntry]

  enum CodingKeys: String, CodingKey {
    case time
    case callsTotal = "calls_total"
    case callsFailed = "calls_failed"
    case callsInFlight = "calls_in_flight"
    case functions, tasks
    case queueLength = "queue_length"
    case nodes, queue
  }
}

extension TaskCenter {
  /// The figures of a `stats` event now.
  package func statsTick() async -> StatsTick {
    let gateway = server.stats()
    let counts = (try? await store.counts()) ?? [:]
    return StatsTick(
      time: now(), callsTotal: gateway.totalRequests, callsFailed: gateway.failedRequests, callsInFlight: gateway.inFlight,
      functions: gateway.perFunction.mapValues(StatsTick.Function.init),
      tasks: Dictionary(uniqueKeysWithValues: TaskStatus.allCases.map { ($0.rawValue, counts[$0] ?? 0) }),
      queueLength: counts[.queued] ?? 0,
      nodes: nodes().map {
        StatsTick.Node(
          nodeID: $0.id, status: $0.status, load: $0.load, running: $0.tasks, slots: $0.slots, calls: $0.inFlight)
      },
      queue: await queue().map {
        StatsTick.QueueEntry(
          nodeID: $0.nodeID, priority: $0.priority.rawValue, reason: $0.reason.rawValue,
          waitTimeSeconds: ($0.waitSeconds * 10).rounded() / 10, score: ($0.score * 100).rounded() / 100)
      })
  }

  func statsLoop() async {
    while !Task.isCancelled {
      try? await clock.sleep(for: configuration.statsInterval)
      guard eventSubscriberCount > 0 else { continue }
      server.publish("stats", await statsTick(), encoder: TaskCenterJSON.encoder)
    }
  }
}
