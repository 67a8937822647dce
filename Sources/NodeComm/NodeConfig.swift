import Foundation

/// Everything a node needs to know, with defaults for each part.
///
/// The same structure loads from YAML with ``NodeConfig/load(yaml:baseDirectory:source:serializers:otherSections:)``
/// (keys in snake case; decoded with Yams' `Decodable` decoder, unknown keys refused):
///
/// ```yaml
/// node_id: worker-1
/// debug: false
/// default_timeout: 30        # seconds
/// transport:
///   mode: grpc               # memory | grpc
///   host: 127.0.0.1
///   port: 7700
///   tls: { cert: node.pem, key: node.key, ca: ca.pem, require_client_cert: false }
/// heartbeat: { enabled: true, interval: 10, timeout: 30 }
/// serialization: { default: json }
/// limits: { max_payload_size: 67108864, chunk_size: 1048576, tune_allocator: true }
/// ```
public struct NodeConfig: Sendable, Equatable {
  /// The node's id; a random one is made when nil.
  public var nodeID: String?
  /// When true, errors sent to peers carry debug detail (error type and context).
  public var debug: Bool
  /// Timeout of a call that sets none itself.
  public var defaultTimeout: Duration
  /// How long `stop()` lets in-flight handlers finish before cancelling them.
  public var shutdownGracePeriod: Duration
  public var transport: TransportConfig
  public var heartbeat: HeartbeatConfig
  public var serialization: SerializationConfig
  public var limits: LimitsConfig
  /// A shared token: when set, the node sends it with every call and refuses calls without
  /// it (``TokenAuthInterceptor`` on both paths, installed by the node itself).
  public var authToken: String?
  /// Whether the node logs every call it makes and serves (``LoggingInterceptor`` at `info`;
  /// `interceptors.logging` in the origin's YAML layout).
  public var logCalls = false
  /// Whether the node counts and times its calls through swift-metrics
  /// (``MetricsInterceptor``; `interceptors.metrics`).
  public var collectMetrics = false
  /// When set, failed outbound calls are sent again by this policy (``RetryInterceptor``;
  /// `interceptors.retry`).
  public var retry: RetryPolicy?
  /// Calls in flight through a gateway built with this configuration (seed 000's
  /// `maxWorkers`, `transport.grpc.max_workers` in the origin's layout); beyond it calls wait,
  /// then are refused `busy`. A compute node takes it as its `maxWorkers` when given none.
  /// Unbounded when nil.
  public var maxWorkers: Int?
  /// Which payloads travel deflated, on links whose peer agreed to it in HELLO.
  public var compression = CompressionConfig()

  public init(
    nodeID: String? = nil,
    debug: Bool = false,
    defaultTimeout: Duration = .seconds(30),
    shutdownGracePeriod: Duration = .seconds(5),
    transport: TransportConfig = .defaults,
    heartbeat: HeartbeatConfig = .defaults,
    serialization: SerializationConfig = .defaults,
    limits: LimitsConfig = .defaults,
    authToken: String? = nil
  ) {
    self.nodeID = nodeID
    self.debug = debug
    self.defaultTimeout = defaultTimeout
    self.shutdownGracePeriod = shutdownGracePeriod
    self.transport = transport
    self.heartbeat = heartbeat
    self.serialization = serialization
    self.limits = limits
    self.authToken = authToken
  }

  public static var defaults: NodeConfig { NodeConfig() }

  /// The defaults, changed by `configure`.
  public static func defaults(configure: (inout NodeConfig) -> Void) -> NodeConfig {
    var config = NodeConfig()
    configure(&config)
    return config
  }
}

/// Which transport carries the node's links and where it listens.
public struct TransportConfig: Sendable, Equatable {
  public enum Mode: String, Sendable, Codable {
    /// In-process links, for tests and embedding.
    case memory
    /// gRPC over HTTP/2: one bidirectional stream per link.
    case grpc
  }

  public var mode: Mode
  /// Whether the node accepts links. A node behind NAT need not: it dials out and is called
  /// back over the links it opened.
  public var listen: Bool
  public var host: String
  /// 0 picks a free port; read the bound one from `Node.listeningAddress`.
  public var port: Int
  public var tls: TLSConfig?

  public init(mode: Mode = .memory, listen: Bool = true, host: String = "127.0.0.1", port: Int = 0, tls: TLSConfig? = nil) {
    self.mode = mode
    self.listen = listen
    self.host = host
    self.port = port
    self.tls = tls
  }

  public static var defaults: TransportConfig { TransportConfig() }
}

/// TLS settings of the gRPC transport, as PEM files or PEM text.
public struct TLSConfig: Sendable, Equatable {
  /// The node's certificate chain (PEM).
  public var certificatePEM: String?
  /// The node's private key (PEM).
  public var privateKeyPEM: String?
  /// Certificates this node trusts for its peers (PEM); the system's roots when nil.
  public var trustedCAPEM: String?
  /// As a listener: require and verify a client certificate (mutual TLS).
  public var requireClientCertificate: Bool
  /// As a dialer: check the listener's host name against its certificate.
  public var verifyHostname: Bool

