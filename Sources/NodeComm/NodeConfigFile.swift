import Foundation

/// The node layer's part of a configuration file, as written (snake-case keys), decoded with
/// Yams' `Decodable` decoder: every section refuses keys it does not know, and every value is
/// checked as it is read (``ConfigContext/decode(_:yaml:)`` names the key path of what is
/// wrong). Two layouts are read: ours and the origin node layer's (seed 001: `transport.grpc`,
/// `transport.memory`, `interceptors`). ``apply(to:)`` puts it onto a ``NodeConfig``.
struct NodeConfigFile: Decodable {
  var maxWorkers: Int?
  var nodeID: String?
  var debug: Bool?
  var defaultTimeout: Duration?
  var shutdownGracePeriod: Duration?
  var listen: Bool?
  var transport: Transport?
  var heartbeat: Heartbeat?
  var serialization: Serialization?
  var limits: Limits?
  var auth: Auth?
  var interceptors: Interceptors?

  enum CodingKeys: String, CodingKey, CaseIterable {
    case maxWorkers = "max_workers", nodeID = "node_id", debug, defaultTimeout = "default_timeout"
    case shutdownGracePeriod = "shutdown_grace_period", listen, advertisedAddress = "advertised_address"
    case transport, heartbeat, serialization, limits, auth, interceptors
  }

  init(from decoder: any Decoder) throws {
    let c = try decoder.strictContainer(keyedBy: CodingKeys.self, alsoKnown: decoder.configContext.otherSections)
    maxWorkers = try c.positive(.maxWorkers)
    nodeID = try c.decodeIfPresent(String.self, forKey: .nodeID)
    debug = try c.decodeIfPresent(Bool.self, forKey: .debug)
    defaultTimeout = try c.seconds(.defaultTimeout)
    shutdownGracePeriod = try c.seconds(.shutdownGracePeriod)
    listen = try c.decodeIfPresent(Bool.self, forKey: .listen)
    if let address = try c.decodeIfPresent(String.self, forKey: .advertisedAddress) {
      throw c.invalid(
        .advertisedAddress, "(\(address)) is not supported: nodes dial out to the gateway, which needs no advertised address")
    }
    transport = try c.decodeIfPresent(Transport.self, forKey: .transport)
    heartbeat = try c.decodeIfPresent(Heartbeat.self, forKey: .heartbeat)
    serialization = try c.decodeIfPresent(Serialization.self, forKey: .serialization)
    limits = try c.decodeIfPresent(Limits.self, forKey: .limits)
    auth = try c.decodeIfPresent(Auth.self, forKey: .auth)
    interceptors = try c.decodeIfPresent(Interceptors.self, forKey: .interceptors)
  }

  /// The file's settings over `config`'s, in the order that decides between two keys for one
  /// setting: the origin's `transport.grpc.*` over ours, `limits` over `max_message_length`.
  func apply(to config: inout NodeConfig) throws {
    if let maxWorkers { config.maxWorkers = maxWorkers }
    if let nodeID { config.nodeID = nodeID }
    if let debug { config.debug = debug }
    if let defaultTimeout { config.defaultTimeout = defaultTimeout }
    if let shutdownGracePeriod { config.shutdownGracePeriod = shutdownGracePeriod }
    if let listen { config.transport.listen = listen }
    transport?.apply(to: &config)
    heartbeat?.apply(to: &config.heartbeat)
    serialization?.apply(to: &config)
    limits?.apply(to: &config.limits)
    if let token = auth?.token { config.authToken = token }
    try interceptors?.apply(to: &config)
  }

  // MARK: Sections

  struct Transport: Decodable {
    var mode: TransportConfig.Mode?
    var listen: Bool?
    var host: String?
    var port: Int?
    var tls: TLSConfig?
    var grpc: GRPC?

