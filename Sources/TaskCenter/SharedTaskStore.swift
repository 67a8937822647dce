public import EasyRemoteCore
public import Foundation

/// A task store several gateways share (``PostgresTaskStore``). Each gateway's store has a
/// ``gatewayID`` of its own: the tasks it starts are tagged with it, and it holds a *lease* —
/// a row the database expires unless the gateway renews it. The running tasks of a gateway
/// whose lease ran out go back to the queue (``reapExpiredLeases(reason:at:)``, which every
/// live gateway runs), so a gateway that dies loses nothing and a restarting one (with a new
/// id) never requeues what another live gateway is running.
///
/// On such a store ``TaskStore/requeueRunning(on:reason:at:)`` touches this gateway's tasks
/// only, and every change is announced to the others (``notices()``).
package protocol SharedTaskStore: TaskStore {
  /// This gateway's id, unique per process.
  var gatewayID: String { get }

  /// Takes or renews this gateway's lease until `duration` from now (the database's clock),
  /// with what it publishes (where it is, what its nodes serve, its nodes); with `announce`,
  /// the other gateways are told at once (a ``TaskNotice/gateways`` notice). Returns `false`
  /// when the lease had been lost (it expired and its tasks may have been requeued) and was
  /// taken anew.
  @discardableResult
  func renewLease(for duration: Duration, publishing: GatewayPublication, announce: Bool) async throws -> Bool

  /// Requeues the running tasks of gateways whose lease expired (and those started before
  /// leases existed), and forgets those gateways. Returns the tasks changed.
  func reapExpiredLeases(reason: String, at date: Date) async throws -> [TaskRecord]

  /// Gives up this gateway's lease (at a graceful stop, after its tasks were handed back).
  func releaseLease() async throws

  /// The live gateways on the database, by id, with their addresses.
  func gateways() async throws -> [GatewayLease]

  /// Writes this gateway's nodes as its fair scheduler sees them now (those that left with
  /// `online` false): the other gateways' dispatchers weigh them against their own nodes
  /// (``QueueOffer/others``). A row another gateway took over (the node moved there) is
  /// changed only by a node online here.
  func publishNodes(_ nodes: [PoolNode]) async throws

  /// The nodes of every gateway with a live lease that could take a task now (this one's too),
  /// as the store records them.
  func idleNodes() async throws -> [PoolNode]

  /// Node `id` as the store last recorded it, on any gateway (its history goes along when it
  /// joins another); `nil` if it never joined one.
  func poolNode(_ id: String) async throws -> PoolNode?

  /// Every change to a task's status, by any gateway, as it is committed (each subscriber has
  /// its own stream). After a gap (the notification connection was lost and came back) a
  /// ``TaskNotice/resync`` comes first: anything may have changed meanwhile.
  func notices() -> AsyncStream<TaskNotice>
}

/// What a gateway publishes with its lease.
package struct GatewayPublication: Sendable, Equatable {
  /// Where other gateways reach it (`host:port`).
  package var address: String?
  /// The functions its nodes serve, and the ids of its nodes (calls are forwarded by these).
  package var functions: [String]
  package var nodes: [String]
  /// Its task-center nodes as `GET /nodes` shows them, and its functions as `GET /functions`.
  package var nodeInfos: [NodeInfo]
  package var functionInfos: [FunctionInfo]
  /// Its connected nodes as the clients' `listNodes` shows them.
  package var memberInfos: [NodeInfo]

  package init(
    address: String?, functions: [String] = [], nodes: [String] = [], nodeInfos: [NodeInfo] = [],
    functionInfos: [FunctionInfo] = [], memberInfos: [NodeInfo] = []
  ) {
    self.address = address
    self.functions = functions
    self.nodes = nodes
    self.nodeInfos = nodeInfos
    self.functionInfos = functionInfos
    self.memberInfos = memberInfos
  }
}

/// One gateway's lease on a shared store, with what it last published.
public struct GatewayLease: Sendable, Equatable {
  public var id: String
  public var startedAt: Date
  public var leaseUntil: Date
  package var published: GatewayPublication

  public var address: String? { published.address }
  public var functions: [String] { published.functions }
  public var nodes: [String] { published.nodes }
}

/// A change announced by a shared store.
package enum TaskNotice: Sendable, Equatable {
  /// Task `id` was submitted (it is queued) through `gateway`.
  case created(id: String, gateway: String)
  /// Task `id` now has `status`; `gateway` made the change.
  case changed(id: String, status: TaskStatus, gateway: String)
  /// Notices may have been missed.
  case resync
  /// A gateway published what its nodes serve (``SharedTaskStore/renewLease``): `gateway`.
  case gateways(gateway: String)
  /// Another gateway left queued tasks to `gateway`'s nodes (the fair choice across gateways):
  /// that gateway dispatches.
  case wake(gateway: String)
}

extension SharedTaskStore {
  /// Renews the lease publishing nothing (no functions, no nodes).
  @discardableResult
  package func renewLease(for duration: Duration, address: String?) async throws -> Bool {
    try await renewLease(for: duration, publishing: GatewayPublication(address: address), announce: false)
  }
}
