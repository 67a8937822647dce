import TestSupport
import Foundation
import Logging
import NodeComm
import Synchronization
import Testing

@Suite("Shipped interceptors")
struct ShippedInterceptorTests {
  @Test("the logging interceptor logs method, peer, sizes and outcome, never the payload")
  func logging() async throws {
    let lines = Recorder<String>()
    let logger = Logger(label: "test.calls") { _ in RecordingLogHandler(lines: lines) }
    let transport = MemoryTransport()
    try await withNode(id: "server", transport: transport) { server in
      server.register("shout") { (text: String, _) in text.uppercased() }
      server.addInterceptor(LoggingInterceptor(logger: logger, level: .info), paths: .inbound)
      try await withNode(id: "client", transport: transport) { client in
        try await client.connect(to: "server", at: server.listeningAddress!)
        let loud: String = try await client.call("server", "shout", "top secret words")
        #expect(loud == "TOP SECRET WORDS")
        _ = try? await client.call("server", "missing", payload: .empty)
      }
    }
    let all = lines.all
    #expect(all.count == 2)
    #expect(all.first?.contains("call ok") == true)
    #expect(all.first?.contains("method=shout") == true)
    #expect(all.first?.contains("peer=client") == true)
    #expect(all.first?.contains("bytes=18") == true)
    #expect(all.last?.contains("call failed") == true)
    #expect(all.last?.contains("method_not_found") == true)
    #expect(!all.joined().contains("secret"))
  }
}

/// A log handler that keeps each message with its metadata as one line.
struct RecordingLogHandler: LogHandler {
  let lines: Recorder<String>
  var metadata: Logger.Metadata = [:]
  var logLevel: Logger.Level = .trace

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let merged = metadata.merging(event.metadata ?? [:]) { $1 }
    let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    lines.append("\(event.message) \(fields)")
  }
}

/// Sends a wrong token on every outbound call, or the right one (`s3cret`) once `count` is
/// set below zero: a guesser's client.
final class GuessingInterceptor: CallInterceptor {
  let count = Mutex(0)

  func intercept(_ call: InterceptedCall, next: Next) async throws -> Payload {
    var call = call
    let guess = count.withLock { count -> String in
      defer { count += 1 }
      return count < 0 ? "s3cret" : "guess-\(count)"
    }
    call.metadata[TokenAuthInterceptor.metadataKey] = "Bearer \(guess)"
    return try await next(call)
  }
}
