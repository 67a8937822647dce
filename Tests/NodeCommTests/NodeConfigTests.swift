import Foundation
import NodeComm
import Testing

@Suite("Node configuration")
struct NodeConfigTests {
  @Test("defaults match the documented values")
  func defaults() {
    let config = NodeConfig.defaults
    #expect(config.defaultTimeout == .seconds(30))
    #expect(config.heartbeat == HeartbeatConfig(enabled: true, interval: .seconds(10), timeout: .seconds(30)))
    #expect(config.serialization.defaultSerializer == "json")
    #expect(config.transport.mode == .memory)
    #expect(!config.debug)
  }

  @Test("YAML maps onto the same structures")
  func yaml() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("er-config-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try "CERT".write(to: directory.appendingPathComponent("node.pem"), atomically: true, encoding: .utf8)
    try "KEY".write(to: directory.appendingPathComponent("node.key"), atomically: true, encoding: .utf8)
    let file = directory.appendingPathComponent("node.yaml")
    try """
      node_id: worker-7
      debug: true
      default_timeout: 2.5
      transport:
        mode: grpc
        host: 0.0.0.0
        port: 7801
        tls:
          cert: node.pem
          key: node.key
          require_client_cert: true
      heartbeat:
        enabled: true
        interval: 5
        timeout: 15
      serialization:
        default: binary
      limits:
        max_payload_size: 1048576
        tune_allocator: false
      auth:
        token: s3cret
      """.write(to: file, atomically: true, encoding: .utf8)
    let config = try NodeConfig.load(file: file.path)
    #expect(config.nodeID == "worker-7")
    #expect(config.debug)
    #expect(config.defaultTimeout == .milliseconds(2500))
    #expect(config.transport.mode == .grpc)
    #expect(config.transport.host == "0.0.0.0")
    #expect(config.transport.port == 7801)
    #expect(config.transport.tls?.certificatePEM == "CERT")
    #expect(config.transport.tls?.privateKeyPEM == "KEY")
    #expect(config.transport.tls?.requireClientCertificate == true)
    #expect(config.heartbeat.interval == .seconds(5))
    #expect(config.heartbeat.timeout == .seconds(15))
    #expect(config.serialization.defaultSerializer == "binary")
    #expect(config.limits.maxPayloadSize == 1 << 20)
    #expect(config.limits.chunkSize == LimitsConfig.defaults.chunkSize)
    #expect(!config.limits.tuneAllocator && LimitsConfig.defaults.tuneAllocator)
    #expect(config.authToken == "s3cret")
    let node = Node(config: config, transport: MemoryTransport())
    #expect(node.id == "worker-7")
    #expect(node.serializers.defaultName == "binary")
  }

  @Test("an empty YAML document gives the defaults")
  func emptyYAML() throws {
    #expect(try NodeConfig.load(yaml: "") == .defaults)
  }

  @Test("wrong types and values are refused with the key named")
  func badYAML() throws {
    let wrongType = try expectConfigError("heartbeat:\n  interval: soon\n")
    #expect(wrongType.message.contains("heartbeat.interval"))
    let negative = try expectConfigError("default_timeout: -1\n")
    #expect(negative.message.contains("default_timeout"))
    let badMode = try expectConfigError("transport:\n  mode: carrier-pigeon\n")
    #expect(badMode.message.contains("invalid configuration"))
    let missingFile = try expectConfigError("transport:\n  tls:\n    cert: /nonexistent/cert.pem\n")
    #expect(missingFile.message.contains("/nonexistent/cert.pem"))
  }

  private func expectConfigError(_ yaml: String) throws -> NodeError {
    do {
      _ = try NodeConfig.load(yaml: yaml)
    } catch let error as NodeError {
      #expect(error.code == .invalidState)
      return error
    }
    Issue.record("expected the configuration to be refused:\n\(yaml)")
    return NodeError(code: .invalidState, message: "")
  }
}
