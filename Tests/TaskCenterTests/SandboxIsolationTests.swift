import TestSupport
import Foundation
import Testing

@testable import Sandbox

#if canImport(Glibc)
  import Glibc
#endif

/// The bubblewrap sandbox tried as an attacker would: from inside a task, against another
/// task running at the same time, against the host, and against the limits.
@Suite(
  "Sandbox isolation (bubblewrap)", .timeLimit(.minutes(2)),
  .enabled(if: CodeRunnerTests.hasBubblewrap, "bubblewrap is not installed"))
struct SandboxIsolationTests {
  let runner = CodeRunner(mechanism: .bubblewrap)

  @Test("the runner reports what it isolates")
  func reportsIsolation() async throws {
    let isolation = await CodeRunner().isolation()
    #expect(isolation.mechanism == .bubblewrap)
    #expect(isolation.perTaskUser == CodeRunnerTests.isRoot)
    #expect(isolation.ownProcesses && isolation.privateFiles && isolation.diesWithNode)
    #expect(isolation.seccomp)
    #expect(!isolation.network)
    let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(isolation)) as? [String: Any]
    #expect(json?["mechanism"] as? String == "bubblewrap")
    #expect(json?["per_task_user"] as? Bool == CodeRunnerTests.isRoot)
  }

  @Test(
    "two tasks at once: neither sees or changes the other's files, processes or memory",
    .enabled(if: CodeRunnerTests.isRoot, "reads the first task's box through /proc as root"))
  func tasksApart() async throws {
    let name = "victim\(Int.random(in: 100...999))"
    // The first task keeps a secret in its folder, /tmp and /dev/shm and in its environment,
    // then waits until the test lets it go (SIGUSR1: root cannot make files in its box, whose
    // user namespace has no root), and says whether its files are as it left them.
    let victimCode = """
      import os, signal
      signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
      open('/proc/self/comm', 'w').write('\(name)')
      os.environ['VICTIM_SECRET'] = 'hunter2'
      secret = 'hunter2-' + str(os.getpid())
      for path in ['/tmp/task/secret.txt', '/tmp/secret.txt', '/dev/shm/secret.txt']:
          open(path, 'w').write(secret)
      open('/tmp/task/ready', 'w').write('1')
      signal.sigwait([signal.SIGUSR1])
      intact = all(open(p).read() == secret for p in ['/tmp/task/secret.txt', '/tmp/secret.txt', '/dev/shm/secret.txt'])
      print('intact' if intact else 'TAMPERED', os.getuid())
      """
    let victim = Task { try await runner.run(victimCode, timeout: 60) }
    // Find it from outside, and wait for its files.
    var victimPID: Int32?
    _ = await ProcessTable.until {
      victimPID = ProcessTable.pids(named: name).first
      return victimPID.map { FileManager.default.fileExists(atPath: "/proc/\($0)/root/tmp/task/ready") } ?? false
    }
    let pid = try #require(victimPID)
    let victimUID = try uid(of: pid)

    // The second task tries everything it can think of.
    let attackerCode = """
      import os, glob, json, subprocess, signal
      found = {}
      found['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
      found['ps'] = subprocess.run(['ps', '-e', '-o', 'comm='], capture_output=True, text=True).stdout
      found['files'] = [p for p in glob.glob('/tmp/**', recursive=True) + glob.glob('/dev/shm/**', recursive=True)
                        + glob.glob('/var/tmp/**', recursive=True) if 'secret' in p]
      leaks = []
      for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/root/tmp/**', recursive=True):
          try:
              if 'hunter' + '2' in open(path, errors='replace').read(): leaks.append(path)
          except OSError:
              pass
      found['leaks'] = leaks
      try:
          os.kill(\(pid), signal.SIGKILL); found['kill'] = 'sent'
      except OSError as error:
          found['kill'] = error.errno
      try:
          os.kill(-1, signal.SIGKILL)
      except OSError:
          pass
      found['uid'] = os.getuid()
      print(json.dumps(found))
      """
    let attacker = try await runner.run(attackerCode, timeout: 30)
    // os.kill(-1) ends the attacker itself: what it printed before is what counts.
    let seen = try #require(
      try JSONSerialization.jsonObject(with: Data(attacker.stdout.utf8)) as? [String: Any], "\(attacker.stderr)")
    #expect((seen["pids"] as? [Int])?.allSatisfy { $0 < 10 } == true, "\(seen["pids"] ?? "")")
    let ps = seen["ps"] as? String ?? ""
    #expect(Set(ps.split(separator: "\n")).isSubset(of: ["bwrap", "python3", "ps"]), "\(ps)")
    #expect((seen["files"] as? [String]) == [])
    #expect((seen["leaks"] as? [String]) == [])
    #expect(seen["kill"] as? Int == Int(ESRCH))
    if let attackerUID = seen["uid"] as? Int { #expect(UInt32(attackerUID) != victimUID) }

    // The first task's memory and environment are not readable by another user either.
    #expect(victimUID != 0 && victimUID != getuid())

    kill(pid, SIGUSR1)
    let result = try await victim.value
    #expect(result.stdout.hasPrefix("intact"), "\(result.stdout) \(result.stderr)")
    #expect(result.status == .completed)
  }

  @Test("the host is hidden: its processes, its files, and the node's command line")
  func hostHidden() async throws {
    let code = """
      import os, subprocess, json
      print(json.dumps({
          'ps': subprocess.run(['ps', '-e', '-o', 'args='], capture_output=True, text=True).stdout,
          'root': sorted(os.listdir('/')),
          'etc': sorted(os.listdir('/etc')),
          'hostname': os.uname().nodename,
          'home': os.path.exists('/root') or os.path.exists('/home') or os.path.exists('/work'),
      }))
      """
    let result = try await runner.run(code, timeout: 30)
    let seen = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
    let ps = (seen["ps"] as? String ?? "").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    // Only the sandbox's own processes: bwrap's first process, python, and ps.
    #expect(ps.count <= 4, "\(ps)")
    #expect(ps.allSatisfy { ["/usr/bin/bwrap ", "/usr/bin/python3 ", "ps "].contains(where: $0.hasPrefix) }, "\(ps)")
    #expect(!ps.contains { $0.contains("--token") || $0.contains("swiftpm") || $0.contains("xctest") }, "\(ps)")
    #expect(Set(seen["root"] as? [String] ?? []).isSubset(of: ["bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", "var"]))
    #expect(!(seen["etc"] as? [String] ?? []).contains("shadow"))
    #expect(seen["hostname"] as? String == "easyremote-task")
    #expect(seen["home"] as? Bool == false)
  }

  @Test("writes: the scratch space and /dev/shm are bounded, everything else is read-only, nothing is left")
  func writes() async throws {
    var limited = runner
    limited.limits.scratchBytes = 4 << 20
    limited.limits.sharedMemoryBytes = 2 << 20
    let code = """
      import errno, json
      outcome = {}
      for path, size in [('/tmp/task/big', 8 << 20), ('/tmp/big', 8 << 20), ('/var/tmp/big', 8 << 20),
                         ('/dev/shm/big', 4 << 20), ('/big', 1), ('/usr/big', 1), ('/etc/big', 1), ('/dev/big', 1)]:
          try:
              with open(path, 'wb') as f:
                  f.write(b'x' * size)
              outcome[path] = 'written'
          except OSError as error:
              outcome[path] = errno.errorcode[error.errno]
      print(json.dumps(outcome))
      """
    let result = try await limited.run(code, timeout: 30)
    let outcome = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String], "\(result.stderr)")
    for path in ["/tmp/task/big", "/tmp/big", "/var/tmp/big", "/dev/shm/big"] {
      #expect(outcome[path] == "ENOSPC", "\(path): \(outcome[path] ?? "")")
    }
    for path in ["/big", "/usr/big", "/etc/big", "/dev/big"] {
      #expect(outcome[path] == "EROFS" || outcome[path] == "EACCES", "\(path): \(outcome[path] ?? "")")
    }
    // Running into the space limit is reported as such.
    let full = try await limited.run("open('/tmp/task/big', 'wb').write(b'x' * (8 << 20))", timeout: 30)
    #expect(full.status == .failed)
    #expect(full.limitsHit.contains(.scratch), "\(full.stderr)")
  }

  @Test("no escapes: ptrace, mount, namespaces, keyrings and setuid programs are refused")
  func escapes() async throws {
    let code = """
      import ctypes, ctypes.util, os, json, subprocess
      libc = ctypes.CDLL(None, use_errno=True)
      def call(name, *args):
          result = getattr(libc, name)(*args)
          return 'ok' if result == 0 else os.strerror(ctypes.get_errno())
      outcome = {}
      child = subprocess.Popen(['sleep', '30'])
      outcome['ptrace'] = call('ptrace', 16, child.pid, None, None)
      child.kill()
      os.makedirs('/tmp/task/mnt', exist_ok=True)
      outcome['mount'] = call('mount', b'none', b'/tmp/task/mnt', b'tmpfs', 0, None)
      outcome['unshare'] = call('unshare', 0x10000000)
      outcome['keyctl'] = 'ok' if libc.syscall(250, 0, 0, 0, 0, 0) >= 0 else os.strerror(ctypes.get_errno())
      status = open('/proc/self/status').read()
      outcome['no_new_privs'] = 'NoNewPrivs:\\t1' in status
      outcome['seccomp'] = 'Seccomp:\\t2' in status
      outcome['capabilities'] = [line.split()[1] for line in status.splitlines() if line.startswith('CapEff')][0]
      setuid = '/usr/bin/mount'
      outcome['setuid_bit'] = bool(os.stat(setuid).st_mode & 0o4000)
      run = subprocess.run([setuid, '-t', 'tmpfs', 'none', '/tmp/task/mnt'], capture_output=True, text=True)
      outcome['setuid_run'] = run.returncode
      try:
          open('/etc/shadow').read(); outcome['shadow'] = 'read'
      except OSError as error:
          outcome['shadow'] = error.strerror
      print(json.dumps(outcome))
      """
    let result = try await runner.run(code, timeout: 30)
    let outcome = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
    #expect(outcome["ptrace"] as? String == "Operation not permitted")
    #expect(outcome["mount"] as? String == "Operation not permitted")
    #expect(outcome["unshare"] as? String == "Operation not permitted")
    #expect(outcome["keyctl"] as? String == "Operation not permitted")
    #expect(outcome["no_new_privs"] as? Bool == true)
    #expect(outcome["seccomp"] as? Bool == true)
    #expect(outcome["capabilities"] as? String == "0000000000000000")
    #expect(outcome["setuid_run"] as? Int != 0)
    #expect(outcome["shadow"] as? String != "read")
  }

  @Test("limits hit are named: CPU time, file size, open files, processes")
  func limitsNamed() async throws {
    var limited = runner
    limited.limits.cpuSeconds = 1
    let spin = try await limited.run("while True:\n    pass", timeout: 60)
    #expect(spin.status == .failed)
    #expect(spin.limitsHit == [.cpuTime], "\(spin.signal ?? -1) \(spin.exitStatus) \(spin.stderr)")

    limited = runner
    limited.limits.maxFileBytes = 1 << 20
    let big = try await limited.run("open('/tmp/task/f', 'wb').write(b'x' * (2 << 20))", timeout: 30)
    #expect(big.limitsHit.contains(.fileSize), "\(big.stderr)")

    limited = runner
    limited.limits.maxOpenFiles = 20
    let files = try await limited.run("handles = [open('/dev/null') for _ in range(100)]", timeout: 30)
    #expect(files.limitsHit == [.openFiles], "\(files.stderr)")

    let noisy = try await runner.run("import sys\nsys.stderr.write('e' * (2 << 20))", timeout: 30)
    #expect(noisy.limitsHit == [.stderr])
  }
}

