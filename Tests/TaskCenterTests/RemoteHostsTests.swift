import TestSupport
import EasyRemote
import Foundation
import NodeCommGRPC
import RemoteHosts
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

/// Remote hosts (seed 003) against a real OpenSSH server the tests start: host keys, logins,
/// inspection, an agent uploaded and started through the SSH connection, its node doing
/// real work, and every refusal in the seed's error shape.
@Suite(.serialized, .enabled(if: SSHServer.available, "needs root and openssh-server (Scripts/test.sh installs it)"))
struct RemoteHostsTests {
  static func errorCode(_ reply: HTTPClient.Reply) -> String? {
    #expect(reply.object["success"] as? Bool == false, "\(reply.text)")
    #expect(reply.object["message"] is String)
    return reply.object["error"] as? String
  }

  @Test func unknownHostKeyIsRefusedWithItsFingerprintUntilAccepted() async throws {
    let stack = try await Stack()
    let login: [String: Any] = [
      "host": "127.0.0.1", "port": stack.ssh.port, "username": SSHServer.user, "auth_method": "key",
      "private_key_path": stack.ssh.clientKey,
    ]
    let unknown = try await stack.post("/api/remote/connect", login)
    #expect(unknown.status == 409)
    #expect(Self.errorCode(unknown) == "host_key_unknown")
    #expect((unknown.object["details"] as? [String: Any])?["fingerprint"] as? String == stack.ssh.fingerprint)
    #expect(try String(contentsOfFile: stack.ssh.knownHosts, encoding: .utf8).isEmpty, "nothing recorded before the user accepts")

    // Accepting another fingerprint than the one presented records nothing.
    var wrong = login
    wrong["accept_host_key"] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    let refused = try await stack.post("/api/remote/connect", wrong)
    #expect(refused.status == 409)
    #expect(Self.errorCode(refused) == "host_key_mismatch")
    #expect(try String(contentsOfFile: stack.ssh.knownHosts, encoding: .utf8).isEmpty)

    var accepted = login
    accepted["accept_host_key"] = stack.ssh.fingerprint
    let connected = try await stack.post("/api/remote/connect", accepted)
    #expect(connected.status == 200, "\(connected.text)")
    #expect(connected.object["success"] as? Bool == true)
    #expect((connected.object["connection_id"] as? String)?.hasPrefix("conn_") == true)
    #expect(connected.object["status"] as? String == "connected")
    #expect((connected.object["server_info"] as? [String: Any])?["os"] as? String == "Linux")
    #expect(try String(contentsOfFile: stack.ssh.knownHosts, encoding: .utf8).contains("ssh-ed25519"))

    // Known now: no acceptance needed.
    let again = try await stack.post("/api/remote/connect", login)
    #expect(again.status == 200, "\(again.text)")
    let list = try await stack.get("/api/remote/connections")
    #expect(list.object["total"] as? Int == 2)
    await stack.stop()
  }

  @Test func changedHostKeyIsAlwaysRefused() async throws {
    let stack = try await Stack()
    // known_hosts holds another key for this host:port, as after a reinstall or an attack.
    let other = stack.ssh.folder + "/other_key"
    try await SSHServer.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
    let key = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
    try "[127.0.0.1]:\(stack.ssh.port) \(key)\n".write(toFile: stack.ssh.knownHosts, atomically: true, encoding: .utf8)
    for accept in [nil, stack.ssh.fingerprint] {
      var body: [String: Any] = [
        "host": "127.0.0.1", "port": stack.ssh.port, "username": SSHServer.user, "private_key_path": stack.ssh.clientKey,
      ]
      body["accept_host_key"] = accept
      let reply = try await stack.post("/api/remote/connect", body)
      #expect(reply.status == 409, "\(reply.text)")
      #expect(Self.errorCode(reply) == "host_key_mismatch")
    }
    await stack.stop()
  }

