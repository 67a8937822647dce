/// What a sandboxed task may use. Each is configurable per node (`easyremote node --task-*`).
public struct SandboxLimits: Sendable, Equatable {
  /// Address space of each process (bytes): a memory bomb fails to allocate.
  public var memoryBytes: Int
  /// Memory of the whole task, all its processes together (bytes), where the node can make a
  /// memory cgroup (``SandboxIsolation/memoryCgroup``): past it the kernel kills the task.
  public var taskMemoryBytes: Int
  /// Processes (and threads) the task may have at once: a fork bomb fails to fork. Binds
  /// when the task runs as a user of its own, i.e. when the node runs as root.
  public var maxProcesses: Int
  /// stdout and stderr are each kept up to this many bytes; the rest is read and dropped.
  public var maxOutputBytes: Int
  /// Largest file the task may write (bytes).
  public var maxFileBytes: Int
  /// Open files per process.
  public var maxOpenFiles: Int
  /// CPU seconds each process may use; `nil`: its timeout, rounded up, plus one.
  public var cpuSeconds: Int?
  /// Size of the task's private `/tmp` (its working folder is `/tmp/task`): everything it
  /// writes to files, in total (bubblewrap).
  public var scratchBytes: Int
  /// Size of the task's private `/dev/shm` (bubblewrap).
  public var sharedMemoryBytes: Int
  /// Host user ids handed out one per running task when the node runs as root (bubblewrap).
  public var taskUserIDs: ClosedRange<UInt32>
  /// The user and group a task runs as when the node runs as root without bubblewrap
  /// (`nobody` by default); `nil` keeps the node's user.
  public var runAsUser: UInt32?
  /// Whether the task may use the network. Without it (the default) the task gets its own
  /// network namespace with only loopback.
  public var allowNetwork: Bool

  public init(
    memoryBytes: Int = 512 << 20, taskMemoryBytes: Int = 1 << 30, maxProcesses: Int = 32, maxOutputBytes: Int = 1 << 20,
    maxFileBytes: Int = 64 << 20, maxOpenFiles: Int = 256, cpuSeconds: Int? = nil, scratchBytes: Int = 64 << 20,
    sharedMemoryBytes: Int = 64 << 20, taskUserIDs: ClosedRange<UInt32> = 200_000...299_999,
    runAsUser: UInt32? = 65534, allowNetwork: Bool = false
  ) {
    self.memoryBytes = memoryBytes
    self.taskMemoryBytes = taskMemoryBytes
    self.maxProcesses = maxProcesses
    self.maxOutputBytes = maxOutputBytes
    self.maxFileBytes = maxFileBytes
    self.maxOpenFiles = maxOpenFiles
    self.cpuSeconds = cpuSeconds
    self.scratchBytes = scratchBytes
    self.sharedMemoryBytes = sharedMemoryBytes
    self.taskUserIDs = taskUserIDs
    self.runAsUser = runAsUser
    self.allowNetwork = allowNetwork
  }
}

extension SandboxLimits {
  /// The limit and its value, as a task's error message names it: "memory limit (512 MiB per
  /// process)".
  public func describe(_ limit: CodeResult.Limit) -> String {
    func size(_ bytes: Int) -> String {
      bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }
    let value: String? =
      switch limit {
      case .wallTime: nil
      case .cpuTime: cpuSeconds.map { "\($0) s" }
      case .memory: "\(size(memoryBytes)) per process"
      case .taskMemory: "\(size(taskMemoryBytes)), all its processes together"
      case .processes: "\(maxProcesses)"
      case .fileSize: size(maxFileBytes)
      case .scratch: size(scratchBytes)
      case .openFiles: "\(maxOpenFiles)"
      case .stdout, .stderr: "\(size(maxOutputBytes)) kept"
      }
    return "\(limit.rawValue) limit" + (value.map { " (\($0))" } ?? "")
  }
}
