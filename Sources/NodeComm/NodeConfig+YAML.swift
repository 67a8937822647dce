public import Foundation
import Yams

extension NodeConfig {
  /// Loads a configuration from YAML text; absent keys keep their defaults.
  ///
  /// Two layouts are read: ours (see ``NodeConfig``) and the origin node layer's (seed 001:
  /// `transport.grpc.{host, port, max_message_length, tls: {enabled, cert_file, key_file,
  /// ca_file, mutual_tls}}`, `transport.memory.*`, `serialization.*`, `interceptors.*`,
  /// `heartbeat.*`). Nothing is ignored: a key that is not known is an error naming it, and so
  /// is a known key whose setting cannot be honoured yet — a configuration never fails open
  /// (TLS asked for and not set up, a port not used). Relative TLS file paths are resolved
  /// against `baseDirectory`.
  ///
  /// - Parameter serializers: the serializer names the file may use: the built-in ones, and
  ///   those the program registers itself before it makes its first call.
  /// - Throws: ``NodeError`` `invalidState` naming the key (and `source`, the file).
  public static func load(
    yaml: String, baseDirectory: URL? = nil, source: String? = nil,
    serializers: Set<String> = SerializerRegistry.builtInNames
  ) throws -> NodeConfig {
    let reader = ConfigReader(source: source, baseDirectory: baseDirectory, serializers: serializers)
    let root: Yams.Node?
    do {
      root = try Yams.compose(yaml: yaml)
    } catch {
      throw reader.error("not YAML: \(error)")
    }
    return try reader.read(root)
  }

  /// Loads a configuration from a YAML file; errors name the file.
  public static func load(file path: String, serializers: Set<String> = SerializerRegistry.builtInNames) throws -> NodeConfig {
    let url = URL(fileURLWithPath: path)
    let text: String
    do { text = try String(contentsOf: url, encoding: .utf8) } catch {
      throw NodeError(code: .invalidState, message: "invalid configuration: cannot read config file '\(path)': \(error.localizedDescription)")
    }
    return try load(yaml: text, baseDirectory: url.deletingLastPathComponent(), source: path, serializers: serializers)
  }
}

/// Walks the YAML tree, key by known key.
private struct ConfigReader {
  let source: String?
  let baseDirectory: URL?
  /// The serializer names a setting may use.
  let serializers: Set<String>

  func error(_ message: String) -> NodeError {
    NodeError(code: .invalidState, message: "invalid configuration\(source.map { " in \($0)" } ?? ""): \(message)")
  }

  // MARK: The layouts

