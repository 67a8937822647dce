import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A memory cgroup of one task's own: all of the task's processes together may use at most
/// ``SandboxLimits/taskMemoryBytes`` (past it the kernel's OOM killer ends the task), where
/// the node may make one — cgroup v2 with the memory controller enabled for the node's cgroup
/// (`memory.max`, swap off), or cgroup v1's memory controller (`memory.limit_in_bytes`, and
/// swap in it too where swap is accounted). The per-process address-space limit (`prlimit
/// --as`) holds everywhere; this one also bounds a task that spreads over many processes.
///
/// Made before the task starts (its first process writes itself into `cgroup.procs` before it
/// runs anything else), removed after it ended (whatever is still inside is killed first). A
/// node that starts removes those its dead predecessors left (``removeStale()``).
struct MemoryCgroup: Sendable {
  enum Version: String, Sendable {
    case v1, v2
  }

  /// Where this process makes its tasks' cgroups: its own memory cgroup's folder.
  struct Parent: Sendable, Equatable {
    var path: String
    var version: Version
  }

  let path: String
  let version: Version
  let limit: Int

  /// The file the task's first process writes its pid to.
  var procsFile: String { "\(path)/cgroup.procs" }

  /// This process's memory cgroup, if it can make children there (found once).
  static let parent: Parent? = findParent()

  /// A new cgroup for one task, limited to `limit` bytes; `nil` where none can be made.
  static func make(limit: Int) -> MemoryCgroup? {
    guard let parent else { return nil }
    let path = "\(parent.path)/\(prefix)\(getpid())-\(UUID().uuidString.prefix(8).lowercased())"
    guard mkdir(path, 0o755) == 0 else { return nil }
    let group = MemoryCgroup(path: path, version: parent.version, limit: limit)
    let written: Bool
    switch parent.version {
    case .v2:
      written = write("\(limit)", to: "\(path)/memory.max")
      // No swap beyond it, where swap is accounted (the file is absent otherwise).
      if written { write("0", to: "\(path)/memory.swap.max") }
    case .v1:
      // Memory and swap together, where swap is accounted (it must not be below the memory limit).
      written =
        write("\(limit)", to: "\(path)/memory.limit_in_bytes")
        && (!FileManager.default.fileExists(atPath: "\(path)/memory.memsw.limit_in_bytes")
          || write("\(limit)", to: "\(path)/memory.memsw.limit_in_bytes"))
    }
    guard written else {
      rmdir(path)
      return nil
    }
    return group
  }

  /// Whether the kernel killed a process of the task for going past the limit.
  func ranOutOfMemory() -> Bool {
    switch version {
    case .v2:
      return Self.counter("oom_kill", in: "\(path)/memory.events") > 0
    case .v1:
      // `oom_kill` (Linux 4.13 and later); before that, whether the limit was reached at all.
      let control = "\(path)/memory.oom_control"
      if let text = try? String(contentsOfFile: control, encoding: .utf8), text.contains("oom_kill ") {
        return Self.counter("oom_kill", in: control) > 0
      }
      return Self.counter("", in: "\(path)/memory.failcnt") > 0
    }
  }

  /// Kills whatever is still in it, then removes it (waiting a moment for the kernel to let go
  /// of processes that just died).
  func remove() async {
    for _ in 0..<200 {
      let pids = Self.pids(in: path)
      for pid in pids { _ = kill(pid, SIGKILL) }
      if Glibc.rmdir(path) == 0 || errno == ENOENT { return }
      try? await Task.sleep(for: .milliseconds(10))
    }
  }

  /// Removes the task cgroups of node processes that are gone (killed before they could),
  /// killing what is left in them.
  static func removeStale() async {
    guard let parent, let entries = try? FileManager.default.contentsOfDirectory(atPath: parent.path) else { return }
    for entry in entries where entry.hasPrefix(prefix) {
      guard let pid = Int32(entry.dropFirst(prefix.count).prefix { $0 != "-" }), pid != getpid() else { continue }
      if kill(pid, 0) == 0 || errno == EPERM { continue }
      await MemoryCgroup(path: "\(parent.path)/\(entry)", version: parent.version, limit: 0).remove()
    }
  }

  private static let prefix = "easyremote-task-"

  // MARK: Finding the parent

  /// The node's memory cgroup (`/proc/self/cgroup`) under its mount (`/proc/self/mountinfo`):
  /// v2 when the memory controller is enabled for its children (or can be), else v1's memory
  /// hierarchy; kept only if a child can be made there.
  static func findParent() -> Parent? {
    guard let groups = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
      let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
    else { return nil }
    var candidates: [Parent] = []
    for line in groups.split(separator: "\n") {
      let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
      guard fields.count == 3 else { continue }
      if fields[0] == "0", fields[1].isEmpty, let mount = mountPoint(in: mounts, type: "cgroup2", option: nil) {
        let folder = mount + (fields[2] == "/" ? "" : fields[2])
        let enabled = (try? String(contentsOfFile: "\(folder)/cgroup.subtree_control", encoding: .utf8)) ?? ""
        if enabled.split(separator: " ").contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "memory" })
          || write("+memory", to: "\(folder)/cgroup.subtree_control")
        {
          candidates.insert(Parent(path: folder, version: .v2), at: 0)
        }
      } else if fields[1].split(separator: ",").contains("memory"),
        let mount = mountPoint(in: mounts, type: "cgroup", option: "memory")
      {
        candidates.append(Parent(path: mount + (fields[2] == "/" ? "" : fields[2]), version: .v1))
      }
    }
    // The first where a child can be made and limited.
    for candidate in candidates {
      let probe = "\(candidate.path)/\(prefix)probe-\(getpid())"
      guard mkdir(probe, 0o755) == 0 else { continue }
      let file = candidate.version == .v2 ? "memory.max" : "memory.limit_in_bytes"
      let limited = FileManager.default.fileExists(atPath: "\(probe)/\(file)")
      rmdir(probe)
      if limited { return candidate }
    }
    return nil
  }

  /// The mount point of the first mount of `type` (with `option` among its super options).
  private static func mountPoint(in mountinfo: String, type: String, option: String?) -> String? {
    for line in mountinfo.split(separator: "\n") {
      // `id parent major:minor root mountpoint options [optional…] - type source superoptions`
      let halves = line.components(separatedBy: " - ")
      guard halves.count == 2 else { continue }
      let left = halves[0].split(separator: " ")
      let right = halves[1].split(separator: " ")
      guard left.count >= 5, right.count >= 3, right[0] == type else { continue }
      if let option, !right[2].split(separator: ",").contains(Substring(option)) { continue }
      return String(left[4])
    }
    return nil
  }

  // MARK: Files

  @discardableResult
  private static func write(_ value: String, to file: String) -> Bool {
    let fd = open(file, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return value.withCString { Glibc.write(fd, $0, strlen($0)) } >= 0
  }

  /// `key value` from a flat-keyed file (`memory.events`), or the file's one number (`key` "").
  private static func counter(_ key: String, in file: String) -> Int {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: " ")
      if key.isEmpty, parts.count == 1 { return Int(parts[0]) ?? 0 }
      if parts.count == 2, parts[0] == key { return Int(parts[1]) ?? 0 }
    }
    return 0
  }

  private static func pids(in path: String) -> [Int32] {
    let text = (try? String(contentsOfFile: "\(path)/cgroup.procs", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { Int32($0) }
  }
}
