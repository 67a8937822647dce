import ArgumentParser
import EasyRemote
import EasyRemoteMetrics
import ExampleFunctions
import Foundation
import Logging
import Metrics
import NodeComm
import RemoteHosts
import Sandbox
import ServiceLifecycle
import TaskCenter
import TaskCenterHTTP

/// `easyremote gateway`: the gateway, until Ctrl-C or SIGTERM.
struct GatewayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gateway", abstract: "Run a gateway that compute nodes and clients connect to.")

  @Option(help: "The address to listen on (default: the config's transport.host, else 127.0.0.1).") var host: String?
  @Option(help: "The port to listen on, 0 picks a free one (default: the config's transport.port, else 8080).")
  var port: Int?
  @Option(help: "A YAML node configuration (transport host/port/TLS, heartbeat, limits, auth).") var config: String?
  @Option(help: "How calls are spread: least-in-flight or round-robin.") var balancing = "least-in-flight"
  @Option(help: "The task center's store: a SQLite file (default: easyremote/tasks.sqlite in the user's data folder) or postgres://user[:password]@host[:port]/database.")
  var db: String?
  @Option(help: "With a postgres:// store shared by several gateways: seconds this gateway's lease lasts unless renewed; a dead gateway's running tasks go back to the queue that long after it stopped renewing.")
  var leaseSeconds: Double?
  @Option(help: "The HTTP API's port, 0 picks a free one (default: the config's http.port, else 8000).") var httpPort: Int?
  @Flag(help: "Do not serve the HTTP API.") var noHttp = false
  @Flag(help: "Serve /metrics without the token (for a Prometheus that sends none).") var metricsPublic = false
  @Flag(help: "Collect no metrics (/metrics answers 404).") var noMetrics = false
  @Option(help: "A shared token every node and client must present (default: $EASYREMOTE_TOKEN).") var token: String?
  @OptionGroup(title: "Remote hosts (SSH)") var remote: RemoteHostOptions
  @Option(help: "Serve the HTTP API over HTTPS (and wss://) with this certificate chain (PEM).") var httpTlsCert: String?
  @Option(help: "The private key (PEM) of --http-tls-cert.") var httpTlsKey: String?
  @Option(help: "Nodes that pull work over HTTP: 'any' serves key-less workers (the seed's bodies) at the address they first spoke from; 'keyed' wants every request after the first heartbeat to carry the node's key.")
  var pullNodes = PullNodePolicy.any.rawValue
  @Option(help: "Wrong or missing tokens one IP address may present in a minute before it is refused for the rest of it (default: the config's limits.auth_failures_per_minute, else 10).")
  var authFailuresPerMinute: Int?

  func validate() throws {
    if (httpTlsCert == nil) != (httpTlsKey == nil) { throw ValidationError("--http-tls-cert and --http-tls-key go together") }
    if let leaseSeconds, !(leaseSeconds >= 1 && leaseSeconds <= 3600) { throw ValidationError("--lease-seconds is 1 to 3600") }
    if PullNodePolicy(rawValue: pullNodes) == nil { throw ValidationError("--pull-nodes is 'any' or 'keyed'") }
    if let authFailuresPerMinute, authFailuresPerMinute < 1 { throw ValidationError("--auth-failures-per-minute is at least 1") }
  }

  func run() async throws {
    bootstrapLogging()
    FileLimit.raise()
    let file = try config.map { try NodeConfig.load(file: $0, otherSections: GatewaySettings.sections) }
    let settings = try config.map { try GatewaySettings.load(file: $0) } ?? GatewaySettings()
    var nodeConfig = file ?? .defaults
    if let token = token ?? ProcessInfo.processInfo.environment["EASYREMOTE_TOKEN"] { nodeConfig.authToken = token }
    if let authFailuresPerMinute { nodeConfig.limits.authFailuresPerMinute = authFailuresPerMinute }
    // Flags win over the file; the file's port counts when it names one (not 0).
    let host = host ?? file?.transport.host ?? "127.0.0.1"
    let port = port ?? file.flatMap { $0.transport.port == 0 ? nil : $0.transport.port } ?? 8080
    if nodeConfig.limits.tuneAllocator { AllocatorTuning.applyOnce() }
    let metrics = noMetrics ? nil : MetricsRegistry()
    // The process's swift-metrics backend is the gateway's registry: what libraries record
    // goes to /metrics too.
    if let metrics { MetricsSystem.bootstrap(metrics.factory) }
    let server = Server(
      host: host, port: port, balancing: balancing == "round-robin" ? .roundRobin : .leastInFlight, config: nodeConfig,
      metrics: metrics)
    // The flag, else the file's `tasks.db`.
    let db = db ?? settings.tasks.database
    let leaseSeconds = leaseSeconds ?? settings.tasks.leaseSeconds ?? 10
    let store: any TaskStore =
      if let db, db.hasPrefix("postgres://") || db.hasPrefix("postgresql://") {
        try await PostgresTaskStore(url: db)
      } else {
        try SQLiteTaskStore(path: db ?? SQLiteTaskStore.defaultPath)
      }
    var centerConfiguration = TaskCenter.Configuration(leaseDuration: .milliseconds(Int(leaseSeconds * 1000)))
    centerConfiguration.pullNodes = PullNodePolicy(rawValue: pullNodes) ?? .any
    let center = TaskCenter(server: server, store: store, configuration: centerConfiguration)
    try await server.start()
    let remoteHosts = remote.manager(gateway: server.address ?? "\(host):\(port)", token: nodeConfig.authToken)
    // HTTPS from the flags, else from the file's http.tls.
    let httpFiles = httpTlsCert.map { ($0, httpTlsKey ?? "") }
      ?? settings.http.certificateFile.map { ($0, settings.http.keyFile ?? "") }
    let httpTLS = try httpFiles.map { try HTTPServerTLS(certificateFile: $0.0, keyFile: $0.1) }
    let http =
      noHttp || !settings.http.enabled
      ? nil
      : TaskCenterHTTPServer(
        center: center, server: server, host: settings.http.host ?? host, port: httpPort ?? settings.http.port ?? 8000,
        configuration: .init(metricsPublic: metricsPublic), remoteHosts: remoteHosts, tls: httpTLS)
    try await center.prepare()  // its loops run in the group (run())
    try await http?.start()
    if let http, let address = http.address { emit("http api on \(http.scheme)://\(address)") }
    if let id = center.gatewayID { emit("gateway \(id) shares its task store (PostgreSQL) with the gateways on it") }
    emit("gateway listening on \(server.address ?? "\(host):\(port)")")
    // SIGTERM/SIGINT stop them in reverse: HTTP, remote agents and their connections, the
    // task center (running tasks go back to the queue), the gateway (calls in flight get the
    // grace period).
    // The store first, so that it stops last (the task center hands its tasks back through it).
    let storeService = (store as? PostgresTaskStore).map { [$0 as any Service] } ?? []
    try await runServices(storeService + [server, center] + (remoteHosts.map { [$0] } ?? []) + (http.map { [$0] } ?? []))
    emit("gateway stopped")
  }
}

