import Foundation
import Sandbox
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A child process of the gateway (an `ssh` client), started by the spawner thread under
/// `setpriv --pdeathsig KILL`, so that it — and with it every SSH connection and agent it
/// carries — ends when the gateway does, SIGKILL included.
final class LocalProcess: Sendable {
  struct Output: Sendable {
    /// The exit code, or 128 + the signal that ended it.
    var status: Int32
    var stdout: Data
    var stderr: String
  }

  let pid: pid_t
  private let exit: ChildExit
  private let input: Mutex<Int32>
  private let status = Mutex<Int32?>(nil)
  private let stderr: OutputCollector
  private let stdoutCollector: OutputCollector?
  /// Its stdout line by line, when started with `lines: true`.
  let lines: AsyncStream<String>?

  private init(
    pid: pid_t, input: Int32, stderr: OutputCollector, stdout: OutputCollector?, lines: AsyncStream<String>?
  ) {
    self.pid = pid
    self.exit = ChildExit(pid: pid)
    self.input = Mutex(input)
    self.stderr = stderr
    self.stdoutCollector = stdout
    self.lines = lines
  }

  static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

  /// Starts `command`. `stdin`: `.none` is /dev/null, `.pipe` keeps a pipe to write to
  /// (``write(_:)``, ``closeInput()``), `.file(fd)` reads that descriptor (the caller closes it).
  static func start(
    _ command: [String], environment: [String: String], stdin: Input = .none, lines: Bool = false,
    outputLimit: Int = 16 << 20
  ) async throws(RemoteHostError) -> LocalProcess {
    let guarded = setpriv.map { [$0, "--pdeathsig", "KILL", "--"] + command } ?? command
    var opened: [Int32] = []
    func fail(_ what: String, _ code: Int32) -> RemoteHostError {
      for fd in opened { close(fd) }
      return RemoteHostError(code: .internalError, message: "\(what) \(command[0]): \(String(cString: strerror(code)))")
    }
    do {
      let out = try ProcessSpawner.pipe()
      let err = try ProcessSpawner.pipe()
      opened += [out.read, out.write, err.read, err.write]
      var childInput: Int32 = -1
      var ourInput: Int32 = -1
      switch stdin {
      case .none: break
      case .file(let fd): childInput = fd
      case .pipe:
        let pipe = try ProcessSpawner.pipe()
        opened += [pipe.read, pipe.write]
        childInput = pipe.read
        ourInput = pipe.write
      }
      let pid = try await ProcessSpawner.shared.spawn(
        guarded, environment: environment, directory: nil, stdin: childInput, stdout: out.write, stderr: err.write)
      close(out.write)
      close(err.write)
      if case .pipe = stdin { close(childInput) }
      let lineStream = lines ? LineReader.lines(of: out.read) : nil
      return LocalProcess(
        pid: pid, input: ourInput, stderr: OutputCollector(err.read, limit: 256 << 10),
        stdout: lines ? nil : OutputCollector(out.read, limit: outputLimit), lines: lineStream)
    } catch let error as ProcessSpawner.SpawnError {
      throw fail("could not start", error.errno)
    } catch {
      throw fail("could not start", EINVAL)
    }
  }

  enum Input: Sendable {
    case none
    case pipe
    case file(Int32)
  }

  var hasExited: Bool { exit.hasExited }

  /// Writes to its stdin pipe (blocking until the pipe takes it).
  func write(_ data: Data) -> Bool {
    input.withLock { fd in
      guard fd >= 0 else { return false }
      return data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
          let count = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
          if count < 0 && errno == EINTR { continue }
          if count <= 0 { return false }
          offset += count
        }
        return true
      }
    }
  }

  /// Closes its stdin: the end of input, which an agent takes as the order to stop.
  func closeInput() {
    input.withLock { fd in
      if fd >= 0 { close(fd) }
      fd = -1
    }
  }

  func signal(_ signal: Int32) {
    if !exit.hasExited { kill(pid, signal) }
  }

  /// Waits for it to end and gives its exit status.
  func wait() async -> Int32 {
    await exit.exited()
    return status.withLock { status in
      if let status { return status }
      let raw = exit.reap()
      let low = raw & 0x7f
      let value = low == 0 ? (raw >> 8) & 0xff : 128 + low
      status = value
      return value
    }
  }

  /// Waits at most `timeout` for it to end, then kills it.
  func wait(timeout: Duration) async -> (status: Int32, timedOut: Bool) {
    // Unstructured: it must fire while the wait below (not cancellable) goes on; cancelled
    // once the process ended.
    let killer = Task {
      try await Task.sleep(for: timeout)
      signal(SIGKILL)
    }
    let status = await wait()
    killer.cancel()
    let timedOut = await killer.result.map { true }.isSuccess
    return (status, timedOut)
  }

  /// Everything it wrote to stderr, once it has ended (kept up to 256 KiB).
  func errorText() async -> String {
    String(decoding: await stderr.result().0, as: UTF8.self)
  }

  /// Waits for it to end (killing it after `timeout`) and gives what it printed.
  func output(timeout: Duration) async -> (output: Output, timedOut: Bool) {
    let (status, timedOut) = await wait(timeout: timeout)
    closeInput()
    let stdout = await stdoutCollector?.result().0 ?? Data()
    return (Output(status: status, stdout: stdout, stderr: await errorText()), timedOut)
  }
}

extension Result {
  fileprivate var isSuccess: Bool {
    if case .success = self { return true }
    return false
  }
}

/// Splits what a pipe carries into lines, on a thread of its own.
enum LineReader {
  static func lines(of fd: Int32) -> AsyncStream<String> {
    let (stream, continuation) = AsyncStream.makeStream(of: String.self)
    Thread.detachNewThread {
      var pending = Data()
      var buffer = [UInt8](repeating: 0, count: 16_384)
      while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        pending.append(contentsOf: buffer[0..<count])
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
          continuation.yield(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
          pending.removeSubrange(pending.startIndex...newline)
        }
      }
      if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
      close(fd)
      continuation.finish()
    }
    return stream
  }
}
