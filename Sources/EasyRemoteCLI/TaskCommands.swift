import ArgumentParser
import EasyRemote
import Foundation
import TaskCenter

/// `easyremote submit FILE.py | --code '...'`: queues a code task in the gateway's task center.
struct SubmitCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "submit", abstract: "Queue a code task (Python by default) in the gateway's task center.")

  @OptionGroup var gateway: GatewayOptions
  @Argument(help: "A file with the code.") var file: String?
  @Option(help: "The code itself, instead of a file.") var code: String?
  @Option(help: "Seconds the task may run.") var timeout: Double = 300
  @Option(help: "Cores the task needs.") var cpu: Double = 1
  @Option(help: "MiB of memory the task needs.") var memory: Int = 512
  @Flag(help: "Wait for the task and print its output.") var wait = false
  @Flag(help: "Print the task as JSON.") var json = false

  func validate() throws {
    guard (file == nil) != (code == nil) else { throw ValidationError("give either a FILE or --code, not both") }
  }

  func run() async throws {
    let source: String
    if let file {
      guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
        throw ValidationError("cannot read \(file)")
      }
      source = text
    } else {
      source = code ?? ""
    }
    try await gateway.withClient { client in
      var task = try await client.submit(
        .code(source, timeout: timeout, resources: ResourceRequest(cpu: cpu, memoryMB: memory)))
      guard wait else {
        return emit(json ? jsonText(task) : task.id)
      }
      let started = ContinuousClock.now
      while !task.status.isFinal {
        progress("\(task.id): \(task.status.rawValue)\(task.nodeID.map { " on \($0)" } ?? "") · \(seconds(since: started)) s")
        task = try await client.waitForTask(task.id, timeout: .seconds(1))
      }
      progress(nil)
      if json { return emit(jsonText(task)) }
      // A code task's stdout as it printed it; a function task's result as JSON.
      if let output = task.stdout ?? task.result.map({ $0 + "\n" }), !output.isEmpty {
        try? FileHandle.standardOutput.write(contentsOf: Data(output.utf8))
      }
      if let stderr = task.stderr, !stderr.isEmpty { try? FileHandle.standardError.write(contentsOf: Data(stderr.utf8)) }
      guard task.status == .completed else {
        throw fail(
          TaskCenterError(
            code: task.status == .timeout ? .taskTimeout : .internalError,
            message: "task \(task.id) \(task.status.rawValue): \(task.errorMessage ?? "")"))
      }
    }
  }

  private func seconds(since start: ContinuousClock.Instant) -> Int {
    Int((ContinuousClock.now - start).components.seconds)
  }

  /// One status line on stderr, rewritten in place on a terminal.
  private func progress(_ line: String?) {
    guard isatty(STDERR_FILENO) == 1 else { return }
    try? FileHandle.standardError.write(contentsOf: Data(("\r\u{1B}[K" + (line ?? "")).utf8))
  }
}

/// `easyremote tasks [--status S]`
struct TasksCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List tasks, newest first.")

  @OptionGroup var gateway: GatewayOptions
  @Option(help: "Only tasks in this status (queued, running, completed, failed, timeout, cancelled).")
  var status: String?
  @Option(help: "How many.") var limit = 50
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    var filter: TaskStatus?
    if let status {
      guard let parsed = TaskStatus(rawValue: status) else { throw ValidationError("unknown status '\(status)'") }
      filter = parsed
    }
    try await gateway.withClient { client in
      let tasks = try await client.tasks(status: filter, limit: limit)
      if json { return emit(jsonText(tasks)) }
      emit(
        table(
          ["TASK", "KIND", "STATUS", "NODE", "ATTEMPTS", "SECONDS", "WHAT"],
          tasks.map { task in
            let what = (task.function ?? task.code ?? "").split(separator: "\n").first.map(String.init) ?? ""
            return [
              task.id, task.kind.rawValue, task.status.rawValue, task.nodeID ?? "-", String(task.attempts),
              task.executionTime.map { String(format: "%.2f", $0) } ?? "-", String(what.prefix(40)),
            ]
          }))
    }
  }
}

/// `easyremote task ID`
struct TaskCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "task", abstract: "Show one task and its output.")

  @OptionGroup var gateway: GatewayOptions
  @Argument(help: "The task id.") var id: String
  @Flag(help: "JSON for scripts.") var json = false

  func run() async throws {
    try await gateway.withClient { client in
      let task = try await client.task(id)
      emit(json ? jsonText(task) : jsonText(task, pretty: true))
    }
  }
}

/// `easyremote cancel ID`
struct CancelCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cancel", abstract: "Cancel a task (a running one is killed on its node).")

  @OptionGroup var gateway: GatewayOptions
  @Argument(help: "The task id.") var id: String

  func run() async throws {
    try await gateway.withClient { client in
      let task = try await client.cancelTask(id)
      emit("\(task.id): \(task.status.rawValue)")
    }
  }
}
