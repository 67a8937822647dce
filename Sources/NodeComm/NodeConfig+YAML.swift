public import Foundation

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
  /// - Parameters:
  ///   - serializers: the serializer names the file may use: the built-in ones, and those the
  ///     program registers itself before it makes its first call.
  ///   - otherSections: top-level sections of the same file that other layers read (the
  ///     gateway's `http` and `tasks`); the node layer leaves them alone.
  /// - Throws: ``NodeError`` `invalidState` naming the key path (and `source`, the file).
  public static func load(
    yaml: String, baseDirectory: URL? = nil, source: String? = nil,
    serializers: Set<String> = SerializerRegistry.builtInNames, otherSections: Set<String> = []
  ) throws -> NodeConfig {
    let context = ConfigContext(
      source: source, baseDirectory: baseDirectory, serializers: serializers, otherSections: otherSections)
    var config = NodeConfig.defaults
    do {
      try context.decode(NodeConfigFile.self, yaml: yaml).apply(to: &config)
    } catch let error as ConfigValueError {
      throw context.error(error.message)
    }
    return config
  }

  /// Loads a configuration from a YAML file; errors name the file.
  public static func load(
    file path: String, serializers: Set<String> = SerializerRegistry.builtInNames, otherSections: Set<String> = []
  ) throws -> NodeConfig {
    let url = URL(fileURLWithPath: path)
    return try load(
      yaml: try readConfigFile(path), baseDirectory: url.deletingLastPathComponent(), source: path, serializers: serializers,
      otherSections: otherSections)
  }

  /// The text of a configuration file. - Throws: ``NodeError`` `invalidState` naming it.
  package static func readConfigFile(_ path: String) throws -> String {
    do {
      return try String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8)
    } catch {
      throw NodeError(code: .invalidState, message: "invalid configuration: cannot read config file '\(path)': \(error.localizedDescription)")
    }
  }
}
