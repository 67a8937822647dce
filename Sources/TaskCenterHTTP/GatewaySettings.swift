public import Foundation
package import NodeComm

/// The gateway's own sections of a configuration file — `http` (its HTTP API) and `tasks`
/// (its task store) — beside the node layer's (``NodeConfig/load(file:serializers:otherSections:)``
/// with ``sections``). Command-line flags win over them.
///
/// ```yaml
/// http: { enabled: true, host: 0.0.0.0, port: 8000, tls: { cert_file: server.pem, key_file: server.key } }
/// tasks: { db: tasks.sqlite, lease_seconds: 10 }   # or db: postgres://user@host/db
/// ```
public struct GatewaySettings: Sendable, Equatable, Decodable {
  /// Where and how the gateway serves its HTTP API.
  public struct HTTP: Sendable, Equatable, Decodable {
    /// Serve the HTTP API at all.
    public var enabled = true
    public var host: String?
    public var port: Int?
    /// HTTPS: the certificate chain and key files (PEM), as paths resolved against the
    /// configuration file's folder.
    public var certificateFile: String?
    public var keyFile: String?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, host, port, tls }
    enum TLSKeys: String, CodingKey, CaseIterable { case certFile = "cert_file", keyFile = "key_file" }

    public init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
      host = try c.decodeIfPresent(String.self, forKey: .host)
      port = try c.port(.port)
      guard c.contains(.tls) else { return }
      let tls = try c.superDecoder(forKey: .tls)
      let files = try tls.strictContainer(keyedBy: TLSKeys.self)
      certificateFile = try files.readablePath(.certFile, decoder.configContext)
      keyFile = try files.readablePath(.keyFile, decoder.configContext)
      if (certificateFile == nil) != (keyFile == nil) {
        throw ConfigValueError(tls.codingPath, "needs both cert_file and key_file")
      }
    }
  }

  /// Where the gateway keeps its tasks.
  public struct Tasks: Sendable, Equatable, Decodable {
    /// A SQLite file (relative to the configuration file's folder) or a `postgres://` URL.
    public var database: String?
    /// On a store several gateways share: how long this gateway's lease lasts (seconds).
    public var leaseSeconds: Double?

    public init(database: String? = nil, leaseSeconds: Double? = nil) {
      self.database = database
      self.leaseSeconds = leaseSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case database = "db", leaseSeconds = "lease_seconds" }

    public init(from decoder: any Decoder) throws {
      let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
      if let text = try c.decodeIfPresent(String.self, forKey: .database) {
        // A URL as it is; a file relative to the configuration's folder.
        database =
          text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") ? text : decoder.configContext.url(text).path
      }
      leaseSeconds = try c.number(.leaseSeconds, in: 1...3600, "is 1 to 3600")
    }
  }

  public var http = HTTP()
  public var tasks = Tasks()

  public init() {}

  /// The top-level sections the gateway reads.
  public static let sections: Set<String> = ["http", "tasks"]

  enum CodingKeys: String, CodingKey { case http, tasks }

  /// Reads `http` and `tasks`; the file's other keys are the node layer's, which checks them.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    http = try c.decodeIfPresent(HTTP.self, forKey: .http) ?? HTTP()
    tasks = try c.decodeIfPresent(Tasks.self, forKey: .tasks) ?? Tasks()
  }

  /// The gateway's settings in YAML text (relative paths against `baseDirectory`).
  /// - Throws: ``NodeError`` `invalidState` naming the key path (and `source`).
  public static func load(yaml: String, baseDirectory: URL? = nil, source: String? = nil) throws -> GatewaySettings {
    try ConfigContext(source: source, baseDirectory: baseDirectory).decode(GatewaySettings.self, yaml: yaml)
  }

  /// The gateway's settings in a YAML file.
  public static func load(file path: String) throws -> GatewaySettings {
    try load(
      yaml: try NodeConfig.readConfigFile(path), baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent(),
      source: path)
  }
}
