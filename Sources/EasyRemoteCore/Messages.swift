import NodeComm

// What clients, the gateway and compute nodes say to each other, as node-layer methods.

/// Methods of the gateway and of compute nodes.
enum Methods {
  static let announce = "er.gateway.announce"
  static let execute = "er.gateway.execute"
  static let stream = "er.gateway.stream"
  static let functions = "er.gateway.functions"
  static let stats = "er.gateway.stats"
  static let health = "er.gateway.health"
  static let nodes = "er.gateway.nodes"
  static let run = "er.node.run"
  static let runStream = "er.node.stream"
  /// Call metadata naming the function and the target node of an `execute`.
  static let functionKey = "er-function"
  static let nodeKey = "er-node"
  /// Call metadata of a call one gateway forwarded to another (which runs it on its own
  /// nodes only, never forwarding it again): the forwarding gateway's address.
  static let forwardedKey = "er-forwarded-by"
  /// Items a stream may have in flight unread on each hop (client ← gateway ← node).
  static let streamWindow = 256
}

/// One call of a function: positional and keyword arguments as JSON values.
package struct Invocation: Codable, Sendable {
  package var function: String
  package var args: [JSONValue]
  package var kwargs: [String: JSONValue]
  /// Run on this node only.
  package var node: String?

  package init(function: String, args: [JSONValue], kwargs: [String: JSONValue] = [:], node: String? = nil) {
    self.function = function
    self.args = args
    self.kwargs = kwargs
    self.node = node
  }

  /// How a client sends it: MessagePack when it carries bytes (they travel as they are, and
  /// the node answers in kind), the default (JSON) otherwise.
  package var serializer: String? {
    args.contains { $0.containsBytes } || kwargs.values.contains { $0.containsBytes } ? BinarySerializer.name : nil
  }
}

/// Just the function an invocation names (a node reads it when the call's metadata does not).
struct InvocationHeader: Decodable {
  var function: String
}

/// A function as a node registers it.
public struct FunctionDescriptor: Codable, Sendable, Equatable {
  public var name: String
  public var description: String
  public var parameters: [String]
  public var streaming: Bool
  /// Safe to run again on another node when the first one is lost mid-call.
  public var idempotent: Bool
}

/// What a compute node tells the gateway when it (re)connects.
package struct NodeAnnouncement: Codable, Sendable {
  package var nodeID: String
  package var maxWorkers: Int
  package var functions: [FunctionDescriptor]
  /// What it offers the task center; absent: calls only (or it stopped taking tasks).
  package var worker: Membership.Worker?

  package init(nodeID: String, maxWorkers: Int, functions: [FunctionDescriptor], worker: Membership.Worker? = nil) {
    self.nodeID = nodeID
    self.maxWorkers = maxWorkers
    self.functions = functions
    self.worker = worker
  }
}

/// A function as the gateway knows it: which nodes serve it and whether one can take a call.
public struct FunctionInfo: Codable, Sendable, Equatable {
  public var name: String
  public var description: String
  public var parameters: [String]
  public var streaming: Bool
  public var idempotent: Bool
  /// The nodes serving it, sorted.
  public var nodes: [String]
  /// True when at least one of those nodes has a free worker.
  public var available: Bool

  /// Seed 000's name for the (first) node serving it.
  public var nodeID: String? { nodes.first }

  /// One entry per function of `infos` (several gateways' lists): a function listed more than
  /// once has the nodes of all, and is available when any is. Sorted by name.
  package static func merged(_ infos: [FunctionInfo]) -> [FunctionInfo] {
    var merged: [String: FunctionInfo] = [:]
    for info in infos {
      if var known = merged[info.name] {
        known.nodes = Array(Set(known.nodes + info.nodes)).sorted()
        known.available = known.available || info.available
        merged[info.name] = known
      } else {
        merged[info.name] = info
      }
    }
    return merged.values.sorted { $0.name < $1.name }
  }

  enum CodingKeys: String, CodingKey {
    case name, description, parameters, streaming, idempotent, nodes, available
    case nodeID = "node_id"
    case availability
  }

  public init(
    name: String, description: String, parameters: [String], streaming: Bool, idempotent: Bool, nodes: [String],
    available: Bool
  ) {
    self.name = name
    self.description = description
    self.parameters = parameters
    self.streaming = streaming
    self.idempotent = idempotent
    self.nodes = nodes
    self.available = available
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    name = try container.decode(String.self, forKey: .name)
    description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
    parameters = try container.decodeIfPresent([String].self, forKey: .parameters) ?? []
    streaming = try container.decodeIfPresent(Bool.self, forKey: .streaming) ?? false
    idempotent = try container.decodeIfPresent(Bool.self, forKey: .idempotent) ?? false
    nodes = try container.decodeIfPresent([String].self, forKey: .nodes)
      ?? (try container.decodeIfPresent(String.self, forKey: .nodeID)).map { [$0] } ?? []
    available = try container.decodeIfPresent(Bool.self, forKey: .available)
      ?? container.decodeIfPresent(Bool.self, forKey: .availability) ?? false
  }

  /// Ours (`nodes`, `available`) and seed 000's names (`node_id`, `availability`) side by side.
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(name, forKey: .name)
    try container.encode(description, forKey: .description)
    try container.encode(parameters, forKey: .parameters)
    try container.encode(streaming, forKey: .streaming)
    try container.encode(idempotent, forKey: .idempotent)
    try container.encode(nodes, forKey: .nodes)
    try container.encode(available, forKey: .available)
    try container.encode(nodeID, forKey: .nodeID)
    try container.encode(available, forKey: .availability)
  }
}

/// The gateway's counters.
public struct GatewayStats: Codable, Sendable {
  public struct FunctionStats: Codable, Sendable, Equatable {
    public var calls: Int
    public var failures: Int
    public var averageMilliseconds: Double
  }

  public var nodes: Int
  public var functions: Int
  public var totalRequests: Int
  public var failedRequests: Int
  public var inFlight: Int
  public var perFunction: [String: FunctionStats]
  /// The gateway's bound on calls in flight; nil when unbounded.
  public var maxWorkers: Int?
  /// Calls waiting for one of the `maxWorkers` places (nil from gateways before it).
  public var waiting: Int?
}

/// The answer of ``healthCheck(_:timeout:)``.
public struct HealthReport: Codable, Sendable, Equatable {
  public var status: String
  public var nodes: Int
  public var functions: Int

  public init(status: String, nodes: Int, functions: Int) {
    self.status = status
    self.nodes = nodes
    self.functions = functions
  }
}

