import CSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Starts child processes from one thread that lives as long as the process.
///
/// A sandboxed task is started with `--die-with-parent` (`PR_SET_PDEATHSIG`), and Linux sends
/// that signal when the *thread* that started the child ends, not only the process. Threads
/// of Swift's cooperative pool may end when idle, which would kill a running task; this
/// thread never ends, so a task dies exactly when its node does.
final class ProcessSpawner: Sendable {
  static let shared = ProcessSpawner()

  private let jobs = Mutex<[@Sendable () -> Void]>([])
  private let wake = DispatchSemaphore(value: 0)

  private init() {
    let thread = Thread { [self] in loop() }
    thread.name = "easyremote-spawner"
    thread.start()
  }

  private func loop() -> Never {
    while true {
      wake.wait()
      let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
      job?()
    }
  }

  /// Starts `command[0]` (an absolute path) with the rest as its arguments; see
  /// `easyremote_spawn` for what the child gets. `fds[i]` becomes the child's `3 + i`.
  func spawn(
    _ command: [String], environment: [String: String], directory: String?, stdout: Int32, stderr: Int32,
    fds: [Int32]
  ) async throws -> pid_t {
    let result: Result<pid_t, SpawnError> = await withCheckedContinuation { continuation in
      jobs.withLock { $0.append({ continuation.resume(returning: Self.spawnNow(command, environment, directory, stdout, stderr, fds)) }) }
      wake.signal()
    }
    return try result.get()
  }

  struct SpawnError: Error {
    var errno: Int32
  }

  private static func spawnNow(
    _ command: [String], _ environment: [String: String], _ directory: String?, _ stdout: Int32, _ stderr: Int32,
    _ fds: [Int32]
  ) -> Result<pid_t, SpawnError> {
    let argv = command.map { strdup($0) } + [nil]
    let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      for pointer in argv { free(pointer) }
      for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    let status = fds.withUnsafeBufferPointer { fds in
      easyremote_spawn(command[0], argv, envp, directory, stdout, stderr, fds.baseAddress, Int32(fds.count), &pid)
    }
    return status == 0 ? .success(pid) : .failure(SpawnError(errno: status))
  }
}

/// The end of one child process: ``exited()`` returns once it has exited (without reaping
/// it, so its pid — and its process group id — cannot be reused while we still signal it);
/// ``reap()`` then collects its status.
final class ChildExit: Sendable {
  let pid: pid_t
  private let latch = Latch()

  init(pid: pid_t) {
    self.pid = pid
    Thread.detachNewThread { [latch] in
      var info = siginfo_t()
      while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
      latch.open()
    }
  }

  var hasExited: Bool { latch.isOpen }

  func exited() async { await latch.wait() }

  /// The raw wait status. Call after ``exited()``: the child is a zombie then, so this does
  /// not block.
  func reap() -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return status
  }
}