/// `easyremote node`: a compute node serving the example functions.
struct NodeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "node", abstract: "Run a compute node that joins the gateway and serves the example functions.")

  @OptionGroup var gateway: GatewayOptions
  @Option(help: "The node id (random when omitted).") var id: String?
  @Option(help: "Calls and tasks run at once (default: the config's max_workers, else 5).") var maxWorkers: Int?
  @OptionGroup(title: "Code tasks") var sandbox: SandboxOptions
  @Option(help: "Above this CPU use (%) the machine is its owner's and takes no tasks.") var maxCpuPercent = 80.0
  @Option(help: "Above this memory use (%) the machine takes no tasks.") var maxMemoryPercent = 90.0
  @Option(help: "Serve a status page (JSON: GET / and /health) on this local port (0 picks one).") var statusPort: Int?
  @Flag(help: "Read the token as the first line of stdin, and stop when stdin ends (how the gateway runs agents over SSH).")
  var lifeline = false

  func run() async throws {
    // An agent's log is its stderr, kept in a file on its host: say what happens.
    bootstrapLogging(default: lifeline ? .info : .warning)
    let log = Logger(label: "easyremote.node")
    var config = gateway.config
    let lifelineInput = lifeline ? Lifeline() : nil
    if let token = lifelineInput?.token { config.authToken = token }
    if config.limits.tuneAllocator { AllocatorTuning.applyOnce() }
    // With a status page, its /metrics is the process's swift-metrics backend (the node
    // layer's metrics interceptor records there, with `interceptors.metrics`).
    let metrics = statusPort.map { _ in MetricsRegistry() }
    if let metrics { MetricsSystem.bootstrap(metrics.factory) }
    let node = ComputeNode(serverAddress: gateway.address, nodeID: id, maxWorkers: maxWorkers, config: config)
    SeedExamples.register(on: node)
    let runner = try sandbox.runner()
    let worker = TaskWorker(
      node: node, runner: runner,
      thresholds: LoadThresholds(maxCPUPercent: maxCpuPercent, maxMemoryPercent: maxMemoryPercent))
    let status = statusPort.map { NodeStatusServer(node: node, worker: worker, port: $0, metrics: metrics ?? MetricsRegistry()) }
    do {
      try await status?.start()
      if let address = status?.address { emit("status on http://\(address)") }
      try await node.start()
      try await worker.start()
    } catch {
      throw fail(error)
    }
    emit("node \(node.nodeID) joined \(node.gatewayAddress) with \(node.functionCount) functions")
    log.info("node \(node.nodeID) joined \(node.gatewayAddress) with \(node.functionCount) functions, status page \(status?.address ?? "none")")
    // SIGTERM/SIGINT (or the end of stdin with --lifeline): the worker leaves (its tasks go
    // back to the queue), then the node's calls in flight get the grace period.
    try await runServices([node, worker] + (status.map { [$0] } ?? []), until: lifelineInput)
    log.info("node \(node.nodeID) stopped")
    emit("node \(node.nodeID) stopped")
  }
}

