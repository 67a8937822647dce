import Foundation
import TestSupport
import Testing

@testable import Sandbox

#if canImport(Glibc)
  import Glibc
#endif

/// Real child processes of python3 under real limits, with each isolation this machine
/// offers (bubblewrap is installed by the test script; the others are the fallbacks).
@Suite("Sandboxed code runner", .timeLimit(.minutes(2)))
struct CodeRunnerTests {
  static let isRoot = geteuid() == 0
  static let hasBubblewrap = FileManager.default.isExecutableFile(atPath: "/usr/bin/bwrap")
  static let mechanisms: [SandboxIsolation.Mechanism] =
    (hasBubblewrap ? [.bubblewrap] : []) + (isRoot ? [.namespaces] : []) + [.limitsOnly]
  /// Those that give the task a network namespace of its own.
  static let offline: [SandboxIsolation.Mechanism] = mechanisms.filter { $0 != .limitsOnly }

  @Test("stdout is the result; stderr and the exit status are kept", arguments: mechanisms)
  func outputs(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    let ok = try await runner.run("print('hello', 6 * 7)", timeout: 10)
    #expect(ok.status == .completed)
    #expect(ok.stdout == "hello 42\n")
    #expect(ok.exitStatus == 0 && ok.signal == nil)

    let failing = try await runner.run("import sys\nprint('partial')\nsys.stderr.write('bad thing\\n')\nsys.exit(3)", timeout: 10)
    #expect(failing.status == .failed)
    #expect(failing.exitStatus == 3)
    #expect(failing.stdout == "partial\n")
    #expect(failing.stderr == "bad thing\n")

    let raising = try await runner.run("raise ValueError('nope')", timeout: 10)
    #expect(raising.status == .failed)
    #expect(raising.stderr.contains("ValueError: nope"))
  }

  @Test("an infinite loop, and what it started, is killed at the timeout", arguments: mechanisms)
  func timeout(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    // The grandchild names itself, so that even as a zombie (no command line left) it is found.
    let marker = "er\(Int.random(in: 10_000_000...99_999_999))"
    let code = """
      import subprocess, sys
      subprocess.Popen([sys.executable, '-c', "open('/proc/self/comm', 'w').write('\(marker)')\\nimport time\\ntime.sleep(999)"])
      print('started', flush=True)
      while True:
          pass
      """
    let started = ContinuousClock.now
    let result = try await runner.run(code, timeout: 1)
    #expect(result.status == .timeout)
    #expect(result.limitsHit == [.wallTime])
    #expect(result.stderr == "", "only the task's own stderr: \(result.stderr)")
    #expect(result.stdout == "started\n")
    #expect(ContinuousClock.now - started < .seconds(10))
    #expect(result.duration >= 1)
    // The sleeping grandchild went too, and — inside a PID namespace, whose first process
    // reaps it — no zombie is left. (Without one, an orphan's zombie is PID 1's to reap.)
    let gone = await ProcessTable.until(limit: .seconds(2)) { ProcessTable.processes(named: marker, zombies: mechanism != .limitsOnly).isEmpty }
    #expect(gone, "still there: \(ProcessTable.processes(named: marker))")
  }

  @Test("a memory bomb is stopped by the memory limit", arguments: mechanisms)
  func memoryBomb(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    var limited = runner
    limited.limits.memoryBytes = 256 << 20
    let result = try await limited.run("data = bytearray(4 * 1024 ** 3)\nprint('allocated', len(data))", timeout: 20)
    #expect(result.status == .failed)
    #expect(result.stderr.contains("MemoryError"))
    #expect(!result.stdout.contains("allocated"))
    #expect(result.limitsHit == [.memory])
  }

  // With bubblewrap only: each task has a user of its own, and so a process limit of its own.
  // (Without it, every task runs as `nobody`, whose limit is shared by every task and test
  // running as `nobody` at that moment — the weakness the README names.)
  @Test(
    "a fork bomb is stopped by the process limit",
    .enabled(if: isRoot && hasBubblewrap, "the limit binds only as a user of its own"), arguments: [SandboxIsolation.Mechanism.bubblewrap])
  func forkBomb(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    var limited = runner
    limited.limits.maxProcesses = 10
    let code = """
      import os, time
      started = 0
      try:
          for _ in range(200):
              if os.fork() == 0:
                  time.sleep(30)
                  os._exit(0)
              started += 1
      except OSError as error:
          print('stopped after', started, error.errno)
      """
    let result = try await limited.run(code, timeout: 20)
    #expect(result.stdout.hasPrefix("stopped after"), "\(result.stdout) \(result.stderr)")
    let started = Int(result.stdout.split(separator: " ").dropFirst(2).first ?? "") ?? 999
    #expect(started < 10)
  }

  @Test("huge output is truncated at the limit, and the task still completes", arguments: mechanisms)
  func hugeOutput(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    var limited = runner
    limited.limits.maxOutputBytes = 100_000
    let result = try await limited.run("import sys\nfor _ in range(1000):\n    sys.stdout.write('x' * 10000)", timeout: 20)
    #expect(result.status == .completed)
    #expect(result.stdout.utf8.count == 100_000)
    #expect(result.stdoutTruncated)
    #expect(!result.stderrTruncated)
    #expect(result.limitsHit == [.stdout])
  }

