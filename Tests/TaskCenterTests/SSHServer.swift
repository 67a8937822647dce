import TestSupport
import Foundation
import Sandbox

/// A real OpenSSH server (Debian's `openssh-server`) started by a test: its own host key,
/// config and port on the loopback, and a test user (`easyremote-ssh`, created when missing)
/// who logs in with a key or a password. Needs root (sshd switches users); `Scripts/test.sh`
/// installs the package.
final class SSHServer: Sendable {
  static let user = "easyremote-ssh"
  static let sshd = "/usr/sbin/sshd"
  static var available: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: sshd) }

  let folder: String
  let port: Int
  /// Where it listens: the loopback, or its own network namespace's address.
  let host: String
  /// The network namespace it runs in (a second "host" on this machine, linked to ours by a
  /// veth pair and nothing else), when asked for.
  let namespace: String?
  let home: String
  let password: String
  /// The test user's private key (ed25519, no passphrase) and one with a passphrase.
  let clientKey: String
  let lockedKey: String
  /// An RSA key with a passphrase, and a key only the test's ssh-agent holds.
  let rsaKey: String
  let agentOnlyKey: String
  let keyPassphrase = "open sesame; 'quoted'"
  /// A known_hosts file that has nothing in it yet.
  let knownHosts: String
  let fingerprint: String
  private let sshdPID: Int32
  private let sshdExit: ChildExit

  init(inNamespace: Bool = false) async throws {
    let tag = String(UUID().uuidString.prefix(6)).lowercased()
    folder = NSTemporaryDirectory() + "ssh-\(tag)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    home = "/tmp/easyremote-ssh-home"
    password = "pw \(UUID().uuidString.prefix(8)) ;'\""
    clientKey = folder + "/id_ed25519"
    lockedKey = folder + "/id_locked"
    rsaKey = folder + "/id_rsa"
    agentOnlyKey = folder + "/id_agent"
    knownHosts = folder + "/known_hosts"
    _ = FileManager.default.createFile(atPath: knownHosts, contents: Data())
    try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    try await Self.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", folder + "/host_key")
    try await Self.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", clientKey)
    try await Self.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", keyPassphrase, "-f", lockedKey)
    try await Self.run("/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", keyPassphrase, "-f", rsaKey)
    try await Self.run("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", agentOnlyKey)
    fingerprint = String(
      try await Self.run("/usr/bin/ssh-keygen", "-l", "-E", "sha256", "-f", folder + "/host_key.pub").split(separator: " ")[1])
    if (try? await Self.run("/usr/bin/id", Self.user)) == nil {
      try await Self.run("/usr/sbin/useradd", "-M", "-d", home, "-s", "/bin/sh", Self.user)
    }
    try await Self.run("/usr/sbin/usermod", "-d", home, Self.user)
    try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
    let keys = try [clientKey, lockedKey, rsaKey, agentOnlyKey].map { try String(contentsOfFile: $0 + ".pub", encoding: .utf8) }
      .joined()
    try keys.write(toFile: home + "/.ssh/authorized_keys", atomically: true, encoding: .utf8)
    try await Self.run("/bin/chown", "-R", "\(Self.user):\(Self.user)", home)
    try await Self.run("/bin/chmod", "700", home, home + "/.ssh")
    try await Self.run("/usr/sbin/chpasswd", input: "\(Self.user):\(password)\n")

    if inNamespace {
      // 10.213.N.0/30: .1 is this machine's end, .2 the namespace's.
      let subnet = Int.random(in: 1...250)
      let name = "er\(tag)"
      try await Self.run("/usr/sbin/ip", "netns", "add", name)
      try await Self.run("/usr/sbin/ip", "link", "add", "erh\(tag)", "type", "veth", "peer", "name", "ern\(tag)")
      try await Self.run("/usr/sbin/ip", "link", "set", "ern\(tag)", "netns", name)
      try await Self.run("/usr/sbin/ip", "addr", "add", "10.213.\(subnet).1/30", "dev", "erh\(tag)")
      try await Self.run("/usr/sbin/ip", "link", "set", "erh\(tag)", "up")
      try await Self.run("/usr/sbin/ip", "netns", "exec", name, "ip", "addr", "add", "10.213.\(subnet).2/30", "dev", "ern\(tag)")
      try await Self.run("/usr/sbin/ip", "netns", "exec", name, "ip", "link", "set", "ern\(tag)", "up")
      try await Self.run("/usr/sbin/ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
      namespace = name
      host = "10.213.\(subnet).2"
      port = 22
    } else {
      namespace = nil
      host = "127.0.0.1"
      port = SSHServer.freePort()
    }
    let config = """
      Port \(port)
      ListenAddress \(host)
      HostKey \(folder)/host_key
      PidFile \(folder)/sshd.pid
      UsePAM no
      PasswordAuthentication yes
      KbdInteractiveAuthentication no
      PubkeyAuthentication yes
      AuthorizedKeysFile .ssh/authorized_keys
      AllowUsers \(Self.user)
      AllowTcpForwarding yes
      PermitRootLogin no
      MaxStartups 100
      LogLevel VERBOSE

      """
    try config.write(toFile: folder + "/sshd_config", atomically: true, encoding: .utf8)
    try await Self.run(Self.sshd, "-t", "-f", folder + "/sshd_config")
    // -D: stays in the foreground as our child; -e: logs to stderr (kept in a file).
    let logFD = open(folder + "/sshd.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    defer { close(logFD) }
    sshdPID = try await ProcessSpawner.shared.spawn(
      (namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] } ?? []) + [Self.sshd, "-D", "-e", "-f", folder + "/sshd_config"], environment: ["PATH": "/usr/sbin:/usr/bin:/bin"], directory: nil,
      stdout: logFD, stderr: logFD)
    sshdExit = ChildExit(pid: sshdPID)
    // Ready when it accepts connections.
    let deadline = Date().addingTimeInterval(30)
    while !SSHServer.accepts(host: host, port: port) {
      guard Date() < deadline, !sshdExit.hasExited else { throw Failure(message: "sshd did not start: \(log)") }
      try await Task.sleep(for: .milliseconds(20))  // sshd, starting: tried again until it accepts
    }
  }

  struct Failure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
  }

  var log: String { (try? String(contentsOfFile: folder + "/sshd.log", encoding: .utf8)) ?? "" }

  /// Ends every SSH connection of the test user without touching their other processes:
  /// what a network cut or a restarted server does to a session.
  func dropConnections() async {
    _ = try? await Self.run("/usr/bin/pkill", "-KILL", "-f", "^sshd: \(Self.user)")
  }

  /// The test user's processes whose command line contains `pattern`.
  func userProcesses(matching pattern: String) async -> [String] {
    ((try? await Self.run("/usr/bin/pgrep", "-a", "-u", Self.user, "-f", pattern)) ?? "").split(separator: "\n").map(String.init)
  }

  /// Returns once no process of the SSH user matches `pattern` (`false` after `limit`). They
  /// run on the "remote host", where nothing tells us when they end: the process table is
  /// read again every 20 ms.
  func untilNoUserProcesses(matching pattern: String, limit: Duration = .seconds(30)) async -> Bool {
    await eventually(limit: limit) { await userProcesses(matching: pattern).isEmpty }
  }

  func stop() async {
    kill(sshdPID, SIGTERM)
    await sshdExit.exited()
    _ = sshdExit.reap()
    await dropConnections()
    if let namespace { _ = try? await Self.run("/usr/sbin/ip", "netns", "del", namespace) }  // takes the veth pair along
    try? FileManager.default.removeItem(atPath: folder)
  }

  /// Whether a TCP connection to `host:port` succeeds from inside the namespace.
  func reachableFromInside(_ host: String, _ port: Int) async -> Bool {
    guard let namespace else { return true }
    let probe = "import socket\ntry:\n socket.create_connection((\"\(host)\", \(port)), 3)\n print('open')\nexcept OSError:\n print('closed')"
    let output = (try? await Self.run("/usr/sbin/ip", "netns", "exec", namespace, "/usr/bin/python3", "-c", probe)) ?? ""
    return output.contains("open")
  }

  /// Runs `command` to its end (through the spawner: Foundation's `Process` was seen to miss
  /// a child's exit here) and gives its output; a failure throws with the output.
  @discardableResult
  static func run(_ command: String, _ arguments: String..., input: String? = nil) async throws -> String {
    try await run(command, arguments, input: input)
  }

  @discardableResult
  static func run(_ command: String, _ arguments: [String], input: String? = nil) async throws -> String {
    let output = try ProcessSpawner.pipe()
    var stdin: (read: Int32, write: Int32)?
    if input != nil { stdin = try ProcessSpawner.pipe() }
    let pid = try await ProcessSpawner.shared.spawn(
      [command] + arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], directory: nil, stdin: stdin?.read ?? -1,
      stdout: output.write, stderr: output.write)
    close(output.write)
    if let stdin, let input {
      close(stdin.read)
      _ = Array(input.utf8).withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
      close(stdin.write)
    }
    let collector = OutputCollector(output.read, limit: 1 << 20)
    let exit = ChildExit(pid: pid)
    await exit.exited()
    let status = exit.reap()
    let text = String(decoding: await collector.result().0, as: UTF8.self)
    guard status == 0 else {
      throw Failure(message: "\(command) \(arguments.joined(separator: " ")) failed (\(status)): \(text)")
    }
    return text
  }

  /// A TCP socket bound to a port of the kernel's choice on the loopback, and that port.
  static func boundSocket() -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
  }

  /// A port nothing listens on now.
  static func freePort() -> Int {
    let (fd, port) = boundSocket()
    close(fd)
    return port
  }

  static func accepts(host: String = "127.0.0.1", port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr(host)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
  }
}

/// A server program a test starts (sshd's helpers, a gateway process), once it said it is ready.
typealias RunningProgram = ChildProgram

extension ChildProgram {
  /// Starts `command` with a plain environment (PATH, HOME) plus `environment`.
  static func start(_ command: [String], readyPrefix: String, environment: [String: String] = [:]) async throws -> ChildProgram {
    var env = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": NSHomeDirectory()]
    env.merge(environment) { $1 }
    return try await launch(command, environment: env, readyPrefix: readyPrefix)
  }

  /// Sends `signal` and waits for it to end.
  func stop(_ signal: Int32 = SIGTERM) async { await end(signal) }
}