/// `easyremote demo`: the README's main job.
struct DemoCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "demo", abstract: "Run a gateway and a local compute node with the example functions.")

  @Option(help: "The address the gateway listens on.") var host = "127.0.0.1"
  @Option(help: "The gateway's port (0 picks a free one).") var port = 8080
  @Flag(help: "Run a few calls, print them and exit instead of serving until Ctrl-C.") var once = false
  @Option(help: "The task center's SQLite file (default: easyremote/demo.sqlite in the user's data folder).")
  var db: String?
  @Option(help: "The HTTP API's port (0 picks a free one).") var httpPort = 8000

  func run() async throws {
    bootstrapLogging()
    FileLimit.raise()
    AllocatorTuning.applyOnce()
    let server = Server(host: host, port: port)
    let databasePath =
      db ?? URL(fileURLWithPath: SQLiteTaskStore.defaultPath).deletingLastPathComponent()
      .appendingPathComponent("demo.sqlite").path
    let center = TaskCenter(server: server, store: try SQLiteTaskStore(path: databasePath))
    try await server.start()
    let address = server.address ?? "\(host):\(port)"
    let remoteHosts: RemoteHostManager? = RemoteHostManager(
      configuration: RemoteHostsConfiguration(gatewayAddress: address), agentVersion: TaskCenterAPI.version)
    let http = TaskCenterHTTPServer(center: center, server: server, host: host, port: httpPort, remoteHosts: remoteHosts)
    try await center.prepare()  // its loops run in the group (run())
    try await http.start()
    let node = ComputeNode(serverAddress: address, nodeID: "local", maxWorkers: 8)
    SeedExamples.register(on: node)
    let worker = TaskWorker(node: node, runner: CodeRunner().resolvedInterpreter() == nil ? nil : CodeRunner())
    try await node.start()
    try await worker.start()
    emit("EasyRemote demo: gateway on \(address), compute node 'local' with \(node.functionCount) functions")
    emit("  task center: \(databasePath), HTTP API on http://\(http.address ?? "?")")

    // The tour runs in the group with the rest (the task center dispatches there); with
    // --once its end stops them all, in reverse order.
    let tour = Tour { [once] in
      let client = Client(serverAddress: address)
      let sum: Double = try await client.execute("sync_add", 2, 3.5)
      emit("  sync_add(2, 3.5) = \(sum)")
      var first: [String] = []
      for try await item in try await client.stream("sync_number_stream", 1, 3, 0.05, as: SeedExamples.NumberItem.self) {
        first.append(String(item.value))
      }
      emit("  sync_number_stream(1, 3, 0.05) streamed \(first.joined(separator: ", "))")
      if worker.runner != nil {
        let task = try await client.waitForTask(try await client.submitCode("print(sum(range(10)))"), timeout: .seconds(30))
        emit("  code task \(task.id): \(task.status.rawValue), output \((task.result ?? "").trimmingCharacters(in: .whitespacesAndNewlines))")
      }
      await client.close()

      let flag = address == "127.0.0.1:8080" ? "" : " --gateway \(address)"
      emit("""

        Try it from another terminal:
          swift run easyremote functions\(flag)
          swift run easyremote call\(flag) sync_add 2 3
          swift run easyremote call\(flag) async_ai_simulation '"I love fast code"' 0.2
          swift run easyremote stream\(flag) sync_number_stream 0 10 0.2
          swift run easyremote stream\(flag) async_data_stream '{"sensors":["temperature"],"sample_rate":2,"duration":3}'
          swift run easyremote node\(flag) --id second     # a second compute node
          swift run easyremote health\(flag)
          swift run easyremote submit\(flag) --code 'print(6 * 7)' --wait
          swift run easyremote tasks\(flag)
          curl -s http://\(http.address ?? "127.0.0.1:8000")/stats
          curl -s -X POST http://\(http.address ?? "127.0.0.1:8000")/tasks -d '{"code": "print(2 ** 10)"}'
        """)
      if !once { emit("Serving until Ctrl-C.") }
    }
    try await runServices(
      [server, center] + (remoteHosts.map { [$0] } ?? []) + [http, node, worker], until: once ? tour : nil,
      beside: once ? [] : [tour])
    emit("stopped")
  }
}

