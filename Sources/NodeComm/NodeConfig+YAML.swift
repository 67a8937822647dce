public import Foundation
import Yams

extension NodeConfig {
  /// Loads a configuration from YAML text; absent keys keep their defaults.
  ///
  /// Relative TLS file paths are resolved against `baseDirectory`.
  ///
  /// - Throws: ``NodeError`` `invalidState` naming the key when a value has the wrong type.
  public static func load(yaml: String, baseDirectory: URL? = nil) throws -> NodeConfig {
    let file: ConfigFile
    do {
      file = try YAMLDecoder().decode(ConfigFile.self, from: yaml.isEmpty ? "{}" : yaml)
    } catch let DecodingError.typeMismatch(type, context) {
      throw configError("'\(context.codingPath.map(\.stringValue).joined(separator: "."))' must be \(type)")
    } catch {
      throw configError("\(error)")
    }
    var config = NodeConfig.defaults
    config.nodeID = file.node_id ?? config.nodeID
    config.debug = file.debug ?? config.debug
    if let seconds = file.default_timeout { config.defaultTimeout = try duration(seconds, "default_timeout") }
    if let seconds = file.shutdown_grace_period {
      config.shutdownGracePeriod = try duration(seconds, "shutdown_grace_period")
    }
    if let transport = file.transport {
      config.transport.mode = transport.mode ?? config.transport.mode
      config.transport.listen = transport.listen ?? config.transport.listen
      config.transport.host = transport.host ?? config.transport.host
      config.transport.port = transport.port ?? config.transport.port
      if let tls = transport.tls {
        func read(_ path: String?) throws -> String? {
          guard let path else { return nil }
          let url = URL(fileURLWithPath: path, relativeTo: baseDirectory)
          do { return try String(contentsOf: url, encoding: .utf8) } catch {
            throw configError("cannot read TLS file '\(url.path)': \(error.localizedDescription)")
          }
        }
        config.transport.tls = TLSConfig(
          certificatePEM: try read(tls.cert), privateKeyPEM: try read(tls.key), trustedCAPEM: try read(tls.ca),
          requireClientCertificate: tls.require_client_cert ?? false, verifyHostname: tls.verify_hostname ?? false)
      }
    }
    if let heartbeat = file.heartbeat {
      config.heartbeat.enabled = heartbeat.enabled ?? config.heartbeat.enabled
      if let s = heartbeat.interval { config.heartbeat.interval = try duration(s, "heartbeat.interval") }
      if let s = heartbeat.timeout { config.heartbeat.timeout = try duration(s, "heartbeat.timeout") }
    }
    if let name = file.serialization?.default { config.serialization.defaultSerializer = name }
    if let token = file.auth?.token { config.authToken = token }
    if let limits = file.limits {
      config.limits.maxPayloadSize = limits.max_payload_size ?? config.limits.maxPayloadSize
      config.limits.chunkSize = limits.chunk_size ?? config.limits.chunkSize
      config.limits.tuneAllocator = limits.tune_allocator ?? config.limits.tuneAllocator
    }
    return config
  }

  /// Loads a configuration from a YAML file.
  public static func load(file path: String) throws -> NodeConfig {
    let url = URL(fileURLWithPath: path)
    let text: String
    do { text = try String(contentsOf: url, encoding: .utf8) } catch {
      throw configError("cannot read config file '\(path)': \(error.localizedDescription)")
    }
    return try load(yaml: text, baseDirectory: url.deletingLastPathComponent())
  }

  private static func duration(_ seconds: Double, _ key: String) throws -> Duration {
    guard seconds.isFinite, seconds > 0 else { throw configError("'\(key)' must be a positive number of seconds") }
    return .milliseconds(Int64(seconds * 1000))
  }

  private static func configError(_ message: String) -> NodeError {
    NodeError(code: .invalidState, message: "invalid configuration: \(message)")
  }
}

// The YAML shape; snake_case keys as users write them.
// swiftlint:disable identifier_name
private struct ConfigFile: Decodable {
  struct Transport: Decodable {
    var mode: TransportConfig.Mode?
    var listen: Bool?
    var host: String?
    var port: Int?
    var tls: TLS?
  }
  struct TLS: Decodable {
    var cert: String?
    var key: String?
    var ca: String?
    var require_client_cert: Bool?
    var verify_hostname: Bool?
  }
  struct Heartbeat: Decodable {
    var enabled: Bool?
    var interval: Double?
    var timeout: Double?
  }
  struct Serialization: Decodable {
    var `default`: String?
  }
  struct Limits: Decodable {
    var max_payload_size: Int?
    var chunk_size: Int?
    var tune_allocator: Bool?
  }
  var node_id: String?
  var debug: Bool?
  var default_timeout: Double?
  var shutdown_grace_period: Double?
  var transport: Transport?
  var heartbeat: Heartbeat?
  var serialization: Serialization?
  var limits: Limits?
  var auth: Auth?

  struct Auth: Decodable {
    var token: String?
  }
}
