import TestSupport
import EasyRemote
import Foundation
import Logging
import NodeComm
import ServiceLifecycle
import Testing

/// One lifecycle: a part that fails reaches its `ServiceGroup`, and the process says why.
@Suite("Lifecycle", .timeLimit(.minutes(3)))
struct LifecycleTests {
  @Test("a gateway whose gRPC listener dies stops, and its service group ends with listener_failed")
  func listenerDiesInProcess() async throws {
    let server = Server(port: 0)
    try await server.start()
    let port = try #require(server.address?.split(separator: ":").last.flatMap { Int($0) })
    let group = ServiceGroup(services: [server], gracefulShutdownSignals: [], logger: Logger(label: "test.lifecycle"))
    let running = Task { try await group.run() }
    // The listening socket fails under the server (as when its network goes away).
    let socket = try #require(ListeningSocket.find(port: port, in: getpid()), "no listening socket on port \(port)")
    socket.fail()
    do {
      try await running.value
      Issue.record("the group ended without an error")
    } catch let error as NodeError {
      #expect(error.code == .listenerFailed, "\(error)")
    } catch {
      #expect("\(error)".contains("listener_failed"), "\(error)")
    }
    #expect(!server.isRunning)
  }

  @Test("an easyremote gateway whose listener dies exits non-zero and says why")
  func listenerDiesInTheGatewayProcess() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    let port = try #require(address.split(separator: ":").last.flatMap { Int($0) })
    let socket = try #require(ListeningSocket.find(port: port, in: gateway.pid), "no listening socket on port \(port)")
    socket.fail()
    await gateway.exited()
    #expect(gateway.exitCode.map { $0 != 0 } == true, "exit code \(String(describing: gateway.exitCode))")
    let said = (try? String(contentsOfFile: gateway.stderrPath, encoding: .utf8)) ?? ""
    #expect(said.contains("listener"), "\(said)")
  }
}

extension LifecycleTests {
  @Test("an easyremote gateway whose HTTP API listener dies exits non-zero and says why")
  func httpListenerDies() async throws {
    let db = FileManager.default.temporaryDirectory.appendingPathComponent("http-\(UUID().uuidString).sqlite").path
    let gateway = try await BackgroundProcess.start(
      ["gateway", "--port", "0", "--http-port", "0", "--db", db], readyPrefix: "gateway listening on ")
    defer { gateway.stop() }
    let http = try #require(gateway.lines.first { $0.hasPrefix("http api on ") }, "\(gateway.lines)")
    let port = try #require(http.split(separator: ":").last.flatMap { Int($0) }, "\(http)")
    let socket = try #require(ListeningSocket.find(port: port, in: gateway.pid), "no listening socket on port \(port)")
    socket.fail()
    await gateway.exited()
    #expect(gateway.exitCode.map { $0 != 0 } == true, "exit code \(String(describing: gateway.exitCode))")
    let said = (try? String(contentsOfFile: gateway.stderrPath, encoding: .utf8)) ?? ""
    #expect(said.contains("listener_failed") && said.contains("the HTTP API on"), "\(said)")
  }

  @Test("a client closes in bounded time when its gateway froze (SIGSTOP) after answering")
  func closeWhileTheGatewayIsFrozen() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { kill(gateway.pid, SIGCONT) }
    let client = Client(serverAddress: address, timeout: .seconds(10))
    #expect(try await client.listNodes().isEmpty)
    kill(gateway.pid, SIGSTOP)
    // (The test's time limit is the bound: the close cuts the stream after 2 s.)
    await client.close()
    kill(gateway.pid, SIGCONT)
    gateway.stop()
    await gateway.exited()
  }

  @Test("`easyremote call` against a gateway that froze (TCP accepted, nothing answers) fails with connection_failed, no hang")
  func commandAgainstAFrozenGateway() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { kill(gateway.pid, SIGCONT) }
    kill(gateway.pid, SIGSTOP)
    let run = try await runTool(["call", "sync_add", "1", "2", "--gateway", address, "--timeout", "3"])
    // The dial gives up after its connect timeout (10 s), and the close after 2 s.
    #expect(run.status == 2 && run.stderr.contains("connection_failed"), "\(run)")
    kill(gateway.pid, SIGCONT)
    gateway.stop()
    await gateway.exited()
  }
}

/// A process's listening TCP socket, borrowed (`pidfd_getfd`: the same socket, another
/// descriptor) so that a test can make it fail under its owner.
struct ListeningSocket {
  let fd: Int32

  /// `shutdown(2)` on the socket: its owner's `accept` fails from now on.
  func fail() {
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
  }

  /// The socket `pid` listens on at `port`, if any.
  static func find(port: Int, in pid: Int32) -> ListeningSocket? {
    let own = pid == getpid()
    let pidfd = own ? -1 : pidfd_open(pid, 0)
    guard own || pidfd >= 0 else { return nil }
    defer { if pidfd >= 0 { close(pidfd) } }
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.compactMap { Int32($0) } ?? []
    for target in descriptors.sorted() {
      let fd = own ? dup(target) : pidfd_getfd(pidfd, target, 0)
      guard fd >= 0 else { continue }
      if isListening(fd, port: port) { return ListeningSocket(fd: fd) }
      close(fd)
    }
    return nil
  }

  private static func isListening(_ fd: Int32, port: Int) -> Bool {
    var accepting: Int32 = 0
    var size = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) == 0, accepting == 1 else { return false }
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return named == 0 && address.sin_family == sa_family_t(AF_INET) && Int(UInt16(bigEndian: address.sin_port)) == port
  }
}

// glibc's wrappers (2.36+, <sys/pidfd.h>, which Swift's Glibc module does not bring).
@_silgen_name("pidfd_open") private func pidfd_open(_ pid: Int32, _ flags: UInt32) -> Int32
@_silgen_name("pidfd_getfd") private func pidfd_getfd(_ pidfd: Int32, _ targetfd: Int32, _ flags: UInt32) -> Int32
