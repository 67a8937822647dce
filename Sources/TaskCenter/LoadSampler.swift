public import EasyRemoteCore
import Foundation
import Synchronization

/// Reads the machine's CPU and memory use (Linux `/proc`); CPU is the share of time busy
/// since the previous reading.
public final class LoadSampler: Sendable {
  private let previous = Mutex<(busy: UInt64, total: UInt64)?>(nil)

  public init() {}

  /// The load now; zeros where the system does not tell.
  public func sample() -> NodeLoad {
    NodeLoad(cpuPercent: cpuPercent(), memoryPercent: Self.memoryPercent())
  }

  private func cpuPercent() -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
      let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ")
    else { return 0 }
    let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
    guard fields.count >= 4 else { return 0 }
    let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
    let total = fields.reduce(0, +)
    let now = (busy: total - idle, total: total)
    let before = previous.withLock { previous in
      defer { previous = now }
      return previous
    }
    guard let before, now.total > before.total else { return 0 }
    return Double(now.busy - before.busy) / Double(now.total - before.total) * 100
  }

  private static func memoryPercent() -> Double {
    guard let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
    var values: [String: Double] = [:]
    for line in info.split(separator: "\n") {
      let parts = line.split(separator: ":")
      guard parts.count == 2 else { continue }
      values[String(parts[0])] = Double(parts[1].split(separator: " ").first ?? "")
    }
    guard let total = values["MemTotal"], let available = values["MemAvailable"], total > 0 else { return 0 }
    return (total - available) / total * 100
  }
}
