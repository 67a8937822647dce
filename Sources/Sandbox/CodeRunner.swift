import CSpawn
public import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Runs a piece of code in a sandbox: a child process of the interpreter (python3 by
/// default) under limits on CPU time, memory, processes, file size, scratch space and output,
/// with an environment holding nothing of the node's.
///
/// How it is kept apart depends on what the machine offers (``isolation()`` says which):
/// - **bubblewrap** (`bwrap`, preferred): `[setpriv to a user id of its own] → prlimit →
///   bwrap → interpreter`. The task gets its own user, PID, mount, IPC, UTS and network
///   namespaces, a read-only `/usr` and a few files of `/etc`, a private `/tmp` (a tmpfs of
///   ``SandboxLimits/scratchBytes``, its working folder `/tmp/task`) and `/dev/shm`, its own
///   `/proc`, no capabilities, `no_new_privs`, a seccomp filter (``SeccompFilter``), and it
///   dies with the node (`--die-with-parent`). Nothing of it is left on the host's disk.
/// - **namespaces** (root without bubblewrap): `unshare --pid --fork [--net]` → prlimit →
///   `setpriv` to `nobody` → interpreter, in a scratch folder on the host.
/// - **limits only**: prlimit → interpreter, in a scratch folder on the host.
///
/// At the timeout, on cancellation, and after it exits, everything the task started is killed.
public struct CodeRunner: Sendable {
  /// The interpreter, by name (looked up in the sandbox's `PATH`) or by path.
  public var interpreter: String
  /// Arguments before the script's path (`-I -u` for Python: isolated and unbuffered).
  public var interpreterArguments: [String]
  public var limits: SandboxLimits
  /// Where scratch folders are made when the task's files are on the host (without
  /// bubblewrap): in `easyremote-<pid of the node>` under it.
  public var scratchRoot: URL
  /// The isolation to use; `nil` (the default): the strongest this machine offers.
  public var mechanism: SandboxIsolation.Mechanism?

  /// The `PATH` the task sees.
  public static let sandboxPath = "/usr/local/bin:/usr/bin:/bin"
  /// Where the task's script and working folder are inside a bubblewrap sandbox.
  public static let boxFolder = "/tmp/task"

  public init(
    interpreter: String = "python3", interpreterArguments: [String]? = nil, limits: SandboxLimits = SandboxLimits(),
    scratchRoot: URL = FileManager.default.temporaryDirectory, mechanism: SandboxIsolation.Mechanism? = nil
  ) {
    self.interpreter = interpreter
    let isPython = URL(fileURLWithPath: interpreter).lastPathComponent.hasPrefix("python")
    self.interpreterArguments = interpreterArguments ?? (isPython ? ["-I", "-u"] : [])
    self.limits = limits
    self.scratchRoot = scratchRoot
    self.mechanism = mechanism
  }

  /// The interpreter's absolute path, or `nil` when it is not installed.
  public func resolvedInterpreter() -> String? {
    if interpreter.contains("/") {
      return FileManager.default.isExecutableFile(atPath: interpreter) ? interpreter : nil
    }
    for folder in Self.sandboxPath.split(separator: ":") {
      let candidate = "\(folder)/\(interpreter)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  /// What tasks of this runner get on this machine.
  public func isolation() async -> SandboxIsolation {
    var isolation = await mechanismIsolation()
    isolation.memoryCgroup = MemoryCgroup.parent?.version.rawValue
    return isolation
  }

  private func mechanismIsolation() async -> SandboxIsolation {
    let mechanism = await resolvedMechanism()
    let root = Self.isRoot
    switch mechanism {
    case .bubblewrap:
      return SandboxIsolation(
        mechanism: .bubblewrap, perTaskUser: root, ownProcesses: true, privateFiles: true,
        seccomp: SeccompFilter.current != nil, network: limits.allowNetwork, diesWithNode: true)
    case .namespaces:
      return SandboxIsolation(
        mechanism: .namespaces, perTaskUser: false, ownProcesses: true, privateFiles: false, seccomp: false,
        network: limits.allowNetwork, diesWithNode: true)
    case .limitsOnly:
      return SandboxIsolation(
        mechanism: .limitsOnly, perTaskUser: false, ownProcesses: false, privateFiles: false, seccomp: false,
        network: true, diesWithNode: false)
    }
  }

  /// Gets the node ready to run tasks: finds the isolation this machine offers and removes
  /// scratch folders that nodes which died before left behind. Returns the isolation.
  @discardableResult
  public func prepare() async -> SandboxIsolation {
    removeStaleScratch()
    await MemoryCgroup.removeStale()
    return await isolation()
  }

  /// Runs `code` and returns how it ended; stops it after `timeout` seconds. Throws
  /// ``SandboxError`` only when it cannot start. Cancelling the calling task kills the run.
  public func run(_ code: String, timeout: Double) async throws -> CodeResult {
    guard timeout > 0, timeout.isFinite else {
      throw SandboxError(code: .invalidTimeout, message: "timeout must be a positive number of seconds, got \(timeout)")
    }
    guard let interpreterPath = resolvedInterpreter() else {
      throw SandboxError(
        code: .interpreterNotFound, message: "interpreter '\(interpreter)' not found in \(Self.sandboxPath)")
    }
    let mechanism = await resolvedMechanism()
    var launch = try makeLaunch(mechanism: mechanism, interpreter: interpreterPath, code: code, timeout: timeout)
    defer { launch.cleanUp() }
    // The task's first process joins its memory cgroup before it runs anything else.
    let cgroup = MemoryCgroup.make(limit: limits.taskMemoryBytes)
    if let cgroup {
      launch.command = ["/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", cgroup.procsFile] + launch.command
    }

    let stdoutPipe = try Self.pipe()
    let stderrPipe = try Self.pipe()
    let started = ContinuousClock.now
    let pid: pid_t
    do {
      pid = try await ProcessSpawner.shared.spawn(
        launch.command, environment: launch.environment, directory: launch.directory, stdout: stdoutPipe.write,
        stderr: stderrPipe.write, fds: launch.fds)
    } catch let error as ProcessSpawner.SpawnError {
      for fd in [stdoutPipe.read, stdoutPipe.write, stderrPipe.read, stderrPipe.write] { close(fd) }
      await cgroup?.remove()
      throw SandboxError(code: .launchFailed, message: "could not start \(launch.command[0]): \(String(cString: strerror(error.errno)))")
    }
    // Only the task holds the write ends now: EOF comes when all of its processes are gone.
    close(stdoutPipe.write)
    close(stderrPipe.write)
    launch.closeDescriptors()
    let exit = ChildExit(pid: pid)
    let stdout = OutputCollector(stdoutPipe.read, limit: limits.maxOutputBytes)
    let stderr = OutputCollector(stderrPipe.read, limit: limits.maxOutputBytes)

    let timedOut = Atomic<Bool>(false)
    let cancelled = Atomic<Bool>(false)
    // Unstructured: the timer must fire while this task waits for the child's exit (an
    // await on a pidfd that cancellation does not end); it is cancelled once the child exited.
    let timer = Task {
      try await Task.sleep(for: .seconds(timeout))
      timedOut.store(true, ordering: .sequentiallyConsistent)
      await Self.stop(pid, mechanism: mechanism, exit: exit)
    }
    // Not cancellable itself: on cancellation the task is stopped, then we wait for the exit.
    await withTaskCancellationHandler {
      await exit.exited()
    } onCancel: {
      cancelled.store(true, ordering: .sequentiallyConsistent)
      // Unstructured: a cancellation handler cannot await; the kill ends the wait above.
      Task { await Self.stop(pid, mechanism: mechanism, exit: exit) }
    }
    timer.cancel()
    let duration = ContinuousClock.now - started
    // Whatever the task left behind in its process group goes too (and closes its pipe ends);
    // the first process is not reaped yet, so the group's id cannot have been reused.
    Self.killGroup(pid)
    let waitStatus = exit.reap()
    let (out, outTruncated) = await stdout.result()
    let (err, errTruncated) = await stderr.result()

    var signal: Int32? = Self.signalled(waitStatus) ? waitStatus & 0x7f : nil
    var exitStatus = signal.map { 128 + $0 } ?? (waitStatus >> 8) & 0xff
    // bwrap passes on a signal that ended the task as 128 + its number.
    if mechanism == .bubblewrap, signal == nil, exitStatus > 128, exitStatus < 128 + 65 {
      signal = exitStatus - 128
      exitStatus = 128 + signal!
    }
    let status: CodeResult.Status =
      if timedOut.load(ordering: .sequentiallyConsistent) {
        .timeout
      } else if cancelled.load(ordering: .sequentiallyConsistent) {
        .cancelled
      } else {
        exitStatus == 0 ? .completed : .failed
      }
    var stderrText = String(decoding: err, as: UTF8.self)
    if mechanism == .namespaces && (status == .timeout || status == .cancelled) {
      // util-linux `unshare` reports its child's SIGKILL — ours, not the task's doing.
      stderrText = stderrText.replacingOccurrences(of: "unshare: sigprocmask unblock failed: Invalid argument\n", with: "")
    }
    var result = CodeResult(
      status: status, stdout: String(decoding: out, as: UTF8.self), stderr: stderrText,
      exitStatus: exitStatus, signal: signal, stdoutTruncated: outTruncated, stderrTruncated: errTruncated,
      duration: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    result.limitsHit = Self.limitsHit(by: result)
    if let cgroup {
      if result.status == .failed && cgroup.ranOutOfMemory() {
        result.limitsHit.removeAll { $0 == .memory }
        result.limitsHit.insert(.taskMemory, at: 0)
      }
      await cgroup.remove()
    }
    return result
  }

  /// The limits a finished run ran into, as far as they show from outside.
  static func limitsHit(by result: CodeResult) -> [CodeResult.Limit] {
    var hit: [CodeResult.Limit] = []
    if result.status == .timeout { hit.append(.wallTime) }
    if result.status == .failed {
      if result.signal == SIGXCPU { hit.append(.cpuTime) }
      if result.signal == SIGXFSZ || result.stderr.contains("File too large") { hit.append(.fileSize) }
      if result.stderr.contains("MemoryError") || result.stderr.contains("Cannot allocate memory") {
        hit.append(.memory)
      }
      if result.stderr.contains("Resource temporarily unavailable") { hit.append(.processes) }
      if result.stderr.contains("No space left on device") { hit.append(.scratch) }
      if result.stderr.contains("Too many open files") { hit.append(.openFiles) }
    }
    if result.stdoutTruncated { hit.append(.stdout) }
    if result.stderrTruncated { hit.append(.stderr) }
    return hit
  }

  // MARK: Launching

  static var isRoot: Bool { geteuid() == 0 }

  /// What one run starts: the command, its environment and folder, the descriptors it gets
  /// (3, 4, …), and what to remove afterwards.
  struct Launch {
    var command: [String]
    var environment: [String: String]
    var directory: String?
    var fds: [Int32] = []
    var hostScratch: URL?
    var taskUser: UInt32?

    mutating func closeDescriptors() {
      for fd in fds { close(fd) }
      fds = []
    }

    mutating func cleanUp() {
      closeDescriptors()
      if let hostScratch { try? FileManager.default.removeItem(at: hostScratch) }
      if let taskUser { TaskUserPool.shared.release(taskUser) }
    }
  }

  func makeLaunch(
    mechanism: SandboxIsolation.Mechanism, interpreter: String, code: String, timeout: Double
  ) throws -> Launch {
    let root = Self.isRoot
    // CPU: SIGXCPU at the soft limit (so the result can name it), SIGKILL a second later.
    let cpu = limits.cpuSeconds ?? Int(timeout.rounded(.up)) + 1
    var prlimit = [
      "/usr/bin/prlimit", "--cpu=\(cpu):\(cpu + 1)", "--as=\(limits.memoryBytes)",
      "--fsize=\(limits.maxFileBytes)", "--nofile=\(limits.maxOpenFiles)", "--core=0",
    ]
    if !FileManager.default.isExecutableFile(atPath: prlimit[0]) {
      throw SandboxError(code: .launchFailed, message: "prlimit (util-linux) is not installed: the limits cannot be applied")
    }
    let environment = [
      "PATH": Self.sandboxPath, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
    ]
    switch mechanism {
    case .bubblewrap:
      var launch = Launch(command: [], environment: environment)
      launch.environment["HOME"] = Self.boxFolder
      launch.environment["TMPDIR"] = "/tmp"
      // setpriv: the death signal (so the chain dies with the node from its first instant,
      // before bwrap sets its own) and, as root, a user id of the task's own.
      launch.command += ["/usr/bin/setpriv", "--pdeathsig", "KILL"]
      if root {
        guard let user = TaskUserPool.shared.acquire(in: limits.taskUserIDs) else {
          throw SandboxError(code: .launchFailed, message: "every task user id in \(limits.taskUserIDs) is in use")
        }
        launch.taskUser = user
        launch.command += ["--reuid=\(user)", "--regid=\(user)", "--clear-groups"]
        prlimit.append("--nproc=\(limits.maxProcesses)")
      }
      launch.command += ["--"] + prlimit + ["--"]
      do {
        if let filter = SeccompFilter.current { launch.fds.append(try Self.memoryFile("seccomp", filter)) }
        launch.fds.append(try Self.memoryFile("main.py", Array(code.utf8)))
      } catch {
        launch.cleanUp()
        throw error
      }
      launch.command += bubblewrapArguments(
        interpreter: interpreter, seccompFD: SeccompFilter.current == nil ? nil : 3,
        scriptFD: SeccompFilter.current == nil ? 3 : 4)
      launch.command += [interpreter] + interpreterArguments + ["main.py"]
      return launch
    case .namespaces, .limitsOnly:
      var launch = Launch(command: [], environment: environment)
      let scratch = try makeScratch(code: code)
      launch.hostScratch = scratch
      launch.directory = scratch.path
      launch.environment["HOME"] = scratch.path
      launch.environment["TMPDIR"] = scratch.path
      let dropUser = root && limits.runAsUser != nil
      launch.command += ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
      if mechanism == .namespaces {
        // --kill-child: the namespace's first process dies with `unshare`, and so all of it.
        launch.command +=
          ["/usr/bin/unshare", "--pid", "--fork", "--kill-child"] + (limits.allowNetwork ? [] : ["--net"]) + ["--"]
      }
      if dropUser { prlimit.append("--nproc=\(limits.maxProcesses)") }
      launch.command += prlimit + ["--"]
      if dropUser, let user = limits.runAsUser {
        launch.command += ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"]
      }
      launch.command += [interpreter] + interpreterArguments + ["main.py"]
      return launch
    }
  }

  /// bwrap's arguments, up to and including `--`.
  func bubblewrapArguments(interpreter: String, seccompFD: Int32?, scriptFD: Int32) -> [String] {
    var arguments = [
      Self.bubblewrapPath ?? "/usr/bin/bwrap", "--unshare-all", "--unshare-user", "--disable-userns",
      "--die-with-parent", "--new-session", "--hostname", "easyremote-task",
    ]
    if limits.allowNetwork { arguments.append("--share-net") }
    arguments += ["--ro-bind", "/usr", "/usr"]
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
      let path = "/\(name)"
      if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
        arguments += ["--symlink", target, path]
      } else if FileManager.default.fileExists(atPath: path) {
        arguments += ["--ro-bind", path, path]
      }
    }
    for path in Self.etcFiles { arguments += ["--ro-bind-try", path, path] }
    // An interpreter outside the system (a virtual environment, conda): its prefix, read-only.
    if let prefix = Self.installPrefix(of: interpreter) { arguments += ["--ro-bind", prefix, prefix] }
    arguments += [
      "--proc", "/proc", "--dev", "/dev",
      "--size", "\(limits.sharedMemoryBytes)", "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
      "--size", "\(limits.scratchBytes)", "--tmpfs", "/tmp", "--dir", Self.boxFolder,
      "--dir", "/var", "--symlink", "../tmp", "/var/tmp",
      "--perms", "0444", "--ro-bind-data", "\(scriptFD)", "\(Self.boxFolder)/main.py",
      "--remount-ro", "/", "--chdir", Self.boxFolder,
    ]
    if let seccompFD { arguments += ["--seccomp", "\(seccompFD)"] }
    return arguments + ["--"]
  }

  /// The files of `/etc` a task sees: what the C library and Python read, nothing of the node's.
  static let etcFiles = [
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone", "/etc/passwd",
    "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf",
    "/etc/protocols", "/etc/services", "/etc/ssl", "/etc/ca-certificates", "/etc/alternatives", "/etc/mime.types",
    "/etc/python3", "/etc/python3.11", "/etc/python3.12", "/etc/python3.13",
  ]

  /// `/opt/venv` for `/opt/venv/bin/python`; `nil` for an interpreter of the system.
  static func installPrefix(of interpreter: String) -> String? {
    let system = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"]
    guard !system.contains(where: { interpreter.hasPrefix($0) }) else { return nil }
    let folder = URL(fileURLWithPath: interpreter).deletingLastPathComponent()
    let prefix = folder.lastPathComponent == "bin" ? folder.deletingLastPathComponent() : folder
    return prefix.path == "/" ? nil : prefix.path
  }

  static var bubblewrapPath: String? {
    ["/usr/bin/bwrap", "/usr/local/bin/bwrap"].first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  /// The strongest mechanism this machine offers, found once by trying it.
  func resolvedMechanism() async -> SandboxIsolation.Mechanism {
    if let mechanism { return mechanism }
    if let known = Self.probed.withLock({ $0 }) { return known }
    var found = SandboxIsolation.Mechanism.limitsOnly
    if Self.bubblewrapPath != nil {
      var probe = CodeRunner(interpreter: "/usr/bin/true", interpreterArguments: [], mechanism: .bubblewrap)
      probe.limits = limits
      if let result = try? await probe.run("", timeout: 30), result.status == .completed { found = .bubblewrap }
    }
    if found == .limitsOnly && Self.isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") {
      found = .namespaces
    }
    Self.probed.withLock { $0 = found }
    return found
  }

  private static let probed = Mutex<SandboxIsolation.Mechanism?>(nil)

  // MARK: Host scratch folders (without bubblewrap)

  /// This process's folder of scratch folders.
  var scratchParent: URL { scratchRoot.appendingPathComponent("easyremote-\(getpid())") }

  /// A fresh folder holding the script, owned by the task's user.
  private func makeScratch(code: String) throws -> URL {
    let scratch = scratchParent.appendingPathComponent("task-\(UUID().uuidString.prefix(12))")
    do {
      try FileManager.default.createDirectory(
        at: scratchParent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
      try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
      let script = scratch.appendingPathComponent("main.py")
      try Data(code.utf8).write(to: script)
      if Self.isRoot, let user = limits.runAsUser {
        for path in [scratch.path, script.path] { _ = chown(path, user, user) }
      }
      return scratch
    } catch {
      throw SandboxError(code: .launchFailed, message: "could not make a scratch folder: \(error)")
    }
  }

  /// Removes the scratch folders of node processes that are gone (killed before they could).
  public func removeStaleScratch() {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: scratchRoot.path) else { return }
    for entry in entries where entry.hasPrefix("easyremote-") {
      guard let pid = Int32(entry.dropFirst("easyremote-".count)), pid != getpid() else { continue }
      // A live process of that id (signal 0 reaches it, or it exists but is not ours).
      if kill(pid, 0) == 0 || errno == EPERM { continue }
      try? FileManager.default.removeItem(at: scratchRoot.appendingPathComponent(entry))
    }
  }

  // MARK: Stopping

  /// Kills a running task. In a PID namespace (bubblewrap, `unshare`) the namespace's first
  /// process — the child of the outer `bwrap` or `unshare` — is killed: the kernel then kills
  /// and reaps every process of the namespace, and the outer process exits by itself. The
  /// outer one is not killed first: a sandbox still being set up would lose its parent before
  /// it asked to die with it, and live on. While the first process does not exist yet, it is
  /// waited for. Without a namespace, or if nothing has exited two seconds later, the process
  /// group is killed.
  private static func stop(_ pid: Int32, mechanism: SandboxIsolation.Mechanism, exit: ChildExit) async {
    if mechanism != .limitsOnly {
      let deadline = ContinuousClock.now + .seconds(2)
      var killed = false
      while !exit.hasExited && ContinuousClock.now < deadline {
        if !killed {
          let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
          let first = children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
          for child in first { _ = kill(child, SIGKILL) }
          killed = !first.isEmpty
        }
        try? await Task.sleep(for: .milliseconds(5))
      }
      if exit.hasExited { return }
    }
    killGroup(pid)
  }

  private static func killGroup(_ group: Int32) {
    guard group > 0 else { return }
    _ = kill(-group, SIGKILL)
  }

  private static func signalled(_ status: Int32) -> Bool {
    let low = status & 0x7f
    return low != 0 && low != 0x7f
  }

  // MARK: Descriptors

  private static func pipe() throws -> (read: Int32, write: Int32) {
    do {
      return try ProcessSpawner.pipe()
    } catch let error as ProcessSpawner.SpawnError {
      throw SandboxError(code: .launchFailed, message: "could not make a pipe: \(String(cString: strerror(error.errno)))")
    }
  }

  private static func memoryFile(_ name: String, _ bytes: [UInt8]) throws -> Int32 {
    let fd = bytes.withUnsafeBytes { easyremote_memfd(name, $0.baseAddress, $0.count) }
    guard fd >= 0 else {
      throw SandboxError(code: .launchFailed, message: "could not make an in-memory file: \(String(cString: strerror(errno)))")
    }
    return fd
  }
}
