import Foundation
import Synchronization

/// The serializers a node knows, its default, and per-method choices.
///
/// The serializer of a call is, in order: the one named in the call, the one chosen for the
/// method, the default. A handler answers with the serializer its request came in.
///
/// ```swift
/// node.serializers.register(MyCBORSerializer())
/// node.serializers.use("binary", for: "matrix.multiply")
/// ```
public final class SerializerRegistry: Sendable {
  private struct State {
    var serializers: [String: any PayloadSerializer]
    var perMethod: [String: String] = [:]
    var defaultName: String
  }

  private let state: Mutex<State>

  /// The names of the serializers every registry has.
  public static let builtInNames: Set<String> = [JSONSerializer.name, BinarySerializer.name, RawSerializer.name]

  public init(defaultName: String = JSONSerializer.name) {
    let builtIn: [any PayloadSerializer] = [JSONSerializer(), BinarySerializer(), RawSerializer()]
    state = Mutex(
      State(serializers: Dictionary(uniqueKeysWithValues: builtIn.map { ($0.name, $0) }), defaultName: defaultName))
  }

  /// Adds (or replaces) a serializer under its name.
  public func register(_ serializer: any PayloadSerializer) {
    state.withLock { $0.serializers[serializer.name] = serializer }
  }

  /// Uses the named serializer for every call of `method` that names none itself.
  public func use(_ name: String, for method: String) {
    state.withLock { $0.perMethod[method] = name }
  }

  /// The serializer used when neither the call nor the method names one.
  public var defaultName: String {
    get { state.withLock { $0.defaultName } }
    set { state.withLock { $0.defaultName = newValue } }
  }

  /// The serializer registered under `name`.
  ///
  /// - Throws: ``NodeError`` `serializationFailed` when no serializer has that name.
  public func serializer(named name: String) throws(NodeError) -> any PayloadSerializer {
    guard let serializer = state.withLock({ $0.serializers[name] }) else {
      throw NodeError(code: .serializationFailed, message: "no serializer named '\(name)' is registered")
    }
    return serializer
  }

  /// The name to use for a call of `method`, given the caller's explicit choice.
  public func name(for method: String, explicit: String?) -> String {
    if let explicit { return explicit }
    return state.withLock { $0.perMethod[method] ?? $0.defaultName }
  }

  /// Encodes `value` for `method`; `Data` and `[UInt8]` pass raw unless a serializer is named.
  public func encode<T: Encodable>(_ value: T, method: String, explicit: String? = nil) throws(NodeError) -> Payload {
    if explicit == nil {
      if let data = value as? Data { return .raw(data) }
      if let bytes = value as? [UInt8] { return .raw(bytes) }
    }
    let name = name(for: method, explicit: explicit)
    let serializer = try serializer(named: name)
    do {
      return Payload(data: try serializer.encode(value), serializer: name)
    } catch {
      throw NodeError(
        code: .serializationFailed, message: "cannot encode \(T.self) with '\(name)': \(error)", method: method)
    }
  }

  /// Decodes `payload` as `T` with the serializer named in it.
  public func decode<T: Decodable>(_ type: T.Type, from payload: Payload, method: String) throws(NodeError) -> T {
    if payload.serializer == RawSerializer.name || payload.serializer.isEmpty {
      if let value = payload.data as? T { return value }
      if let value = [UInt8](payload.data) as? T { return value }
      if T.self == Empty.self, let value = Empty() as? T { return value }
    }
    let serializer = try serializer(named: payload.serializer.isEmpty ? RawSerializer.name : payload.serializer)
    do {
      return try serializer.decode(type, from: payload.data)
    } catch {
      throw NodeError(
        code: .serializationFailed,
        message: "cannot decode \(T.self) from a '\(payload.serializer)' payload of \(payload.data.count) bytes for '\(method)': \(Self.describe(error))",
        method: method, details: ["type": String(describing: T.self)])
    }
  }

  private static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
    case DecodingError.typeMismatch(let type, let context):
      let path = context.codingPath.map(\.stringValue).joined(separator: ".")
      return "field '\(path)' is not \(type)"
    case DecodingError.valueNotFound(let type, let context):
      let path = context.codingPath.map(\.stringValue).joined(separator: ".")
      return "field '\(path)' is null, expected \(type)"
    case DecodingError.dataCorrupted(let context): return "malformed data: \(context.debugDescription)"
    default: return String(describing: error)
    }
  }
}

/// A payload with no content, for methods that take or return nothing.
public struct Empty: Codable, Sendable, Equatable {
  public init() {}
}