  @Test("the task sees none of the node's environment, and a scratch folder of its own", arguments: mechanisms)
  func environment(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    setenv("EASYREMOTE_SECRET_TOKEN", "hunter2", 1)
    defer { unsetenv("EASYREMOTE_SECRET_TOKEN") }
    let code = """
      import os, json
      print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd(), 'files': os.listdir('.')}))
      open('scratch.txt', 'w').write('mine')
      """
    let result = try await runner.run(code, timeout: 10)
    #expect(result.status == .completed, "\(result.stderr)")
    #expect(!result.stdout.contains("hunter2"))
    let seen = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    let env = try #require(seen?["env"] as? [String: String])
    #expect(env["EASYREMOTE_SECRET_TOKEN"] == nil)
    #expect(Set(env.keys).isSubset(of: ["PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE", "PWD"]))
    let cwd = try #require(seen?["cwd"] as? String)
    #expect(env["HOME"] == cwd)
    #expect(seen?["files"] as? [String] == ["main.py"])
    if mechanism == .bubblewrap {
      #expect(cwd == CodeRunner.boxFolder)
    } else {
      // The scratch folder on the host is gone afterwards.
      #expect(cwd.hasPrefix(runner.scratchParent.path))
      #expect(!FileManager.default.fileExists(atPath: cwd))
    }
  }

  @Test("no network: the task cannot reach a server on the node's loopback", arguments: offline)
  func noNetwork(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
    _ = listen(listener, 8)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    let port = Int(UInt16(bigEndian: address.sin_port))
    let code = """
      import socket
      try:
          socket.create_connection(('127.0.0.1', \(port)), timeout=2)
          print('connected')
      except OSError as error:
          print('refused', error.errno)
      """
    let result = try await runner.run(code, timeout: 10)
    #expect(result.stdout.hasPrefix("refused"), "\(result.stdout) \(result.stderr)")
    var open = runner
    open.limits.allowNetwork = true
    let allowed = try await open.run(code, timeout: 10)
    #expect(allowed.stdout == "connected\n", "\(allowed.stderr)")
  }

  @Test("cancelling the caller kills the run at once", arguments: mechanisms)
  func cancellation(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    let started = ContinuousClock.now
    let marker = "cancel\(Int.random(in: 1_000_000...9_999_999))"
    let run = Task { try await runner.run("open('/proc/self/comm', 'w').write('\(marker)')\nimport time\ntime.sleep(60)", timeout: 60) }
    #expect(await ProcessTable.until { !ProcessTable.pids(named: marker).isEmpty }, "the code never ran")
    run.cancel()
    let result = try await run.value
    #expect(result.status == .cancelled)
    #expect(ContinuousClock.now - started < .seconds(10))
  }

  @Test("a node that starts removes the scratch folders of nodes that died, and keeps those of live ones")
  func staleScratch() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("easyremote-scratch-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    // A pid that is surely not running: past the kernel's pid_max.
    let maxPID = (try? String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8))
      .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 4_194_304
    let dead = root.appendingPathComponent("easyremote-\(maxPID + 1)/task-1")
    let live = root.appendingPathComponent("easyremote-1/task-2")  // PID 1 is always alive
    for folder in [dead, live] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
    CodeRunner(scratchRoot: root).removeStaleScratch()
    #expect(!FileManager.default.fileExists(atPath: dead.deletingLastPathComponent().path))
    #expect(FileManager.default.fileExists(atPath: live.path))
  }

  @Test(
    "cancelled while it is still being set up: the run ends at once and nothing of it is left", arguments: offline)
  func cancelledWhileStarting(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let runner = CodeRunner(mechanism: mechanism)
    let marker = "early\(Int.random(in: 1_000_000...9_999_999))"
    let code = "open('/proc/self/comm', 'w').write('\(marker)')\nimport time\ntime.sleep(600)"
    // Cancel at every moment of the start-up: before the sandbox exists, while it is made,
    // and once the code runs.
    for attempt in 0..<30 {
      let run = Task { try await runner.run(code, timeout: 600) }
      for _ in 0..<attempt * 50 { await Task.yield() }  // a later moment each time
      run.cancel()
      let result = try await run.value
      #expect(result.status == .cancelled || result.status == .completed, "\(result)")
    }
    // Nothing of any of them is left running.
    let gone = await ProcessTable.until(limit: .seconds(2)) { ProcessTable.processes(named: marker, zombies: false).isEmpty }
    #expect(gone, "still there: \(ProcessTable.processes(named: marker, zombies: false))")
  }

  @Test("a missing interpreter or a bad timeout is a typed error")
  func badInput() async throws {
    let runner = CodeRunner()
    let missing = CodeRunner(interpreter: "no-such-interpreter-3")
    await #expect(throws: SandboxError(code: .interpreterNotFound, message: "interpreter 'no-such-interpreter-3' not found in \(CodeRunner.sandboxPath)")) {
      try await missing.run("print(1)", timeout: 1)
    }
    for timeout in [0, -1, Double.nan, .infinity] {
      await #expect(throws: SandboxError.self) { try await runner.run("print(1)", timeout: timeout) }
    }
  }

  @Test("another interpreter: a shell script", arguments: mechanisms)
  func shell(_ mechanism: SandboxIsolation.Mechanism) async throws {
    let sh = CodeRunner(interpreter: "sh", mechanism: mechanism)
    let result = try await sh.run("echo \"$((6 * 7))\"; echo oops >&2; exit 4", timeout: 10)
    #expect(result.stdout == "42\n")
    #expect(result.stderr == "oops\n")
    #expect(result.exitStatus == 4)
  }
}

