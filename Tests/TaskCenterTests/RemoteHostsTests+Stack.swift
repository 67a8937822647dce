import TestSupport
import EasyRemote
import Foundation
import NodeCommGRPC
import RemoteHosts
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

extension RemoteHostsTests {
  /// A gateway over gRPC with its task center and HTTP API (behind a token, which the agent
  /// must get through its stdin), and an SSH server on the loopback.
  final class Stack {
    let ssh: SSHServer
    let fabric: TaskFabric
    let endpoint: APIEndpoint
    let manager: RemoteHostManager
    let validator: OpenAPIValidator
    let problems = Mutex<[String]>([])
    static let token = "remote-secret"

    init(
      inNamespace: Bool = false, agentSocket: String? = nil, sshConfig: ((SSHServer) throws -> String)? = nil,
      live: Bool = false
    ) async throws {
      ssh = try await SSHServer(inNamespace: inNamespace)
      let configFile = ssh.folder + "/ssh_config"
      try (sshConfig?(ssh) ?? "").write(toFile: configFile, atomically: true, encoding: .utf8)
      fabric = try await TaskFabric(token: Self.token, transport: GRPCTransport())
      manager = RemoteHostManager(
        configuration: RemoteHostsConfiguration(
          gatewayAddress: fabric.address, gatewayToken: Self.token, sshConfigFile: configFile, knownHostsFile: ssh.knownHosts,
          agentBinary: ChildProgram.product().path,
          agentArguments: ["--max-cpu-percent", "101", "--max-memory-percent", "101"], agentSocket: agentSocket),
        agentVersion: TaskCenterAPI.version)
      endpoint = try await APIEndpoint.open(center: fabric.center, server: fabric.server, remoteHosts: manager, live: live)
      validator = try OpenAPIValidator()
    }

    /// The live server (a stack made `live`: a program of its own calls the API).
    var http: TaskCenterHTTPServer { endpoint.server }
    var base: String { endpoint.base }


    func send(_ method: String, _ path: String, json: Any? = nil) async throws -> HTTPClient.Reply {
      let reply = try await endpoint.send(method, path, json: json, headers: ["Authorization": "Bearer \(Self.token)"])
      let found = validator.problems(method: method, path: path, status: reply.status, body: reply.body)
      problems.withLock { $0 += found }
      return reply
    }

    func get(_ path: String) async throws -> HTTPClient.Reply { try await send("GET", path) }
    func post(_ path: String, _ json: Any) async throws -> HTTPClient.Reply { try await send("POST", path, json: json) }

    /// Logs in with the test key, accepting the host key first.
    func connect(_ extra: [String: Any] = [:]) async throws -> String {
      var body: [String: Any] = [
        "host": ssh.host, "port": ssh.port, "username": SSHServer.user, "auth_method": "key",
        "private_key_path": ssh.clientKey, "accept_host_key": ssh.fingerprint, "timeout": 20,
      ]
      body.merge(extra) { $1 }
      let reply = try await post("/api/remote/connect", body)
      #expect(reply.status == 200, "\(reply.text)")
      return reply.object["connection_id"] as? String ?? ""
    }

    /// Submits a code task and waits for it to complete; its JSON.
    func completedTask(_ code: String) async throws -> [String: Any] {
      let submitted = try await post("/tasks", ["code": code])
      let taskID = try #require(submitted.object["task_id"] as? String, "\(submitted.text)")
      _ = try await fabric.center.wait(taskID, timeout: .seconds(60))
      let task = try await get("/tasks/\(taskID)").object
      #expect(task["status"] as? String == "completed", "\(task)")
      return task
    }

    func stop() async {
      await manager.stop()
      await endpoint.close()
      await fabric.stop()
      await ssh.stop()
      let found = problems.withLock { $0 }
      #expect(found.isEmpty, "responses that break openapi.yaml: \(found)")
    }
  }
}
