public import Foundation
import Sandbox
import Synchronization

/// A program a test starts and waits for until it prints its ready line: spawned from the
/// Sandbox's spawner thread under `setpriv --pdeathsig KILL`, so it dies with the test process,
/// with its stderr in a file of its own, so one left behind never holds the output `swift
/// test` reads.
public final class ChildProgram: Sendable {
  public struct Failure: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
  }

  public let pid: Int32
  /// What it printed up to its ready line (the ready line last).
  public let lines: [String]
  /// Where its stderr went.
  public let stderrPath: String
  private let exit: ChildExit
  /// Its wait status, once collected.
  private let status = Mutex<Int32?>(nil)
  /// The write end of its stdin, held open while this object lives (or -1).
  private let input: Int32

  private init(pid: Int32, exit: ChildExit, lines: [String], stderrPath: String, input: Int32) {
    self.pid = pid
    self.exit = exit
    self.lines = lines
    self.stderrPath = stderrPath
    self.input = input
  }

  deinit {
    if input >= 0 { close(input) }
  }

  /// The line that said it was ready.
  public var readyLine: String { lines.last ?? "" }
  /// What it printed before its ready line.
  public var earlierLines: [String] { Array(lines.dropLast()) }

  /// A product of this package (`easyremote`), found beside the test bundle.
  public static func product(_ name: String = "easyremote") -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path), directory.path != "/" {
      directory = directory.deletingLastPathComponent()
    }
    return directory.appendingPathComponent(name)
  }

  /// Starts `command` (its first element a path) with exactly `environment`, and returns once
  /// a line of its output starts with `readyPrefix`.
  ///
  /// - Parameters:
  ///   - readyWithin: a program that has not said it is ready by then is killed (the limit
  ///     that keeps a hung program from holding the run).
  ///   - stderr: where its stderr goes; a new file in the temporary folder when nil.
  ///   - holdStdin: its stdin is a pipe held open as long as this object lives (for programs
  ///     that end when their stdin does); `/dev/null` otherwise.
  /// - Throws: ``Failure`` with what it printed, when it ended (or was killed) before.
  public static func launch(
    _ command: [String], environment: [String: String], readyPrefix: String, readyWithin: Duration = .seconds(60),
    stderr: URL? = nil, holdStdin: Bool = false
  ) async throws -> ChildProgram {
    let name = URL(fileURLWithPath: command.first ?? "program").lastPathComponent
    let stderrPath =
      stderr?.path ?? FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).stderr").path
    let errorFD = open(stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard errorFD >= 0 else { throw Failure(message: "cannot write \(stderrPath)") }
    defer { close(errorFD) }
    let output = try ProcessSpawner.pipe()
    let input = holdStdin ? try ProcessSpawner.pipe() : nil
    let pid: Int32
    do {
      pid = try await ProcessSpawner.shared.spawn(
        ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] + command, environment: environment, directory: nil,
        stdin: input?.read ?? -1, stdout: output.write, stderr: errorFD)
    } catch {
      close(output.read)
      close(output.write)
      if let input { close(input.read); close(input.write) }
      throw error
    }
    close(output.write)
    if let input { close(input.read) }
    let exit = ChildExit(pid: pid)
    // A program that never prints its ready line is killed, which ends the read below.
    let watchdog = Task {
      await limitPassed(readyWithin)
      if !Task.isCancelled, !exit.hasExited { kill(pid, SIGTERM) }
    }
    defer { watchdog.cancel() }
    let lines: [String] = await withCheckedContinuation { continuation in
      Thread.detachNewThread {
        var lines: [String] = []
        var line = [UInt8]()
        var byte: UInt8 = 0
        var resumed = false
        while read(output.read, &byte, 1) == 1 {
          if byte != UInt8(ascii: "\n") {
            line.append(byte)
            continue
          }
          lines.append(String(decoding: line, as: UTF8.self))
          line = []
          if lines.last!.hasPrefix(readyPrefix) {
            continuation.resume(returning: lines)
            resumed = true
            break
          }
        }
        if !resumed { continuation.resume(returning: lines) }
        // Keep draining so the program never blocks on a full pipe.
        while read(output.read, &byte, 1) == 1 {}
        close(output.read)
      }
    }
    guard let ready = lines.last, ready.hasPrefix(readyPrefix) else {
      if !exit.hasExited { kill(pid, SIGKILL) }
      await exit.exited()
      _ = exit.reap()
      if let input { close(input.write) }
      let said = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
      throw Failure(message: "\(name) ended without '\(readyPrefix)': \((lines + [said]).joined(separator: "\n"))")
    }
    return ChildProgram(pid: pid, exit: exit, lines: lines, stderrPath: stderrPath, input: input?.write ?? -1)
  }

  public var hasExited: Bool { exit.hasExited }

  /// Sends `signal` unless it has ended, without waiting.
  public func signal(_ signal: Int32) {
    if !exit.hasExited { kill(pid, signal) }
  }

  /// Waits until it has exited (and collects it).
  public func exited() async {
    await exit.exited()
    // A zombie by now: collecting it does not block.
    status.withLock { if $0 == nil { $0 = exit.reap() } }
  }

  /// Sends `signal` and waits until it has exited.
  public func end(_ signal: Int32 = SIGTERM) async {
    self.signal(signal)
    await exited()
  }

  /// Its exit code once ``exited()`` returned; `nil` if a signal ended it (or it runs still).
  public var exitCode: Int32? {
    guard let raw = status.withLock({ $0 }), raw & 0x7f == 0 else { return nil }
    return (raw >> 8) & 0xff
  }
}
