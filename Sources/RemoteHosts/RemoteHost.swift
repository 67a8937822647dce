import Foundation
import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// One connected host: its SSH connection, what it offers, and the agent started there.
/// An actor, so starting, stopping and inspecting one host happen one at a time.
actor RemoteHost {
  let id: String
  let connection: SSHConnection
  let createdAt = Date()
  private let configuration: RemoteHostsConfiguration
  private let agentVersion: String
  private let logger: Logger
  private(set) var inspection: HostInspection
  private(set) var lastPing: Date?
  private var viewer: RemoteViewer?
  private var session: LocalProcess?
  private var forwards: [[String]] = []

  init(
    id: String, connection: SSHConnection, inspection: HostInspection, configuration: RemoteHostsConfiguration,
    agentVersion: String, logger: Logger
  ) {
    self.id = id
    self.connection = connection
    self.inspection = inspection
    self.configuration = configuration
    self.agentVersion = agentVersion
    self.logger = logger
  }

  func info() -> RemoteConnectionInfo {
    let login = connection.login
    return RemoteConnectionInfo(
      id: id, host: login.host, port: connection.resolved.port, username: connection.resolved.user,
      status: connection.isAlive ? "connected" : "disconnected", createdAt: createdAt, lastPing: lastPing,
      inspection: inspection, viewer: currentViewer())
  }

  private func currentViewer() -> RemoteViewer? {
    guard var viewer else { return nil }
    if viewer.status == .running, session?.hasExited == true {
      viewer.status = .stopped
      viewer.stoppedAt = viewer.stoppedAt ?? Date()
    }
    return viewer
  }

  func detect() async throws(RemoteHostError) -> HostInspection {
    inspection = try await HostInspector.inspect(connection, agentVersion: agentVersion)
    return inspection
  }

  func environment(named name: String) throws(RemoteHostError) -> RemoteEnvironment {
    guard let environment = inspection.environments.first(where: { $0.name == name }) else {
      let names = inspection.environments.map(\.name).joined(separator: ", ")
      throw RemoteHostError(
        code: .environmentNotFound,
        message: "no environment '\(name)' on \(connection.login.host) (it has: \(names.isEmpty ? "none" : names))")
    }
    return environment
  }

  func ping() async throws(RemoteHostError) -> Double {
    let latency = try await connection.ping()
    lastPing = Date()
    return latency
  }

  // MARK: The agent

  /// Starts `easyremote node` on the host in `environment`, joined to the gateway through a
  /// remote forward of this connection, its status page forwarded back here.
  func startViewer(environment name: String, remoteRoot: String?, localPort: Int?) async throws(RemoteHostError) -> RemoteViewer {
    if let viewer = currentViewer(), viewer.status == .running || viewer.status == .starting {
      throw RemoteHostError(code: .viewerAlreadyRunning, message: "an agent already runs on \(connection.login.host) (node \(viewer.nodeID))")
    }
    let environment = try environment(named: name)
    if let remoteRoot, remoteRoot.isEmpty || remoteRoot.contains("\0") {
      throw RemoteHostError.invalid("remote_root must be a path")
    }
    if let localPort, !(1...65535).contains(localPort) { throw RemoteHostError.invalid("local_port must be 1-65535") }
    let agent = try await AgentDeployer.ensureAgent(
      on: connection, inspection: inspection, version: agentVersion, configuration: configuration)
    let root = remoteRoot.map { $0.hasPrefix("~/") ? inspection.home + $0.dropFirst(1) : $0 } ?? inspection.home + "/.cache/easyremote/run"
    let folder = root + "/agent-" + id
    let nodeID = "\(inspection.hostname.isEmpty ? connection.login.host : inspection.hostname)-\(id)"
    let gateway = Self.loopback(configuration.gatewayAddress)
    let gatewayPort = try await connection.forwardRemote(to: gateway)
    forwards = [["-R", "127.0.0.1:\(gatewayPort):\(gateway)"]]
    let q = ShellQuote.quote
    let arguments =
      [agent, "node", "--gateway", "127.0.0.1:\(gatewayPort)", "--id", nodeID, "--interpreter", environment.pythonPath,
       "--status-port", "0", "--lifeline"] + configuration.agentArguments
    let script =
      "umask 077 && mkdir -p \(q(folder)) && cd \(q(folder)) && echo $$ > agent.pid && exec \(ShellQuote.command(arguments)) 2>> agent.log"
    let started = Date()
    let session: LocalProcess
    do {
      session = try await connection.session(script: script)
    } catch {
      await cancelForwards()
      throw error
    }
    self.session = session
    // The token goes in on stdin, never on a command line; the rest of stdin is the lifeline.
    _ = session.write(Data(((configuration.gatewayToken ?? "") + "\n").utf8))
    viewer = RemoteViewer(
      status: .starting, url: "", localPort: 0, remotePort: 0, gatewayPort: gatewayPort, nodeID: nodeID, envName: environment.name,
      pythonPath: environment.pythonPath, remoteRoot: folder, agentPath: agent, pid: nil, startedAt: started)

    let ready = await Self.waitForReady(session, timeout: configuration.agentStartTimeout)
    guard let statusPort = ready.statusPort, ready.joined else {
      let tail = (try? await logs(lines: 20)) ?? []
      await stopSession(session)
      await cancelForwards()
      viewer?.status = .failed
      viewer?.stoppedAt = Date()
      viewer?.exitReason = tail.last
      throw RemoteHostError(
        code: .agentUnavailable,
        message: "the agent did not join the gateway within \(Int(configuration.agentStartTimeout)) s: \(tail.suffix(5).joined(separator: " | "))")
    }
    var port = localPort ?? HTTPProbe.freePort() ?? 0
    var forwarded = false
    for attempt in 0..<3 {
      do {
        try await connection.forwardLocal(port, to: "127.0.0.1:\(statusPort)")
        forwarded = true
        break
      } catch {
        if localPort != nil || attempt == 2 { break }
        port = HTTPProbe.freePort() ?? 0
      }
    }
    if forwarded { forwards.append(["-L", "127.0.0.1:\(port):127.0.0.1:\(statusPort)"]) }
    let pid = try? await connection.run(script: "cat \(q(folder + "/agent.pid"))", timeout: .seconds(30))
    viewer?.status = .running
    viewer?.localPort = forwarded ? port : 0
    viewer?.url = forwarded ? "http://127.0.0.1:\(port)" : ""
    viewer?.remotePort = statusPort
    viewer?.pid = pid.flatMap { Int(String(decoding: $0.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
    logger.info("agent started", metadata: ["connection": "\(id)", "node": "\(nodeID)", "url": "\(viewer?.url ?? "")"])
    let watched = session
    // Unstructured: the agent's session outlives this start; the watcher ends with it, and
    // `close()` ends the session.
    Task { [weak self] in
      let status = await watched.wait()
      await self?.sessionEnded(watched, status: status)
    }
    return viewer!
  }

  private func sessionEnded(_ ended: LocalProcess, status: Int32) {
    guard ended === session, viewer?.status == .running else { return }
    viewer?.status = .stopped
    viewer?.stoppedAt = Date()
    viewer?.exitReason = connection.isAlive ? "the agent exited (status \(status))" : "the SSH connection ended"
  }

  /// Reads the agent's first lines: `status on http://127.0.0.1:PORT` and `node ... joined`.
  private static func waitForReady(_ session: LocalProcess, timeout: Double) async -> (statusPort: Int?, joined: Bool) {
    await withTaskGroup(of: (Int?, Bool)?.self) { group in
      group.addTask {
        var port: Int?
        var joined = false
        for await line in session.lines! {
          if line.hasPrefix("status on http://"), let value = line.split(separator: ":").last.flatMap({ Int($0) }) { port = value }
          if line.hasPrefix("node "), line.contains(" joined ") { joined = true }
          if port != nil && joined { return (port, joined) }
        }
        return (port, joined)
      }
      group.addTask {
        try? await Task.sleep(for: .seconds(timeout))
        return nil
      }
      let first = await group.next()! ?? (nil, false)
      group.cancelAll()
      return first
    }
  }

  /// Stops the agent: the end of its stdin asks it to leave (its tasks go back to the queue);
  /// one that does not go within 15 s is killed through its pid file.
  func stopViewer(cleanup: Bool) async throws(RemoteHostError) -> Date {
    guard let viewer = currentViewer(), viewer.status == .running || viewer.status == .starting, let session else {
      throw RemoteHostError(code: .viewerNotRunning, message: "no agent runs on \(connection.login.host)")
    }
    await stopSession(session)
    await cancelForwards()
    if connection.isAlive {
      let q = ShellQuote.quote
      // Whatever is left (a stuck agent): TERM, then KILL; then make sure it is gone.
      let pidFile = q(viewer.remoteRoot + "/agent.pid")
      _ = try? await connection.run(
        script: """
          p=$(cat \(pidFile) 2>/dev/null) || exit 0
          kill -0 "$p" 2>/dev/null || exit 0
          kill -TERM "$p"; i=0
          while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
          kill -KILL "$p" 2>/dev/null; true
          """, timeout: .seconds(30))
      if cleanup { _ = try? await connection.run(["rm", "-f", viewer.remoteRoot + "/agent.pid"], timeout: .seconds(30)) }
    }
    let stopped = Date()
    self.viewer?.status = .stopped
    self.viewer?.stoppedAt = stopped
    self.viewer?.exitReason = "stopped"
    self.session = nil
    return stopped
  }

  private func stopSession(_ session: LocalProcess) async {
    session.closeInput()
    let (_, timedOut) = await session.wait(timeout: .seconds(15))
    if timedOut { logger.warning("agent session did not end in 15 s", metadata: ["connection": "\(id)"]) }
  }

  private func cancelForwards() async {
    for forward in forwards { await connection.cancelForward(forward) }
    forwards = []
  }

  func viewerState() throws(RemoteHostError) -> RemoteViewer {
    guard let viewer = currentViewer() else {
      throw RemoteHostError(code: .viewerNotRunning, message: "no agent was started on \(connection.login.host)")
    }
    return viewer
  }

  /// The last `lines` lines of the agent's log on the host.
  func logs(lines: Int) async throws(RemoteHostError) -> [String] {
    guard let viewer else {
      throw RemoteHostError(code: .viewerNotRunning, message: "no agent was started on \(connection.login.host)")
    }
    let output = try await connection.run(["tail", "-n", String(lines), viewer.remoteRoot + "/agent.log"], timeout: .seconds(30))
    guard output.status == 0 else { return [] }
    return String(decoding: output.stdout, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
      .map(String.init).filter { !$0.isEmpty }
  }

  func health() async -> RemoteHealth {
    let ssh = connection.isAlive
    var process: Bool?
    var tunnel: Bool?
    if let viewer = currentViewer(), viewer.status == .running {
      process = session?.hasExited == false
      if let pid = viewer.pid, ssh {
        let output = try? await connection.run(["kill", "-0", String(pid)], timeout: .seconds(30))
        process = process == true && output?.status == 0
      }
      // Any answer of the status page through the local forward proves the tunnel.
      tunnel = viewer.localPort > 0 ? await HTTPProbe.get(port: viewer.localPort, path: "/health") != nil : false
    }
    return RemoteHealth(sshConnection: ssh, viewerProcess: process, tunnelActive: tunnel, checkedAt: Date())
  }

  /// Stops the agent (when asked) and ends the connection.
  func close(stopViewer: Bool) async {
    if stopViewer, let viewer = currentViewer(), viewer.status == .running || viewer.status == .starting {
      _ = try? await self.stopViewer(cleanup: true)
    }
    await connection.close()
    if let session { await stopSession(session) }
  }

  /// `0.0.0.0:port` and `[::]:port` are reached on the loopback.
  static func loopback(_ address: String) -> String {
    guard let colon = address.lastIndex(of: ":") else { return address }
    let host = address[..<colon]
    let port = address[address.index(after: colon)...]
    if host == "0.0.0.0" || host == "[::]" || host == "::" || host.isEmpty { return "127.0.0.1:\(port)" }
    return address
  }
}