  func read(_ root: Yams.Node?) throws -> NodeConfig {
    var config = NodeConfig.defaults
    guard let root, !(root.scalar?.string.isEmpty ?? false) else { return config }
    let top = try mapping(
      root, "",
      known: [
        "node_id", "debug", "default_timeout", "shutdown_grace_period", "transport", "heartbeat", "serialization",
        "limits", "auth", "interceptors", "listen", "advertised_address", "http", "max_workers", "tasks",
      ])
    if let value = top["max_workers"] { config.maxWorkers = try positive(value, "max_workers") }
    if let value = top["node_id"] { config.nodeID = try string(value, "node_id") }
    if let value = top["debug"] { config.debug = try bool(value, "debug") }
    if let value = top["default_timeout"] { config.defaultTimeout = try seconds(value, "default_timeout") }
    if let value = top["shutdown_grace_period"] {
      config.shutdownGracePeriod = try seconds(value, "shutdown_grace_period")
    }
    if let value = top["listen"] { config.transport.listen = try bool(value, "listen") }
    if let value = top["advertised_address"] {
      throw error("'advertised_address' (\(try string(value, "advertised_address"))) is not supported: nodes dial out to the gateway, which needs no advertised address")
    }
    if let transport = top["transport"] { try readTransport(transport, into: &config) }
    if let heartbeat = top["heartbeat"] {
      let keys = try mapping(heartbeat, "heartbeat", known: ["enabled", "interval", "timeout"])
      if let value = keys["enabled"] { config.heartbeat.enabled = try bool(value, "heartbeat.enabled") }
      if let value = keys["interval"] { config.heartbeat.interval = try seconds(value, "heartbeat.interval") }
      if let value = keys["timeout"] { config.heartbeat.timeout = try seconds(value, "heartbeat.timeout") }
    }
    if let serialization = top["serialization"] {
      let keys = try mapping(serialization, "serialization", known: ["default", "methods", "compression"])
      if let compression = keys["compression"] {
        let path = "serialization.compression"
        let fields = try mapping(compression, path, known: ["enabled", "min_size", "methods", "serializers"])
        if let value = fields["enabled"] { config.compression.enabled = try bool(value, "\(path).enabled") }
        if let value = fields["min_size"] { config.compression.minimumSize = try count(value, "\(path).min_size") }
        if let value = fields["methods"] { config.compression.methods.formUnion(try strings(value, "\(path).methods")) }
        if let value = fields["serializers"] {
          let names = try strings(value, "\(path).serializers")
          if let unknown = names.subtracting(serializers).sorted().first {
            throw error("'\(path).serializers': no serializer named '\(unknown)' (known: \(serializers.sorted().joined(separator: ", ")))")
          }
          config.compression.serializers.formUnion(names)
        }
      }
      if let value = keys["default"] { config.serialization.defaultSerializer = try serializer(value, "serialization.default") }
      if let methods = keys["methods"] {
        for (method, setting) in try mapping(methods, "serialization.methods", known: nil) {
          let path = "serialization.methods.\(method)"
          let fields = try mapping(setting, path, known: ["serializer", "compress"])
          if let value = fields["serializer"] {
            config.serialization.perMethod[method] = try serializer(value, "\(path).serializer")
          }
          if let value = fields["compress"], try bool(value, "\(path).compress") {
            config.compression.methods.insert(method)
          }
        }
      }
    }
    if let limits = top["limits"] {
      let keys = try mapping(
        limits, "limits", known: ["max_payload_size", "chunk_size", "tune_allocator", "auth_failures_per_minute"])
      if let value = keys["auth_failures_per_minute"] {
        config.limits.authFailuresPerMinute = try positive(value, "limits.auth_failures_per_minute")
      }
      if let value = keys["max_payload_size"] { config.limits.maxPayloadSize = try positive(value, "limits.max_payload_size") }
      if let value = keys["chunk_size"] { config.limits.chunkSize = try positive(value, "limits.chunk_size") }
      if let value = keys["tune_allocator"] { config.limits.tuneAllocator = try bool(value, "limits.tune_allocator") }
    }
    if let auth = top["auth"] {
      let keys = try mapping(auth, "auth", known: ["token"])
      if let value = keys["token"] { config.authToken = try string(value, "auth.token") }
    }
    if let interceptors = top["interceptors"] { try readInterceptors(interceptors, into: &config) }
    if let tasks = top["tasks"] {
      let keys = try mapping(tasks, "tasks", known: ["db", "lease_seconds"])
      if let value = keys["db"] {
        let text = try string(value, "tasks.db")
        // A URL as it is; a file relative to this file's folder.
        config.tasks.database =
          text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
          ? text : URL(fileURLWithPath: text, relativeTo: baseDirectory).path
      }
      if let value = keys["lease_seconds"] {
        let seconds = try number(value, "tasks.lease_seconds")
        guard seconds >= 1, seconds <= 3600 else { throw error("'tasks.lease_seconds' is 1 to 3600, got \(seconds)") }
        config.tasks.leaseSeconds = seconds
      }
    }
    if let http = top["http"] {
      let keys = try mapping(http, "http", known: ["enabled", "host", "port", "tls"])
      if let value = keys["enabled"] { config.http.enabled = try bool(value, "http.enabled") }
      if let value = keys["host"] { config.http.host = try string(value, "http.host") }
      if let value = keys["port"] { config.http.port = try port(value, "http.port") }
      if let tls = keys["tls"] {
        let fields = try mapping(tls, "http.tls", known: ["cert_file", "key_file"])
        config.http.certificateFile = try path(fields["cert_file"], "http.tls.cert_file")
        config.http.keyFile = try path(fields["key_file"], "http.tls.key_file")
        if (config.http.certificateFile == nil) != (config.http.keyFile == nil) {
          throw error("'http.tls' needs both cert_file and key_file")
        }
      }
    }
    return config
  }

