import Foundation
import Sandbox

#if canImport(Glibc)
  import Glibc
#endif

/// A PostgreSQL server the tests start for themselves (Debian's `postgresql`): `initdb` into
/// a temporary folder as a user of its own (the server refuses root), on a loopback port,
/// started once per test process and ended with it (`setpriv --pdeathsig KILL`). Each test
/// gets a database of its own.
enum PostgresServer {
  static let user = "easyremote-pg"

  /// The folder of `initdb` and `postgres`, when the package is installed.
  static let binaries: String? = {
    let root = "/usr/lib/postgresql"
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { Int($0) ?? 0 > Int($1) ?? 0 }
    return versions.map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: "\($0)/postgres") }
  }()

  /// Root is needed to run the server as another user.
  static var available: Bool { binaries != nil && geteuid() == 0 }

  struct Running: Sendable {
    let port: Int
    let folder: String
  }

  private static let started = Task<Running, any Error> { try await start() }

  /// A new empty database on the server; its URL.
  static func database() async throws -> String {
    let server = try await started.value
    let name = "t_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
    try await asUser("\(binaries!)/createdb", "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "easyremote", name)
    return "postgres://easyremote@127.0.0.1:\(server.port)/\(name)"
  }

  private static func start() async throws -> Running {
    guard let binaries else { throw SSHServer.Failure(message: "postgresql is not installed") }
    if getpwnam(user) == nil {
      try await SSHServer.run("/usr/sbin/useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user)
    }
    let folder = "/tmp/easyremote-pg-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try await SSHServer.run("/bin/chown", user, folder)
    try await asUser(
      "\(binaries)/initdb", "-D", "\(folder)/data", "-U", "easyremote", "--auth=trust", "-E", "UTF8", "--no-sync")
    let port = SSHServer.freePort()
    _ = try await BackgroundServer.start(
      try identity() + [
        "--pdeathsig", "KILL", "--", "\(binaries)/postgres", "-D", "\(folder)/data", "-p", "\(port)", "-k", folder,
        "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=600", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
      ], log: "\(folder)/server.log")
    // Ready when it answers (pg_isready asks the server itself).
    let deadline = ContinuousClock.now + .seconds(60)
    while true {
      if (try? await SSHServer.run("\(binaries)/pg_isready", "-h", "127.0.0.1", "-p", "\(port)", "-q")) != nil { break }
      guard ContinuousClock.now < deadline else {
        let log = (try? String(contentsOfFile: "\(folder)/server.log", encoding: .utf8)) ?? ""
        throw SSHServer.Failure(message: "PostgreSQL did not start: \(log)")
      }
      try await Task.sleep(for: .milliseconds(100))  // PostgreSQL, starting: asked again until it answers
    }
    return Running(port: port, folder: folder)
  }

  /// `setpriv` arguments that run a command as ``user``.
  private static func identity() throws -> [String] {
    guard let entry = getpwnam(user) else { throw SSHServer.Failure(message: "no user \(user)") }
    return ["/usr/bin/setpriv", "--reuid=\(entry.pointee.pw_uid)", "--regid=\(entry.pointee.pw_gid)", "--clear-groups"]
  }

  @discardableResult
  private static func asUser(_ command: String, _ arguments: String...) async throws -> String {
    let setpriv = try identity()
    return try await SSHServer.run(setpriv[0], Array(setpriv.dropFirst()) + ["--", command] + arguments)
  }
}