/// A task's memory cgroup, where the node can make one (here: root, with cgroup v1's memory
/// controller writable).
@Suite(
  "Sandbox memory cgroup", .timeLimit(.minutes(2)),
  .enabled(if: MemoryCgroup.parent != nil, "this machine gives the node no memory cgroup to make tasks' in"))
struct MemoryCgroupTests {
  /// Three processes of 100 MB each: under the 512 MiB each process may have, over the 192 MiB
  /// the whole task may.
  static let spread = """
    import os, time
    kids = []
    for i in range(3):
        pid = os.fork()
        if pid == 0:
            block = b'x' * (100 << 20)
            time.sleep(2)
            os._exit(0)
        kids.append(pid)
    killed = sum(1 for pid in kids if os.waitpid(pid, 0)[1] != 0)
    print("killed", killed)
    raise SystemExit(1 if killed else 0)
    """

  @Test(
    "a task spread over processes is bounded as a whole, the limit is named, and its cgroup is gone after",
    arguments: [SandboxIsolation.Mechanism.bubblewrap, .limitsOnly])
  func boundedAsAWhole(mechanism: SandboxIsolation.Mechanism) async throws {
    if mechanism == .bubblewrap && !CodeRunnerTests.hasBubblewrap { return }
    var runner = CodeRunner(mechanism: mechanism)
    runner.limits.taskMemoryBytes = 192 << 20
    #expect(await runner.isolation().memoryCgroup == MemoryCgroup.parent?.version.rawValue)
    let bounded = try await runner.run(Self.spread, timeout: 60)
    #expect(bounded.status == .failed, "\(bounded.stdout) \(bounded.stderr)")
    #expect(bounded.limitsHit.first == .taskMemory, "\(bounded.limitsHit) \(bounded.stderr)")
    #expect(runner.limits.describe(.taskMemory) == "task memory limit (192 MiB, all its processes together)")
    // The same task within a larger bound runs to its end.
    runner.limits.taskMemoryBytes = 1 << 30
    let roomy = try await runner.run(Self.spread, timeout: 60)
    #expect(roomy.status == .completed && roomy.stdout == "killed 0\n", "\(roomy.stdout) \(roomy.stderr)")
  }