  @Test func loginsByKeyPasswordAndPassphraseAndTheirFailures() async throws {
    let stack = try await Stack()
    _ = try await stack.connect()  // records the host key
    let user = SSHServer.user
    let base: [String: Any] = ["host": "127.0.0.1", "port": stack.ssh.port, "username": user, "timeout": 20]
    func connect(_ extra: [String: Any]) async throws -> HTTPClient.Reply {
      try await stack.post("/api/remote/connect", base.merging(extra) { $1 })
    }
    let password = try await connect(["auth_method": "password", "password": stack.ssh.password])
    #expect(password.status == 200, "\(password.text)")
    let passphrase = try await connect([
      "auth_method": "key", "private_key_path": stack.ssh.lockedKey, "key_passphrase": stack.ssh.keyPassphrase,
    ])
    #expect(passphrase.status == 200, "\(passphrase.text)")

    let rsa = try await connect(["auth_method": "key", "private_key_path": stack.ssh.rsaKey, "key_passphrase": stack.ssh.keyPassphrase])
    #expect(rsa.status == 200, "\(rsa.text)")

    let wrongPassword = try await connect(["auth_method": "password", "password": "not it"])
    #expect(wrongPassword.status == 401, "\(wrongPassword.text)")
    #expect(Self.errorCode(wrongPassword) == "authentication_failed")
    let wrongPassphrase = try await connect([
      "auth_method": "key", "private_key_path": stack.ssh.lockedKey, "key_passphrase": "not it",
    ])
    #expect(wrongPassphrase.status == 401, "\(wrongPassphrase.text)")
    let stranger = stack.ssh.folder + "/stranger"
    try await SSHServer.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger)
    let wrongKey = try await connect(["auth_method": "key", "private_key_path": stranger])
    #expect(wrongKey.status == 401, "\(wrongKey.text)")
    #expect(Self.errorCode(wrongKey) == "authentication_failed")

