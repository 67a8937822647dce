package import Foundation

/// Encodes any `Encodable` value as MessagePack bytes.
///
/// Keyed containers become maps with string keys, unkeyed containers become arrays, and
/// every integer takes the smallest MessagePack form that holds it. A few Foundation types get
/// a compact form instead of their own `Codable` shape: `Data` and `[UInt8]` are `bin`
/// bytes, `Date` is a float64 of seconds since 1970 and `URL` is its absolute string.
/// `Float` is written as float32 and `Double` as float64. A value that encodes nothing is
/// written as an empty map, and `superEncoder()` of a keyed container writes under `"super"`.
///
/// ```swift
/// let bytes = try MessagePackEncoder().encode(["a": 1])  // 0x81 0xa1 0x61 0x01
/// ```
package struct MessagePackEncoder: Sendable {
  package init() {}

  /// The MessagePack encoding of `value`.
  ///
  /// - Throws: `EncodingError.invalidValue` for strings, data or containers longer than
  ///   `UInt32.max`, for nesting deeper than 512 levels, or whatever `value` itself throws.
  package func encode<T: Encodable>(_ value: T) throws -> Data {
    let node = try MessagePackEncodingNode.make(value, codingPath: [])
    var writer = MessagePackWriter(capacity: 256)
    try node.write(to: &writer, depth: 0)
    return Data(writer.bytes)
  }
}

/// A value with a fixed MessagePack form that bypasses its own `Encodable` implementation.
protocol MessagePackEncodableScalar {
  var messagePackValue: MessagePackValue { get }
}

extension Bool: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .bool(self) } }
extension String: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .string(self) } }
extension Float: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .float(self) } }
extension Double: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .double(self) } }
extension Int: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .int(Int64(self)) } }
extension Int8: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .int(Int64(self)) } }
extension Int16: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .int(Int64(self)) } }
extension Int32: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .int(Int64(self)) } }
extension Int64: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .int(self) } }
extension UInt: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .uint(UInt64(self)) } }
extension UInt8: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .uint(UInt64(self)) } }
extension UInt16: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .uint(UInt64(self)) } }
extension UInt32: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .uint(UInt64(self)) } }
extension UInt64: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .uint(self) } }
extension Data: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .binary(self) } }
extension Date: MessagePackEncodableScalar {
  var messagePackValue: MessagePackValue { .double(timeIntervalSince1970) }
}
extension URL: MessagePackEncodableScalar { var messagePackValue: MessagePackValue { .string(absoluteString) } }
extension Array: MessagePackEncodableScalar where Element == UInt8 {
  var messagePackValue: MessagePackValue { .binary(Data(self)) }
}

/// A node of the tree the encoder builds before writing bytes.
///
/// Containers are reference boxes because `Encoder` hands out containers that keep being
/// filled after they have been attached to their parent; `deferred` is an encoder (from
/// `superEncoder`) whose contents are read only when the tree is written.
enum MessagePackEncodingNode {
  case scalar(MessagePackValue)
  case array(MessagePackArrayBox)
  case map(MessagePackMapBox)
  case deferred(MessagePackEncoderImpl)

  /// The node for `value`, taking the scalar shortcut when there is one.
  static func make<T: Encodable>(_ value: T, codingPath: @autoclosure () -> [any CodingKey]) throws -> Self {
    if let scalar = value as? any MessagePackEncodableScalar { return .scalar(scalar.messagePackValue) }
    let encoder = MessagePackEncoderImpl(codingPath: codingPath())
    try value.encode(to: encoder)
    return encoder.node ?? .map(MessagePackMapBox())
  }

  func write(to writer: inout MessagePackWriter, depth: Int) throws {
    switch self {
    case .scalar(let value):
      try writer.write(value, depth: depth)
    case .array(let box):
      try MessagePackWriter.checkDepth(depth)
      try writer.writeArrayHeader(box.elements.count)
      for element in box.elements { try element.write(to: &writer, depth: depth + 1) }
    case .map(let box):
      try MessagePackWriter.checkDepth(depth)
      try writer.writeMapHeader(box.entries.count)
      for entry in box.entries {
        try writer.writeString(entry.key)
        try entry.value.write(to: &writer, depth: depth + 1)
      }
    case .deferred(let encoder):
      try (encoder.node ?? .map(MessagePackMapBox())).write(to: &writer, depth: depth)
    }
  }
}

