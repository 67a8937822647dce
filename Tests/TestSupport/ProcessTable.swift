public import Foundation

/// The kernel's table of processes, read from `/proc`: what tests look at to see that a
/// sandboxed task started or that nothing of it was left behind.
public enum ProcessTable {
  /// Processes named (`comm`) `name`, as "pid alive" or "pid zombie"; zombies too when `zombies`.
  public static func processes(named name: String, zombies: Bool = true) -> [String] {
    allPIDs().compactMap { pid in
      guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), stat.contains("(\(name))") else {
        return nil
      }
      let zombie = stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? false
      guard zombies || !zombie else { return nil }
      return "\(pid) \(zombie ? "zombie" : "alive")"
    }
  }

  /// Process ids whose name (`comm`) is `name`.
  public static func pids(named name: String) -> [Int32] {
    allPIDs().filter { pid in
      (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) == name
    }
  }

  /// Returns once `condition` holds of the process table (or `limit` passed: `false`). The
  /// kernel tells no one outside a process's parent when it starts or ends, so this reads
  /// the table again every 20 ms — the only way to see processes that are not ours.
  public static func until(limit: Duration = .seconds(30), _ condition: () -> Bool) async -> Bool {
    await eventually(limit: limit) { condition() }
  }

  private static func allPIDs() -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
  }
}
