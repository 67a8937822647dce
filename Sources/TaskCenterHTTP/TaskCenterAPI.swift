public import EasyRemoteCore
import EasyRemoteMetrics
import Foundation
public import Hummingbird
public import HummingbirdWebSocket
public import RemoteHosts
import Logging
import NIOCore
import HTTPTypes
import ServiceLifecycle
public import TaskCenter

/// The task center's REST API and live events, as a Hummingbird router: every endpoint of
/// MISSION.md section 004 plus function calls over HTTP. `openapi.yaml` (served at
/// `/openapi.yaml`) documents it.
public struct TaskCenterAPI: Sendable {
  public struct Configuration: Sendable {
    /// Largest request body (bytes); the code of a task is limited by the task center's own
    /// `maxCodeBytes`.
    public var maxBodyBytes: Int
    /// Events a WebSocket client may fall behind before it is dropped.
    public var eventBuffer: Int
    /// How long `POST /functions/{name}/call` waits by default (seconds).
    public var callTimeout: Double
    /// The token every request must carry (see `TokenAuthMiddleware`); nil takes the
    /// gateway's own (`NodeConfig.authToken`), so one token guards links and HTTP alike.
    public var token: String?
    /// What a client may send before it is answered and closed (request line, headers,
    /// timeouts, connections).
    public var limits: HTTPLimits
    /// Serve `/metrics` without the token (for a Prometheus that cannot send one).
    public var metricsPublic: Bool

    public init(
      maxBodyBytes: Int = 2 << 20, eventBuffer: Int = 256, callTimeout: Double = 30, token: String? = nil,
      limits: HTTPLimits = HTTPLimits(), metricsPublic: Bool = false
    ) {
      self.limits = limits
      self.metricsPublic = metricsPublic
      self.maxBodyBytes = maxBodyBytes
      self.eventBuffer = eventBuffer
      self.callTimeout = callTimeout
      self.token = token
    }
  }

  /// 0.5.0: a link's HELLO carries the token (a gateway with a token takes no link without
  /// it), so an agent of 0.4.0 found on a remote host is replaced by this one.
  public static let version = "0.6.0"

  let center: TaskCenter
  let server: Server
  let configuration: Configuration
  /// The gateway's remote hosts, served under `/api/remote/` when given.
  let remoteHosts: RemoteHostManager?

  public init(
    center: TaskCenter, server: Server, configuration: Configuration = Configuration(), remoteHosts: RemoteHostManager? = nil
  ) {
    self.center = center
    self.server = server
    self.configuration = configuration
    self.remoteHosts = remoteHosts
  }

  /// The token HTTP requests must carry: the configuration's, else the gateway's own.
  var token: String? { configuration.token ?? server.authToken }

  /// Tickets for `/ws/updates` (`POST /ws/ticket`).
  let tickets = WebSocketTickets()

  /// How requests are checked for the token (the guard checks WebSocket upgrades with it too).
  var tokenCheck: TokenCheck? { token.map { TokenCheck(token: $0, tickets: tickets, limiter: server.authFailures) } }