/// Runs `services` (already started, in the order they were started) in one `ServiceGroup`
/// until SIGINT or SIGTERM, then stops them gracefully in reverse order.
/// A `lifeline` service, when given, ends the group gracefully when it returns.
///
/// A service that fails (a gateway whose listener died) stops the others in order, and the
/// failure is printed and becomes the exit code (``fail(_:)``).
/// `beside` run too, and may end without ending the group.
func runServices(_ services: [any Service], until lifeline: (any Service)? = nil, beside: [any Service] = []) async throws {
  let group = ServiceGroup(
    configuration: .init(
      services: services.map { .init(service: $0, failureTerminationBehavior: .gracefullyShutdownGroup) }
        + beside.map { .init(service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup) }
        + (lifeline.map {
          [.init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)]
        } ?? []),
      gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "easyremote.cli")))
  do {
    try await group.run()
  } catch {
    throw fail(error)
  }
}

/// Logs at warning and above on stderr unless `EASYREMOTE_LOG` names another level.
func bootstrapLogging(default fallback: Logger.Level = .warning) {
  setupLogging(level: ProcessInfo.processInfo.environment["EASYREMOTE_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? fallback)
}

/// A piece of work run as a service beside the others (the demo's tour of the gateway).
struct Tour: Service {
  let body: @Sendable () async throws -> Void
  init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
  func run() async throws { try await body() }
}