/// The elements of an array being encoded.
final class MessagePackArrayBox {
  var elements: [MessagePackEncodingNode] = []
}

/// The entries of a map being encoded, in the order they were written.
final class MessagePackMapBox {
  var entries: [(key: String, value: MessagePackEncodingNode)] = []
}

/// The `Encoder` handed to `encode(to:)`; it is its own single-value container.
final class MessagePackEncoderImpl: Encoder, SingleValueEncodingContainer {
  let codingPath: [any CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }
  /// What has been encoded so far; `nil` until a container is requested or a value written.
  var node: MessagePackEncodingNode?

  init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

  func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
    let box: MessagePackMapBox
    if case .map(let existing)? = node {
      box = existing
    } else {
      box = MessagePackMapBox()
      node = .map(box)
    }
    return KeyedEncodingContainer(MessagePackKeyedEncoding<Key>(box: box, codingPath: codingPath))
  }

  func unkeyedContainer() -> any UnkeyedEncodingContainer {
    let box: MessagePackArrayBox
    if case .array(let existing)? = node {
      box = existing
    } else {
      box = MessagePackArrayBox()
      node = .array(box)
    }
    return MessagePackUnkeyedEncoding(box: box, codingPath: codingPath)
  }

  func singleValueContainer() -> any SingleValueEncodingContainer { self }

  private func set(_ value: MessagePackValue) { node = .scalar(value) }

  func encodeNil() { set(.nil) }
  func encode(_ value: Bool) { set(.bool(value)) }
  func encode(_ value: String) { set(.string(value)) }
  func encode(_ value: Double) { set(.double(value)) }
  func encode(_ value: Float) { set(.float(value)) }
  func encode(_ value: Int) { set(.int(Int64(value))) }
  func encode(_ value: Int8) { set(.int(Int64(value))) }
  func encode(_ value: Int16) { set(.int(Int64(value))) }
  func encode(_ value: Int32) { set(.int(Int64(value))) }
  func encode(_ value: Int64) { set(.int(value)) }
  func encode(_ value: UInt) { set(.uint(UInt64(value))) }
  func encode(_ value: UInt8) { set(.uint(UInt64(value))) }
  func encode(_ value: UInt16) { set(.uint(UInt64(value))) }
  func encode(_ value: UInt32) { set(.uint(UInt64(value))) }
  func encode(_ value: UInt64) { set(.uint(value)) }
  func encode<T: Encodable>(_ value: T) throws {
    node = try MessagePackEncodingNode.make(value, codingPath: codingPath)
  }
}

