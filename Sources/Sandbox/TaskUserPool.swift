import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Hands each running task a host user id of its own (the node runs as root), so that even
/// outside its namespaces one task's processes and files are another user's to the next.
///
/// An id is taken only when no process on the machine runs as it — another node on the same
/// machine may be using the same range — and is given back when the task ends.
final class TaskUserPool: Sendable {
  static let shared = TaskUserPool()

  private let inUse = Mutex<Set<UInt32>>([])

  /// A free id in `range`, or `nil` when every one is taken.
  func acquire(in range: ClosedRange<UInt32>) -> UInt32? {
    let busy = Self.usersWithProcesses()
    return inUse.withLock { inUse in
      for candidate in range where !inUse.contains(candidate) && !busy.contains(candidate) {
        inUse.insert(candidate)
        return candidate
      }
      return nil
    }
  }

  func release(_ uid: UInt32) {
    _ = inUse.withLock { $0.remove(uid) }
  }

  /// The real user ids of every process on the machine (from `/proc`).
  static func usersWithProcesses() -> Set<UInt32> {
    var users = Set<UInt32>()
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return users }
    for entry in entries where entry.first?.isNumber == true {
      var info = stat()
      if stat("/proc/\(entry)", &info) == 0 { users.insert(info.st_uid) }
    }
    return users
  }
}