  @Test("a task's first process is in its cgroup before it runs; removing the cgroup kills what is left and removes it")
  func joinedAndRemoved() async throws {
    let group = try #require(MemoryCgroup.make(limit: 64 << 20))
    let pid = try await ProcessSpawner.shared.spawn(
      ["/bin/sh", "-c", "echo $$ > \"$0\" && exec /bin/sleep 60", group.procsFile], environment: [:], directory: nil,
      stdout: 2, stderr: 2)
    let exit = ChildExit(pid: pid)
    let members = { (try? String(contentsOfFile: group.procsFile, encoding: .utf8)) ?? "" }
    // (The kernel's cgroup file, written by the child: read until it shows the child.)
    #expect(await ProcessTable.until { members().split(separator: "\n").contains(Substring("\(pid)")) }, "\(members())")
    await group.remove()
    await exit.exited()
    _ = exit.reap()
    #expect(!FileManager.default.fileExists(atPath: group.path))
  }

  @Test("a node removes the task cgroups of a dead predecessor, killing what is left in them")
  func staleRemoved() async throws {
    let parent = try #require(MemoryCgroup.parent)
    // A node process that is gone: a process id no process has.
    let maximum = Int32((try String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 32768
    let gone = try #require((2..<maximum).reversed().first { kill($0, 0) != 0 && errno == ESRCH })
    let stale = "\(parent.path)/easyremote-task-\(gone)-deadbeef"
    #expect(mkdir(stale, 0o755) == 0)
    await MemoryCgroup.removeStale()
    #expect(!FileManager.default.fileExists(atPath: stale))
  }
}

/// The real user id of a process.
func uid(of pid: Int32) throws -> UInt32 {
  let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
  let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
  return UInt32(line.split(separator: "\t").dropFirst().first ?? "") ?? 0
}