/// A keyed container writing into a map box.
struct MessagePackKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
  let box: MessagePackMapBox
  let codingPath: [any CodingKey]

  private func put(_ value: MessagePackValue, _ key: Key) { box.entries.append((key.stringValue, .scalar(value))) }

  mutating func encodeNil(forKey key: Key) { put(.nil, key) }
  mutating func encode(_ value: Bool, forKey key: Key) { put(.bool(value), key) }
  mutating func encode(_ value: String, forKey key: Key) { put(.string(value), key) }
  mutating func encode(_ value: Double, forKey key: Key) { put(.double(value), key) }
  mutating func encode(_ value: Float, forKey key: Key) { put(.float(value), key) }
  mutating func encode(_ value: Int, forKey key: Key) { put(.int(Int64(value)), key) }
  mutating func encode(_ value: Int8, forKey key: Key) { put(.int(Int64(value)), key) }
  mutating func encode(_ value: Int16, forKey key: Key) { put(.int(Int64(value)), key) }
  mutating func encode(_ value: Int32, forKey key: Key) { put(.int(Int64(value)), key) }
  mutating func encode(_ value: Int64, forKey key: Key) { put(.int(value), key) }
  mutating func encode(_ value: UInt, forKey key: Key) { put(.uint(UInt64(value)), key) }
  mutating func encode(_ value: UInt8, forKey key: Key) { put(.uint(UInt64(value)), key) }
  mutating func encode(_ value: UInt16, forKey key: Key) { put(.uint(UInt64(value)), key) }
  mutating func encode(_ value: UInt32, forKey key: Key) { put(.uint(UInt64(value)), key) }
  mutating func encode(_ value: UInt64, forKey key: Key) { put(.uint(value), key) }
  mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
    box.entries.append((key.stringValue, try .make(value, codingPath: codingPath + [key])))
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy keyType: NestedKey.Type, forKey key: Key
  ) -> KeyedEncodingContainer<NestedKey> {
    let nested = MessagePackMapBox()
    box.entries.append((key.stringValue, .map(nested)))
    return KeyedEncodingContainer(MessagePackKeyedEncoding<NestedKey>(box: nested, codingPath: codingPath + [key]))
  }

  mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
    let nested = MessagePackArrayBox()
    box.entries.append((key.stringValue, .array(nested)))
    return MessagePackUnkeyedEncoding(box: nested, codingPath: codingPath + [key])
  }

  mutating func superEncoder() -> any Encoder { superEncoder(key: MessagePackKey.super) }
  mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(key: key) }

  private func superEncoder(key: any CodingKey) -> any Encoder {
    let encoder = MessagePackEncoderImpl(codingPath: codingPath + [key])
    box.entries.append((key.stringValue, .deferred(encoder)))
    return encoder
  }
}

/// An unkeyed container writing into an array box.
struct MessagePackUnkeyedEncoding: UnkeyedEncodingContainer {
  let box: MessagePackArrayBox
  let codingPath: [any CodingKey]
  var count: Int { box.elements.count }

  private func put(_ value: MessagePackValue) { box.elements.append(.scalar(value)) }
  private var nextPath: [any CodingKey] { codingPath + [MessagePackKey(index: count)] }

  mutating func encodeNil() { put(.nil) }
  mutating func encode(_ value: Bool) { put(.bool(value)) }
  mutating func encode(_ value: String) { put(.string(value)) }
  mutating func encode(_ value: Double) { put(.double(value)) }
  mutating func encode(_ value: Float) { put(.float(value)) }
  mutating func encode(_ value: Int) { put(.int(Int64(value))) }
  mutating func encode(_ value: Int8) { put(.int(Int64(value))) }
  mutating func encode(_ value: Int16) { put(.int(Int64(value))) }
  mutating func encode(_ value: Int32) { put(.int(Int64(value))) }
  mutating func encode(_ value: Int64) { put(.int(value)) }
  mutating func encode(_ value: UInt) { put(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt8) { put(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt16) { put(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt32) { put(.uint(UInt64(value))) }
  mutating func encode(_ value: UInt64) { put(.uint(value)) }
  mutating func encode<T: Encodable>(_ value: T) throws {
    box.elements.append(try .make(value, codingPath: nextPath))
  }

  mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
    let nested = MessagePackMapBox()
    let path = nextPath
    box.elements.append(.map(nested))
    return KeyedEncodingContainer(MessagePackKeyedEncoding<NestedKey>(box: nested, codingPath: path))
  }

  mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
    let nested = MessagePackArrayBox()
    let path = nextPath
    box.elements.append(.array(nested))
    return MessagePackUnkeyedEncoding(box: nested, codingPath: path)
  }

  mutating func superEncoder() -> any Encoder {
    let encoder = MessagePackEncoderImpl(codingPath: nextPath)
    box.elements.append(.deferred(encoder))
    return encoder
  }
}

/// A coding key for array indices and the `"super"` key, used in coding paths.
struct MessagePackKey: CodingKey {
  static let `super` = MessagePackKey(stringValue: "super")

  let stringValue: String
  let intValue: Int?

  init(stringValue: String) {
    self.stringValue = stringValue
    intValue = nil
  }

  init(intValue: Int) {
    stringValue = "Index \(intValue)"
    self.intValue = intValue
  }

  init(index: Int) { self.init(intValue: index) }
}
