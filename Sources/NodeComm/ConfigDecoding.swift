package import Foundation
import Yams

/// What decoding a configuration file needs beyond the YAML: where it is (errors name it,
/// relative file paths start there), the serializer names it may use, and the top-level
/// sections other layers read from the same file (`http`, `tasks`: the gateway's).
package struct ConfigContext: Sendable {
  package var source: String?
  package var baseDirectory: URL?
  package var serializers: Set<String>
  package var otherSections: Set<String>

  package init(
    source: String? = nil, baseDirectory: URL? = nil, serializers: Set<String> = SerializerRegistry.builtInNames,
    otherSections: Set<String> = []
  ) {
    self.source = source
    self.baseDirectory = baseDirectory
    self.serializers = serializers
    self.otherSections = otherSections
  }

  package func error(_ message: String) -> NodeError {
    NodeError(code: .invalidState, message: "invalid configuration\(source.map { " in \($0)" } ?? ""): \(message)")
  }

  /// A file a setting names, relative to the configuration's folder.
  package func url(_ name: String) -> URL {
    URL(fileURLWithPath: name, relativeTo: baseDirectory.map { URL(fileURLWithPath: $0.path, isDirectory: true) })
  }

  /// Decodes `type` from YAML text with Yams' decoder (an empty document is an empty
  /// mapping: every default). Every error — not YAML, a wrong type, an unknown key, a value
  /// out of range — becomes one ``NodeError`` `invalidState` naming the key path.
  package func decode<T: Decodable>(_ type: T.Type, yaml: String) throws -> T {
    let root: Yams.Node?
    do {
      root = try Yams.compose(yaml: yaml)
    } catch {
      throw self.error("not YAML: \(error)")
    }
    let document: Yams.Node =
      if let root, !(root.scalar?.string.isEmpty ?? false) { root } else { Yams.Node.mapping(Yams.Node.Mapping([])) }
    do {
      return try YAMLDecoder().decode(type, from: document, userInfo: [.configContext: self])
    } catch let error as ConfigValueError {
      throw self.error(error.message)
    } catch let error as DecodingError {
      throw self.error(Self.describe(error))
    } catch {
      throw self.error("\(error)")
    }
  }

  /// A decoding error in the words of a configuration file.
  static func describe(_ error: DecodingError) -> String {
    switch error {
    case .typeMismatch(let type, let context):
      return "\(ConfigValueError.quoted(context.codingPath)) must be \(expectation(type))"
    case .valueNotFound(let type, let context):
      return "\(ConfigValueError.quoted(context.codingPath)) must be \(expectation(type)), not empty"
    case .keyNotFound(let key, let context):
      return "'\(ConfigValueError.path(context.codingPath + [key]))' is missing"
    case .dataCorrupted(let context):
      return "\(ConfigValueError.quoted(context.codingPath)): \(context.debugDescription)"
    @unknown default:
      return "\(error)"
    }
  }

  private static func expectation(_ type: Any.Type) -> String {
    switch type {
    case is Bool.Type: "true or false"
    case is String.Type: "text"
    case is Double.Type, is Float.Type: "a number"
    case is Int.Type, is Int64.Type, is UInt.Type: "a whole number"
    case is Yams.Node.Mapping.Type: "a mapping of keys to values"
    case is Yams.Node.Sequence.Type: "a list"
    case is Yams.Node.Scalar.Type: "a single value, not a list or mapping"
    default: "a \(type)"
    }
  }
}

/// A value a configuration file may not have, with the key path it is at.
package struct ConfigValueError: Error {
  package let message: String

  /// `'path' what` — `path` written as in the file (`transport.grpc.port`).
  package init(_ path: [any CodingKey], _ what: String) {
    message = "\(Self.quoted(path)) \(what)"
  }

  /// `'transport.port'`, or `the file` for the top.
  static func quoted(_ keys: [any CodingKey]) -> String { keys.isEmpty ? "the file" : "'\(path(keys))'" }

  package init(message: String) { self.message = message }

  static func path(_ keys: [any CodingKey]) -> String {
    guard !keys.isEmpty else { return "the file" }
    return keys.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }.joined(separator: ".")
      .replacingOccurrences(of: ".[", with: "[")
  }
}

extension CodingUserInfoKey {
  static let configContext = CodingUserInfoKey(rawValue: "easyremote.config")!
}

/// Any key, to list the keys a mapping has.
private struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

