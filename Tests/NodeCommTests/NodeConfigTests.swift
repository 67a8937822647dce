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
        methods: { upload: { serializer: binary, compress: true } }
        compression: { enabled: true, min_size: 2048, serializers: [raw] }
      interceptors:
        metrics: true
        retry: { max_retries: 2, backoff: 0.5, max_backoff: 10, multiplier: 3, jitter: 0.1, idempotent_methods: [get] }
      max_workers: 12
      http: { port: 8443, host: 0.0.0.0, tls: { cert_file: node.pem, key_file: node.key } }
      tasks: { db: "postgres://easyremote@db.local/tasks", lease_seconds: 20 }
      limits:
        max_payload_size: 1048576
        tune_allocator: false
      auth:
        token: s3cret
      """.write(to: file, atomically: true, encoding: .utf8)
    let config = try NodeConfig.load(file: file.path, otherSections: ["http", "tasks"])
    #expect(config.compression == CompressionConfig(enabled: true, methods: ["upload"], serializers: ["raw"], minimumSize: 2048))
    #expect(
      config.retry
        == RetryPolicy(
          maxAttempts: 3, initialBackoff: .milliseconds(500), maxBackoff: .seconds(10), multiplier: 3, jitter: 0.1,
          idempotentMethods: ["get"]))
    #expect(config.collectMetrics && config.maxWorkers == 12)
    // The gateway's sections are another layer's: refused unless the caller says so.
    do {
      _ = try NodeConfig.load(file: file.path)
      Issue.record("the gateway's sections were taken by the node layer")
    } catch let error as NodeError {
      #expect(error.message.contains("unknown key 'http'"), "\(error.message)")
    }
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
    let list = try expectConfigError("- a\n- b\n")
    #expect(list.message.contains("the file must be a mapping of keys to values"), "\(list.message)")
    let badMode = try expectConfigError("transport:\n  mode: carrier-pigeon\n")
    #expect(badMode.message.contains("invalid configuration"))
    let missingFile = try expectConfigError("transport:\n  tls:\n    cert: /nonexistent/cert.pem\n")
    #expect(missingFile.message.contains("/nonexistent/cert.pem"))
    // Counts and sizes far past any real one (sums with them would overflow) are refused too.
    for (yaml, key) in [
      ("max_workers: 9223372036854775807\n", "max_workers"), ("limits:\n  chunk_size: 9223372036854775807\n", "limits.chunk_size"),
      ("limits:\n  max_payload_size: 2000000000000\n", "limits.max_payload_size"),
    ] {
      let error = try expectConfigError(yaml)
      #expect(error.message.contains(key) && error.message.contains("from 1 to"), "\(yaml): \(error.message)")
    }
    // A serializer the node will not have is refused at load, not at every call after it.
    for (yaml, key) in [
      ("serialization:\n  default: pickle\n", "serialization.default"),
      ("serialization:\n  methods:\n    upload: {serializer: cbor}\n", "serialization.methods.upload.serializer"),
      ("serialization:\n  compression: {serializers: [json, msgpack]}\n", "serialization.compression.serializers"),
    ] {
      let error = try expectConfigError(yaml)
      #expect(error.message.contains(key) && error.message.contains("no serializer named") && error.message.contains("binary, json, raw"), "\(error.message)")
    }
    // One the program registers itself may be named when it says so.
    let custom = try NodeConfig.load(yaml: "serialization:\n  default: cbor\n", serializers: SerializerRegistry.builtInNames.union(["cbor"]))
    #expect(custom.serialization.defaultSerializer == "cbor")
  }

  @Test("the origin's layout (seed 001) is read: grpc host/port/TLS, message size, heartbeat, per-method serializer, auth")
  func originLayout() throws {
    let certificates = try TestCertificates.make()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    try certificates.server.certificatePEM.write(to: folder.appendingPathComponent("server.pem"), atomically: true, encoding: .utf8)
    try certificates.server.privateKeyPEM.write(to: folder.appendingPathComponent("server.key"), atomically: true, encoding: .utf8)
    try certificates.caPEM.write(to: folder.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
    let file = folder.appendingPathComponent("gateway.yaml")
    try """
      node_id: gateway
      debug: false
      default_timeout: 30.0
      transport:
        mode: grpc
        grpc:
          host: 127.0.0.1
          port: 50051
          max_workers: 10
          max_message_length: 104857600
          tls: {enabled: true, cert_file: server.pem, key_file: server.key, ca_file: ca.pem, mutual_tls: true}
        memory: {zero_copy: true, simulate_latency: false, latency_ms: 0.0}
      serialization:
        default: json
        methods:
          upload: {serializer: binary, compress: true}
      interceptors:
        logging: true
        metrics: true
        auth: true
        auth_config: {mode: token, token: s3cret}
        retry: {enabled: true, max_retries: 3, backoff: 1.0}
      heartbeat: {enabled: true, interval: 30.0, timeout: 90.0}
      """.write(to: file, atomically: true, encoding: .utf8)
    let config = try NodeConfig.load(file: file.path)
    #expect(config.nodeID == "gateway")
    #expect(config.transport.mode == .grpc && config.transport.host == "127.0.0.1" && config.transport.port == 50051)
    #expect(config.limits.maxPayloadSize == 104_857_600)
    #expect(config.transport.tls?.certificatePEM == certificates.server.certificatePEM)
    #expect(config.transport.tls?.trustedCAPEM == certificates.caPEM)
    #expect(config.transport.tls?.requireClientCertificate == true)
    #expect(config.serialization.perMethod == ["upload": "binary"])
    #expect(config.authToken == "s3cret" && config.logCalls && config.collectMetrics)
    #expect(config.maxWorkers == 10)
    #expect(config.compression.methods == ["upload"] && config.compression.enabled)
    #expect(config.retry?.maxAttempts == 4 && config.retry?.initialBackoff == .seconds(1))
    #expect(config.heartbeat == HeartbeatConfig(enabled: true, interval: .seconds(30), timeout: .seconds(90)))
    let node = Node(config: config, transport: MemoryTransport())
    #expect(node.serializers.name(for: "upload", explicit: nil) == "binary")

    // One letter wrong: refused, naming the key and the file.
    let typo = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "port: 50051", with: "prot: 50051")
    try typo.write(to: file, atomically: true, encoding: .utf8)
    do {
      _ = try NodeConfig.load(file: file.path)
      Issue.record("a misspelt key was accepted")
    } catch let error as NodeError {
      #expect(error.message.contains("transport.grpc.prot") && error.message.contains(file.path), "\(error.message)")
    }
  }

  @Test("nothing is ignored: unknown keys, and known ones that cannot be honoured yet, are refused by name")
  func nothingIgnored() throws {
    for (yaml, key) in [
      ("trasport:\n  port: 1\n", "trasport"),
      ("transport:\n  grpc:\n    prot: 1\n", "transport.grpc.prot"),
      ("heartbeat:\n  intervall: 3\n", "heartbeat.intervall"),
      ("transport:\n  grpc:\n    tls: {enabled: true, cert_file: a.pem}\n", "transport.grpc.tls"),
      ("transport:\n  grpc:\n    max_workers: 0\n", "transport.grpc.max_workers"),
      ("serialization:\n  methods:\n    upload: {serializer: binary, compres: true}\n", "serialization.methods.upload.compres"),
      ("serialization:\n  compression: {min_size: -1}\n", "serialization.compression.min_size"),
      ("interceptors:\n  metrics: maybe\n", "interceptors.metrics"),
      ("interceptors:\n  retry: {enabled: true, max_retries: -1}\n", "interceptors.retry.max_retries"),
      ("interceptors:\n  retry: {jitter: 2}\n", "interceptors.retry.jitter"),
      ("interceptors:\n  retry: {idempotent_methods: get}\n", "interceptors.retry.idempotent_methods"),
      ("interceptors:\n  auth: true\n", "interceptors.auth"),
      ("interceptors:\n  custom: [x]\n", "interceptors.custom"),
      ("advertised_address: 10.0.0.1:50051\n", "advertised_address"),
      ("transport:\n  memory: {simulate_latency: true, latency_ms: 5}\n", "transport.memory.simulate_latency"),
    ] {
      let error = try expectConfigError(yaml)
      #expect(error.message.contains(key), "\(key): \(error.message)")
    }
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
