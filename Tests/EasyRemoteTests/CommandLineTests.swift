import TestSupport
import Foundation
import Sandbox
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The `easyremote` tool as a user runs it: real processes, stdout, stderr and exit codes.
@Suite("easyremote command line", .timeLimit(.minutes(2)))
struct CommandLineTests {
  @Test("gateway, node, call, stream, functions, nodes and health work together")
  func endToEnd() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "cli-node"], readyPrefix: "node cli-node joined")
    defer { node.stop() }
    let env = ["EASYREMOTE_GATEWAY": address]

    let add = try await runTool(["call", "sync_add", "2", "3"], environment: env)
    #expect(add.status == 0)
    #expect(add.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5")

    let keywords = try await runTool(["call", "--gateway", address, "sync_add", "--kw", "a=40", "--kw", "b=2", "--json"])
    #expect(keywords.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "42")

    let text = try await runTool(["call", "echo", "hello"], environment: env)
    #expect(text.stdout.contains("\"hello\""))

    let stream = try await runTool(["stream", "sync_number_stream", "5", "3", "0.01"], environment: env)
    #expect(stream.status == 0)
    let lines = stream.stdout.split(separator: "\n")
    #expect(lines == [#"{"index":0,"value":5}"#, #"{"index":1,"value":6}"#, #"{"index":2,"value":7}"#])

    let functions = try await runTool(["functions", "--json"], environment: env)
    let listed = try JSONSerialization.jsonObject(with: Data(functions.stdout.utf8)) as? [[String: Any]]
    #expect(listed?.contains { $0["name"] as? String == "async_data_stream" } == true)
    let table = try await runTool(["functions"], environment: env)
    #expect(table.stdout.contains("sync_add"))
    #expect(table.stdout.contains("a, b"))

    let nodes = try await runTool(["nodes", "--json"], environment: env)
    #expect(nodes.stdout.contains("\"cli-node\""))
    let health = try await runTool(["health"], environment: env)
    #expect(health.stdout.contains("healthy: 1 nodes, 9 functions"))

    let wrong = try await runTool(["call", "sync_add", "1", "x"], environment: env)
    #expect(wrong.status == 1)
    #expect(wrong.stderr.contains("invalid_arguments"))
    #expect(wrong.stderr.contains("'b'"))
    let unknown = try await runTool(["call", "nope"], environment: env)
    #expect(unknown.status == 1)
    #expect(unknown.stderr.contains("function_not_found"))
    let unreachable = try await runTool(["call", "--gateway", "127.0.0.1:1", "sync_add", "1", "2"])
    #expect(unreachable.status == 2)
    #expect(unreachable.stderr.contains("connection_failed"))
    let badKeyword = try await runTool(["call", "sync_add", "--kw", "novalue"], environment: env)
    #expect(badKeyword.status != 0)
  }

  @Test(
    "a node's status page serves its own /metrics (and the node layer's, with interceptors.metrics); promtool accepts it",
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"), "needs promtool (Debian's prometheus)"))
  func nodeMetrics() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("node-metrics-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let config = folder.appendingPathComponent("node.yaml")
    try "interceptors:\n  metrics: true\n".write(to: config, atomically: true, encoding: .utf8)
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "metered", "--status-port", "0", "--config", config.path, "--interpreter", "none"],
      readyPrefix: "node metered joined")
    defer { node.stop() }
    let statusLine = try #require(node.earlierLines.first { $0.hasPrefix("status on http://") }, "\(node.earlierLines)")
    let base = statusLine.replacingOccurrences(of: "status on ", with: "")
    for _ in 0..<3 {
      let add = try await runTool(["call", "sync_add", "2", "3", "--gateway", address])
      #expect(add.status == 0, "\(add.stderr)")
    }
    let scraped = try await runCommand("/usr/bin/curl", ["-sS", base + "/metrics"])
    #expect(scraped.status == 0)
    let checked = try await runCommand("/bin/sh", ["-c", "curl -sS '\(base)/metrics' | promtool check metrics 2>&1"])
    #expect(checked.status == 0, "\(checked.stdout)")
    #expect(scraped.stdout.contains(#"easyremote_node_executions_total{node="metered"} 3"#), "\(scraped.stdout)")
    #expect(scraped.stdout.contains(#"easyremote_node_workers{node="metered"} 5"#))
    // The node layer's metrics interceptor, per method: the gateway's calls of the node.
    #expect(
      scraped.stdout.contains(#"easyremote_node_calls_total{node="metered",direction="inbound",method="er.node.run",outcome="ok"} 3"#),
      "\(scraped.stdout)")
  }

  @Test("a compute node killed with SIGKILL mid-call: the caller gets node_lost at once, not at its timeout")
  func nodeKilledMidCall() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "doomed"], readyPrefix: "node doomed joined")
    // A 60 s call with a 60 s timeout; the node dies once the call runs there.
    let call = Task {
      try await runTool(["call", "--gateway", address, "--timeout", "60", "async_ai_simulation", "\"hi\"", "60"])
    }
    #expect(try await callInFlight(on: "doomed", gateway: address), "the call never reached the node")
    let killed = ContinuousClock.now
    await node.kill()
    let result = try await call.value
    #expect(result.status == 1)
    #expect(result.stderr.contains("node_lost"), "\(result.stderr)")
    #expect(result.stderr.contains("doomed"))
    // Well before the call's 60 s timeout (on a loaded machine, process start-up alone takes seconds).
    #expect(ContinuousClock.now - killed < .seconds(40), "failed when the node died, not at the 60 s timeout")
  }

  @Test("an idempotent function whose node is killed with SIGKILL mid-call runs again on another node")
  func idempotentRetryAfterKill() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let doomed = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "doomed"], readyPrefix: "node doomed joined")
    // Only the doomed node serves when the call starts, so the first attempt runs there.
    let started = ContinuousClock.now
    let call = Task {
      try await runTool(["call", "--gateway", address, "--timeout", "60", "async_computation", "[1, 2, 3]", "15"])
    }
    #expect(try await callInFlight(on: "doomed", gateway: address), "the call never started on the doomed node")
    let survivor = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "survivor"], readyPrefix: "node survivor joined")
    defer { survivor.stop() }
    let nodes = try await runTool(["nodes", "--gateway", address, "--json"])
    #expect(nodes.stdout.contains("\"doomed\"") && nodes.stdout.contains("\"survivor\""))
    await doomed.kill()
    #expect(ContinuousClock.now - started < .seconds(14), "the first attempt had to be still running when its node died")
    let result = try await call.value
    #expect(result.status == 0, "\(result.stderr)")
    let answer = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    #expect(answer?["total"] as? Double == 14)
    let stats = try await runTool(["nodes", "--gateway", address, "--json"])
    #expect(!stats.stdout.contains("\"doomed\""))
  }

  @Test("gateway --config takes host, port and token from the YAML file; flags win over it")
  func gatewayConfigFile() async throws {
    let port = freePort()
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString).yaml")
    try """
      transport:
        host: 127.0.0.1
        port: \(port)
      auth:
        token: from-file
      """.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let db = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).sqlite").path
    let gateway = try await BackgroundProcess.start(
      ["gateway", "--config", file.path, "--no-http", "--db", db], readyPrefix: "gateway listening on ")
    defer { gateway.stop() }
    #expect(gateway.readyLine == "gateway listening on 127.0.0.1:\(port)")
    let refused = try await runTool(["health", "--gateway", "127.0.0.1:\(port)"])
    #expect(refused.status != 0 && refused.stderr.contains("auth_failed"), "\(refused.stderr)")
    let allowed = try await runTool(["health", "--gateway", "127.0.0.1:\(port)", "--token", "from-file"])
    #expect(allowed.status == 0 && allowed.stdout.contains("healthy"), "\(allowed.stderr)")

    let overridden = try await BackgroundProcess.start(
      ["gateway", "--config", file.path, "--port", "0", "--no-http", "--db", db + "-2"], readyPrefix: "gateway listening on ")
    defer { overridden.stop() }
    #expect(!overridden.readyLine.hasSuffix(":\(port)"))
  }

  @Test("a gateway with a token refuses nodes and clients without it")
  func token() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway(["--token", "s3cret"])
    defer { gateway.stop() }
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "trusted"], environment: ["EASYREMOTE_TOKEN": "s3cret"],
      readyPrefix: "node trusted joined")
    defer { node.stop() }

    let allowed = try await runTool(["call", "--gateway", address, "--token", "s3cret", "sync_add", "1", "2"])
    #expect(allowed.status == 0)
    #expect(allowed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    let viaEnvironment = try await runTool(
      ["call", "--gateway", address, "sync_add", "2", "2"], environment: ["EASYREMOTE_TOKEN": "s3cret"])
    #expect(viaEnvironment.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "4")
    let refused = try await runTool(["call", "--gateway", address, "sync_add", "1", "2"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("auth_failed"), "\(refused.stderr)")
    let wrong = try await runTool(["functions", "--gateway", address, "--token", "guess"])
    #expect(wrong.status != 0)
    #expect(wrong.stderr.contains("auth_failed"), "\(wrong.stderr)")
    let intruder = try await runTool(["node", "--gateway", address, "--id", "intruder", "--token", "guess"])
    #expect(intruder.status != 0)
    #expect(intruder.stderr.contains("cannot join"), "\(intruder.stderr)")
  }

  @Test("the issue's seed-001 config file (TLS, token, max_workers, compress, metrics, retry) starts a TLS gateway on its port; a misspelt key stops it, named")
  func originLayoutConfig() async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("seed-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    // Real certificate files, made by openssl: a CA and a server certificate it signed.
    try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
      to: folder.appendingPathComponent("san.ext"), atomically: true, encoding: .utf8)
    for command in [
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=Seed CA'",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj '/CN=localhost'",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext",
    ] {
      let made = try await runCommand("/bin/sh", ["-c", "cd '\(folder.path)' && \(command) 2>&1"])
      try #require(made.status == 0, "\(command): \(made.stdout)")
    }
    let port = freePort()
    let file = folder.appendingPathComponent("gateway.yaml")
    let yaml = """
      node_id: gateway
      debug: false
      default_timeout: 30.0
      transport:
        mode: grpc
        grpc:
          host: 127.0.0.1
          port: \(port)
          max_workers: 10
          max_message_length: 104857600
          tls: {enabled: true, cert_file: server.pem, key_file: server.key, ca_file: ca.pem, mutual_tls: false}
        memory: {zero_copy: true, simulate_latency: false, latency_ms: 0.0}
      serialization:
        default: json
        methods:
          upload: {serializer: binary, compress: true}
      interceptors:
        logging: true
        metrics: true
        auth: true
        auth_config: {mode: token, token: s3cret}
        retry: {enabled: true, max_retries: 3, backoff: 1.0}
      heartbeat: {enabled: true, interval: 30.0, timeout: 90.0}
      """
    try yaml.write(to: file, atomically: true, encoding: .utf8)
    let db = folder.appendingPathComponent("tasks.sqlite").path
    let gateway = try await BackgroundProcess.start(
      ["gateway", "--config", file.path, "--no-http", "--db", db], readyPrefix: "gateway listening on ")
    defer { gateway.stop() }
    #expect(gateway.readyLine == "gateway listening on 127.0.0.1:\(port)")
    // It speaks TLS with the certificate from the file (checked by openssl against the CA).
    let handshake = try await runCommand(
      "/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) -CAfile '\(folder.path)/ca.pem' -alpn h2 </dev/null 2>&1"])
    #expect(handshake.stdout.contains("Verify return code: 0 (ok)"), "\(handshake.stdout)")
    #expect(handshake.stdout.contains("CN = localhost"), "\(handshake.stdout)")

    // A node and clients reach it with the CLI's TLS flags, the environment, or the file.
    let address = "127.0.0.1:\(port)"
    let ca = folder.appendingPathComponent("ca.pem").path
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--tls-ca", ca, "--token", "s3cret", "--id", "tls-node", "--interpreter", "none"],
      readyPrefix: "node tls-node joined")
    defer { node.stop() }
    let sum = try await runTool(["call", "sync_add", "2", "3", "--gateway", address, "--tls-ca", ca, "--token", "s3cret"])
    #expect(sum.status == 0 && sum.stdout.contains("5"), "\(sum.stdout) \(sum.stderr)")
    // `easyremote stats`: the call just made is counted, by function.
    let stats = try await runTool(["stats", "--gateway", address, "--tls-ca", ca, "--token", "s3cret", "--json"])
    let counters = try #require(try? JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any], "\(stats.stdout)")
    #expect(counters["totalRequests"] as? Int == 1, "\(stats.stdout)")
    // transport.grpc.max_workers is the gateway's bound on calls in flight.
    #expect(counters["maxWorkers"] as? Int == 10, "\(stats.stdout)")
    #expect(((counters["perFunction"] as? [String: Any])?["sync_add"] as? [String: Any])?["calls"] as? Int == 1)
    let viaEnvironment = try await runTool(
      ["functions", "--gateway", address], environment: ["EASYREMOTE_TLS_CA": ca, "EASYREMOTE_TOKEN": "s3cret"])
    #expect(viaEnvironment.status == 0 && viaEnvironment.stdout.contains("sync_add"), "\(viaEnvironment.stderr)")
    let viaConfig = try await runTool(["health", "--gateway", address, "--config", file.path])
    #expect(viaConfig.status == 0, "\(viaConfig.stdout) \(viaConfig.stderr)")
    // Plaintext to a TLS gateway fails, and says so; so does a CA file that is not one.
    let plaintext = try await runTool(["functions", "--gateway", address, "--token", "s3cret"])
    #expect(plaintext.status != 0 && !plaintext.stderr.isEmpty)
    let notPEM = try await runTool(["functions", "--gateway", address, "--tls-ca", file.path])
    #expect(notPEM.status != 0 && notPEM.stderr.contains("cannot read the CA PEM file"), "\(notPEM.stderr)")

    // The HTTP API over HTTPS with the same certificate: curl checks it against the CA; a
    // WebSocket upgrades over it (wss://); plain HTTP to that port gets nothing.
    let httpsGateway = try await BackgroundProcess.start(
      ["gateway", "--port", "0", "--http-port", "0", "--db", db + "-https", "--http-tls-cert", folder.appendingPathComponent("server.pem").path,
       "--http-tls-key", folder.appendingPathComponent("server.key").path],
      readyPrefix: "gateway listening on ")
    defer { httpsGateway.stop() }
    let httpsLine = try #require(httpsGateway.earlierLines.first { $0.hasPrefix("http api on https://") }, "\(httpsGateway.earlierLines)")
    let httpsBase = httpsLine.replacingOccurrences(of: "http api on ", with: "")
    let health = try await runCommand("/usr/bin/curl", ["-sS", "--cacert", ca, httpsBase + "/health"])
    #expect(health.status == 0 && health.stdout.contains("\"components\""), "\(health.stdout) \(health.stderr)")
    let upgrade = try await runCommand(
      "/usr/bin/curl",
      ["-sS", "-i", "--max-time", "2", "--cacert", ca, "-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
       "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", httpsBase + "/ws/updates"])
    #expect(upgrade.stdout.hasPrefix("HTTP/1.1 101"), "\(upgrade.stdout) \(upgrade.stderr)")
    let plainToHTTPS = try await runCommand(
      "/usr/bin/curl", ["-sS", "--max-time", "5", httpsBase.replacingOccurrences(of: "https://", with: "http://") + "/health"])
    #expect(plainToHTTPS.status != 0 || !plainToHTTPS.stdout.contains("components"))

    // HTTPS from the configuration file instead of flags: `http: {port, tls: {cert_file, key_file}}`.
    let httpsFile = folder.appendingPathComponent("https.yaml")
    try "http:\n  port: 0\n  tls: {cert_file: server.pem, key_file: server.key}\n".write(
      to: httpsFile, atomically: true, encoding: .utf8)
    let fromFile = try await BackgroundProcess.start(
      ["gateway", "--port", "0", "--db", db + "-https-file", "--config", httpsFile.path], readyPrefix: "gateway listening on ")
    defer { fromFile.stop() }
    let fileLine = try #require(fromFile.earlierLines.first { $0.hasPrefix("http api on https://") }, "\(fromFile.earlierLines)")
    let fileHealth = try await runCommand(
      "/usr/bin/curl", ["-sS", "--cacert", ca, fileLine.replacingOccurrences(of: "http api on ", with: "") + "/health"])
    #expect(fileHealth.status == 0 && fileHealth.stdout.contains("\"components\""), "\(fileHealth.stdout) \(fileHealth.stderr)")
    let missingKey = folder.appendingPathComponent("https-missing.yaml")
    try "http:\n  tls: {cert_file: server.pem, key_file: nowhere.key}\n".write(to: missingKey, atomically: true, encoding: .utf8)
    let noKey = try await runTool(["gateway", "--port", "0", "--db", db + "-3", "--config", missingKey.path])
    #expect(noKey.status != 0 && noKey.stderr.contains("http.tls.key_file"), "\(noKey.stderr)")

    // `port` misspelt: startup fails, naming the key and the file.
    let misspelt = folder.appendingPathComponent("misspelt.yaml")
    try yaml.replacingOccurrences(of: "port: \(port)", with: "prot: \(port)").write(to: misspelt, atomically: true, encoding: .utf8)
    let refused = try await runTool(["gateway", "--config", misspelt.path, "--no-http", "--db", db + "-2"])
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("transport.grpc.prot") && refused.stderr.contains(misspelt.path), "\(refused.stderr)")
  }

  @Test("the three programs of Examples/AsyncStream run together and every result checks out")
  func asyncStreamExample() async throws {
    let port = String(freePort())
    let server = try await BackgroundProcess.start(
      [port], executable: "async-stream-server", readyPrefix: "gateway listening on ")
    defer { server.stop() }
    let node = try await BackgroundProcess.start(
      ["127.0.0.1:\(port)"], executable: "async-stream-node", readyPrefix: "compute node joined")
    defer { node.stop() }
    let client = try await runTool(["127.0.0.1:\(port)"], executable: "async-stream-client")
    #expect(client.status == 0, "\(client.stdout)\n\(client.stderr)")
    #expect(client.stdout.contains("all example results are correct"))
    #expect(!client.stdout.contains("FAIL"))
  }

  @Test("demo --once runs a gateway, a node and example calls, then exits cleanly")
  func demo() async throws {
    let db = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString).sqlite").path
    let demo = try await runTool(["demo", "--once", "--port", "0", "--http-port", "0", "--db", db])
    #expect(demo.status == 0)
    #expect(demo.stdout.contains(": completed, output 45"))
    #expect(demo.stdout.contains("sync_add(2, 3.5) = 5.5"))
    #expect(demo.stdout.contains("streamed 1, 2, 3"))
    #expect(demo.stdout.contains("stopped"))
  }
}