  func readTransport(_ node: Yams.Node, into config: inout NodeConfig) throws {
    let keys = try mapping(node, "transport", known: ["mode", "listen", "host", "port", "tls", "grpc", "memory"])
    if let value = keys["mode"] {
      let text = try string(value, "transport.mode")
      guard let mode = TransportConfig.Mode(rawValue: text) else {
        throw error("'transport.mode' must be memory or grpc, not '\(text)'")
      }
      config.transport.mode = mode
    }
    if let value = keys["listen"] { config.transport.listen = try bool(value, "transport.listen") }
    if let value = keys["host"] { config.transport.host = try string(value, "transport.host") }
    if let value = keys["port"] { config.transport.port = try port(value, "transport.port") }
    if let tls = keys["tls"] {
      let fields = try mapping(tls, "transport.tls", known: ["cert", "key", "ca", "require_client_cert", "verify_hostname"])
      config.transport.tls = TLSConfig(
        certificatePEM: try file(fields["cert"], "transport.tls.cert"),
        privateKeyPEM: try file(fields["key"], "transport.tls.key"),
        trustedCAPEM: try file(fields["ca"], "transport.tls.ca"),
        requireClientCertificate: try fields["require_client_cert"].map { try bool($0, "transport.tls.require_client_cert") } ?? false,
        verifyHostname: try fields["verify_hostname"].map { try bool($0, "transport.tls.verify_hostname") } ?? false)
    }
    // The origin's layout: transport.grpc.*
    if let grpc = keys["grpc"] {
      let fields = try mapping(
        grpc, "transport.grpc",
        known: ["host", "port", "max_workers", "max_message_length", "tls", "heartbeat", "dual_thread"])
      if let value = fields["host"] { config.transport.host = try string(value, "transport.grpc.host") }
      if let value = fields["port"] { config.transport.port = try port(value, "transport.grpc.port") }
      if let value = fields["max_message_length"] {
        config.limits.maxPayloadSize = try positive(value, "transport.grpc.max_message_length")
      }
      if let value = fields["max_workers"] { config.maxWorkers = try positive(value, "transport.grpc.max_workers") }
      if fields["heartbeat"] != nil {
        throw error("'transport.grpc.heartbeat' is not supported: set the top-level 'heartbeat' instead")
      }
      if let value = fields["dual_thread"], try bool(value, "transport.grpc.dual_thread") {
        throw error("'transport.grpc.dual_thread: true' is not supported (links are not tied to threads)")
      }
      if let tls = fields["tls"] {
        let path = "transport.grpc.tls"
        let tlsFields = try mapping(tls, path, known: ["enabled", "cert_file", "key_file", "ca_file", "mutual_tls"])
        let enabled = try tlsFields["enabled"].map { try bool($0, "\(path).enabled") } ?? false
        if enabled {
          let mutual = try tlsFields["mutual_tls"].map { try bool($0, "\(path).mutual_tls") } ?? false
          let certificate = try file(tlsFields["cert_file"], "\(path).cert_file")
          let key = try file(tlsFields["key_file"], "\(path).key_file")
          let ca = try file(tlsFields["ca_file"], "\(path).ca_file")
          if (certificate == nil) != (key == nil) {
            throw error("'\(path)' needs both cert_file and key_file, or neither (a client trusting ca_file)")
          }
          if certificate == nil && ca == nil {
            throw error("'\(path).enabled: true' needs cert_file and key_file (a server) or ca_file (a client)")
          }
          if mutual && (ca == nil || certificate == nil) {
            throw error("'\(path).mutual_tls: true' needs cert_file, key_file and ca_file")
          }
          config.transport.tls = TLSConfig(
            certificatePEM: certificate, privateKeyPEM: key, trustedCAPEM: ca, requireClientCertificate: mutual,
            verifyHostname: false)
        }
      }
    }
    if let memory = keys["memory"] {
      let fields = try mapping(memory, "transport.memory", known: ["zero_copy", "simulate_latency", "latency_ms"])
      // Zero-copy is what the memory transport does anyway; simulated latency is not built.
      if let value = fields["zero_copy"] { _ = try bool(value, "transport.memory.zero_copy") }
      let simulate = try fields["simulate_latency"].map { try bool($0, "transport.memory.simulate_latency") } ?? false
      let latency = try fields["latency_ms"].map { try number($0, "transport.memory.latency_ms") } ?? 0
      if simulate && latency > 0 {
        throw error("'transport.memory.simulate_latency' is not supported yet")
      }
    }
  }

