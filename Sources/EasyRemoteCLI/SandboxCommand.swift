import ArgumentParser
import Foundation
import Sandbox

/// How a node's code tasks are sandboxed: `easyremote node` and `easyremote sandbox` share these.
struct SandboxOptions: ParsableArguments {
  @Option(help: "The interpreter of code tasks ('none' takes function tasks only).") var interpreter = "python3"
  @Option(help: "The isolation: bubblewrap, namespaces or limits-only (default: the strongest this machine offers).")
  var sandbox: String?
  @Option(help: "Memory (address space) of each task process, in MiB.") var taskMemoryMb = 512
  @Option(help: "Memory of a whole task, all its processes together, in MiB (where the node can make memory cgroups).")
  var taskTotalMemoryMb = 1024
  @Option(help: "CPU seconds of each task process (default: its timeout + 1).") var taskCpuSeconds: Int?
  @Option(help: "Processes a task may have at once (binds when the node runs as root).") var taskProcesses = 32
  @Option(help: "Size of a task's private /tmp, where its files go, in MiB.") var taskScratchMb = 64
  @Option(help: "Size of a task's private /dev/shm, in MiB.") var taskShmMb = 64
  @Option(help: "Largest file a task may write, in MiB.") var taskFileMb = 64
  @Option(help: "Open files per task process.") var taskOpenFiles = 256
  @Option(help: "stdout and stderr kept of each task, in KiB.") var taskOutputKb = 1024
  @Flag(help: "Let tasks use the network.") var taskNetwork = false

  func validate() throws {
    if let sandbox, mechanism(sandbox) == nil {
      throw ValidationError("--sandbox must be bubblewrap, namespaces or limits-only, not '\(sandbox)'")
    }
    for (name, value) in [
      ("--task-memory-mb", taskMemoryMb), ("--task-total-memory-mb", taskTotalMemoryMb), ("--task-processes", taskProcesses), ("--task-scratch-mb", taskScratchMb),
      ("--task-shm-mb", taskShmMb), ("--task-file-mb", taskFileMb), ("--task-open-files", taskOpenFiles),
      ("--task-output-kb", taskOutputKb), ("--task-cpu-seconds", taskCpuSeconds ?? 1),
    ] where value <= 0 {
      throw ValidationError("\(name) must be positive, got \(value)")
    }
  }

  private func mechanism(_ name: String) -> SandboxIsolation.Mechanism? {
    SandboxIsolation.Mechanism(rawValue: name.replacingOccurrences(of: "-", with: "_"))
  }

  /// The runner these options describe; `nil` for `--interpreter none`. Fails when the
  /// interpreter is missing.
  func runner() throws -> CodeRunner? {
    guard interpreter != "none" else { return nil }
    let limits = SandboxLimits(
      memoryBytes: taskMemoryMb << 20, taskMemoryBytes: taskTotalMemoryMb << 20, maxProcesses: taskProcesses, maxOutputBytes: taskOutputKb << 10,
      maxFileBytes: taskFileMb << 20, maxOpenFiles: taskOpenFiles, cpuSeconds: taskCpuSeconds,
      scratchBytes: taskScratchMb << 20, sharedMemoryBytes: taskShmMb << 20, allowNetwork: taskNetwork)
    let runner = CodeRunner(interpreter: interpreter, limits: limits, mechanism: sandbox.flatMap(mechanism))
    guard runner.resolvedInterpreter() != nil else {
      throw ValidationError("interpreter '\(interpreter)' not found in \(CodeRunner.sandboxPath)")
    }
    return runner
  }
}

/// `easyremote sandbox`: what a node on this machine gives its code tasks; `--run` tries it.
struct SandboxCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sandbox",
    abstract: "Show how code tasks are isolated on this machine, or run code as a task would run.")

  @OptionGroup var options: SandboxOptions
  @Option(help: "Code to run in the sandbox; prints its result as JSON.") var run: String?
  @Option(help: "The run's timeout, in seconds.") var timeout = 30.0

  func run() async throws {
    guard let runner = try options.runner() else { throw ValidationError("--interpreter none runs no code") }
    let isolation = await runner.prepare()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard let code = run else {
      emit(String(decoding: try encoder.encode(isolation), as: UTF8.self))
      return
    }
    let result = try await runner.run(code, timeout: timeout)
    let report = RunReport(
      status: result.status.rawValue, stdout: result.stdout, stderr: result.stderr, exitStatus: result.exitStatus,
      limitsHit: result.limitsHit.map(\.rawValue), isolation: isolation)
    emit(String(decoding: try encoder.encode(report), as: UTF8.self))
  }

  struct RunReport: Encodable {
    var status: String
    var stdout: String
    var stderr: String
    var exitStatus: Int32
    var limitsHit: [String]
    var isolation: SandboxIsolation

    enum CodingKeys: String, CodingKey {
      case status, stdout, stderr, isolation
      case exitStatus = "exit_status"
      case limitsHit = "limits_hit"
    }
  }
}