    enum CodingKeys: String, CodingKey, CaseIterable { case mode, listen, host, port, tls, grpc, memory }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      if let text = try c.decodeIfPresent(String.self, forKey: .mode) {
        guard let mode = TransportConfig.Mode(rawValue: text) else { throw c.invalid(.mode, "must be memory or grpc, not '\(text)'") }
        self.mode = mode
      }
      listen = try c.decodeIfPresent(Bool.self, forKey: .listen)
      host = try c.decodeIfPresent(String.self, forKey: .host)
      port = try c.port(.port)
      tls = try c.decodeIfPresent(OurTLS.self, forKey: .tls)?.config
      grpc = try c.decodeIfPresent(GRPC.self, forKey: .grpc)
      _ = try c.decodeIfPresent(Memory.self, forKey: .memory)  // checked; nothing to set
    }

    func apply(to config: inout NodeConfig) {
      if let mode { config.transport.mode = mode }
      if let listen { config.transport.listen = listen }
      if let host { config.transport.host = host }
      if let port { config.transport.port = port }
      if let tls { config.transport.tls = tls }
      guard let grpc else { return }
      if let host = grpc.host { config.transport.host = host }
      if let port = grpc.port { config.transport.port = port }
      if let size = grpc.maxMessageLength { config.limits.maxPayloadSize = size }
      if let workers = grpc.maxWorkers { config.maxWorkers = workers }
      if let tls = grpc.tls { config.transport.tls = tls }
    }
  }

  /// `transport.tls`: PEM files for the listener (`cert`, `key`) and the dialer (`ca`).
  struct OurTLS: Decodable {
    var config: TLSConfig

    enum CodingKeys: String, CodingKey, CaseIterable {
      case cert, key, ca, requireClientCert = "require_client_cert", verifyHostname = "verify_hostname"
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      let context = decoder.configContext
      config = TLSConfig(
        certificatePEM: try c.fileText(.cert, context), privateKeyPEM: try c.fileText(.key, context),
        trustedCAPEM: try c.fileText(.ca, context),
        requireClientCertificate: try c.decodeIfPresent(Bool.self, forKey: .requireClientCert) ?? false,
        verifyHostname: try c.decodeIfPresent(Bool.self, forKey: .verifyHostname) ?? false)
    }
  }

  /// The origin's `transport.grpc`.
  struct GRPC: Decodable {
    var host: String?
    var port: Int?
    var maxWorkers: Int?
    var maxMessageLength: Int?
    var tls: TLSConfig?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case host, port, maxWorkers = "max_workers", maxMessageLength = "max_message_length", tls, heartbeat
      case dualThread = "dual_thread"
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      host = try c.decodeIfPresent(String.self, forKey: .host)
      port = try c.port(.port)
      maxMessageLength = try c.positive(.maxMessageLength)
      maxWorkers = try c.positive(.maxWorkers)
      if c.contains(.heartbeat) { throw c.invalid(.heartbeat, "is not supported: set the top-level 'heartbeat' instead") }
      if try c.decodeIfPresent(Bool.self, forKey: .dualThread) == true {
        throw c.invalid(.dualThread, "(true) is not supported (links are not tied to threads)")
      }
      tls = try c.decodeIfPresent(OriginTLS.self, forKey: .tls)?.config
    }
  }

  /// The origin's `transport.grpc.tls`: files by name, `enabled` to use them.
  struct OriginTLS: Decodable {
    var config: TLSConfig?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case enabled, certFile = "cert_file", keyFile = "key_file", caFile = "ca_file", mutualTLS = "mutual_tls"
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      guard try c.decodeIfPresent(Bool.self, forKey: .enabled) == true else { return }
      let context = decoder.configContext
      let path = ConfigValueError.path(decoder.codingPath)
      let mutual = try c.decodeIfPresent(Bool.self, forKey: .mutualTLS) ?? false
      let certificate = try c.fileText(.certFile, context)
      let key = try c.fileText(.keyFile, context)
      let ca = try c.fileText(.caFile, context)
      if (certificate == nil) != (key == nil) {
        throw ConfigValueError(message: "'\(path)' needs both cert_file and key_file, or neither (a client trusting ca_file)")
      }
      if certificate == nil && ca == nil {
        throw ConfigValueError(message: "'\(path).enabled: true' needs cert_file and key_file (a server) or ca_file (a client)")
      }
      if mutual && (ca == nil || certificate == nil) {
        throw ConfigValueError(message: "'\(path).mutual_tls: true' needs cert_file, key_file and ca_file")
      }
      config = TLSConfig(
        certificatePEM: certificate, privateKeyPEM: key, trustedCAPEM: ca, requireClientCertificate: mutual, verifyHostname: false)
    }
  }

  /// The origin's `transport.memory`: zero-copy is what the memory transport does anyway;
  /// simulated latency is not built.
  struct Memory: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable {
      case zeroCopy = "zero_copy", simulateLatency = "simulate_latency", latencyMS = "latency_ms"
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      _ = try c.decodeIfPresent(Bool.self, forKey: .zeroCopy)
      let simulate = try c.decodeIfPresent(Bool.self, forKey: .simulateLatency) ?? false
      let latency = try c.decodeIfPresent(Double.self, forKey: .latencyMS) ?? 0
      if simulate && latency > 0 { throw c.invalid(.simulateLatency, "is not supported yet") }
    }
  }

  struct Heartbeat: Decodable {
    var enabled: Bool?
    var interval: Duration?
    var timeout: Duration?

    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, interval, timeout }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
      interval = try c.seconds(.interval)
      timeout = try c.seconds(.timeout)
    }

    func apply(to heartbeat: inout HeartbeatConfig) {
      if let enabled { heartbeat.enabled = enabled }
      if let interval { heartbeat.interval = interval }
      if let timeout { heartbeat.timeout = timeout }
    }
  }

  struct Serialization: Decodable {
    var defaultSerializer: String?
    var methods: [String: Method] = [:]
    var compression: Compression?

    enum CodingKeys: String, CodingKey, CaseIterable { case defaultSerializer = "default", methods, compression }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      compression = try c.decodeIfPresent(Compression.self, forKey: .compression)
      defaultSerializer = try c.serializer(.defaultSerializer, known: decoder.configContext.serializers)
      methods = try c.decodeIfPresent([String: Method].self, forKey: .methods) ?? [:]
    }

    func apply(to config: inout NodeConfig) {
      if let compression {
        if let enabled = compression.enabled { config.compression.enabled = enabled }
        if let size = compression.minimumSize { config.compression.minimumSize = size }
        config.compression.methods.formUnion(compression.methods)
        config.compression.serializers.formUnion(compression.serializers)
      }
      if let defaultSerializer { config.serialization.defaultSerializer = defaultSerializer }
      for (name, method) in methods {
        if let serializer = method.serializer { config.serialization.perMethod[name] = serializer }
        if method.compress { config.compression.methods.insert(name) }
      }
    }

    /// `serialization.methods.NAME`.
    struct Method: Decodable {
      var serializer: String?
      var compress = false

      enum CodingKeys: String, CodingKey, CaseIterable { case serializer, compress }

      init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        serializer = try c.serializer(.serializer, known: decoder.configContext.serializers)
        compress = try c.decodeIfPresent(Bool.self, forKey: .compress) ?? false
      }
    }

    /// `serialization.compression`.
    struct Compression: Decodable {
      var enabled: Bool?
      var minimumSize: Int?
      var methods: Set<String> = []
      var serializers: Set<String> = []

      enum CodingKeys: String, CodingKey, CaseIterable { case enabled, minimumSize = "min_size", methods, serializers }

      init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
        minimumSize = try c.count(.minimumSize)
        methods = Set(try c.decodeIfPresent([String].self, forKey: .methods) ?? [])
        serializers = Set(try c.decodeIfPresent([String].self, forKey: .serializers) ?? [])
        try c.check(serializers: serializers, at: .serializers, known: decoder.configContext.serializers)
      }
    }
  }

  struct Limits: Decodable {
    var maxPayloadSize: Int?
    var chunkSize: Int?
    var tuneAllocator: Bool?
    var authFailuresPerMinute: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case maxPayloadSize = "max_payload_size", chunkSize = "chunk_size", tuneAllocator = "tune_allocator"
      case authFailuresPerMinute = "auth_failures_per_minute"
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      maxPayloadSize = try c.positive(.maxPayloadSize)
      chunkSize = try c.positive(.chunkSize)
      tuneAllocator = try c.decodeIfPresent(Bool.self, forKey: .tuneAllocator)
      authFailuresPerMinute = try c.positive(.authFailuresPerMinute)
    }

    func apply(to limits: inout LimitsConfig) {
      if let maxPayloadSize { limits.maxPayloadSize = maxPayloadSize }
      if let chunkSize { limits.chunkSize = chunkSize }
      if let tuneAllocator { limits.tuneAllocator = tuneAllocator }
      if let authFailuresPerMinute { limits.authFailuresPerMinute = authFailuresPerMinute }
    }
  }

  struct Auth: Decodable {
    var token: String?
    enum CodingKeys: String, CodingKey, CaseIterable { case token }

    init(from decoder: any Decoder) throws {
      token = try decoder.strictContainer(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .token)
    }
  }

  /// The origin's `interceptors`.
  struct Interceptors: Decodable {
    var logging = false
    var metrics: Bool?
    var auth = false
    var authToken: String?
    var retry: Retry?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case logging, metrics, auth, authConfig = "auth_config", retry, custom
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      logging = try c.decodeIfPresent(Bool.self, forKey: .logging) ?? false
      metrics = try c.decodeIfPresent(Bool.self, forKey: .metrics)
      if c.contains(.custom) {
        throw c.invalid(.custom, "is not supported: add interceptors in code (`node.addInterceptor`)")
      }
      auth = try c.decodeIfPresent(Bool.self, forKey: .auth) ?? false
      authToken = try c.decodeIfPresent(AuthConfig.self, forKey: .authConfig)?.token
      retry = try c.decodeIfPresent(Retry.self, forKey: .retry)
    }

    func apply(to config: inout NodeConfig) throws {
      if logging { config.logCalls = true }
      if let metrics { config.collectMetrics = metrics }
      if auth, let authToken { config.authToken = authToken }
      if auth && config.authToken == nil {
        throw ConfigValueError(message: "'interceptors.auth: true' needs 'interceptors.auth_config.token'")
      }
      if let retry { config.retry = retry.policy }
    }

    struct AuthConfig: Decodable {
      var token: String?
      enum CodingKeys: String, CodingKey, CaseIterable { case mode, token }

      init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let mode = try c.decodeIfPresent(String.self, forKey: .mode) ?? "token"
        guard mode == "token" else { throw c.invalid(.mode, "must be token, not '\(mode)'") }
        token = try c.decodeIfPresent(String.self, forKey: .token)
      }
    }

    /// `interceptors.retry`: the policy, or nil when `enabled: false`.
    struct Retry: Decodable {
      var policy: RetryPolicy?

      enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, maxRetries = "max_retries", backoff, maxBackoff = "max_backoff", multiplier, jitter
        case idempotentMethods = "idempotent_methods"
      }

      init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        var policy = RetryPolicy()
        if let retries = try c.count(.maxRetries) { policy.maxAttempts = retries + 1 }
        if let backoff = try c.seconds(.backoff, allowZero: true) { policy.initialBackoff = backoff }
        if let most = try c.seconds(.maxBackoff) { policy.maxBackoff = most }
        if let multiplier = try c.number(.multiplier, in: 1...1e6, "must be at least 1") { policy.multiplier = multiplier }
        if let jitter = try c.number(.jitter, in: 0...1, "must be between 0 and 1") { policy.jitter = jitter }
        if let methods = try c.decodeIfPresent([String].self, forKey: .idempotentMethods) {
          policy.idempotentMethods = Set(methods)
        }
        policy.maxBackoff = max(policy.maxBackoff, policy.initialBackoff)
        self.policy = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true ? policy : nil
      }
    }
  }
}