    // Secrets are not kept anywhere a listing or the API shows.
    let listing = try await stack.get("/api/remote/connections")
    #expect(!listing.text.contains(stack.ssh.password) && !listing.text.contains("open sesame"))
    let processes = (try? await SSHServer.run("/bin/ps", "axww", "-o", "args")) ?? ""
    #expect(!processes.contains(stack.ssh.password) && !processes.contains("open sesame"))
    await stack.stop()
  }

  @Test("--remote-allow: networks and names a gateway may dial; anything else is 403 target_not_allowed before ssh runs")
  func allowList() async throws {
    let policy = try RemoteTargetPolicy(["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "gpu-box.lan", "*.lab.example.org"])
    #expect(policy.allowsNow("10.20.30.40") && policy.allowsNow("192.168.1.7") && policy.allowsNow("fd12::1"))
    #expect(!policy.allowsNow("192.168.1.8") && !policy.allowsNow("127.0.0.1") && !policy.allowsNow("11.0.0.1") && !policy.allowsNow("::1"))
    #expect(policy.allowsNow("gpu-box.lan") && policy.allowsNow("node3.lab.example.org") && !policy.allowsNow("lab.example.org.evil"))
    #expect(!policy.allowsNow("localhost"), "a name is allowed only by its addresses, unless listed")
    #expect(try RemoteTargetPolicy(["127.0.0.0/8"]).allowsNow("localhost"))
    #expect(throws: RemoteHostError.self) { try RemoteTargetPolicy(["10.0.0.0/33"]) }
    #expect(throws: RemoteHostError.self) { try RemoteTargetPolicy(["not a host; rm -rf /"]) }

    var configuration = RemoteHostsConfiguration(gatewayAddress: "127.0.0.1:1", sshPath: "/nonexistent/ssh")
    configuration.allowedTargets = policy
    let manager = RemoteHostManager(configuration: configuration, agentVersion: "test")
    await #expect(throws: RemoteHostError(code: .targetNotAllowed, message: "this gateway may not connect to 127.0.0.1 (see --remote-allow)", details: ["host": "127.0.0.1"])) {
      _ = try await manager.connect(SSHLogin(host: "127.0.0.1", username: "x", authentication: .agent))
    }
  }

  @Test func refusalsInTheSeedsShape() async throws {
    let stack = try await Stack(live: true)  // an open port of its own that speaks HTTP
    // A port that accepts TCP and never speaks SSH: the login times out.
    let (silent, silentPort) = SSHServer.boundSocket()
    defer { close(silent) }
    listen(silent, 8)
    let timeout = try await stack.post(
      "/api/remote/connect", ["host": "127.0.0.1", "port": silentPort, "username": "x", "auth_method": "agent", "timeout": 1])
    #expect(timeout.status == 408, "\(timeout.text)")
    #expect(Self.errorCode(timeout) == "connection_timeout")

    let refused = try await stack.post(
      "/api/remote/connect", ["host": "127.0.0.1", "port": SSHServer.freePort(), "username": "x", "auth_method": "agent"])
    #expect(refused.status == 503, "\(refused.text)")
    #expect(Self.errorCode(refused) == "service_unavailable")
    // An open port that speaks something else (this gateway's own HTTP port) is told apart
    // from a closed one by nothing but its number: no port scanning through the gateway.
    let httpPort = Int(try #require(stack.http.address?.split(separator: ":").last.map(String.init)))!
    let notSSH = try await stack.post(
      "/api/remote/connect", ["host": "127.0.0.1", "port": httpPort, "username": "x", "auth_method": "agent"])
    #expect(notSSH.status == 503 && Self.errorCode(notSSH) == "service_unavailable", "\(notSSH.text)")
    let message = { (reply: HTTPClient.Reply) in
      ((reply.object["message"] as? String) ?? "").replacingOccurrences(of: #":\d+"#, with: ":PORT", options: .regularExpression)
    }
    #expect(message(notSSH) == message(refused), "\(notSSH.text) / \(refused.text)")

    for body: [String: Any] in [
      ["port": 22],
      ["host": "-oProxyCommand=touch /tmp/pwned", "username": "x"],
      ["host": "127.0.0.1", "username": "-F/etc/passwd"],
      ["host": "127.0.0.1", "auth_method": "password"],
      ["host": "127.0.0.1", "auth_method": "telepathy"],
      ["host": "127.0.0.1", "port": 70000],
      ["host": "127.0.0.1", "auth_method": "password", "password": "two\nlines"],
    ] {
      let reply = try await stack.post("/api/remote/connect", body)
      #expect(reply.status == 400, "\(body): \(reply.text)")
      #expect(Self.errorCode(reply) == "invalid_parameters")
    }
    #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))

    for path in [
      "/api/remote/environments?connection_id=conn_nope", "/api/remote/viewer/status?connection_id=conn_nope",
      "/api/remote/viewer/logs?connection_id=conn_nope", "/api/remote/health?connection_id=conn_nope",
      "/api/remote/ping?connection_id=conn_nope", "/api/remote/config?connection_id=conn_nope&env_name=x",
    ] {
      let reply = try await stack.get(path)
      #expect(reply.status == 404, "\(path): \(reply.text)")
      #expect(Self.errorCode(reply) == "connection_not_found")
    }
    let missing = try await stack.get("/api/remote/environments")
    #expect(missing.status == 400)
    let delete = try await stack.send("DELETE", "/api/remote/connections/conn_nope")
    #expect(delete.status == 404)
    let start = try await stack.post("/api/remote/viewer/start", ["connection_id": "conn_nope", "env_name": "python3"])
    #expect(start.status == 404)
    await stack.stop()
  }

  /// The whole path: connect, inspect, upload and start the agent (in a folder whose name
  /// would break any pasted command), its node runs a task, status/logs/health/ping answer,
  /// stop leaves nothing behind; started again, a dropped SSH connection takes the agent
  /// and its node away.
  @Test func agentJoinsThroughTheTunnelRunsATaskAndLeaves() async throws {
    let stack = try await Stack()
    let id = try await stack.connect()

    let environments = try await stack.get("/api/remote/environments?connection_id=\(id)&filter=runicorn_only")
    #expect(environments.status == 200, "\(environments.text)")
    let list = environments.object["environments"] as? [[String: Any]] ?? []
    let system = try #require(list.first { $0["python_path"] as? String == "/usr/bin/python3" }, "\(environments.text)")
    #expect(system["type"] as? String == "system")
    #expect((system["python_version"] as? String)?.hasPrefix("3.") == true)
    #expect(system["runicorn_installed"] as? Bool == true)
    let envName = try #require(system["name"] as? String)
    let detect = try await stack.post("/api/remote/environments/detect", ["connection_id": id, "force_refresh": true])
    #expect(detect.status == 200 && (detect.object["environments_found"] as? Int ?? 0) >= 1, "\(detect.text)")
    let config = try await stack.get("/api/remote/config?connection_id=\(id)&env_name=\(envName)")
    #expect(config.status == 200, "\(config.text)")
    let noEnv = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": "no-such-env"])
    #expect(noEnv.status == 404)
    #expect(Self.errorCode(noEnv) == "environment_not_found")

    // A root no pasted command survives: spaces, quotes and `;`.
    let root = stack.ssh.home + "/runs/it's a \"root\"; touch PWNED"
    let start = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": envName, "remote_root": root])
    #expect(start.status == 200, "\(start.text)")
    let viewer = start.object["viewer"] as? [String: Any] ?? [:]
    let nodeID = try #require(viewer["node_id"] as? String)
    let url = try #require(viewer["url"] as? String)
    #expect(viewer["status"] as? String == "running")
    #expect((viewer["remote_root"] as? String)?.hasPrefix(root) == true)
    var isFolder: ObjCBool = false
    #expect(FileManager.default.fileExists(atPath: viewer["remote_root"] as? String ?? "", isDirectory: &isFolder) && isFolder.boolValue)
    #expect(!FileManager.default.fileExists(atPath: stack.ssh.home + "/runs/PWNED") && !FileManager.default.fileExists(atPath: stack.ssh.home + "/PWNED"))
    // The token reached the agent on stdin, never on its command line.
    #expect(await stack.ssh.userProcesses(matching: "easyremote").allSatisfy { !$0.contains(Stack.token) })

    let twice = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": envName])
    #expect(twice.status == 409)
    #expect(Self.errorCode(twice) == "viewer_already_running")

    // The agent is a node of the pool and runs code tasks as the SSH user.
    let node = try await stack.get("/nodes/\(nodeID)")
    #expect(node.status == 200, "\(node.text)")
    let task = try await stack.completedTask("import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name)")
    #expect(task["executed_on"] as? String == nodeID)
    let uid = try await SSHServer.run("/usr/bin/id", "-u", SSHServer.user).trimmingCharacters(in: .whitespacesAndNewlines)
    #expect([SSHServer.user, uid].contains(task["result"] as? String ?? ""), "\(task)")

    // Its status page answers here through the local forward.
    let page = try await HTTPClient(base: url).get("/health")
    #expect(page.status == 200 && page.object["node_id"] as? String == nodeID, "\(page.text)")
    let status = try await stack.get("/api/remote/viewer/status?connection_id=\(id)")
    let statusViewer = status.object["viewer"] as? [String: Any] ?? [:]
    #expect(statusViewer["status"] as? String == "running" && statusViewer["uptime_seconds"] is Int, "\(status.text)")
    let health = try await stack.get("/api/remote/health?connection_id=\(id)")
    #expect(health.object["health"] as? String == "healthy", "\(health.text)")
    #expect(health.object["checks"] as? [String: String] == ["ssh_connection": "pass", "viewer_process": "pass", "tunnel_active": "pass"])
    let ping = try await stack.get("/api/remote/ping?connection_id=\(id)")
    #expect((ping.object["latency_ms"] as? Double).map { $0 >= 0 } == true || ping.object["latency_ms"] is Int, "\(ping.text)")
    let logs = try await stack.get("/api/remote/viewer/logs?connection_id=\(id)&lines=50")
    #expect((logs.object["logs"] as? [String] ?? []).contains { $0.contains(nodeID) }, "\(logs.text)")

    // Stop: the node leaves, nothing of the agent is left on the host.
    let stop = try await stack.post("/api/remote/viewer/stop", ["connection_id": id])
    #expect(stop.status == 200, "\(stop.text)")
    #expect(try await until(stack.fabric.server.changes()) { (try await stack.get("/nodes/\(nodeID)")).object["status"] as? String == "offline" })
    #expect(await stack.ssh.untilNoUserProcesses(matching: " node "))

    // Again (the uploaded agent is reused); then the SSH connection drops under it.
    let restart = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": envName])
    #expect(restart.status == 200, "\(restart.text)")
    let secondNode = (restart.object["viewer"] as? [String: Any])?["node_id"] as? String ?? ""
    #expect((try await stack.get("/nodes/\(secondNode)")).object["status"] as? String != "offline")
    await stack.ssh.dropConnections()
    #expect(await stack.ssh.untilNoUserProcesses(matching: " node "), "the agent outlived its connection")
    #expect(try await until(stack.fabric.server.changes()) { (try await stack.get("/nodes/\(secondNode)")).object["status"] as? String == "offline" })
    try await stack.manager.ended(id)
    #expect((try await stack.get("/api/remote/connections")).text.contains("\"disconnected\""))
    let lost = try await stack.get("/api/remote/health?connection_id=\(id)")
    #expect(lost.object["health"] as? String == "unhealthy", "\(lost.text)")

    let disconnect = try await stack.send("DELETE", "/api/remote/connections/\(id)?cleanup_viewer=true")
    #expect(disconnect.status == 200, "\(disconnect.text)")
    #expect((try await stack.get("/api/remote/ping?connection_id=\(id)")).status == 404)
    await stack.stop()
  }

  /// What users have in `~/.ssh/config` works: a host alias with its HostName, Port, User
  /// and IdentityFile, reached through a ProxyJump.
  @Test func sshConfigAliasesAndProxyJump() async throws {
    let stack = try await Stack { ssh in
      // The jump's own ssh reads this file too (our -o options are not passed on to it).
      """
      Host *
        UserKnownHostsFile \(ssh.knownHosts)
      Host jump
        HostName 127.0.0.1
        Port \(ssh.port)
        User \(SSHServer.user)
        IdentityFile \(ssh.clientKey)
      Host gpu-box
        HostName 127.0.0.1
        Port \(ssh.port)
        User \(SSHServer.user)
        IdentityFile \(ssh.clientKey)
        ProxyJump jump

      """
    }
    let first = try await stack.post("/api/remote/connect", ["host": "jump", "accept_host_key": stack.ssh.fingerprint])
    #expect(first.status == 200, "\(first.text)")
    let alias = try await stack.post("/api/remote/connect", ["host": "gpu-box"])
    #expect(alias.status == 200, "\(alias.text)")
    let id = try #require(alias.object["connection_id"] as? String)
    // The alias's user and port, as ssh reads them from the config.
    #expect(alias.object["username"] as? String == SSHServer.user)
    #expect(alias.object["port"] as? Int == stack.ssh.port)
    #expect(alias.object["host"] as? String == "gpu-box")
    let ping = try await stack.get("/api/remote/ping?connection_id=\(id)")
    #expect(ping.status == 200, "\(ping.text)")
    // The jump went through sshd too: the alias took two logins (the jump, then the host).
    #expect(stack.ssh.log.components(separatedBy: "Accepted publickey for \(SSHServer.user)").count - 1 == 3, "\(stack.ssh.log)")
    await stack.stop()
  }

  /// `auth_method: agent` logs in with a key only the user's ssh-agent holds (its file is
  /// never named); without the agent the same login fails.
  @Test func sshAgentLogin() async throws {
    let folder = NSTemporaryDirectory() + "agent-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let socket = folder + "/agent.sock"
    let agent = try await RunningProgram.start(["/usr/bin/ssh-agent", "-D", "-a", socket], readyPrefix: "SSH_AUTH_SOCK=")
    let stack = try await Stack(agentSocket: socket)
    try await SSHServer.run("/usr/bin/env", "SSH_AUTH_SOCK=\(socket)", "/usr/bin/ssh-add", "-q", stack.ssh.agentOnlyKey)
    let login: [String: Any] = [
      "host": stack.ssh.host, "port": stack.ssh.port, "username": SSHServer.user, "auth_method": "agent",
      "accept_host_key": stack.ssh.fingerprint,
    ]
    let connected = try await stack.post("/api/remote/connect", login)
    #expect(connected.status == 200, "\(connected.text)")
    try await SSHServer.run("/usr/bin/env", "SSH_AUTH_SOCK=\(socket)", "/usr/bin/ssh-add", "-D")
    let refused = try await stack.post("/api/remote/connect", login)
    #expect(refused.status == 401, "\(refused.text)")
    await stack.stop()
    await agent.stop()
    try? FileManager.default.removeItem(atPath: folder)
  }

  /// The seed document's own Python client class runs its basic example against the gateway.
  @Test func seedsPythonClientRunsItsBasicExample() async throws {
    let stack = try await Stack(live: true)  // a Python program calls the API
    _ = try await stack.connect()  // the user accepted the host key once before
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/seed_remote_client.py").path
    let output = try await SSHServer.run(
      "/usr/bin/env", "EASYREMOTE_API=\(stack.base)", "EASYREMOTE_TOKEN=\(Stack.token)", "SSH_HOST=127.0.0.1",
      "SSH_PORT=\(stack.ssh.port)", "SSH_USER=\(SSHServer.user)", "SSH_KEY=\(stack.ssh.clientKey)", "PYTHONIOENCODING=utf-8",
      "python3", script)
    #expect(output.contains("Viewer 状态: running"), "\(output)")
    #expect(output.contains("连接健康: healthy"), "\(output)")
    #expect(output.contains("已断开连接"), "\(output)")
    #expect(await stack.ssh.untilNoUserProcesses(matching: " node "))
    await stack.stop()
  }

  /// `easyremote remote ...` drives the same API: connect (accepting the host key it prints,
  /// then with a password on stdin), envs, start, status, ping, logs, stop, disconnect.
  @Test func commandLine() async throws {
    let stack = try await Stack(live: true)  // the CLI, a program of its own, calls the API
    let binary = ChildProgram.product().path
    let api = ["--api", stack.base, "--token", Stack.token]
    func cli(_ arguments: [String], input: String? = nil) async throws -> String {
      try await SSHServer.run("/usr/bin/env", ["EASYREMOTE_LOG=error", binary] + arguments, input: input)
    }
    let target = "\(SSHServer.user)@127.0.0.1:\(stack.ssh.port)"
    // Without --accept-host-key an unknown host is refused, naming the fingerprint.
    await #expect(throws: SSHServer.Failure.self) { try await cli(["remote", "connect", target, "--key", stack.ssh.clientKey] + api) }
    let id = try await cli(["remote", "connect", target, "--key", stack.ssh.clientKey, "--accept-host-key"] + api)
      .split(separator: "\n").first { $0.hasPrefix("conn_") }.map(String.init) ?? ""
    #expect(id.hasPrefix("conn_"), "\(id)")
    let byPassword = try await cli(["remote", "connect", target, "--password-stdin"] + api, input: stack.ssh.password + "\n")
    #expect(byPassword.contains("conn_"), "\(byPassword)")
    let list = try await cli(["remote", "list"] + api)
    #expect(list.contains(id) && list.contains("connected"), "\(list)")
    let envs = try await cli(["remote", "envs", id] + api)
    #expect(envs.contains("/usr/bin/python3"), "\(envs)")
    let started = try await cli(["remote", "start", id] + api)
    #expect(started.contains("started") && started.contains("http://127.0.0.1:"), "\(started)")
    let status = try await cli(["remote", "status", id, "--json"] + api)
    #expect(status.contains("\"status\":\"running\""), "\(status)")
    #expect(try await cli(["remote", "ping", id] + api).contains(" ms"))
    #expect(try await cli(["remote", "health", id] + api).hasPrefix("healthy"))
    #expect(try await cli(["remote", "logs", id, "--lines", "20"] + api).contains("joined"))
    #expect(try await cli(["remote", "stop", id] + api).contains("stopped"))
    #expect(try await cli(["remote", "disconnect", id] + api).contains("disconnected"))
    await #expect(throws: SSHServer.Failure.self) { try await cli(["remote", "status", id] + api) }
    await stack.stop()
  }

  /// The host is another machine on the network (its own network namespace, reached over a
  /// veth pair) that cannot reach the gateway at all — only through the SSH tunnel.
  @Test func agentOnAnotherHostJoinsOnlyThroughTheTunnel() async throws {
    let stack = try await Stack(inNamespace: true)
    let gatewayPort = Int(stack.fabric.address.split(separator: ":").last ?? "") ?? 0
    #expect(!(await stack.ssh.reachableFromInside("127.0.0.1", gatewayPort)), "the host reaches the gateway directly")
    #expect(!(await stack.ssh.reachableFromInside(stack.ssh.host.split(separator: ".").dropLast().joined(separator: ".") + ".1", gatewayPort)))
    #expect(await stack.ssh.reachableFromInside(stack.ssh.host, 22), "the probe itself works")
    let id = try await stack.connect()
    let environments = try await stack.get("/api/remote/environments?connection_id=\(id)")
    let envName = try #require((environments.object["environments"] as? [[String: Any]])?.first?["name"] as? String, "\(environments.text)")
    let start = try await stack.post("/api/remote/viewer/start", ["connection_id": id, "env_name": envName])
    #expect(start.status == 200, "\(start.text)")
    let nodeID = try #require((start.object["viewer"] as? [String: Any])?["node_id"] as? String)
    let task = try await stack.completedTask("print(6 * 7)")
    #expect(task["executed_on"] as? String == nodeID && task["result"] as? String == "42", "\(task)")
    await stack.ssh.dropConnections()
    #expect(try await until(stack.fabric.server.changes()) { (try await stack.get("/nodes/\(nodeID)")).object["status"] as? String == "offline" })
    #expect(await stack.ssh.untilNoUserProcesses(matching: " node "))
    await stack.stop()
  }

  /// `easyremote gateway` as a real process, uploading itself (`/proc/self/exe`); SIGKILLed,
  /// its SSH connections die with it, and so do the agents on the hosts.
  @Test func gatewayKilledTakesItsAgentsAlong() async throws {
    let ssh = try await SSHServer()
    let binary = ChildProgram.product().path
    let db = ssh.folder + "/gateway.sqlite"
    let gateway = try await RunningProgram.start(
      [binary, "gateway", "--port", "0", "--http-port", "0", "--db", db, "--token", Stack.token, "--known-hosts", ssh.knownHosts,
       "--ssh-config", "/dev/null"],
      readyPrefix: "gateway listening on ")
    let base = try #require(gateway.lines.first { $0.hasPrefix("http api on ") }?.replacingOccurrences(of: "http api on ", with: ""))
    let http = HTTPClient(base: base)
    let auth = ["Authorization": "Bearer \(Stack.token)"]
    let connect = try await http.send(
      "POST", "/api/remote/connect",
      json: [
        "host": ssh.host, "port": ssh.port, "username": SSHServer.user, "private_key_path": ssh.clientKey,
        "accept_host_key": ssh.fingerprint,
      ], headers: auth)
    let id = try #require(connect.object["connection_id"] as? String, "\(connect.text)")
    let environments = try await http.send("GET", "/api/remote/environments?connection_id=\(id)", headers: auth)
    let envName = try #require((environments.object["environments"] as? [[String: Any]])?.first?["name"] as? String)
    let start = try await http.send("POST", "/api/remote/viewer/start", json: ["connection_id": id, "env_name": envName], headers: auth)
    #expect(start.status == 200, "\(start.text)")
    #expect(await !ssh.userProcesses(matching: " node ").isEmpty)

    await gateway.stop(SIGKILL)
    #expect(await ssh.untilNoUserProcesses(matching: " node "), "an agent outlived its gateway")
    let masters = (try? await SSHServer.run("/usr/bin/pgrep", "-af", "easyremote-ssh-")) ?? ""
    #expect(!masters.contains("ssh "), "ssh processes outlived the gateway: \(masters)")
    await ssh.stop()
  }
}
