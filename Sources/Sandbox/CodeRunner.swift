public import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Runs a piece of code in a sandbox: a child process of the interpreter (python3 by
/// default) in a fresh scratch directory, with limits on CPU time, memory, processes, file
/// size and output, an environment holding nothing of the node's, no network, and — at the
/// timeout, on cancellation, and after it exits — its whole process group killed.
///
/// On Linux the command is built from util-linux tools, each exec'ing the next:
/// `unshare --pid --fork [--net]` (when root: a PID namespace whose first process is the task,
/// and no network) → `prlimit` (the limits) → `setpriv` (drop to `nobody`; when root) → the
/// interpreter. When the task's first process dies, the kernel kills and reaps everything it
/// started, so nothing outlives a task and no zombie is left behind (even where PID 1 does not
/// reap). Without root, Foundation's own process group for the child is what gets killed.
public struct CodeRunner: Sendable {
  /// The interpreter, by name (looked up in the sandbox's `PATH`) or by path.
  public var interpreter: String
  /// Arguments before the script's path (`-I -u` for Python: isolated and unbuffered).
  public var interpreterArguments: [String]
  public var limits: SandboxLimits
  /// Where scratch directories are made.
  public var scratchRoot: URL

  /// The `PATH` the task sees.
  public static let sandboxPath = "/usr/local/bin:/usr/bin:/bin"

  public init(
    interpreter: String = "python3", interpreterArguments: [String]? = nil, limits: SandboxLimits = SandboxLimits(),
    scratchRoot: URL = FileManager.default.temporaryDirectory
  ) {
    self.interpreter = interpreter
    let isPython = URL(fileURLWithPath: interpreter).lastPathComponent.hasPrefix("python")
    self.interpreterArguments = interpreterArguments ?? (isPython ? ["-I", "-u"] : [])
    self.limits = limits
    self.scratchRoot = scratchRoot
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
    let scratch = try makeScratch(code: code)
    defer { try? FileManager.default.removeItem(at: scratch) }

    let process = Process()
    let command = commandLine(interpreter: interpreterPath, script: "main.py", timeout: timeout)
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    process.currentDirectoryURL = scratch
    process.environment = [
      "PATH": Self.sandboxPath, "HOME": scratch.path, "TMPDIR": scratch.path, "LANG": "C.UTF-8",
      "PYTHONDONTWRITEBYTECODE": "1",
    ]
    let stdoutPipe = Pipe()
    let stderrPipe = Pipe()
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = stdoutPipe
    process.standardError = stderrPipe
    let exit = Latch()
    process.terminationHandler = { _ in exit.open() }

    let started = ContinuousClock.now
    do {
      try process.run()
    } catch {
      throw SandboxError(code: .launchFailed, message: "could not start \(command[0]): \(error)")
    }
    // (Process has closed our copies of the write ends: EOF comes when the task's are gone.)
    let group = process.processIdentifier
    let stdout = OutputCollector(stdoutPipe.fileHandleForReading, limit: limits.maxOutputBytes)
    let stderr = OutputCollector(stderrPipe.fileHandleForReading, limit: limits.maxOutputBytes)

    let timedOut = Atomic<Bool>(false)
    let cancelled = Atomic<Bool>(false)
    let timer = Task {
      try await Task.sleep(for: .seconds(timeout))
      timedOut.store(true, ordering: .sequentiallyConsistent)
      await Self.stop(group, exit: exit)
    }
    // Not cancellable itself: on cancellation the task is stopped, then we wait for the exit.
    await withTaskCancellationHandler {
      await exit.wait()
    } onCancel: {
      cancelled.store(true, ordering: .sequentiallyConsistent)
      Task { await Self.stop(group, exit: exit) }
    }
    timer.cancel()
    let duration = ContinuousClock.now - started
    // Whatever the task left behind in its group goes too (and closes its pipe ends).
    Self.killGroup(group)
    let (out, outTruncated) = await stdout.result()
    let (err, errTruncated) = await stderr.result()

    let signaled = process.terminationReason == .uncaughtSignal
    let status: CodeResult.Status =
      if timedOut.load(ordering: .sequentiallyConsistent) {
        .timeout
      } else if cancelled.load(ordering: .sequentiallyConsistent) {
        .cancelled
      } else {
        !signaled && process.terminationStatus == 0 ? .completed : .failed
      }
    return CodeResult(
      status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self),
      exitStatus: signaled ? 128 + process.terminationStatus : process.terminationStatus,
      signal: signaled ? process.terminationStatus : nil, stdoutTruncated: outTruncated, stderrTruncated: errTruncated,
      duration: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
  }

  /// The command that runs `script` under the limits.
  func commandLine(interpreter: String, script: String, timeout: Double) -> [String] {
    var command: [String] = []
    #if os(Linux)
      let root = geteuid() == 0
      if root && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") {
        command += ["/usr/bin/unshare", "--pid", "--fork"] + (limits.allowNetwork ? [] : ["--net"]) + ["--"]
      }
      if FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") {
        command += [
          "/usr/bin/prlimit", "--cpu=\(Int(timeout.rounded(.up)) + 1)", "--as=\(limits.memoryBytes)",
          "--fsize=\(limits.maxFileBytes)", "--nofile=\(limits.maxOpenFiles)", "--core=0",
        ]
        if root && limits.runAsUser != nil { command.append("--nproc=\(limits.maxProcesses)") }
        command.append("--")
      }
      if root, let user = limits.runAsUser, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
        command += ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"]
      }
    #endif
    return command + [interpreter] + interpreterArguments + [script]
  }

  /// A fresh directory holding the script, owned by the task's user.
  private func makeScratch(code: String) throws -> URL {
    let scratch = scratchRoot.appendingPathComponent("easyremote-task-\(UUID().uuidString.prefix(12))")
    do {
      try FileManager.default.createDirectory(
        at: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      let script = scratch.appendingPathComponent("main.py")
      try Data(code.utf8).write(to: script)
      #if os(Linux)
        if geteuid() == 0, let user = limits.runAsUser {
          for path in [scratch.path, script.path] { _ = chown(path, user, user) }
        }
      #endif
      return scratch
    } catch {
      throw SandboxError(code: .launchFailed, message: "could not make a scratch directory: \(error)")
    }
  }

  /// Kills a running task: the first process of its PID namespace when there is one (the
  /// kernel then kills and reaps the rest, and `unshare` exits), else its process group; the
  /// group anyway if it has not exited two seconds later.
  private static func stop(_ pid: Int32, exit: Latch) async {
    let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    let firstProcesses = children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    let namespaced = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.hasPrefix("/usr/bin/unshare") == true
    if namespaced && !firstProcesses.isEmpty {
      for child in firstProcesses { _ = kill(child, SIGKILL) }
      try? await Task.sleep(for: .seconds(2))
      if exit.isOpen { return }
    }
    killGroup(pid)
  }

  private static func killGroup(_ group: Int32) {
    guard group > 0 else { return }
    _ = kill(-group, SIGKILL)
  }
}

