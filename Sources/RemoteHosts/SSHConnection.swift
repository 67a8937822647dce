import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One SSH connection to a host, driven through the system's OpenSSH client: a master
/// process (`ControlMaster`) that holds the connection, and short-lived `ssh -S` clients
/// multiplexed over it for commands, uploads, port forwards and the agent's session.
///
/// OpenSSH gives users what they expect of SSH — `~/.ssh/config` aliases, `ssh-agent`,
/// encrypted keys, `ProxyJump`, their known_hosts — with host keys always checked
/// (`StrictHostKeyChecking=ask`, answered by ``AskPass``: unknown keys are refused unless the
/// user accepted that exact fingerprint, changed keys always).
final class SSHConnection: Sendable {
  let login: SSHLogin
  let configuration: RemoteHostsConfiguration
  /// The user, port and host name ssh uses after reading the ssh config (`ssh -G`).
  let resolved: (user: String, port: Int, hostname: String)
  /// This connection's private folder (0700): the control socket.
  let folder: String
  private let master: LocalProcess
  private let lost = Mutex<Bool>(false)

  var controlPath: String { folder + "/ctl" }

  private init(
    login: SSHLogin, configuration: RemoteHostsConfiguration, folder: String, master: LocalProcess,
    resolved: (user: String, port: Int, hostname: String)
  ) {
    self.login = login
    self.resolved = resolved
    self.configuration = configuration
    self.folder = folder
    self.master = master
  }

  /// Connects and logs in; throws a ``RemoteHostError`` that says why not (host key unknown
  /// or changed, authentication failed, timeout, host unreachable).
  static func open(_ login: SSHLogin, configuration: RemoteHostsConfiguration) async throws(RemoteHostError) -> SSHConnection {
    try login.validate()
    let folder = try makeFolder()
    let secret: String? =
      switch login.authentication {
      case .password(let password): password
      case .key(_, let passphrase): passphrase
      case .agent: nil
      }
    let askPass: AskPass
    do {
      askPass = try AskPass(folder: folder + "/ask", secret: secret, acceptedHostKey: login.acceptedHostKey)
    } catch {
      try? FileManager.default.removeItem(atPath: folder)
      throw error
    }
    defer { askPass.finish() }
    let command =
      [configuration.sshPath] + configArguments(configuration) + [
        "-M", "-S", folder + "/ctl", "-N", "-T",
        "-o", "ControlPersist=no",
        "-o", "PermitLocalCommand=yes", "-o", "LocalCommand=echo easyremote-ready",
        "-o", "ServerAliveInterval=\(configuration.keepaliveInterval)", "-o", "ServerAliveCountMax=3",
        "-o", "ConnectTimeout=\(max(1, Int(login.timeout.rounded(.up))))",
        "-o", "StrictHostKeyChecking=ask", "-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1",
        "-o", "ExitOnForwardFailure=yes", "-o", "ClearAllForwardings=yes",
        "-o", "ForwardAgent=no", "-o", "ForwardX11=no", "-o", "RequestTTY=no",
      ] + authenticationArguments(login.authentication) + targetArguments(login)
    var environment = baseEnvironment(agent: true)
    if let socket = configuration.agentSocket { environment["SSH_AUTH_SOCK"] = socket }
    environment.merge(askPass.environment) { $1 }
    let master: LocalProcess
    do {
      master = try await LocalProcess.start(command, environment: environment, lines: true)
    } catch {
      try? FileManager.default.removeItem(atPath: folder)
      throw error
    }
    // Ready when ssh runs the LocalCommand (after login); failed when it exits first.
    let ready = await withTaskGroup(of: Bool?.self) { group in
      group.addTask {
        for await line in master.lines! where line == "easyremote-ready" { return true }
        return false
      }
      group.addTask {
        try? await Task.sleep(for: .seconds(login.timeout + 5))
        return nil
      }
      let first = await group.next()!
      group.cancelAll()
      return first
    }
    if ready == true {
      return SSHConnection(
        login: login, configuration: configuration, folder: folder, master: master,
        resolved: await effectiveSettings(login, configuration: configuration))
    }
    master.signal(SIGKILL)
    _ = await master.wait()
    let stderr = await master.errorText()
    let prompts = askPass.prompts()
    try? FileManager.default.removeItem(atPath: folder)
    throw classify(stderr: stderr, prompts: prompts, login: login, timedOut: ready == nil)
  }

