import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How ssh asks us for a password, a passphrase or whether to trust a host key, without a
/// terminal and without the secret ever being on disk, in the environment or in a process
/// listing: ssh runs `askpass` (`SSH_ASKPASS_REQUIRE=force`) with the prompt as its argument;
/// the script records the prompt and answers
///
/// - a host key question with the fingerprint the user accepted (once; ssh compares it with
///   the key it was shown) or else `no`;
/// - any other question with one line read from a FIFO we hold open, so the secret passes
///   only through the kernel's pipe buffer — and only once: a second prompt finds it empty
///   and blocks until the connection's deadline.
///
/// All of it lives in a private folder (0700) removed when the login ends.
final class AskPass: Sendable {
  let folder: String
  private let secretFD: Int32

  static let script = """
    #!/bin/sh
    # EasyRemote: answers ssh's questions (see AskPass.swift).
    d="$EASYREMOTE_ASKPASS_DIR"
    n=$(date +%s%N)
    printf '%s' "$1" > "$d/prompt.$n"
    case "$1" in
      *"continue connecting"*)
        if [ -f "$d/hostkey" ]; then cat "$d/hostkey"; rm -f "$d/hostkey"; else echo no; fi ;;
      *)
        if [ -p "$d/secret" ]; then IFS= read -r line < "$d/secret"; printf '%s\\n' "$line"; else exit 1; fi ;;
    esac

    """

  /// A folder with the script, the secret (if any) in its FIFO and the accepted fingerprint.
  init(folder: String, secret: String?, acceptedHostKey: String?) throws(RemoteHostError) {
    self.folder = folder
    let fm = FileManager.default
    do {
      try fm.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      let script = folder + "/askpass"
      guard fm.createFile(atPath: script, contents: Data(Self.script.utf8), attributes: [.posixPermissions: 0o700]) else {
        throw RemoteHostError(code: .internalError, message: "could not write \(script)")
      }
      if let acceptedHostKey {
        _ = fm.createFile(atPath: folder + "/hostkey", contents: Data((acceptedHostKey + "\n").utf8), attributes: [.posixPermissions: 0o600])
      }
    } catch let error as RemoteHostError {
      throw error
    } catch {
      throw RemoteHostError(code: .internalError, message: "could not prepare \(folder): \(error)")
    }
    if let secret {
      let path = folder + "/secret"
      guard mkfifo(path, 0o600) == 0 else {
        throw RemoteHostError(code: .internalError, message: "could not make a FIFO: \(String(cString: strerror(errno)))")
      }
      // Read-write, so opening never blocks and the buffer holds the line until ssh asks.
      let fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
      let line = Array((secret + "\n").utf8)
      guard fd >= 0, line.count < 4096, line.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == line.count else {
        if fd >= 0 { close(fd) }
        throw RemoteHostError(code: .internalError, message: "could not hand the secret to ssh")
      }
      secretFD = fd
    } else {
      secretFD = -1
    }
  }

  var environment: [String: String] {
    ["SSH_ASKPASS": folder + "/askpass", "SSH_ASKPASS_REQUIRE": "force", "EASYREMOTE_ASKPASS_DIR": folder]
  }

  /// The prompts ssh showed, oldest first.
  func prompts() -> [String] {
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix("prompt.") }.sorted()
    return names.compactMap { try? String(contentsOfFile: folder + "/" + $0, encoding: .utf8) }
  }

  /// Forgets the secret and removes the folder.
  func finish() {
    if secretFD >= 0 { close(secretFD) }
    try? FileManager.default.removeItem(atPath: folder)
  }
}
