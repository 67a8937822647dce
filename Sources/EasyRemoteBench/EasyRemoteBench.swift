import ArgumentParser
import Logging
import Foundation
import NodeComm
import TaskCenter

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

  @Option(help: "Idle nodes the scale suite connects.") var nodes: Int = 1000

  @Option(help: .hidden) var simulateNodes: Int?
  @Option(help: .hidden) var gateway: String?
  @Option(help: .hidden) var nodePrefix = "sim-"
  @Flag(help: .hidden) var profileStore = false
  @Option(help: .hidden) var profile: String?

  enum Suite: String, CaseIterable, ExpressibleByArgument {
    case link, routed, metrics, scale, tasks
  }

  func run() async throws {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .warning
      return handler
    }
    AllocatorTuning.applyOnce()  // as `easyremote` does: the figures are the executable's
    if profileStore {
      _ = try await TasksSuite.storeOps(
        "profile", try SQLiteTaskStore(path: NSTemporaryDirectory() + "/profile-\(UUID().uuidString).sqlite"),
        count: 20000)
      return
    }
    if let profile {
      try await ProfileLoops.run(profile, seconds: seconds)
      return
    }
    if let simulateNodes, let gateway {
      try await ScaleSuite.simulate(nodes: simulateNodes, gateway: gateway, prefix: nodePrefix)
      return
    }
    let chosen = suites.isEmpty ? Suite.allCases : suites
    let settings = BenchSettings(duration: .milliseconds(Int64(seconds * 1000)), iterations: iterations)
    var results: [BenchResult] = []
    results += try await Floors.run(settings)
    for suite in chosen {
      switch suite {
      case .link: results += try await LinkSuite.run(settings)
      case .routed: results += try await RoutedSuite.run(settings)
      case .metrics: results += try await MetricsCostSuite.run(settings)
      case .scale: results += try await ScaleSuite.run(nodes: nodes)
      case .tasks: results += try await TasksSuite.run(settings)
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