  /// `ssh -G`: what the ssh config makes of the login (an alias's user, port, host name).
  private static func effectiveSettings(_ login: SSHLogin, configuration: RemoteHostsConfiguration) async
    -> (user: String, port: Int, hostname: String)
  {
    var settings: [String: String] = [:]
    if let process = try? await LocalProcess.start(
      [configuration.sshPath] + configArguments(configuration) + ["-G"] + targetArguments(login),
      environment: baseEnvironment(agent: false))
    {
      let (output, _) = await process.output(timeout: .seconds(10))
      for line in String(decoding: output.stdout, as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: " ", maxSplits: 1)
        if parts.count == 2, settings[String(parts[0])] == nil { settings[String(parts[0])] = String(parts[1]) }
      }
    }
    return (
      settings["user"] ?? login.username ?? ProcessInfo.processInfo.environment["USER"] ?? "",
      settings["port"].flatMap { Int($0) } ?? login.port ?? 22, settings["hostname"] ?? login.host
    )
  }

  /// Why ssh failed, from what it printed and asked.
  static func classify(stderr: String, prompts: [String], login: SSHLogin, timedOut: Bool) -> RemoteHostError {
    let target = "\(login.username.map { "\($0)@" } ?? "")\(login.host)\(login.port.map { ":\($0)" } ?? "")"
    var details = ["host": login.host]
    if let port = login.port { details["port"] = String(port) }
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || stderr.contains("has changed and you have requested strict checking") {
      if let fingerprint = fingerprint(in: stderr) { details["fingerprint"] = fingerprint }
      return RemoteHostError(
        code: .hostKeyMismatch,
        message: "the host key of \(target) has changed since it was recorded in known_hosts; refusing to connect (if the host was reinstalled, remove its old key with ssh-keygen -R)",
        details: details)
    }
    if let question = prompts.first(where: { $0.contains("continue connecting") }) {
      let offered = fingerprint(in: question)
      if let offered { details["fingerprint"] = offered }
      if let type = question.split(separator: "\n").first(where: { $0.contains("key fingerprint is") })?.split(separator: " ").first {
        details["key_type"] = String(type)
      }
      if let accepted = login.acceptedHostKey {
        return RemoteHostError(
          code: .hostKeyMismatch,
          message: "\(target) presented host key \(offered ?? "?"), not the accepted \(accepted); refusing to connect",
          details: details)
      }
      return RemoteHostError(
        code: .hostKeyUnknown,
        message: "the host key of \(target) is not in known_hosts; check its fingerprint \(offered ?? "?") and accept it to connect",
        details: details)
    }
    if stderr.contains("Host key verification failed") {
      return RemoteHostError(code: .hostKeyMismatch, message: "host key verification of \(target) failed: \(lastLine(stderr))", details: details)
    }
    if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures")
      || stderr.contains("Authentication failed") || stderr.contains("Load key")
    {
      return RemoteHostError(code: .authenticationFailed, message: "SSH authentication to \(target) failed: \(lastLine(stderr))", details: details)
    }
    if timedOut || stderr.contains("timed out") {
      return RemoteHostError(code: .connectionTimeout, message: "connecting to \(target) timed out after \(login.timeout) s", details: details)
    }
    // Anything else before a login — nothing listening, something that is not SSH, a reset,
    // an unknown name — is one answer: the gateway is no port scanner (what ssh said would
    // tell a closed port from an open one), and its caller's input is no server fault.
    return RemoteHostError(code: .serviceUnavailable, message: "no SSH server answered at \(target)", details: details)
  }

  private static func fingerprint(in text: String) -> String? {
    guard let range = text.range(of: #"SHA256:[A-Za-z0-9+/=]+"#, options: .regularExpression) else { return nil }
    return String(text[range])
  }

  private static func lastLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty } ?? "no message"
  }

  private static func makeFolder() throws(RemoteHostError) -> String {
    // Short: a control socket's path must fit in 108 bytes.
    var template = Array("/tmp/easyremote-ssh-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw RemoteHostError(code: .internalError, message: "could not make a private folder: \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
  }

  static func configArguments(_ configuration: RemoteHostsConfiguration) -> [String] {
    var arguments: [String] = []
    if let file = configuration.sshConfigFile { arguments += ["-F", file] }
    if let file = configuration.knownHostsFile { arguments += ["-o", "UserKnownHostsFile=\(file)"] }
    return arguments
  }

  private static func authenticationArguments(_ authentication: SSHLogin.Authentication) -> [String] {
    switch authentication {
    case .key(let path, _):
      (path.map { ["-i", $0, "-o", "IdentitiesOnly=yes"] } ?? []) + ["-o", "PreferredAuthentications=publickey"]
    case .password:
      ["-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"]
    case .agent:
      ["-o", "PreferredAuthentications=publickey"]
    }
  }

  private static func targetArguments(_ login: SSHLogin) -> [String] {
    (login.port.map { ["-p", String($0)] } ?? []) + (login.username.map { ["-l", $0] } ?? []) + ["--", login.host]
  }

  /// What every ssh child gets: no terminal prompts, messages in English.
  private static func baseEnvironment(agent: Bool) -> [String: String] {
    let inherited = ProcessInfo.processInfo.environment
    var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"]
    for name in ["HOME", "USER", "LOGNAME"] + (agent ? ["SSH_AUTH_SOCK"] : []) { environment[name] = inherited[name] }
    return environment
  }

  // MARK: Using the connection

  /// Whether the master still holds the connection.
  var isAlive: Bool { !master.hasExited && !lost.withLock { $0 } }

  /// Returns when the connection has ended (lost or closed).
  func ended() async { _ = await master.wait() }

  /// An `ssh -S` client of the master for `remoteCommand` (already one shell-quoted string),
  /// or for a control operation (`-O ...`) when `remoteCommand` is nil.
  private func clientCommand(_ extra: [String], remoteCommand: String?) -> [String] {
    [configuration.sshPath] + Self.configArguments(configuration)
      + ["-S", controlPath, "-o", "ControlMaster=no", "-o", "BatchMode=yes", "-T"] + extra
      + Self.targetArguments(login) + (remoteCommand.map { [$0] } ?? [])
  }

  /// Runs `arguments` on the host (each one quoted word, see ``ShellQuote``) and gives what it
  /// printed; `stdin` feeds it a local file descriptor.
  func run(
    _ arguments: [String], stdin: LocalProcess.Input = .none, timeout: Duration = .seconds(60)
  ) async throws(RemoteHostError) -> LocalProcess.Output {
    try await run(script: ShellQuote.command(arguments), stdin: stdin, timeout: timeout)
  }

  /// Runs a shell script of ours (never built from user text except through ``ShellQuote``).
  func run(script: String, stdin: LocalProcess.Input = .none, timeout: Duration = .seconds(60)) async throws(RemoteHostError)
    -> LocalProcess.Output
  {
    try checkAlive()
    let process = try await LocalProcess.start(
      clientCommand([], remoteCommand: script), environment: Self.baseEnvironment(agent: false), stdin: stdin)
    let (output, timedOut) = await process.output(timeout: timeout)
    if timedOut {
      throw RemoteHostError(code: .connectionTimeout, message: "a command on \(login.host) took longer than \(timeout)")
    }
    if output.status == 255 && !isAlive { throw lostError() }
    return output
  }

  /// Starts `script` on the host as a session of its own whose stdin we hold (closing it is
  /// the end of input on the host) and whose stdout we read line by line.
  func session(script: String) async throws(RemoteHostError) -> LocalProcess {
    try checkAlive()
    return try await LocalProcess.start(
      clientCommand([], remoteCommand: script), environment: Self.baseEnvironment(agent: false), stdin: .pipe, lines: true)
  }

  /// Forwards a port the server allocates on the host's loopback to `local` (`host:port`
  /// here): what the agent dials to reach the gateway. Returns the host's port.
  func forwardRemote(to local: String) async throws(RemoteHostError) -> Int {
    let output = try await control(["-O", "forward", "-R", "127.0.0.1:0:\(local)"])
    guard let port = Int(String(decoding: output.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
      throw RemoteHostError(code: .sshError, message: "the server did not allocate a port to forward: \(output.stderr)")
    }
    return port
  }

  /// Forwards `localPort` on our loopback to `remote` (`host:port` as the host sees it).
  func forwardLocal(_ localPort: Int, to remote: String) async throws(RemoteHostError) {
    _ = try await control(["-O", "forward", "-L", "127.0.0.1:\(localPort):\(remote)"])
  }

  func cancelForward(_ specification: [String]) async {
    _ = try? await control(["-O", "cancel"] + specification)
  }

  @discardableResult
  private func control(_ arguments: [String]) async throws(RemoteHostError) -> LocalProcess.Output {
    try checkAlive()
    let process = try await LocalProcess.start(
      clientCommand(arguments, remoteCommand: nil), environment: Self.baseEnvironment(agent: false))
    let (output, timedOut) = await process.output(timeout: .seconds(30))
    guard !timedOut, output.status == 0 else {
      if !isAlive { throw lostError() }
      throw RemoteHostError(
        code: .sshError, message: "ssh \(arguments.joined(separator: " ")) failed: \(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    return output
  }

  /// Round-trip time of a no-op command over the connection, in milliseconds.
  func ping() async throws(RemoteHostError) -> Double {
    let started = ContinuousClock.now
    let output = try await run(script: "true", timeout: .seconds(30))
    guard output.status == 0 else { throw RemoteHostError(code: .sshError, message: "ping failed: \(output.stderr)") }
    let elapsed = ContinuousClock.now - started
    return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
  }

  private func checkAlive() throws(RemoteHostError) {
    if !isAlive { throw lostError() }
  }

  private func lostError() -> RemoteHostError {
    RemoteHostError(code: .connectionLost, message: "the SSH connection to \(login.host) has ended")
  }

  /// Ends the connection (and with it every session and forward on it).
  func close() async {
    lost.withLock { $0 = true }
    master.signal(SIGTERM)
    let (_, _) = await master.wait(timeout: .seconds(5))
    try? FileManager.default.removeItem(atPath: folder)
  }
}
