import Foundation

/// One line of the benchmark's output.
struct BenchResult: Codable, Sendable {
  var name: String
  var p50_us: Double?
  var p99_us: Double?
  var ops_per_s: Double?
  var mb_per_s: Double?
  var rss_mb: Double?
  /// Database statements (each a round trip) per operation, where a database is involved.
  var round_trips_per_op: Double?

  static func printTable(_ results: [BenchResult]) {
    func cell(_ value: Double?, _ digits: Int = 1) -> String {
      guard let value else { return "" }
      return String(format: "%.\(digits)f", value)
    }
    let header = ["name", "p50 µs", "p99 µs", "ops/s", "MB/s", "RSS MB", "RT/op"]
    let rows = results.map { r in
      [r.name, cell(r.p50_us), cell(r.p99_us), cell(r.ops_per_s, 0), cell(r.mb_per_s), cell(r.rss_mb), cell(r.round_trips_per_op)]
    }
    let widths = header.indices.map { column in
      ([header] + rows).map { $0[column].count }.max() ?? 0
    }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { index, text in
        index == 0 ? text.padding(toLength: widths[index], withPad: " ", startingAt: 0)
          : String(repeating: " ", count: widths[index] - text.count) + text
      }.joined(separator: "  ")
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    for row in rows { print(line(row)) }
  }

  static func writeJSON(_ results: [BenchResult], to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(["results": results]).write(to: URL(fileURLWithPath: path))
  }
}

/// Latency samples of sequential round trips.
struct Latencies {
  private(set) var samples: [Duration] = []

  init(capacity: Int) { samples.reserveCapacity(capacity) }

  mutating func append(_ sample: Duration) { samples.append(sample) }

  func percentile(_ p: Double) -> Double {
    let sorted = samples.sorted()
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int(Double(sorted.count) * p))
    return sorted[index].microsecondsDouble
  }

  func result(_ name: String) -> BenchResult {
    BenchResult(name: name, p50_us: percentile(0.5), p99_us: percentile(0.99))
  }
}

extension Duration {
  var microsecondsDouble: Double {
    let (seconds, attoseconds) = components
    return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
  }

  var secondsDouble: Double { microsecondsDouble / 1e6 }
}

/// Runs `operation` from `concurrency` workers for `duration`; returns operations per second.
func throughput(
  concurrency: Int, duration: Duration, _ operation: @escaping @Sendable () async throws -> Void
) async throws -> Double {
  // Warm up.
  for _ in 0..<min(200, concurrency * 4) { try await operation() }
  let start = ContinuousClock.now
  let deadline = start + duration
  let total = try await withThrowingTaskGroup(of: Int.self) { group in
    for _ in 0..<concurrency {
      group.addTask {
        var count = 0
        while ContinuousClock.now < deadline {
          try await operation()
          count += 1
        }
        return count
      }
    }
    return try await group.reduce(0, +)
  }
  return Double(total) / (ContinuousClock.now - start).secondsDouble
}

/// The resident set size of this process, in MiB.
func residentMegabytes() -> Double? {
  guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
  for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
    let kb = line.split(separator: " ").compactMap { Double($0) }.first
    return kb.map { $0 / 1024 }
  }
  return nil
}
