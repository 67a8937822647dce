import EasyRemoteCore
import Foundation
import Hummingbird
import RemoteHosts

/// `/api/remote/*` (seed 003): SSH connections to hosts and the compute-node agents started
/// there, in the seed's shapes — `{"success": true, ...}`, errors
/// `{"success": false, "error", "message", "details"}` with the seed's codes and statuses.
struct RemoteAPI: Sendable {
  let manager: RemoteHostManager
  let maxBodyBytes: Int

  func register(on router: Router<APIRequestContext>) {
    let api = self
    let group = router.group("/api/remote")
    group.post("/connect") { request, _ in await api.answer { try await api.connect(request) } }
    group.get("/connections") { _, _ in await api.answer { try await api.connections() } }
    group.get("/connections/{id}") { _, context in
      await api.answer { try await api.connectionView(api.manager.connection(try api.parameter(context, "id"))) }
    }
    group.delete("/connections/{id}") { request, context in
      await api.answer { try await api.disconnect(try api.parameter(context, "id"), request) }
    }
    group.get("/environments") { request, _ in await api.answer { try await api.environments(request) } }
    group.post("/environments/detect") { request, _ in await api.answer { try await api.detect(request) } }
    group.get("/config") { request, _ in await api.answer { try await api.config(request) } }
    group.post("/viewer/start") { request, _ in await api.answer { try await api.startViewer(request) } }
    group.post("/viewer/stop") { request, _ in await api.answer { try await api.stopViewer(request) } }
    group.get("/viewer/status") { request, _ in await api.answer { try await api.viewerStatus(request) } }
    group.get("/viewer/logs") { request, _ in await api.answer { try await api.logs(request) } }
    group.get("/health") { request, _ in await api.answer { try await api.health(request) } }
    group.get("/ping") { request, _ in await api.answer { try await api.ping(request) } }
  }

  // MARK: Routes

  struct ConnectRequest: Decodable {
    var host: String
    var port: Int?
    var username: String?
    var authMethod: String?
    var privateKeyPath: String?
    var keyPassphrase: String?
    var password: String?
    var timeout: Double?
    var acceptHostKey: String?

    enum CodingKeys: String, CodingKey {
      case host, port, username, password, timeout
      case authMethod = "auth_method", privateKeyPath = "private_key_path", keyPassphrase = "key_passphrase"
      case acceptHostKey = "accept_host_key"
    }
  }

  func connect(_ request: Request) async throws -> JSONValue {
    let body = try await decode(ConnectRequest.self, request)
    let authentication: SSHLogin.Authentication
    switch body.authMethod ?? (body.password != nil ? "password" : "key") {
    case "key": authentication = .key(path: body.privateKeyPath, passphrase: body.keyPassphrase)
    case "password":
      guard let password = body.password else { throw RemoteHostError(code: .invalidParameters, message: "auth_method password needs 'password'") }
      authentication = .password(password)
    case "agent": authentication = .agent
    case let other:
      throw RemoteHostError(code: .invalidParameters, message: "auth_method must be key, password or agent, got '\(other)'")
    }
    let info = try await manager.connect(
      SSHLogin(
        host: body.host, port: body.port, username: body.username, authentication: authentication, timeout: body.timeout ?? 30,
        acceptedHostKey: body.acceptHostKey))
    var view = connectionFields(info)
    view["success"] = .bool(true)
    return .object(view)
  }

  func connections() async throws -> JSONValue {
    let all = await manager.connections()
    return .object(["success": .bool(true), "connections": .array(all.map { .object(connectionFields($0)) }), "total": .int(Int64(all.count))])
  }

  func connectionView(_ info: RemoteConnectionInfo) -> JSONValue {
    var view = connectionFields(info)
    view["success"] = .bool(true)
    return .object(view)
  }

  func disconnect(_ id: String, _ request: Request) async throws -> JSONValue {
    let cleanup = try bool(request, "cleanup_viewer") ?? true
    let hadViewer = (try? await manager.viewer(id))?.status == .running
    try await manager.disconnect(id, stopViewer: cleanup)
    return .object([
      "success": .bool(true), "message": .string("Connection disconnected successfully"), "connection_id": .string(id),
      "cleanup_performed": .object([
        "ssh_tunnel": .bool(true), "remote_viewer": .bool(cleanup && hadViewer), "temp_files": .bool(true),
      ]),
    ])
  }

  func environments(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    let filter = request.uri.queryParameters.get("filter") ?? "all"
    guard ["all", "runicorn_only", "agent_only"].contains(filter) else {
      throw RemoteHostError(code: .invalidParameters, message: "filter must be all, runicorn_only or agent_only, got '\(filter)'")
    }
    let inspection = try await manager.environments(id)
    let agent = manager.agentAvailability(inspection)
    let listed = filter == "all" || agent != "unavailable" ? inspection.environments : []
    return .object([
      "success": .bool(true), "connection_id": .string(id),
      "environments": .array(listed.enumerated().map { environmentFields($1, inspection: inspection, agent: agent, first: $0 == 0) }),
      "total": .int(Int64(listed.count)), "host": hostFields(inspection),
    ])
  }

