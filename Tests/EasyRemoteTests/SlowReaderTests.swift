import TestSupport
import EasyRemote
import ExampleFunctions
import Foundation
import Testing

/// Backpressure across real processes: a client reading slowly holds back the gateway and
/// the compute node, so neither buffers the stream.
@Suite("Slow reader across processes", .timeLimit(.minutes(5)))
struct SlowReaderTests {
  @Test("1,000,000 small items to a reader that pauses: the gateway's and the node's memory stay flat")
  func millionItems() async throws {
    let (gateway, address) = try await BackgroundProcess.gateway()
    defer { gateway.stop() }
    let node = try await BackgroundProcess.start(
      ["node", "--gateway", address, "--id", "producer"], readyPrefix: "node producer joined")
    defer { node.stop() }
    let client = Client(serverAddress: address, timeout: .seconds(600))
    let count = 1_000_000
    var received = 0
    var outOfOrder = 0
    var baseline: (gateway: Double, node: Double)?
    var peak = (gateway: 0.0, node: 0.0)
    for try await item in try await client.stream(
      "sync_number_stream", 0, count, 0.0, as: SeedExamples.NumberItem.self)
    {
      if item.index != received || item.value != received { outOfOrder += 1 }
      received += 1
      guard received % 1000 == 0 else { continue }
      try await Task.sleep(for: .milliseconds(1))  // the slow part of the reader
      guard received % 50_000 == 0 else { continue }
      let now = (gateway: residentMegabytes(of: gateway) ?? 0, node: residentMegabytes(of: node) ?? 0)
      // From 100,000 items on: by then both processes hold what they keep for reuse.
      if received == 100_000 { baseline = now }
      if baseline != nil { peak = (max(peak.gateway, now.gateway), max(peak.node, now.node)) }
    }
    await client.close()
    #expect(received == count)
    #expect(outOfOrder == 0)
    let start = try #require(baseline)
    #expect(start.gateway > 0 && start.node > 0, "RSS of the processes could not be read")
    // Buffering the stream would take ~100 bytes an item: 90 MB over the 900,000 items.
    #expect(peak.gateway - start.gateway < 24, "gateway grew from \(start.gateway) to \(peak.gateway) MB")
    #expect(peak.node - start.node < 24, "node grew from \(start.node) to \(peak.node) MB")
  }
}

/// The resident memory of a child process, from /proc.
func residentMegabytes(of child: BackgroundProcess) -> Double? {
  let path = "/proc/\(child.pid)/status"
  guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
  for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
    return line.split(separator: " ").compactMap { Double($0) }.first.map { $0 / 1024 }
  }
  return nil
}
