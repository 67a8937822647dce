import Crypto
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Puts an `easyremote` agent on a host: the host's own when it has this version, else this
/// program's binary, uploaded once into a per-user cache folder named by its SHA-256 and
/// checked after the upload.
package enum AgentDeployer {
  /// SHA-256 of local files, by path, size and modification time.
  private static let digests = Mutex<[String: String]>([:])

  static func localBinary(_ configuration: RemoteHostsConfiguration) -> String {
    if let path = configuration.agentBinary { return path }
    return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
  }

  package static var localArchitecture: String {
    var name = utsname()
    uname(&name)
    return withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
  }

  static func sha256(of path: String) throws(RemoteHostError) -> String {
    let attributes = try? FileManager.default.attributesOfItem(atPath: path)
    let key = "\(path)|\((attributes?[.size] as? NSNumber)?.int64Value ?? -1)|\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
    if let known = digests.withLock({ $0[key] }) { return known }
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw RemoteHostError(code: .agentUnavailable, message: "cannot read the agent binary \(path)")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try? handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    digests.withLock { $0[key] = digest }
    return digest
  }

  /// How an agent gets onto a host.
  package enum Plan: Equatable, Sendable {
    /// The host has this version already, here.
    case installed(String)
    /// This program's binary fits the host.
    case upload
    /// Neither: why, and what the user can do.
    case unavailable(String)
  }

  package static func plan(for inspection: HostInspection, version: String, localArchitecture: String = localArchitecture) -> Plan {
    if let installed = inspection.agent, installed.version == version { return .installed(installed.path) }
    let found = inspection.agent.map { " (it has easyremote \($0.version) at \($0.path))" } ?? ""
    guard inspection.os == "Linux" else {
      return .unavailable(
        "the host runs \(inspection.os.isEmpty ? "an unknown OS" : inspection.os), so this gateway's Linux binary cannot run there, and it has no easyremote \(version)\(found); install easyremote \(version) on it (on PATH or in ~/.local/bin)")
    }
    guard inspection.architecture == localArchitecture else {
      return .unavailable(
        "the host is \(inspection.architecture) and this gateway \(localArchitecture), so this gateway's binary cannot run there, and it has no easyremote \(version)\(found); install easyremote \(version) on it (on PATH or in ~/.local/bin)")
    }
    return .upload
  }

  /// The path of an agent on the host that answers `--version` with `version`.
  static func ensureAgent(
    on connection: SSHConnection, inspection: HostInspection, version: String, configuration: RemoteHostsConfiguration
  ) async throws(RemoteHostError) -> String {
    switch plan(for: inspection, version: version) {
    case .installed(let path): return path
    case .unavailable(let reason): throw RemoteHostError(code: .agentUnavailable, message: reason)
    case .upload: break
    }
    let local = localBinary(configuration)
    let digest = try sha256(of: local)
    let folder = "\(inspection.home)/.cache/easyremote/agents/\(digest.prefix(16))"
    let path = folder + "/easyremote"
    // Reuse an earlier upload when it is intact.
    let existing = try await connection.run(["sha256sum", path], timeout: .seconds(120))
    if existing.status != 0 || !String(decoding: existing.stdout, as: UTF8.self).hasPrefix(digest) {
      try await upload(local, to: path, folder: folder, digest: digest, over: connection)
    }
    let check = try await connection.run([path, "--version"], timeout: .seconds(60))
    let answered = String(decoding: check.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard check.status == 0, answered.hasSuffix(version) else {
      throw RemoteHostError(
        code: .agentUnavailable,
        message: "the uploaded agent does not run on the host (exit \(check.status)): \(check.stderr.trimmingCharacters(in: .whitespacesAndNewlines).suffix(400)) — a binary built with --static-swift-stdlib runs on any Linux of its architecture")
    }
    return path
  }

  private static func upload(_ local: String, to path: String, folder: String, digest: String, over connection: SSHConnection)
    async throws(RemoteHostError)
  {
    let fd = open(local, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw RemoteHostError(code: .agentUnavailable, message: "cannot read the agent binary \(local)") }
    defer { close(fd) }
    let partial = path + ".part"
    let q = ShellQuote.quote
    let script =
      "umask 077 && mkdir -p \(q(folder)) && cat > \(q(partial)) && chmod 700 \(q(partial)) && sha256sum \(q(partial)) && mv -f \(q(partial)) \(q(path))"
    let output = try await connection.run(script: script, stdin: .file(fd), timeout: .seconds(600))
    guard output.status == 0 else {
      throw RemoteHostError(code: .agentUnavailable, message: "uploading the agent failed: \(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    guard String(decoding: output.stdout, as: UTF8.self).hasPrefix(digest) else {
      throw RemoteHostError(code: .agentUnavailable, message: "the uploaded agent's checksum does not match; the upload was corrupted")
    }
  }
}
