import ArgumentParser
import EasyRemote
import Foundation

/// `easyremote call NAME [ARG...]`: one call, the result as JSON.
struct CallCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "call", abstract: "Call a function; arguments are JSON literals (bare words are strings).")

  @OptionGroup var gateway: GatewayOptions
  @Argument(help: "The function.") var name: String
  @Argument(parsing: .allUnrecognized, help: "Positional arguments.") var arguments: [String] = []
  @Option(name: .customLong("kw"), help: "A keyword argument as key=value (repeatable).") var keywords: [String] = []
  @Option(help: "Run on this node only.") var node: String?
  @Option(help: "Seconds before giving up.") var timeout: Double = 30
  @Flag(help: "Print the result as compact JSON on one line.") var json = false

  func run() async throws {
    var kwargs: [String: JSONValue] = [:]
    for keyword in keywords {
      guard let equals = keyword.firstIndex(of: "=") else {
        throw ValidationError("--kw takes key=value, got '\(keyword)'")
      }
      kwargs[String(keyword[..<equals])] = jsonArgument(String(keyword[keyword.index(after: equals)...]))
    }
    let client = gateway.client(timeout: .milliseconds(Int64(timeout * 1000)))
    do {
      let result = try await client.executeJSON(name, args: arguments.map(jsonArgument), kwargs: kwargs, node: node)
      emit(jsonText(result, pretty: !json))
      await finish(client)
    } catch {
      await finish(client)
      throw fail(error)
    }
  }
}

/// `easyremote stream NAME [ARG...]`: each item as one JSON line as it arrives.
struct StreamCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stream", abstract: "Open a streaming function and print each item as one JSON line.")

  @OptionGroup var gateway: GatewayOptions
  @Argument(help: "The function.") var name: String
  @Argument(parsing: .allUnrecognized, help: "Positional arguments (JSON literals).") var arguments: [String] = []
  @Option(help: "Run on this node only.") var node: String?
  @Option(help: "Stop after this many items.") var limit: Int?

  func run() async throws {
    let client = gateway.client()
    do {
      var count = 0
      let args = arguments.map(jsonArgument)
      for try await item in try await client.streamJSON(name, args: args, node: node) {
        emit(jsonText(item))
        count += 1
        if let limit, count >= limit { break }
      }
      await finish(client)
    } catch {
      await finish(client)
      throw fail(error)
    }
  }
}

/// `easyremote functions`
struct FunctionsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "functions", abstract: "List the functions of the pool.")

  @OptionGroup var gateway: GatewayOptions
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    try await gateway.withClient { client in
      let functions = try await client.listFunctions()
      if json { return emit(jsonText(functions)) }
      emit(
        table(
          ["NAME", "PARAMETERS", "KIND", "NODES", "AVAILABLE", "DESCRIPTION"],
          functions.map {
            [
              $0.name, $0.parameters.joined(separator: ", "), $0.streaming ? "stream" : "call",
              $0.nodes.joined(separator: ","), $0.available ? "yes" : "no", $0.description,
            ]
          }))
    }
  }
}

/// `easyremote nodes`
struct NodesCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List the compute nodes.")

  @OptionGroup var gateway: GatewayOptions
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    try await gateway.withClient { client in
      let nodes = try await client.listNodes()
      if json { return emit(jsonText(nodes)) }
      // Nodes behind other gateways on the same store say which.
      let elsewhere = nodes.contains { $0.gateway != nil }
      emit(
        table(
          ["NODE", "FUNCTIONS", "IN FLIGHT", "MAX WORKERS"] + (elsewhere ? ["GATEWAY"] : []),
          nodes.map {
            [$0.id, String($0.functions.count), String($0.inFlight), String($0.maxWorkers)]
              + (elsewhere ? [$0.gateway ?? "(this one)"] : [])
          }))
    }
  }
}

/// `easyremote stats`: the gateway's call counters (seed 000's `Server.stats()`).
struct StatsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats", abstract: "The gateway's counters: nodes, functions, calls, failures, latency per function.")

  @OptionGroup var gateway: GatewayOptions
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    try await gateway.withClient { client in
      let stats = try await client.gatewayStats()
      if json { return emit(jsonText(stats)) }
      emit(
        "\(stats.nodes) nodes, \(stats.functions) functions, \(stats.totalRequests) calls (\(stats.failedRequests) failed), \(stats.inFlight) in flight"
          + (stats.maxWorkers.map { " (at most \($0), \(stats.waiting ?? 0) waiting)" } ?? "")
      )
      emit(
        table(
          ["FUNCTION", "CALLS", "FAILURES", "AVG MS"],
          stats.perFunction.sorted { $0.key < $1.key }.map {
            [$0.key, String($0.value.calls), String($0.value.failures), String(format: "%.2f", $0.value.averageMilliseconds)]
          }))
    }
  }
}

/// `easyremote health`
struct HealthCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "health", abstract: "Check the gateway.")

  @OptionGroup var gateway: GatewayOptions
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    do {
      let report = try await healthCheck(gateway.address, authToken: gateway.authToken, tls: gateway.config.transport.tls)
      emit(json ? jsonText(report) : "\(report.status): \(report.nodes) nodes, \(report.functions) functions")
    } catch {
      throw fail(error)
    }
  }
}
