/// How a node's code tasks are kept apart from the machine and from each other — what
/// `GET /nodes/{id}` shows as `isolation`, so that whoever submits code knows what it gets.
public struct SandboxIsolation: Sendable, Equatable, Codable {
  /// The means, strongest first.
  public enum Mechanism: String, Sendable, Codable, CaseIterable {
    /// bubblewrap: each task in its own user, PID, mount, IPC, UTS and (unless allowed)
    /// network namespaces, a read-only system, a private size-bounded `/tmp`, seccomp.
    case bubblewrap
    /// util-linux `unshare` (root only): own PID and network namespaces, run as `nobody`;
    /// the host's file system is shared.
    case namespaces
    /// Resource limits (`prlimit`) and a clean environment only.
    case limitsOnly = "limits_only"
  }

  public var mechanism: Mechanism
  /// Each running task has a user id of its own on the host (the node runs as root).
  public var perTaskUser: Bool
  /// A task sees only its own processes (its own `/proc`).
  public var ownProcesses: Bool
  /// A task sees a read-only system and private, size-bounded `/tmp` and `/dev/shm`.
  public var privateFiles: Bool
  /// Dangerous system calls are refused (ptrace, mount, namespaces, modules, keyrings, bpf).
  public var seccomp: Bool
  /// Whether tasks may use the network.
  public var network: Bool
  /// Whatever kills the node kills its tasks.
  public var diesWithNode: Bool
  /// The cgroup version (`v1`, `v2`) whose memory controller bounds each task's memory, all
  /// its processes together; `nil` where the node cannot make memory cgroups (then only each
  /// process's address space is bounded).
  public var memoryCgroup: String?

  public init(
    mechanism: Mechanism, perTaskUser: Bool, ownProcesses: Bool, privateFiles: Bool, seccomp: Bool, network: Bool,
    diesWithNode: Bool, memoryCgroup: String? = nil
  ) {
    self.mechanism = mechanism
    self.perTaskUser = perTaskUser
    self.ownProcesses = ownProcesses
    self.privateFiles = privateFiles
    self.seccomp = seccomp
    self.network = network
    self.diesWithNode = diesWithNode
    self.memoryCgroup = memoryCgroup
  }

  enum CodingKeys: String, CodingKey {
    case mechanism
    case perTaskUser = "per_task_user"
    case ownProcesses = "own_processes"
    case privateFiles = "private_files"
    case seccomp, network
    case diesWithNode = "dies_with_node"
    case memoryCgroup = "memory_cgroup"
  }
}