  struct DetectRequest: Decodable {
    var connectionID: String
    var forceRefresh: Bool?
    enum CodingKeys: String, CodingKey { case connectionID = "connection_id", forceRefresh = "force_refresh" }
  }

  func detect(_ request: Request) async throws -> JSONValue {
    let body = try await decode(DetectRequest.self, request)
    let inspection = try await manager.environments(body.connectionID, refresh: true)
    return .object([
      "success": .bool(true), "message": .string("Environments detected successfully"), "connection_id": .string(body.connectionID),
      "environments_found": .int(Int64(inspection.environments.count)), "detection_time": date(inspection.detectedAt),
    ])
  }

  func config(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    let name = try query(request, "env_name")
    let environment = try await manager.environment(id, named: name)
    let inspection = try await manager.environments(id)
    return .object([
      "success": .bool(true), "connection_id": .string(id), "env_name": .string(name),
      "config": .object([
        "user_root_dir": .string(manager.defaultRemoteRoot(inspection)), "viewer_port": .int(0), "log_level": .string("INFO"),
        "python_path": .string(environment.pythonPath), "gateway": .string(manager.configuration.gatewayAddress),
        "agent": .string(manager.agentAvailability(inspection)),
      ]),
      "runicorn_version": .string(manager.agentVersion), "easyremote_version": .string(manager.agentVersion),
    ])
  }

  struct StartRequest: Decodable {
    var connectionID: String
    var envName: String
    var remoteRoot: String?
    var localPort: Int?
    var autoOpen: Bool?
    enum CodingKeys: String, CodingKey {
      case connectionID = "connection_id", envName = "env_name", remoteRoot = "remote_root", localPort = "local_port"
      case autoOpen = "auto_open"
    }
  }

  func startViewer(_ request: Request) async throws -> JSONValue {
    let body = try await decode(StartRequest.self, request)
    let viewer = try await manager.startViewer(
      body.connectionID, environment: body.envName, remoteRoot: body.remoteRoot, localPort: body.localPort)
    return .object([
      "success": .bool(true), "message": .string("Remote Viewer started successfully"), "connection_id": .string(body.connectionID),
      "viewer": viewerFields(viewer),
    ])
  }

  struct StopRequest: Decodable {
    var connectionID: String
    var cleanup: Bool?
    enum CodingKeys: String, CodingKey { case connectionID = "connection_id", cleanup }
  }

  func stopViewer(_ request: Request) async throws -> JSONValue {
    let body = try await decode(StopRequest.self, request)
    let stopped = try await manager.stopViewer(body.connectionID, cleanup: body.cleanup ?? true)
    return .object([
      "success": .bool(true), "message": .string("Remote Viewer stopped successfully"), "connection_id": .string(body.connectionID),
      "stopped_at": date(stopped),
    ])
  }

  func viewerStatus(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    var viewer = viewerFields(try await manager.viewer(id))
    if case .object(var fields) = viewer {
      let health = try await manager.health(id)
      fields["health"] = .string(health.healthy ? "healthy" : "unhealthy")
      viewer = .object(fields)
    }
    return .object(["success": .bool(true), "connection_id": .string(id), "viewer": viewer])
  }

  func logs(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    let linesText = request.uri.queryParameters.get("lines") ?? "100"
    guard let lines = Int(linesText) else {
      throw RemoteHostError(code: .invalidParameters, message: "lines must be an integer, got '\(linesText)'")
    }
    let logs = try await manager.logs(id, lines: lines)
    return .object([
      "success": .bool(true), "connection_id": .string(id), "logs": .array(logs.map { .string($0) }), "total_lines": .int(Int64(logs.count)),
    ])
  }

  func health(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    let health = try await manager.health(id)
    func check(_ value: Bool?) -> JSONValue { .string(value.map { $0 ? "pass" : "fail" } ?? "skip") }
    return .object([
      "success": .bool(true), "connection_id": .string(id), "health": .string(health.healthy ? "healthy" : "unhealthy"),
      "checks": .object([
        "ssh_connection": check(health.sshConnection), "viewer_process": check(health.viewerProcess),
        "tunnel_active": check(health.tunnelActive),
      ]),
      "last_check": date(health.checkedAt),
    ])
  }

  func ping(_ request: Request) async throws -> JSONValue {
    let id = try query(request, "connection_id")
    let latency = try await manager.ping(id)
    return .object([
      "success": .bool(true), "connection_id": .string(id), "latency_ms": .double((latency * 10).rounded() / 10),
      "timestamp": date(Date()),
    ])
  }

  // MARK: Views