  public init(
    certificatePEM: String? = nil, privateKeyPEM: String? = nil, trustedCAPEM: String? = nil,
    requireClientCertificate: Bool = false, verifyHostname: Bool = false
  ) {
    self.certificatePEM = certificatePEM
    self.privateKeyPEM = privateKeyPEM
    self.trustedCAPEM = trustedCAPEM
    self.requireClientCertificate = requireClientCertificate
    self.verifyHostname = verifyHostname
  }
}

/// Liveness checking of links.
public struct HeartbeatConfig: Sendable, Equatable {
  public var enabled: Bool
  /// How often a heartbeat frame is sent on each link.
  public var interval: Duration
  /// A link that received nothing for this long is closed and `disconnect` fires.
  public var timeout: Duration

  public init(enabled: Bool = true, interval: Duration = .seconds(10), timeout: Duration = .seconds(30)) {
    self.enabled = enabled
    self.interval = interval
    self.timeout = timeout
  }

  public static var defaults: HeartbeatConfig { HeartbeatConfig() }
}

/// Which serializer calls use when they name none.
public struct SerializationConfig: Sendable, Equatable {
  public var defaultSerializer: String
  /// The serializer of calls to these methods (by method name), over the default.
  public var perMethod: [String: String]

  public init(defaultSerializer: String = JSONSerializer.name, perMethod: [String: String] = [:]) {
    self.defaultSerializer = defaultSerializer
    self.perMethod = perMethod
  }

  public static var defaults: SerializationConfig { SerializationConfig() }
}

/// Payload compression on links (deflate, through compress-nio).
///
/// Each side offers deflate in its HELLO when ``enabled``; a link compresses only when both
/// offered. Then a payload of at least ``minimumSize`` bytes is deflated when its method (or
/// the function a gateway routes it to) is in ``methods`` or its serializer in
/// ``serializers``; an answer or a stream item is deflated when its request was, or by the
/// same rules. Compressed payloads travel with the serializer name `<name>+deflate` and are
/// inflated, within the payload limit, before anything else sees them.
public struct CompressionConfig: Sendable, Equatable {
  /// Offer deflate to peers (and accept compressed payloads: those are always read).
  public var enabled: Bool
  public var methods: Set<String>
  public var serializers: Set<String>
  public var minimumSize: Int

  public init(enabled: Bool = true, methods: Set<String> = [], serializers: Set<String> = [], minimumSize: Int = 1024) {
    self.enabled = enabled
    self.methods = methods
    self.serializers = serializers
    self.minimumSize = max(0, minimumSize)
  }

  /// The metadata key that names the function a gateway routes a call to: ``methods`` are
  /// matched against it too, so a function's name selects it end to end.
  public static let functionKey = "er-function"

  /// Whether a payload of `method` in `serializer` is one to deflate (size aside).
  func selects(method: String, metadata: [String: String], serializer: String) -> Bool {
    guard !methods.isEmpty || !serializers.isEmpty else { return false }
    return methods.contains(method) || serializers.contains(serializer)
      || metadata[Self.functionKey].map(methods.contains) == true
  }
}

/// Size limits of payloads and frames.
public struct LimitsConfig: Sendable, Equatable {
  /// The largest payload a node sends or accepts; larger ones fail with `payloadTooLarge`
  /// and the link keeps working.
  public var maxPayloadSize: Int
  /// Payloads above this size (plus an eighth) travel in pieces of this size, interleaved
  /// with other frames: a small call waits behind at most one piece.
  public var chunkSize: Int
  /// Whether the `easyremote` executable tunes glibc's malloc for large payloads at start
  /// (``AllocatorTuning``: blocks up to 4 MiB from the heap instead of their own `mmap`, freed
  /// memory kept up to 32 MiB): about 3x the throughput of 1 MiB payloads. Off leaves malloc
  /// as it is. Libraries never change the allocator themselves.
  public var tuneAllocator: Bool
  /// Wrong or missing tokens one IP address may present in a minute before it is refused
  /// for the rest of that minute (``AuthFailureLimiter``; links and a gateway's HTTP API).
  public var authFailuresPerMinute: Int

  public init(maxPayloadSize: Int = 64 << 20, chunkSize: Int = 1 << 20, tuneAllocator: Bool = true, authFailuresPerMinute: Int = 10) {
    self.authFailuresPerMinute = authFailuresPerMinute
    self.maxPayloadSize = maxPayloadSize
    self.chunkSize = chunkSize
    self.tuneAllocator = tuneAllocator
  }

  public static var defaults: LimitsConfig { LimitsConfig() }
}