struct ToolResult {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// A built executable of this package (beside the test bundle).
func productURL(_ name: String = "easyremote") -> URL { ChildProgram.product(name) }

/// Runs `easyremote` (or another product) to completion off the cooperative thread pool.
func runTool(
  _ arguments: [String], environment: [String: String] = [:], executable: String = "easyremote"
) async throws -> ToolResult {
  try await runCommand(productURL(executable).path, arguments, environment: environment)
}

/// Runs any program to completion off the cooperative thread pool.
/// Whether a program `runCommand` started has ended (its watchdog then leaves it alone).
final class EndedFlag: Sendable {
  let value = Mutex(false)
}

/// Runs a program to its end and collects its output. One that has not ended after `limit`
/// is killed (its result then says so), so a hung program fails its test instead of holding
/// the whole run (Swift Testing's time limit cannot end a test waiting on a thread).
func runCommand(
  _ path: String, _ arguments: [String], environment: [String: String] = [:], limit: Double = 180
) async throws -> ToolResult {
  try await withCheckedThrowingContinuation { continuation in
    Thread.detachNewThread {
      do {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let ended = EndedFlag()
        Thread.detachNewThread {
          Thread.sleep(forTimeInterval: limit)
          if !ended.value.withLock({ $0 }) {
            FileHandle.standardError.write(Data("runCommand: \(path) \(arguments) still running after \(limit) s; killed\n".utf8))
            kill(pid, SIGKILL)
          }
        }
        defer { ended.value.withLock { $0 = true } }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        continuation.resume(
          returning: ToolResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self)))
      } catch {
        continuation.resume(throwing: error)
      }
    }
  }
}

