/// What a sandboxed task may use. Applied with `prlimit` to the interpreter it execs (Linux).
public struct SandboxLimits: Sendable, Equatable {
  /// Address space of each process (bytes): a memory bomb fails to allocate.
  public var memoryBytes: Int
  /// Processes the task's user may have: a fork bomb fails to fork. Binds only when the task
  /// runs as an unprivileged user (``runAsUser``): Linux does not apply it to root.
  public var maxProcesses: Int
  /// stdout and stderr are each kept up to this many bytes; the rest is read and dropped.
  public var maxOutputBytes: Int
  /// Largest file the task may write (bytes).
  public var maxFileBytes: Int
  /// Open files per process.
  public var maxOpenFiles: Int
  /// The user and group the task runs as when the node runs as root (`nobody` by default);
  /// `nil` keeps the node's user.
  public var runAsUser: UInt32?
  /// Whether the task may use the network. Without it (the default) the task gets its own
  /// network namespace with only loopback, when the node runs as root.
  public var allowNetwork: Bool

  public init(
    memoryBytes: Int = 512 << 20, maxProcesses: Int = 32, maxOutputBytes: Int = 1 << 20,
    maxFileBytes: Int = 64 << 20, maxOpenFiles: Int = 256, runAsUser: UInt32? = 65534, allowNetwork: Bool = false
  ) {
    self.memoryBytes = memoryBytes
    self.maxProcesses = maxProcesses
    self.maxOutputBytes = maxOutputBytes
    self.maxFileBytes = maxFileBytes
    self.maxOpenFiles = maxOpenFiles
    self.runAsUser = runAsUser
    self.allowNetwork = allowNetwork
  }
}