  func readInterceptors(_ node: Yams.Node, into config: inout NodeConfig) throws {
    let keys = try mapping(
      node, "interceptors", known: ["logging", "metrics", "auth", "auth_config", "retry", "custom"])
    if let value = keys["logging"], try bool(value, "interceptors.logging") {
      config.logCalls = true
    }
    if let value = keys["metrics"] { config.collectMetrics = try bool(value, "interceptors.metrics") }
    if keys["custom"] != nil {
      throw error("'interceptors.custom' is not supported: add interceptors in code (`node.addInterceptor`)")
    }
    let auth = try keys["auth"].map { try bool($0, "interceptors.auth") } ?? false
    if let authConfig = keys["auth_config"] {
      let fields = try mapping(authConfig, "interceptors.auth_config", known: ["mode", "token"])
      let mode = try fields["mode"].map { try string($0, "interceptors.auth_config.mode") } ?? "token"
      guard mode == "token" else {
        throw error("'interceptors.auth_config.mode' must be token, not '\(mode)'")
      }
      if auth, let token = fields["token"] { config.authToken = try string(token, "interceptors.auth_config.token") }
    }
    if auth && config.authToken == nil {
      throw error("'interceptors.auth: true' needs 'interceptors.auth_config.token'")
    }
    if let retry = keys["retry"] {
      let path = "interceptors.retry"
      let fields = try mapping(
        retry, path, known: ["enabled", "max_retries", "backoff", "max_backoff", "multiplier", "jitter", "idempotent_methods"])
      let enabled = try fields["enabled"].map { try bool($0, "\(path).enabled") } ?? true
      var policy = RetryPolicy()
      if let value = fields["max_retries"] { policy.maxAttempts = try count(value, "\(path).max_retries") + 1 }
      if let value = fields["backoff"] { policy.initialBackoff = try seconds(value, "\(path).backoff", allowZero: true) }
      if let value = fields["max_backoff"] { policy.maxBackoff = try seconds(value, "\(path).max_backoff") }
      if let value = fields["multiplier"] {
        let multiplier = try number(value, "\(path).multiplier")
        guard multiplier >= 1 else { throw error("'\(path).multiplier' must be at least 1") }
        policy.multiplier = multiplier
      }
      if let value = fields["jitter"] {
        let jitter = try number(value, "\(path).jitter")
        guard (0...1).contains(jitter) else { throw error("'\(path).jitter' must be between 0 and 1") }
        policy.jitter = jitter
      }
      if let value = fields["idempotent_methods"] { policy.idempotentMethods = try strings(value, "\(path).idempotent_methods") }
      policy.maxBackoff = max(policy.maxBackoff, policy.initialBackoff)
      config.retry = enabled ? policy : nil
    }
  }

  // MARK: Values