/// A long-running `easyremote` process (gateway, node) that printed its ready line.
/// Waits (up to 30 s) until the gateway at `gateway` says a call is in flight on `node`.
func callInFlight(on node: String, gateway: String) async throws -> Bool {
  let deadline = ContinuousClock.now + .seconds(30)
  while ContinuousClock.now < deadline {
    let listing = try await runTool(["nodes", "--gateway", gateway, "--json"])
    let nodes = (try? JSONSerialization.jsonObject(with: Data(listing.stdout.utf8)) as? [[String: Any]]) ?? []
    if nodes.contains(where: { $0["id"] as? String == node && $0["inFlight"] as? Int == 1 }) { return true }
  }
  return false
}

/// `easyremote` (or another product) started by a test, once it said it is ready.
typealias BackgroundProcess = ChildProgram

extension ChildProgram {
  /// Starts a product of this package with the test's environment plus `environment`.
  static func start(
    _ arguments: [String], executable: String = "easyremote", environment: [String: String] = [:],
    readyPrefix: String, readyWithin seconds: Double = 60, stderr: URL? = nil
  ) async throws -> ChildProgram {
    try await launch(
      [productURL(executable).path] + arguments,
      environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, readyPrefix: readyPrefix,
      readyWithin: .seconds(seconds), stderr: stderr)
  }

  /// SIGTERM, without waiting: a graceful stop can take the grace period, and a test must not
  /// hold one of the few cooperative threads meanwhile (use ``exited()`` to wait).
  func stop() { signal(SIGTERM) }

  /// SIGKILL: no chance to clean up, as when a machine dies. Returns once it is gone.
  func kill() async { await end(SIGKILL) }

  /// `easyremote gateway` on a free port with a task store of its own and no HTTP; returns
  /// the process and its `host:port`.
  static func gateway(_ extra: [String] = []) async throws -> (ChildProgram, String) {
    let db = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).sqlite").path
    let gateway = try await start(
      ["gateway", "--port", "0", "--no-http", "--db", db] + extra, readyPrefix: "gateway listening on ")
    return (gateway, gateway.readyLine.replacingOccurrences(of: "gateway listening on ", with: ""))
  }
}

/// A TCP port on loopback that is free now: the kernel picks it for a socket bound to port 0,
/// which is then closed. (A random port collided with other tests' ports under load; a test
/// that must restart a server on the same port cannot let the server pick it.)
func freePort() -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
  _ = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
  }
  return Int(UInt16(bigEndian: address.sin_port))
}
