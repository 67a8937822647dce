/// How a sandboxed run ended.
public struct CodeResult: Sendable, Equatable {
  public enum Status: String, Sendable {
    /// Exited with status 0.
    case completed
    /// Exited with another status, or was killed by a signal (a limit, usually).
    case failed
    /// Still running at its timeout: the whole process group was killed.
    case timeout
    /// The caller cancelled the run: the whole process group was killed.
    case cancelled
  }

  /// A limit of ``SandboxLimits`` that the run ran into.
  public enum Limit: String, Sendable, CaseIterable {
    case wallTime = "wall time"
    case cpuTime = "CPU time"
    case memory
    /// The task's memory cgroup (``SandboxLimits/taskMemoryBytes``).
    case taskMemory = "task memory"
    case processes
    case fileSize = "file size"
    case scratch = "scratch space"
    case openFiles = "open files"
    case stdout = "stdout size"
    case stderr = "stderr size"
  }

  public var status: Status
  /// stdout, at most `maxOutputBytes` of it.
  public var stdout: String
  public var stderr: String
  /// The exit status, or 128 + the signal's number when a signal ended it.
  public var exitStatus: Int32
  /// The signal that ended it, if one did.
  public var signal: Int32?
  public var stdoutTruncated: Bool
  public var stderrTruncated: Bool
  /// Wall-clock seconds from start to exit.
  public var duration: Double
  /// The limits it ran into, as far as they can be told from outside: the timeout, a CPU or
  /// file-size signal, the interpreter's own report of a failed allocation, fork, write or
  /// open, or output cut short.
  public var limitsHit: [Limit] = []
}