  /// The entries of a mapping; with `known`, a key not in it is an error naming its path.
  func mapping(_ node: Yams.Node, _ path: String, known: Set<String>?) throws -> [String: Yams.Node] {
    guard let mapping = node.mapping else {
      throw error("'\(path.isEmpty ? "the file" : path)' must be a mapping of keys to values")
    }
    var entries: [String: Yams.Node] = [:]
    for (key, value) in mapping {
      guard let name = key.string else { throw error("a key under '\(path)' is not text") }
      let full = path.isEmpty ? name : "\(path).\(name)"
      if let known, !known.contains(name) {
        throw error("unknown key '\(full)' (known here: \(known.sorted().joined(separator: ", ")))")
      }
      entries[name] = value
    }
    return entries
  }

  func string(_ node: Yams.Node, _ path: String) throws -> String {
    guard let scalar = node.scalar else { throw error("'\(path)' must be text") }
    return scalar.string
  }

  /// A serializer's name, one the node will have.
  func serializer(_ node: Yams.Node, _ path: String) throws -> String {
    let name = try string(node, path)
    guard serializers.contains(name) else {
      throw error("'\(path)': no serializer named '\(name)' (known: \(serializers.sorted().joined(separator: ", ")))")
    }
    return name
  }

  func bool(_ node: Yams.Node, _ path: String) throws -> Bool {
    guard let value = node.bool else { throw error("'\(path)' must be true or false") }
    return value
  }

  func number(_ node: Yams.Node, _ path: String) throws -> Double {
    guard let value = node.float ?? node.int.map(Double.init) else { throw error("'\(path)' must be a number") }
    return value
  }

  /// A whole number from 1 to `most` (by default 2^40: past any real size or count, and far
  /// enough from `Int.max` that sums and products with it cannot overflow).
  func positive(_ node: Yams.Node, _ path: String, most: Int = 1 << 40) throws -> Int {
    guard let value = node.int, value > 0, value <= most else {
      throw error("'\(path)' must be a whole number from 1 to \(most)")
    }
    return value
  }

  func port(_ node: Yams.Node, _ path: String) throws -> Int {
    guard let value = node.int, (0...65535).contains(value) else { throw error("'\(path)' must be a port (0 to 65535)") }
    return value
  }

  func seconds(_ node: Yams.Node, _ path: String, allowZero: Bool = false) throws -> Duration {
    let value = try number(node, path)
    guard value.isFinite, value > 0 || (allowZero && value == 0), value < 1e9 else {
      throw error("'\(path)' must be a positive number of seconds")
    }
    return .milliseconds(Int64(value * 1000))
  }

  func count(_ node: Yams.Node, _ path: String) throws -> Int {
    guard let value = node.int, value >= 0 else { throw error("'\(path)' must be a whole number, 0 or more") }
    return value
  }

  func strings(_ node: Yams.Node, _ path: String) throws -> Set<String> {
    guard let sequence = node.sequence else { throw error("'\(path)' must be a list of names") }
    return Set(try sequence.map { try string($0, path) })
  }

  /// The path of a file a key names, resolved against the config's folder; the file must be
  /// readable (so a wrong path stops startup, not the first request).
  func path(_ node: Yams.Node?, _ key: String) throws -> String? {
    guard let node else { return nil }
    let url = URL(fileURLWithPath: try string(node, key), relativeTo: baseDirectory)
    guard FileManager.default.isReadableFile(atPath: url.path) else {
      throw error("cannot read '\(url.path)' ('\(key)')")
    }
    return url.path
  }

  /// The text of the file a key names (relative to the config's folder), or nil without one.
  func file(_ node: Yams.Node?, _ path: String) throws -> String? {
    guard let node else { return nil }
    let name = try string(node, path)
    let url = URL(fileURLWithPath: name, relativeTo: baseDirectory)
    do {
      return try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw self.error("cannot read TLS file '\(url.path)' ('\(path)'): \(error.localizedDescription)")
    }
  }
}
