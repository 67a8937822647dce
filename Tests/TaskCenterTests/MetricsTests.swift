import TestSupport
import EasyRemote
import Foundation
import Sandbox
import TaskCenter
import TaskCenterHTTP
import Testing

/// `GET /metrics`: the Prometheus text of what the gateway did, checked by promtool and
/// scraped by a real Prometheus server.
@Suite("Metrics", .timeLimit(.minutes(3)))
struct MetricsTests {
  static let token = "metrics-token"
  static let promtool = "/usr/bin/promtool"
  static let prometheus = "/usr/bin/prometheus"

  static func stack(metricsPublic: Bool = false, live: Bool = false) async throws -> HTTPStack {
    try await HTTPStack(token: token, configuration: .init(metricsPublic: metricsPublic), live: live)
  }

  static func parse(_ text: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
      guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
      samples[String(line[..<space])] = value
    }
    return samples
  }

  @Test(
    "/metrics counts calls by function, node and outcome, tasks, HTTP requests; promtool accepts it",
    .enabled(if: FileManager.default.isExecutableFile(atPath: MetricsTests.promtool), "needs promtool (Debian's prometheus)"))
  func exposition() async throws {
    let stack = try await MetricsTests.stack()
    let (node, worker) = try await stack.fabric.addNode("m1", slots: 4)
    let client = stack.fabric.client()
    for _ in 0..<3 { #expect(try await client.execute("sync_add", 2, 3) as Double == 5) }
    _ = try? await client.execute("no_such_function", 1) as Int
    var items = 0
    for try await _ in try await client.streamJSON("sync_number_stream", args: [.int(0), .int(4), .double(0)]) { items += 1 }
    #expect(items == 4)
    let submitted = try await stack.send("POST", "/tasks", json: ["code": "print(6 * 7)", "timeout": 30])
    #expect(submitted.status == 201, "\(submitted.text)")
    let id = try #require(submitted.object["task_id"] as? String)
    #expect(try await stack.fabric.center.wait(id, timeout: .seconds(60)).status == .completed)

    // Behind the token.
    let anonymous = try await stack.send("GET", "/metrics", token: false)
    #expect(anonymous.status == 401)
    let reply = try await stack.send("GET", "/metrics")
    #expect(reply.status == 200 && reply.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)

    // promtool's own lint: names, types, help, units.
    let checked = try await SSHServer.run(MetricsTests.promtool, ["check", "metrics"], input: reply.text)
    #expect(!checked.contains("error"), "\(checked)")

    let samples = MetricsTests.parse(reply.text)
    #expect(samples[#"easyremote_calls_total{function="sync_add",node="m1",outcome="ok"}"#] == 3, "\(reply.text)")
    #expect(samples[#"easyremote_calls_total{function="unknown",node="",outcome="function_not_found"}"#] == 1)
    #expect(samples[#"easyremote_calls_total{function="sync_number_stream",node="m1",outcome="ok"}"#] == 1)
    #expect(samples[#"easyremote_stream_items_total{function="sync_number_stream"}"#] == 4)
    #expect(samples[#"easyremote_call_duration_seconds_count{function="sync_add"}"#] == 3)
    #expect(samples[#"easyremote_tasks_submitted_total{kind="code"}"#] == 1)
    #expect(samples[#"easyremote_tasks_finished_total{kind="code",status="completed"}"#] == 1)
    #expect(samples[#"easyremote_tasks{status="completed"}"#] == 1)
    #expect(samples[#"easyremote_task_queue_wait_seconds_count{kind="code"}"#] == 1)
    #expect(samples[#"easyremote_task_run_seconds_count{kind="code",status="completed"}"#] == 1)
    #expect(samples[#"easyremote_task_attempts_total{kind="code"}"#] == 1)
    #expect((samples[#"easyremote_store_commit_seconds_count{operation="insert"}"#] ?? 0) >= 1)
    #expect(samples[#"easyremote_http_requests_total{route="/tasks",method="POST",status="201"}"#] == 1)
    #expect(samples[#"easyremote_http_requests_total{route="/metrics",method="GET",status="401"}"#] == 1)
    #expect(samples[#"easyremote_nodes{status="idle"}"#] == 1)
    #expect(samples[#"easyremote_node_joins_total{kind="first"}"#] == 1)
    #expect(samples[#"easyremote_node_workers{node="m1"}"#] == 4)
    #expect(samples["easyremote_calls_in_flight"] == 0)
    // The node's own figures come over its link with its heartbeats: its executions catch up.
    #expect(
      try await until(stack.fabric.server.changes()) {
        (try await stack.samples()[#"easyremote_node_executions_total{node="m1"}"#] ?? 0) >= 4
      })
    // The node leaves: its gauges end, its counters stay; the leave is counted.
    let leaving = stack.fabric.server.changes()
    await worker.stop()
    await node.stop()
    var last: [String: Double] = [:]
    let left = try await until(leaving) {
      last = try await stack.samples()
      return last[#"easyremote_node_workers{node="m1"}"#] == nil && last[#"easyremote_node_leaves_total{reason="closed"}"#] == 1
    }
    #expect(left, "\(last.filter { $0.key.contains("node") })")
    let after = try await stack.samples()
    #expect(after[#"easyremote_node_executions_total{node="m1"}"#] != nil)
    #expect(after[#"easyremote_nodes{status="offline"}"#] == 1)
    await stack.stop()
  }

  @Test("calls for 2,000 unknown names add no series; a function's series end when no node serves it")
  func boundedFunctionLabels() async throws {
    let stack = try await MetricsTests.stack()
    let (node, worker) = try await stack.fabric.addNode("m2")
    let client = stack.fabric.client()
    #expect(try await client.execute("sync_add", 2, 3) as Double == 5)
    for index in 0..<2000 { _ = try? await client.execute("no_such_function_\(index)", 1) as Int }
    let reply = try await stack.send("GET", "/metrics")
    let functions = Set(
      reply.text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line -> String? in
        guard let range = line.range(of: #"function=""#) else { return nil }
        return String(line[range.upperBound...].prefix { $0 != "\"" })
      })
    #expect(functions == ["sync_add", "unknown"], "\(functions.prefix(10))")
    #expect(reply.body.count < 64 << 10, "the exposition is \(reply.body.count) bytes")
    let samples = MetricsTests.parse(reply.text)
    #expect(samples[#"easyremote_calls_total{function="unknown",node="",outcome="function_not_found"}"#] == 2000)
    // The only node serving sync_add leaves: its series go with it.
    let leaving = stack.fabric.server.changes()
    await worker.stop()
    await node.stop()
    var last: [String: Double] = [:]
    let gone = try await until(leaving) {
      last = try await stack.samples()
      return !last.keys.contains { $0.contains(#"function="sync_add""#) }
    }
    #expect(gone, "\(last.keys.filter { $0.contains("sync_add") })")
    #expect(last[#"easyremote_calls_total{function="unknown",node="",outcome="function_not_found"}"#] == 2000)
    await stack.stop()
  }

  @Test("the node layer's metrics interceptor uses the catalogue's names")
  func namesAgree() {
    #expect(MetricsInterceptor.callsLabel == MetricCatalogue.linkCalls)
    #expect(MetricsInterceptor.durationLabel == MetricCatalogue.linkCallDuration)
    #expect(MetricsInterceptor.inFlightLabel == MetricCatalogue.linkCallsInFlight)
  }

  @Test("the Grafana dashboard in docs/ is JSON whose queries name only metrics the gateway exposes")
  func dashboard() throws {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "../../docs/grafana/easyremote-dashboard.json")
    let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
    let panels = try #require(dashboard["panels"] as? [[String: Any]])
    let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
    #expect(expressions.count >= panels.count)
    let names = Set(
      expressions.flatMap { expression in
        expression.matches(of: /easyremote_[a-z_]+/).map { match in
          String(match.output).replacing(/_(bucket|sum|count)$/, with: "")
        }
      })
    let known = Set(MetricCatalogue.names)
    #expect(!names.isEmpty && names.isSubset(of: known), "unknown: \(names.subtracting(known))")
  }

  @Test("/metrics without the token with metricsPublic; a gateway without metrics answers 404")
  func access() async throws {
    let open = try await MetricsTests.stack(metricsPublic: true)
    #expect(try await open.send("GET", "/metrics", token: false).status == 200)
    #expect(try await open.send("GET", "/tasks", token: false).status == 401, "only /metrics opens")
    await open.stop()

    let fabric = try await TaskFabric(metrics: nil)
    let api = try await RouterClient.open(TaskCenterAPI(center: fabric.center, server: fabric.server))
    let reply = try await api.send("GET", "/metrics")
    #expect(reply.status == 404 && reply.errorCode == "NOT_FOUND", "\(reply.text)")
    await api.close()
    await fabric.stop()
  }

  @Test(
    "a real Prometheus scrapes the gateway (with the token) and its query API has the calls by function",
    .enabled(if: FileManager.default.isExecutableFile(atPath: MetricsTests.prometheus), "needs Debian's prometheus"))
  func scrapedByPrometheus() async throws {
    let stack = try await MetricsTests.stack(live: true)  // scraped by another process
    try await stack.fabric.addNode("p1", slots: 2)
    let client = stack.fabric.client()
    for _ in 0..<5 { _ = try await client.execute("sync_add", 1, 1) as Double }
    for _ in 0..<2 { _ = try await client.execute("echo", "x") as String }

    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let target = try #require(stack.http.address)
    try """
      global: { scrape_interval: 1s, evaluation_interval: 1s }
      scrape_configs:
        - job_name: easyremote
          authorization: { credentials: \(MetricsTests.token) }
          static_configs: [{ targets: ["\(target)"] }]
      """.write(to: folder.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
    let port = SSHServer.freePort()
    let server = try await BackgroundServer.start(
      [
        MetricsTests.prometheus, "--config.file=\(folder.path)/prometheus.yml", "--storage.tsdb.path=\(folder.path)/data",
        "--web.listen-address=127.0.0.1:\(port)",
      ], log: folder.appendingPathComponent("prometheus.log").path)
    let prometheus = HTTPClient(base: "http://127.0.0.1:\(port)")
    do {
      // The query API: calls by function, summed over nodes and outcomes. Prometheus is a
      // process of its own, which tells no one when its scrape (every second) came in: asked
      // until it has the gateway's figures (it answers nothing before it is ready).
      let query = "sum%20by%20(function)%20(easyremote_calls_total)"
      var byFunction: [String: String] = [:]
      let scraped = try await eventually(limit: .seconds(60)) {
        guard let reply = try? await prometheus.send("GET", "/api/v1/query?query=\(query)") else { return false }
        let results = ((reply.object["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
        byFunction = [:]
        for result in results {
          guard let function = (result["metric"] as? [String: String])?["function"],
            let value = (result["value"] as? [Any])?.last as? String
          else { continue }
          byFunction[function] = value
        }
        return byFunction["sync_add"] == "5" && byFunction["echo"] == "2"
      }
      #expect(scraped, "Prometheus saw \(byFunction); log: \(server.log)")
      // It scraped with the token: the target is up.
      let up = try await prometheus.send("GET", "/api/v1/query?query=up")
      #expect(up.text.contains("\"1\""), "\(up.text)")
    } catch {
      await server.stop()
      throw error
    }
    await server.stop()
    await stack.stop()
  }
}

/// A server program a test starts and stops, its output in a log file; readiness is the
/// test's to check (Prometheus has `/-/ready`).
final class BackgroundServer: Sendable {
  let pid: Int32
  private let exit: ChildExit
  let logPath: String

  private init(pid: Int32, exit: ChildExit, logPath: String) {
    self.pid = pid
    self.exit = exit
    self.logPath = logPath
  }

  static func start(_ command: [String], log: String) async throws -> BackgroundServer {
    let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SSHServer.Failure(message: "cannot open \(log)") }
    defer { close(fd) }
    let pid = try await ProcessSpawner.shared.spawn(
      command, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": NSHomeDirectory()], directory: nil,
      stdout: fd, stderr: fd)
    return BackgroundServer(pid: pid, exit: ChildExit(pid: pid), logPath: log)
  }

  /// The last part of its log.
  var log: String { String((try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(2000) ?? "") }

  func stop() async {
    if !exit.hasExited { kill(pid, SIGTERM) }
    await exit.exited()
    _ = exit.reap()
  }
}

extension HTTPStack {
  /// The exposition's samples, by series (`name{labels}` as written).
  func samples() async throws -> [String: Double] {
    MetricsTests.parse(try await send("GET", "/metrics").text)
  }
}