/// Reads one pipe to its end on a thread of its own, keeping the first `limit` bytes.
private final class OutputCollector: Sendable {
  private struct State {
    var data = Data()
    var truncated = false
    var done = false
    var waiter: CheckedContinuation<(Data, Bool), Never>?
  }

  private let state = Mutex(State())

  init(_ handle: FileHandle, limit: Int) {
    Thread.detachNewThread { [self] in
      let fd = handle.fileDescriptor
      var buffer = [UInt8](repeating: 0, count: 65_536)
      while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        state.withLock { state in
          let room = max(0, limit - state.data.count)
          if count > room { state.truncated = true }
          if room > 0 { state.data.append(contentsOf: buffer[0..<min(room, count)]) }
        }
      }
      try? handle.close()
      let waiter = state.withLock { state -> CheckedContinuation<(Data, Bool), Never>? in
        state.done = true
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume(returning: state.withLock { ($0.data, $0.truncated) })
    }
  }

  /// The bytes kept and whether some were dropped, once the pipe is closed.
  func result() async -> (Data, Bool) {
    await withCheckedContinuation { continuation in
      let ready = state.withLock { state -> (Data, Bool)? in
        if state.done { return (state.data, state.truncated) }
        state.waiter = continuation
        return nil
      }
      if let ready { continuation.resume(returning: ready) }
    }
  }
}
