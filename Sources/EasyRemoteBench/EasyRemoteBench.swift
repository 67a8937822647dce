import ArgumentParser
import Foundation

/// `easyremote-bench [SUITE...] [--json FILE]`: measures EasyRemote beside its floors.
@main
struct EasyRemoteBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "easyremote-bench",
    abstract: "Measure EasyRemote next to a plain NIO TCP ping-pong and a plain grpc-swift unary echo."
  )

  @Argument(help: "Suites to run: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")). All when none.")
  var suites: [Suite] = []

  @Option(help: "Also write the results as JSON to this file.") var json: String?

  @Option(help: "Seconds each throughput measurement runs.") var seconds: Double = 2

  @Option(help: "Sequential round trips per latency measurement.") var iterations: Int = 3000

  enum Suite: String, CaseIterable, ExpressibleByArgument {
    case link
  }

  func run() async throws {
    let chosen = suites.isEmpty ? Suite.allCases : suites
    let settings = BenchSettings(duration: .milliseconds(Int64(seconds * 1000)), iterations: iterations)
    var results: [BenchResult] = []
    results += try await Floors.run(settings)
    for suite in chosen {
      switch suite {
      case .link: results += try await LinkSuite.run(settings)
      }
    }
    BenchResult.printTable(results)
    if let json {
      try BenchResult.writeJSON(results, to: json)
      print("wrote \(json)")
    }
  }
}

struct BenchSettings: Sendable {
  var duration: Duration
  var iterations: Int
}
