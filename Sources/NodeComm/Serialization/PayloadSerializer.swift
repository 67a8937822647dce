public import Foundation
import MessagePack

/// Turns values into payload bytes and back.
///
/// Three ship with the node layer: ``JSONSerializer`` (`json`, the default),
/// ``BinarySerializer`` (`binary`, compact MessagePack) and ``RawSerializer`` (`raw`, bytes as
/// they are). Register your own with ``SerializerRegistry/register(_:)`` and choose it per
/// call, per method or as the default.
public protocol PayloadSerializer: Sendable {
  /// The name that travels with each payload so the receiver picks the same serializer.
  var name: String { get }
  func encode<T: Encodable>(_ value: T) throws -> Data
  func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T
}

/// JSON through Foundation's `JSONEncoder`; the default.
///
/// Single integers, booleans, plain strings and `Data` (base64, as `JSONEncoder` writes it)
/// take a direct path in both directions: a stream of small items spends its time on them.
public struct JSONSerializer: PayloadSerializer {
  public static let name = "json"
  public var name: String { Self.name }
  public init() {}

  public func encode<T: Encodable>(_ value: T) throws -> Data {
    if let direct = JSONScalars.encode(value) { return direct }
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    return try encoder.encode(value)
  }

  public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    if let direct = JSONScalars.decode(type, from: data) { return direct }
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return try decoder.decode(type, from: data)
  }
}

/// A compact binary encoding (MessagePack) of any `Codable` value.
public struct BinarySerializer: PayloadSerializer {
  public static let name = "binary"
  public var name: String { Self.name }
  public init() {}

  public func encode<T: Encodable>(_ value: T) throws -> Data {
    try MessagePackEncoder().encode(value)
  }

  public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    try MessagePackDecoder().decode(type, from: data)
  }
}

/// Bytes as they are: `Data` and `[UInt8]` only.
public struct RawSerializer: PayloadSerializer {
  public static let name = "raw"
  public var name: String { Self.name }
  public init() {}

  public func encode<T: Encodable>(_ value: T) throws -> Data {
    if let data = value as? Data { return data }
    if let bytes = value as? [UInt8] { return Data(bytes) }
    throw EncodingError.invalidValue(
      value, .init(codingPath: [], debugDescription: "the raw serializer takes Data or [UInt8], not \(T.self)"))
  }

  public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    if let value = data as? T { return value }
    if let value = [UInt8](data) as? T { return value }
    throw DecodingError.typeMismatch(
      T.self, .init(codingPath: [], debugDescription: "a raw payload decodes to Data or [UInt8], not \(T.self)"))
  }
}