  func connectionFields(_ info: RemoteConnectionInfo) -> [String: JSONValue] {
    let python = info.inspection.environments.first { $0.type == "system" }?.pythonVersion
    return [
      "connection_id": .string(info.id), "host": .string(info.host), "port": .int(Int64(info.port)),
      "username": .string(info.username), "status": .string(info.status), "created_at": date(info.createdAt),
      "last_ping": info.lastPing.map(date) ?? .null,
      "server_info": .object([
        "hostname": .string(info.inspection.hostname), "os": .string(info.inspection.os), "kernel": .string(info.inspection.kernel),
        "python_version": python.map { .string($0) } ?? .null,
      ]),
      "viewer": info.viewer.map(viewerFields) ?? .null,
    ]
  }

  func hostFields(_ inspection: HostInspection) -> JSONValue {
    .object([
      "hostname": .string(inspection.hostname), "os": .string(inspection.os), "kernel": .string(inspection.kernel),
      "architecture": .string(inspection.architecture), "cpu_cores": .int(Int64(inspection.cores)),
      "memory_bytes": .int(inspection.memoryBytes),
      "gpus": .array(inspection.gpus.map { .object(["name": .string($0.name), "memory_mb": $0.memoryMB.map { .int(Int64($0)) } ?? .null]) }),
      "agent": .string(manager.agentAvailability(inspection)),
      "easyremote_installed": inspection.agent.map { .object(["path": .string($0.path), "version": .string($0.version)]) } ?? .null,
    ])
  }

  func environmentFields(_ environment: RemoteEnvironment, inspection: HostInspection, agent: String, first: Bool) -> JSONValue {
    let available = agent != "unavailable"
    let installed = inspection.agent
    return .object([
      "name": .string(environment.name), "type": .string(environment.type), "python_version": .string(environment.pythonVersion),
      "python_path": .string(environment.pythonPath),
      // The seed's words: an environment "with runicorn" is one an agent can run in.
      "runicorn_installed": .bool(available), "runicorn_version": available ? .string(installed?.version ?? manager.agentVersion) : .null,
      "easyremote_installed": .bool(installed != nil), "easyremote_version": installed.map { .string($0.version) } ?? .null,
      "agent": .string(agent), "storage_root": .string(manager.defaultRemoteRoot(inspection)), "is_active": .bool(first),
    ])
  }

  func viewerFields(_ viewer: RemoteViewer) -> JSONValue {
    .object([
      "status": .string(viewer.status.rawValue), "url": .string(viewer.url), "local_port": .int(Int64(viewer.localPort)),
      "remote_port": .int(Int64(viewer.remotePort)), "gateway_port": .int(Int64(viewer.gatewayPort)),
      "node_id": .string(viewer.nodeID), "env_name": .string(viewer.envName), "python_path": .string(viewer.pythonPath),
      "remote_root": .string(viewer.remoteRoot), "agent_path": .string(viewer.agentPath),
      "pid": viewer.pid.map { .int(Int64($0)) } ?? .null, "started_at": date(viewer.startedAt),
      "stopped_at": viewer.stoppedAt.map(date) ?? .null, "uptime_seconds": .int(Int64(viewer.uptimeSeconds)),
      "exit_reason": viewer.exitReason.map { .string($0) } ?? .null,
    ])
  }

  func date(_ date: Date) -> JSONValue { .string(date.formatted(.iso8601)) }

  // MARK: Plumbing

  /// The handler's JSON, or its error in the seed's shape.
  func answer(_ body: () async throws -> JSONValue) async -> Response {
    do {
      return JSONBody.response(try await body())
    } catch {
      let failure: RemoteHostError =
        switch error {
        case let error as RemoteHostError: error
        case let error as APIError: RemoteHostError(code: .invalidParameters, message: error.message)
        default: RemoteHostError(code: .internalError, message: "\(error)")
        }
      var fields: [String: JSONValue] = [
        "success": .bool(false), "error": .string(failure.code.rawValue), "message": .string(failure.message),
      ]
      if !failure.details.isEmpty { fields["details"] = .object(failure.details.mapValues { .string($0) }) }
      return JSONBody.response(JSONValue.object(fields), status: HTTPResponse.Status(code: failure.code.httpStatus))
    }
  }

  func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
    try await JSONBody.decode(type, from: request, limit: maxBodyBytes)
  }

  func query(_ request: Request, _ name: String) throws -> String {
    guard let value = request.uri.queryParameters.get(name), !value.isEmpty else {
      throw RemoteHostError(code: .invalidParameters, message: "the query parameter '\(name)' is required")
    }
    return value
  }

  func bool(_ request: Request, _ name: String) throws -> Bool? {
    guard let text = request.uri.queryParameters.get(name) else { return nil }
    switch text.lowercased() {
    case "true", "1", "yes": return true
    case "false", "0", "no": return false
    default: throw RemoteHostError(code: .invalidParameters, message: "\(name) must be true or false, got '\(text)'")
    }
  }

  func parameter(_ context: APIRequestContext, _ name: String) throws -> String {
    let raw = try context.parameters.require(name)
    return raw.removingPercentEncoding ?? raw
  }
}