  /// The router with every endpoint (HTTP and the `/ws/updates` WebSocket).
  public func router() -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    let routes = RouteTable()
    if let instruments = server.metrics?.instruments {
      router.middlewares.add(HTTPMetricsMiddleware<APIRequestContext>(instruments: instruments))
    }
    router.middlewares.add(ErrorMiddleware(routes: routes))
    router.middlewares.add(ConsoleRedirectMiddleware())
    let auth = tokenCheck.map {
      TokenAuthMiddleware<APIRequestContext>(
        check: $0, alsoOpen: WebConsole.pages.union(configuration.metricsPublic ? ["/metrics"] : []),
        openPrefixes: [WebConsole.prefix + "/static/"], instruments: server.metrics?.instruments)
    }
    if let auth { router.middlewares.add(auth) }
    router.middlewares.add(UpgradeRequiredMiddleware())
    let api = self
    router.get("/") { _, _ in try await api.root() }
    router.get("/health") { _, _ in try await api.health() }
    router.post("/tasks") { request, _ in try await api.submit(request) }
    router.get("/tasks") { request, _ in try await api.listTasks(request) }
    router.get("/tasks/{id}") { _, context in
      JSONBody.response(TaskView(task: try await api.center.task(try context.decodedParameter("id"))))
    }
    router.delete("/tasks/{id}") { _, context in
      JSONBody.response(TaskView(task: try await api.center.cancel(try context.decodedParameter("id"))))
    }
    router.get("/nodes") { _, _ in api.listNodes() }
    router.get("/nodes/{id}") { _, context in
      JSONBody.response(NodeView(node: try api.center.poolNode(try context.decodedParameter("id"))))
    }
    router.get("/stats") { _, _ in
      JSONBody.response(StatsView(timePeriod: "last_hour", stats: try await api.center.stats()))
    }
    router.get("/stats/nodes/top") { request, _ in try api.topNodes(request) }
    router.get("/stats/gateway") { _, _ in JSONBody.response(GatewayStatsView(stats: api.server.stats())) }
    router.get("/stats/nodes/queue") { request, _ in try await api.queue(request) }
    router.post("/internal/heartbeat") { request, context in try await api.heartbeat(request, from: context.remoteIP) }
    router.get("/internal/task/request") { request, context in try await api.offer(request, from: context.remoteIP) }
    router.post("/internal/task/result") { request, context in try await api.result(request, from: context.remoteIP) }
    router.get("/functions") { _, _ in JSONBody.response(["functions": api.server.functions()]) }
    router.post("/functions/{name}/call") { request, context in
      try await api.call(try context.decodedParameter("name"), request)
    }
    router.post("/functions/{name}/stream") { request, context in
      try await api.stream(try context.decodedParameter("name"), request)
    }
    router.get("/openapi.yaml") { _, _ in try api.openAPI() }
    router.post("/ws/ticket") { _, _ in
      JSONBody.response(
        ["ticket": JSONValue.string(api.tickets.issue()), "expires_in": .int(WebSocketTickets.lifetime.components.seconds)])
    }
    router.get("/metrics") { _, _ in try await api.metrics() }
    router.get("/snapshot") { _, _ in try await api.snapshot() }
    let console = WebConsole()
    for page in WebConsole.pages.sorted() {
      router.get(RouterPath(page)) { request, _ in
        guard let page = console.response(for: request.uri.path) else {
          throw APIError(code: "NOT_FOUND", message: "the console's files are missing from the build")
        }
        return page
      }
    }
    router.get("/web/static/**") { request, _ in
      guard let file = console.response(for: request.uri.path) else {
        throw APIError(code: "NOT_FOUND", message: "no console file at \(request.uri.path)")
      }
      return file
    }
    if let remoteHosts {
      RemoteAPI(manager: remoteHosts, maxBodyBytes: configuration.maxBodyBytes).register(on: router)
    }
    router.ws("/ws/updates") { inbound, outbound, context in
      if let auth, !auth.isAuthorized(context.request) {
        let error = APIError(code: "UNAUTHORIZED", message: "this gateway needs its token: connect to /ws/updates?token=<token>")
        try? await outbound.write(.text(error.jsonText))
        try? await outbound.close(.policyViolation, reason: "UNAUTHORIZED")
        return
      }
      // Ends when the server shuts down, so open sockets never hold a shutdown back.
      _ = try? await cancelOnGracefulShutdown { await api.streamEvents(inbound: inbound, outbound: outbound) }
    }
    routes.record(router.routes.map { ($0.method.rawValue, $0.path.description) })
    return router
  }

  // MARK: - Handlers

  func root() async throws -> Response {
    struct Root: Encodable {
      var service = "EasyRemote task center"
      var status = "running"
      var version = TaskCenterAPI.version
      var queueSize: Int
      var idleNodes: Int
      enum CodingKeys: String, CodingKey {
        case service, status, version
        case queueSize = "queue_size"
        case idleNodes = "idle_nodes"
      }
    }
    let counts = try await center.counts()
    return JSONBody.response(
      Root(queueSize: counts[.queued] ?? 0, idleNodes: center.poolNodes().filter { $0.status == .idle }.count))
  }

  func health() async throws -> Response {
    struct Health: Encodable {
      var status: String
      var timestamp: Date
      var components: [String: String]
    }
    var components = ["task_queue": "healthy", "node_tracker": "healthy", "result_store": "healthy", "gateway": "healthy"]
    do {
      _ = try await center.counts()
    } catch {
      components["result_store"] = "unhealthy: \(error)"
      components["task_queue"] = "unhealthy"
    }
    // Writes failing (a full disk) while reads work: degraded, with the reason.
    if case .degraded(let reason, let since) = center.storeStatus, components["result_store"] == "healthy" {
      components["result_store"] = "degraded since \(ISO8601DateFormatter().string(from: since)): \(reason)"
    }
    // A disk about to fill is said before a write fails on it.
    if let space = center.store.diskSpace(), space.isLow, components["result_store"] == "healthy" {
      components["result_store"] = "degraded: \(space.free >> 10) KiB free of \(space.total >> 20) MiB on the task store's disk"
    }
    if !server.isRunning { components["gateway"] = "stopped" }
    let healthy = components.values.allSatisfy { $0 == "healthy" }
    let degraded = components.values.allSatisfy { $0 == "healthy" || $0.hasPrefix("degraded") }
    return JSONBody.response(
      Health(status: healthy ? "healthy" : degraded ? "degraded" : "unhealthy", timestamp: Date(), components: components),
      status: healthy ? .ok : .serviceUnavailable)
  }

  func submit(_ request: Request) async throws -> Response {
    let body = try await JSONBody.decode(
      NewTaskRequest.self, from: request, limit: configuration.maxBodyBytes, tooLargeField: "code")
    let defaults = ResourceRequest()
    let resources = body.resources.map {
      ResourceRequest(cpu: $0.cpu ?? defaults.cpu, memoryMB: $0.memory ?? defaults.memoryMB)
    }
    let submission = TaskSubmission(
      code: body.code, function: body.function, args: body.args, timeout: body.timeout, resources: resources,
      maxAttempts: body.maxAttempts)
    // With `Idempotency-Key` a client whose answer was lost can send the request again: it
    // gets the task the first one made (`Idempotent-Replayed: true`), not a second task.
    let task: TaskRecord
    var replayed = false
    if let key = request.headers[HTTPField.Name("Idempotency-Key")!] {
      (task, replayed) = try await center.submit(submission, idempotencyKey: key)
    } else {
      task = try await center.submit(submission)
    }
    let queued = try await center.count(.queued)
    var response = JSONBody.response(
      NewTaskResponse(taskID: task.id, status: task.status, estimatedWait: center.estimatedWait(queued: queued)),
      status: .created)
    if replayed { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
    return response
  }

  func listTasks(_ request: Request) async throws -> Response {
    let query = request.uri.queryParameters
    var status: TaskStatus?
    if let text = query.get("status") {
      // `pending` is the seed's word for `queued`.
      guard let parsed = TaskStatus(rawValue: text) ?? (text == "pending" ? .queued : nil) else {
        throw APIError.invalid(
          "status", "status must be one of \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      status = parsed
    }
    let limit = try integer(query.get("limit"), field: "limit", default: 50, range: 1...1000)
    let offset = try integer(query.get("offset"), field: "offset", default: 0, range: 0...Int.max)
    let tasks = try await center.tasks(status: status, limit: limit, offset: offset)
    let counts = try await center.counts()
    let total = status.map { counts[$0] ?? 0 } ?? counts.values.reduce(0, +)
    return JSONBody.response(TaskList(tasks: tasks.map(TaskView.init), total: total, limit: limit, offset: offset))
  }

  func listNodes() -> Response {
    // Every gateway's nodes, on a store several share.
    let nodes = center.poolNodes()
    return JSONBody.response(
      NodeList(
        nodes: nodes.map(NodeView.init), totalIdle: nodes.filter { $0.status == .idle }.count,
        totalNodes: nodes.count))
  }

  func topNodes(_ request: Request) throws -> Response {
    let limit = try integer(request.uri.queryParameters.get("limit"), field: "limit", default: 5, range: 1...1000)
    let nodes = center.poolNodes().sorted {
      ($0.completedTasks, $0.totalComputeTime, $1.id) > ($1.completedTasks, $1.totalComputeTime, $0.id)
    }
    return JSONBody.response(["nodes": nodes.prefix(limit).map(NodeView.init)])
  }

  func queue(_ request: Request) async throws -> Response {
    let limit = try integer(request.uri.queryParameters.get("limit"), field: "limit", default: 20, range: 1...1000)
    let entries = await center.queue()
    return JSONBody.response(
      QueueView(
        totalNodesInQueue: entries.count,
        nodes: entries.prefix(limit).map {
          QueueView.Entry(
            nodeID: $0.nodeID, status: $0.status, waitingSince: $0.waitingSince,
            waitTimeSeconds: ($0.waitSeconds * 10).rounded() / 10, priority: $0.priority,
            completedTasks: $0.completedTasks, reason: $0.reason, score: ($0.score * 100).rounded() / 100)
        }))
  }

  /// `GET /snapshot`: everything the console shows, at once (it then follows `/ws/updates`):
  /// the nodes (as `GET /nodes`), the functions (as `GET /functions`) and the `stats` event's
  /// figures (calls by function, tasks by status, the fair queue, each node's load).
  func snapshot() async throws -> Response {
    struct Snapshot: Encodable {
      var version = TaskCenterAPI.version
      var nodes: [NodeView]
      var functions: [FunctionInfo]
      var stats: StatsTick
      var maxWorkers: Int?
      enum CodingKeys: String, CodingKey {
        case version, nodes, functions, stats
        case maxWorkers = "max_workers"
      }
    }
    return JSONBody.response(
      Snapshot(
        nodes: center.poolNodes().map(NodeView.init), functions: server.functions(), stats: await center.statsTick(),
        maxWorkers: server.maxWorkers))
  }

  /// `GET /metrics`: the gateway's metrics in the Prometheus text format.
  func metrics() async throws -> Response {
    guard let metrics = server.metrics else {
      throw APIError(code: "NOT_FOUND", message: "this gateway collects no metrics")
    }
    return Response(
      status: .ok, headers: [.contentType: MetricsRegistry.contentType],
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: await metrics.exposition())))
  }

  func openAPI() throws -> Response {
    guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
      let data = try? Data(contentsOf: url)
    else { throw APIError(code: "INTERNAL_ERROR", message: "openapi.yaml is missing from the build") }
    return Response(
      status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
  }

  /// Sends each of the gateway's events (the task center's and the gateway's own
  /// `node_connected`/`node_disconnected`) as a text message until the client leaves, or
  /// falls `eventBuffer` events behind (then it is closed with 1008 so it can reconnect).
  func streamEvents(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
    let events = server.events(buffer: configuration.eventBuffer)
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        // The client's messages are read (and dropped) so a close is noticed.
        do {
          for try await _ in inbound {}
        } catch {}
      }
      group.addTask {
        for await event in events {
          do {
            try await outbound.write(.text(String(decoding: event.json, as: UTF8.self)))
          } catch {
            return
          }
        }
        // Ended: the client fell behind (or the gateway stopped). Say so if the socket
        // takes it within a second; the connection closes either way.
        await withTaskGroup(of: Void.self) { closing in
          closing.addTask { try? await outbound.close(.policyViolation, reason: "too slow: fell behind the events") }
          closing.addTask { try? await Task.sleep(for: .seconds(1)) }
          await closing.next()
          closing.cancelAll()
        }
      }
      await group.next()
      group.cancelAll()
    }
  }

  func integer(_ text: String?, field: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
    guard let text else { return value }
    guard let number = Int(text), range.contains(number) else {
      throw APIError.invalid(field, "\(field) must be an integer from \(range.lowerBound) to \(range.upperBound)")
    }
    return number
  }
}

struct StatsView: Encodable {
  var timePeriod: String
  var stats: TaskCenterStats

  enum CodingKeys: String, CodingKey {
    case timePeriod = "time_period"
    case tasks, nodes, throughput
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(timePeriod, forKey: .timePeriod)
    try container.encode(stats.tasks, forKey: .tasks)
    try container.encode(stats.nodes, forKey: .nodes)
    try container.encode(stats.throughput, forKey: .throughput)
  }
}
