import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The task center through the `easyremote` tool, with real gateway and node processes that
/// are killed as machines die.
@Suite("easyremote tasks on the command line", .timeLimit(.minutes(3)))
struct TaskCommandLineTests {
  func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-cli-\(UUID().uuidString).sqlite").path
  }

  /// Runs `task ID --json` until `condition` holds for the task (or 20 s pass): the gateway is
  /// a process of its own, asked every 100 ms.
  func waitForTask(_ id: String, _ env: [String: String], until condition: ([String: Any]) -> Bool) async throws
    -> [String: Any]
  {
    var task: [String: Any] = [:]
    for _ in 0..<200 {
      let shown = try await runTool(["task", id, "--json"], environment: env)
      task = (try? JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]) ?? [:]
      if condition(task) { return task }
      try await Task.sleep(for: .milliseconds(100))
    }
    return task
  }

  @Test("submit, tasks, task and cancel; a gateway killed with SIGKILL loses no accepted task")
  func gatewayKilled() async throws {
    let port = String(freePort())
    let db = temporaryDatabase()
    let env = ["EASYREMOTE_GATEWAY": "127.0.0.1:\(port)"]
    let first = try await BackgroundProcess.start(
      ["gateway", "--port", port, "--no-http", "--db", db], readyPrefix: "gateway listening on ")

    let script = FileManager.default.temporaryDirectory.appendingPathComponent("task-\(UUID().uuidString).py")
    try Data("import sys\nprint('from a file', sys.version_info[0])\n".utf8).write(to: script)
    var accepted: [String] = []
    for arguments in [["--code", "print(40 + 2)"], [script.path]] {
      let submitted = try await runTool(["submit"] + arguments, environment: env)
      #expect(submitted.status == 0, "\(submitted.stderr)")
      accepted.append(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    let queued = try await runTool(["tasks", "--status", "queued", "--json"], environment: env)
    let listed = try JSONSerialization.jsonObject(with: Data(queued.stdout.utf8)) as? [[String: Any]]
    #expect(Set(listed?.compactMap { $0["task_id"] as? String } ?? []) == Set(accepted))

    await first.kill()
    let second = try await BackgroundProcess.start(
      ["gateway", "--port", port, "--http-port", "0", "--db", db], readyPrefix: "gateway listening on ")
    defer { second.stop() }
    let node = try await BackgroundProcess.start(
      ["node", "--id", "worker"] + anyLoad, environment: env, readyPrefix: "node worker joined")
    defer { node.stop() }

    let answer = try await waitForTask(accepted[0], env) { $0["status"] as? String == "completed" }
    #expect(answer["result"] as? String == "42")
    #expect(answer["node_id"] as? String == "worker")
    let fromFile = try await waitForTask(accepted[1], env) { $0["status"] as? String == "completed" }
    #expect(fromFile["result"] as? String == "from a file 3")

    let waited = try await runTool(["submit", "--code", "print('waited')", "--wait"], environment: env)
    #expect(waited.status == 0)
    #expect(waited.stdout == "waited\n")
    let failing = try await runTool(["submit", "--code", "raise SystemExit('no luck')", "--wait"], environment: env)
    #expect(failing.status == 1)
    #expect(failing.stderr.contains("no luck"))

    let long = try await runTool(["submit", "--code", "import time\ntime.sleep(60)"], environment: env)
    let longID = long.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    _ = try await waitForTask(longID, env) { $0["status"] as? String == "running" }
    let cancelled = try await runTool(["cancel", longID], environment: env)
    #expect(cancelled.stdout == "\(longID): cancelled\n")

    let table = try await runTool(["tasks"], environment: env)
    #expect(table.stdout.contains(longID) && table.stdout.contains("cancelled") && table.stdout.contains("completed"))

    let unknown = try await runTool(["task", "task_nope"], environment: env)
    #expect(unknown.status == 1)
    #expect(unknown.stderr.contains("TASK_NOT_FOUND"))
    let badTimeout = try await runTool(["submit", "--code", "print(1)", "--timeout", "0"], environment: env)
    #expect(badTimeout.status == 1)
    #expect(badTimeout.stderr.contains("INVALID_REQUEST") && badTimeout.stderr.contains("field: timeout"))
    let unreachable = try await runTool(["tasks", "--gateway", "127.0.0.1:1"])
    #expect(unreachable.status == 2)

    // The same gateway process answers HTTP (curl as the client).
    let http = try #require(second.earlierLines.first { $0.hasPrefix("http api on ") })
      .replacingOccurrences(of: "http api on ", with: "")
    let posted = try await runCommand(
      "/usr/bin/curl", ["-s", "-X", "POST", "\(http)/tasks", "-H", "Content-Type: application/json", "-d", #"{"code": "print(2 ** 10)"}"#])
    let created = try JSONSerialization.jsonObject(with: Data(posted.stdout.utf8)) as? [String: Any]
    let httpID = try #require(created?["task_id"] as? String)
    let viaHTTP = try await waitForTask(httpID, env) { $0["status"] as? String == "completed" }
    #expect(viaHTTP["result"] as? String == "1024", "\(viaHTTP)")
  }

  @Test("a node killed with SIGKILL while running a task: the task runs again on another node")
  func nodeKilled() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let env = ["EASYREMOTE_GATEWAY": address]
    // The doomed node's tasks can tell where they run: their memory limit is 300 MiB.
    let doomed = try await BackgroundProcess.start(
      ["node", "--id", "doomed", "--task-memory-mb", "300"] + anyLoad, environment: env, readyPrefix: "node doomed joined")
    // On the doomed node the task starts a grandchild that names itself, and hangs; on the
    // spare it finishes.
    let marker = "er\(Int.random(in: 10_000_000...99_999_999))"
    let code = """
      import resource, subprocess, sys, time
      if resource.getrlimit(resource.RLIMIT_AS)[0] == 300 << 20:
          subprocess.Popen([sys.executable, '-c', "open('/proc/self/comm', 'w').write('\(marker)')\\nimport time\\ntime.sleep(999)"])
          time.sleep(60)
      print('survived')
      """
    let submitted = try await runTool(["submit", "--code", code], environment: env)
    let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let running = try await waitForTask(id, env) { $0["status"] as? String == "running" }
    #expect(running["attempts"] as? Int == 1)

    let spare = try await BackgroundProcess.start(["node", "--id", "spare"] + anyLoad, environment: env, readyPrefix: "node spare joined")
    defer { spare.stop() }
    try #require(await ProcessTable.until { !ProcessTable.processes(named: marker).isEmpty }, "the task's grandchild never started")
    await doomed.kill()
    // Whatever kills the node kills its task's processes: none is left 2 s later.
    #expect(await ProcessTable.until(limit: .seconds(2)) { ProcessTable.processes(named: marker).isEmpty }, "left: \(ProcessTable.processes(named: marker))")
    let done = try await waitForTask(id, env) { ($0["status"] as? String).map { $0 != "running" && $0 != "queued" } ?? false }
    #expect(done["status"] as? String == "completed")
    #expect(done["result"] as? String == "survived")
    #expect(done["attempts"] as? Int == 2)
    #expect(done["node_id"] as? String == "spare")
  }

  @Test("SIGTERM to a gateway: the call in flight completes, the running task goes back to the queue, exit status 0")
  func gracefulGatewayStop() async throws {
    let port = String(freePort())
    let db = temporaryDatabase()
    let env = ["EASYREMOTE_GATEWAY": "127.0.0.1:\(port)"]
    let first = try await BackgroundProcess.start(
      ["gateway", "--port", port, "--no-http", "--db", db], readyPrefix: "gateway listening on ")
    defer { first.stop() }
    // Both attempts run on this node: they tell each other apart by a mark in the host's /tmp,
    // which a bubblewrap sandbox would keep from them.
    let node = try await BackgroundProcess.start(
      ["node", "--id", "worker", "--sandbox", "limits-only"] + anyLoad, environment: env, readyPrefix: "node worker joined")
    defer { node.stop() }
    // The first attempt leaves a mark and hangs; the second finds the mark and finishes.
    let marker = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-mark-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: marker) }
    let code = "import os, time\nif not os.path.exists('\(marker)'):\n    open('\(marker)', 'w').close()\n    time.sleep(60)\nprint('after the restart')"
    let id = try await runTool(["submit", "--code", code], environment: env).stdout
      .trimmingCharacters(in: .whitespacesAndNewlines)
    _ = try await waitForTask(id, env) { $0["status"] as? String == "running" }
    // A call of 3 s, in flight at the gateway when it is told to stop.
    let call = Task { try await runTool(["call", "async_ai_simulation", "\"in flight\"", "3"], environment: env) }
    try #require(try await callInFlight(on: "worker", gateway: "127.0.0.1:\(port)"), "the call never reached the node")

    first.stop()  // SIGTERM
    await first.exited()
    #expect(first.exitCode == 0)
    let answered = try await call.value
    #expect(answered.status == 0, "\(answered.stderr)")
    #expect(answered.stdout.contains("in flight"))

    // What the stopped gateway left in its database (read by Python's sqlite3): queued again.
    let stored = try await runCommand(
      "/usr/bin/env",
      ["python3", "-c", "import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute("
        + "'SELECT status, attempts, errorMessage FROM task WHERE id = ?', (sys.argv[2],)).fetchone(), sep='|')", db, id])
    #expect(stored.stdout == "queued|1|the gateway stopped\n", "\(stored.stderr)")

    let second = try await BackgroundProcess.start(
      ["gateway", "--port", port, "--no-http", "--db", db], readyPrefix: "gateway listening on ")
    defer { second.stop() }
    let done = try await waitForTask(id, env) { $0["status"] as? String == "completed" }
    #expect(done["result"] as? String == "after the restart")
    #expect(done["attempts"] as? Int == 2)
  }
  @Test("task code and results never appear in the logs at info level")
  func logsKeepSecrets() async throws {
    let logs = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-logs-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: logs) }
    let info = ["EASYREMOTE_LOG": "info"]
    let db = logs.appendingPathComponent("tasks.sqlite").path
    let gateway = try await BackgroundProcess.start(
      ["gateway", "--port", "0", "--no-http", "--db", db], environment: info, readyPrefix: "gateway listening on ",
      stderr: logs.appendingPathComponent("gateway.log"))
    defer { gateway.stop() }
    let env = ["EASYREMOTE_GATEWAY": gateway.readyLine.replacingOccurrences(of: "gateway listening on ", with: "")]
    let node = try await BackgroundProcess.start(
      ["node", "--id", "quiet"] + anyLoad, environment: env.merging(info) { $1 }, readyPrefix: "node quiet joined",
      stderr: logs.appendingPathComponent("node.log"))
    defer { node.stop() }
    let secret = "s3cr3t\(Int.random(in: 100_000...999_999))"
    let answer = try await runTool(["submit", "--code", "print('\(secret)'[::-1] + '\(secret)')", "--wait"], environment: env)
    #expect(answer.stdout.contains(secret), "\(answer.stdout) \(answer.stderr)")
    for name in ["gateway.log", "node.log"] {
      let log = try String(contentsOf: logs.appendingPathComponent(name), encoding: .utf8)
      #expect(log.contains("info"), "\(name) has the info lines: \(log)")
      #expect(!log.contains(secret) && !log.contains(String(secret.reversed())), "\(name): \(log)")
    }
  }

  @Test(
    "a node that is not root still boxes its tasks (user namespaces), and says what it offers",
    .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/bwrap"), "runs as nobody from root"))
  func nonRootSandbox() async throws {
    let code = """
      import json, os, subprocess
      outcome = {'uid': os.getuid(), 'ps': subprocess.run(['ps', '-e', '-o', 'comm='], capture_output=True, text=True).stdout.split()}
      for path in ['/tmp/task/mine', '/usr/theirs', '/etc/theirs']:
          try:
              open(path, 'w').write('x'); outcome[path] = 'written'
          except OSError as error:
              outcome[path] = error.strerror
      print(json.dumps(outcome))
      """
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--", productURL().path, "sandbox"]
    let run = try await runCommand("/usr/bin/setpriv", nobody + ["--run", code])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
    let isolation = try #require(report["isolation"] as? [String: Any])
    #expect(isolation["mechanism"] as? String == "bubblewrap")
    #expect(isolation["per_task_user"] as? Bool == false)
    #expect(isolation["own_processes"] as? Bool == true)
    #expect(isolation["seccomp"] as? Bool == true)
    #expect(report["status"] as? String == "completed", "\(report["stderr"] ?? "")")
    let stdout = try #require(report["stdout"] as? String)
    let outcome = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
    #expect(outcome["uid"] as? Int == 65534)
    #expect(Set(outcome["ps"] as? [String] ?? []).isSubset(of: ["bwrap", "python3", "ps"]), "\(outcome["ps"] ?? "")")
    #expect(outcome["/tmp/task/mine"] as? String == "written")
    #expect(outcome["/usr/theirs"] as? String == "Read-only file system")
    #expect(outcome["/etc/theirs"] as? String == "Read-only file system")

    // Without --run it says what it offers, and runs nothing.
    let shown = try await runCommand("/usr/bin/setpriv", nobody)
    #expect(shown.stdout.contains("\"mechanism\" : \"bubblewrap\""), "\(shown.stdout) \(shown.stderr)")
  }

}


/// Node flags for tests: take tasks whatever the machine's load. The suite runs with both
/// cores kept busy on purpose (`Scripts/test-under-load.sh`), and a node whose machine is
/// above its thresholds (80% CPU by default) rightly takes no tasks.
let anyLoad = ["--max-cpu-percent", "101", "--max-memory-percent", "101"]