extension Decoder {
  package var configContext: ConfigContext { userInfo[.configContext] as? ConfigContext ?? ConfigContext() }

  /// The mapping here, keyed by `Key`; a key it does not know (nor `alsoKnown`) is an error
  /// naming its path and the keys known here.
  package func strictContainer<Key: CodingKey & CaseIterable>(
    keyedBy: Key.Type, alsoKnown: Set<String> = []
  ) throws -> KeyedDecodingContainer<Key> {
    let all = try container(keyedBy: AnyKey.self)
    let known = Set(Key.allCases.map(\.stringValue))
    for key in all.allKeys where !known.contains(key.stringValue) && !alsoKnown.contains(key.stringValue) {
      throw ConfigValueError(
        message: "unknown key '\(ConfigValueError.path(codingPath + [key]))' (known here: \(known.sorted().joined(separator: ", ")))")
    }
    return try container(keyedBy: Key.self)
  }
}

extension KeyedDecodingContainer {
  /// An error about the value at `key`.
  package func invalid(_ key: Key, _ what: String) -> ConfigValueError { ConfigValueError(codingPath + [key], what) }

  package func path(_ key: Key) -> String { ConfigValueError.path(codingPath + [key]) }

  /// A positive number of seconds (below 10^9); 0 too with `allowZero`.
  package func seconds(_ key: Key, allowZero: Bool = false) throws -> Duration? {
    guard let value = try decodeIfPresent(Double.self, forKey: key) else { return nil }
    guard value.isFinite, value > 0 || (allowZero && value == 0), value < 1e9 else {
      throw invalid(key, "must be a positive number of seconds")
    }
    return .milliseconds(Int64(value * 1000))
  }

  /// A whole number from 1 to `most` (by default 2^40: past any real size or count, and far
  /// enough from `Int.max` that sums and products with it cannot overflow).
  package func positive(_ key: Key, most: Int = 1 << 40) throws -> Int? {
    guard let value = try decodeIfPresent(Int.self, forKey: key) else { return nil }
    guard value > 0, value <= most else { throw invalid(key, "must be a whole number from 1 to \(most)") }
    return value
  }

  /// A whole number, 0 or more.
  package func count(_ key: Key) throws -> Int? {
    guard let value = try decodeIfPresent(Int.self, forKey: key) else { return nil }
    guard value >= 0, value <= 1 << 40 else { throw invalid(key, "must be a whole number, 0 or more") }
    return value
  }

  package func port(_ key: Key) throws -> Int? {
    guard let value = try decodeIfPresent(Int.self, forKey: key) else { return nil }
    guard (0...65535).contains(value) else { throw invalid(key, "must be a port (0 to 65535)") }
    return value
  }

  /// A number within `range`.
  package func number(_ key: Key, in range: ClosedRange<Double>, _ what: String) throws -> Double? {
    guard let value = try decodeIfPresent(Double.self, forKey: key) else { return nil }
    guard range.contains(value) else { throw invalid(key, what) }
    return value
  }

  /// A serializer's name, one the node will have.
  package func serializer(_ key: Key, known: Set<String>) throws -> String? {
    guard let name = try decodeIfPresent(String.self, forKey: key) else { return nil }
    try check(serializers: [name], at: key, known: known)
    return name
  }

  package func check(serializers names: Set<String>, at key: Key, known: Set<String>) throws {
    if let unknown = names.subtracting(known).sorted().first {
      throw ConfigValueError(
        message: "'\(path(key))': no serializer named '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
    }
  }

  /// The path of a file the value names, resolved against the configuration's folder; the
  /// file must be readable (so a wrong path stops startup, not the first request).
  package func readablePath(_ key: Key, _ context: ConfigContext) throws -> String? {
    guard let name = try decodeIfPresent(String.self, forKey: key) else { return nil }
    let url = context.url(name)
    guard FileManager.default.isReadableFile(atPath: url.path) else {
      throw ConfigValueError(message: "cannot read '\(url.path)' ('\(path(key))')")
    }
    return url.path
  }

  /// The text of the file the value names (relative to the configuration's folder).
  package func fileText(_ key: Key, _ context: ConfigContext) throws -> String? {
    guard let name = try decodeIfPresent(String.self, forKey: key) else { return nil }
    let url = context.url(name)
    do {
      return try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw ConfigValueError(message: "cannot read TLS file '\(url.path)' ('\(path(key))'): \(error.localizedDescription)")
    }
  }
}
