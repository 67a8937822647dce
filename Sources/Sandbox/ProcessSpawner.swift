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
package final class ProcessSpawner: Sendable {
  package static let shared = ProcessSpawner()

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
  /// `easyremote_spawn` for what the child gets. `fds[i]` becomes the child's `3 + i`; `stdin`
  /// -1 gives it /dev/null.
  package func spawn(
    _ command: [String], environment: [String: String], directory: String?, stdin: Int32 = -1, stdout: Int32,
    stderr: Int32, fds: [Int32] = []
  ) async throws -> Int32 {
    let result: Result<Int32, SpawnError> = await withCheckedContinuation { continuation in
      jobs.withLock {
        $0.append({
          continuation.resume(returning: Self.spawnNow(command, environment, directory, stdin, stdout, stderr, fds))
        })
      }
      wake.signal()
    }
    return try result.get()
  }

  package struct SpawnError: Error {
    package var errno: Int32
  }

  private static func spawnNow(
    _ command: [String], _ environment: [String: String], _ directory: String?, _ stdin: Int32, _ stdout: Int32,
    _ stderr: Int32, _ fds: [Int32]
  ) -> Result<Int32, SpawnError> {
    let argv = command.map { strdup($0) } + [nil]
    let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      for pointer in argv { free(pointer) }
      for pointer in envp { free(pointer) }
    }
    var pid: Int32 = 0
    let status = fds.withUnsafeBufferPointer { fds in
      easyremote_spawn(command[0], argv, envp, directory, stdin, stdout, stderr, fds.baseAddress, Int32(fds.count), &pid)
    }
    return status == 0 ? .success(pid) : .failure(SpawnError(errno: status))
  }
}

/// The end of one child process: ``exited()`` returns once it has exited (without reaping
/// it, so its pid — and its process group id — cannot be reused while we still signal it);
/// ``reap()`` then collects its status.
package final class ChildExit: Sendable {
  package let pid: Int32
  private let latch = Latch()

  package init(pid: Int32) {
    self.pid = pid
    Thread.detachNewThread { [latch] in
      var info = siginfo_t()
      while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
      latch.open()
    }
  }

  package var hasExited: Bool { latch.isOpen }

  package func exited() async { await latch.wait() }

  /// The raw wait status. Call after ``exited()``: the child is a zombie then, so this does
  /// not block.
  package func reap() -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return status
  }
}

extension ProcessSpawner {
  /// A pipe whose two ends are close-on-exec: hand an end to ``spawn(_:environment:directory:stdin:stdout:stderr:fds:)``
  /// and it is the child's; close yours after the spawn.
  package static func pipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard easyremote_pipe(&fds) == 0 else { throw SpawnError(errno: errno) }
    return (fds[0], fds[1])
  }
}
