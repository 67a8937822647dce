package import Foundation

/// Decodes any `Decodable` value from MessagePack bytes.
///
/// The input is parsed in full first, so truncated input, unknown type bytes, invalid UTF-8,
/// declared lengths beyond the end of the buffer, nesting deeper than 512 levels and trailing
/// bytes after the top-level value all throw `DecodingError.dataCorrupted` before any value is
/// built. Decoding is lenient where no information is lost: every integer form decodes into
/// every integer type that holds the value (otherwise `dataCorrupted`), integral floats decode
/// as integers, and `Double`/`Float` accept floats and integers. `Data` and `[UInt8]` accept
/// `bin` or an array of bytes, `Date` accepts seconds since 1970 or the timestamp extension
/// (type -1), and `URL` accepts a string. A key that is absent throws
/// `DecodingError.keyNotFound`; a value of the wrong kind throws `DecodingError.typeMismatch`.
package struct MessagePackDecoder: Sendable {
  package init() {}

  /// Decodes a value of `type` from `data`, which must hold exactly one MessagePack value.
  package func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    let value = try MessagePackReader.parse(data)
    return try MessagePackDecoderImpl.unbox(type, value, codingPath: [])
  }
}

/// A type read straight from a ``MessagePackValue``, bypassing its own `Decodable` shape.
protocol MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws
}

extension MessagePackValue {
  func mismatch(_ type: Any.Type, _ codingPath: [any CodingKey]) -> DecodingError {
    .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "Expected \(type) but found \(kindDescription)"))
  }

  func corrupted(_ message: String, _ codingPath: [any CodingKey]) -> DecodingError {
    .dataCorrupted(.init(codingPath: codingPath, debugDescription: message))
  }
}

extension MessagePackDecodableScalar where Self: FixedWidthInteger {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    let result: Self?
    switch value {
    case .int(let number): result = Self(exactly: number)
    case .uint(let number): result = Self(exactly: number)
    case .float(let number): result = Self(exactly: number)
    case .double(let number): result = Self(exactly: number)
    default: throw value.mismatch(Self.self, codingPath())
    }
    guard let result else { throw value.corrupted("\(value.kindDescription) does not fit in \(Self.self)", codingPath()) }
    self = result
  }
}

extension MessagePackDecodableScalar where Self: BinaryFloatingPoint {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    switch value {
    case .float(let number): self.init(number)
    case .double(let number):
      self.init(number)
      if number.isFinite && !isFinite {
        throw value.corrupted("\(value.kindDescription) does not fit in \(Self.self)", codingPath())
      }
    case .int(let number): self.init(number)
    case .uint(let number): self.init(number)
    default: throw value.mismatch(Self.self, codingPath())
    }
  }
}

extension Int: MessagePackDecodableScalar {}
extension Int8: MessagePackDecodableScalar {}
extension Int16: MessagePackDecodableScalar {}
extension Int32: MessagePackDecodableScalar {}
extension Int64: MessagePackDecodableScalar {}
extension UInt: MessagePackDecodableScalar {}
extension UInt8: MessagePackDecodableScalar {}
extension UInt16: MessagePackDecodableScalar {}
extension UInt32: MessagePackDecodableScalar {}
extension UInt64: MessagePackDecodableScalar {}
extension Float: MessagePackDecodableScalar {}
extension Double: MessagePackDecodableScalar {}

extension Bool: MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    guard case .bool(let bool) = value else { throw value.mismatch(Bool.self, codingPath()) }
    self = bool
  }
}

extension String: MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    guard case .string(let string) = value else { throw value.mismatch(String.self, codingPath()) }
    self = string
  }
}

extension URL: MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    guard case .string(let string) = value else { throw value.mismatch(URL.self, codingPath()) }
    guard let url = URL(string: string) else { throw value.corrupted("Invalid URL string \"\(string)\"", codingPath()) }
    self = url
  }
}

extension Array: MessagePackDecodableScalar where Element == UInt8 {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    switch value {
    case .binary(let data): self.init(data)
    case .array(let elements):
      self = try elements.enumerated().map { index, element in
        try UInt8(messagePackValue: element, codingPath: codingPath() + [MessagePackKey(index: index)])
      }
    default: throw value.mismatch([UInt8].self, codingPath())
    }
  }
}

extension Data: MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    if case .binary(let data) = value {
      self = data
    } else {
      self.init(try [UInt8](messagePackValue: value, codingPath: codingPath()))
    }
  }
}

extension Date: MessagePackDecodableScalar {
  init(messagePackValue value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]) throws {
    switch value {
    case .double, .float, .int, .uint:
      self.init(timeIntervalSince1970: try Double(messagePackValue: value, codingPath: codingPath()))
    case .extension(-1, let data):
      // The timestamp extension: 32-bit seconds; 30-bit nanoseconds and 34-bit seconds;
      // or 32-bit nanoseconds and signed 64-bit seconds.
      let bytes = [UInt8](data)
      func number(_ range: Range<Int>) -> UInt64 { bytes[range].reduce(0) { $0 << 8 | UInt64($1) } }
      let seconds: Double, nanoseconds: UInt64
      switch bytes.count {
      case 4: (seconds, nanoseconds) = (Double(number(0..<4)), 0)
      case 8: (seconds, nanoseconds) = (Double(number(0..<8) & 0x3_ffff_ffff), number(0..<8) >> 34)
      case 12: (seconds, nanoseconds) = (Double(Int64(bitPattern: number(4..<12))), number(0..<4))
      default: throw value.corrupted("Timestamp extension of \(bytes.count) bytes", codingPath())
      }
      self.init(timeIntervalSince1970: seconds + Double(nanoseconds) / 1e9)
    default: throw value.mismatch(Date.self, codingPath())
    }
  }
}

/// A decoder that can tell bytes from other values: a type that holds "any value" (such as
/// a JSON value with a bytes case) asks it before trying the other shapes, since `Data` also
/// decodes from an array of small integers.
package protocol BinaryValueDecoding {
  /// The bytes, when the value being decoded is binary; nil otherwise.
  var binaryValue: Data? { get }
}

/// The `Decoder` handed to `init(from:)`, over one value; it is its own single-value container.
struct MessagePackDecoderImpl: Decoder, SingleValueDecodingContainer, BinaryValueDecoding {
  let value: MessagePackValue
  let codingPath: [any CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }

  /// Decodes `type` from `value`, taking the scalar shortcut when there is one.
  static func unbox<T: Decodable>(
    _ type: T.Type, _ value: MessagePackValue, codingPath: @autoclosure () -> [any CodingKey]
  ) throws -> T {
    if let scalar = T.self as? any MessagePackDecodableScalar.Type,
      let result = try scalar.init(messagePackValue: value, codingPath: codingPath()) as? T
    {
      return result
    }
    return try T(from: MessagePackDecoderImpl(value: value, codingPath: codingPath()))
  }

  func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
    guard case .map(let pairs) = value else { throw value.mismatch([String: Any].self, codingPath) }
    return KeyedDecodingContainer(try MessagePackKeyedDecoding<Key>(pairs: pairs, codingPath: codingPath))
  }

  func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
    switch value {
    case .array(let elements): return MessagePackUnkeyedDecoding(elements: elements, codingPath: codingPath)
    case .binary(let data):
      return MessagePackUnkeyedDecoding(elements: data.map { .uint(UInt64($0)) }, codingPath: codingPath)
    default: throw value.mismatch([Any].self, codingPath)
    }
  }

  func singleValueContainer() -> any SingleValueDecodingContainer { self }

  var binaryValue: Data? {
    if case .binary(let data) = value { data } else { nil }
  }

  func decodeNil() -> Bool {
    if case .nil = value { true } else { false }
  }

  private func get<T: MessagePackDecodableScalar>(_: T.Type) throws -> T {
    try T(messagePackValue: value, codingPath: codingPath)
  }

  func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
  func decode(_ type: String.Type) throws -> String { try get(type) }
  func decode(_ type: Double.Type) throws -> Double { try get(type) }
  func decode(_ type: Float.Type) throws -> Float { try get(type) }
  func decode(_ type: Int.Type) throws -> Int { try get(type) }
  func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
  func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
  func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
  func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
  func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
  func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
  func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
  func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
  func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
  func decode<T: Decodable>(_ type: T.Type) throws -> T { try Self.unbox(type, value, codingPath: codingPath) }
}

/// A keyed container over a map; small maps are searched in order, larger ones indexed.
struct MessagePackKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
  let pairs: [(key: MessagePackValue, value: MessagePackValue)]
  let codingPath: [any CodingKey]
  private let index: [String: Int]?

  init(pairs: [(key: MessagePackValue, value: MessagePackValue)], codingPath: [any CodingKey]) throws {
    self.pairs = pairs
    self.codingPath = codingPath
    var index: [String: Int]? = pairs.count > 8 ? Dictionary(minimumCapacity: pairs.count) : nil
    for (position, pair) in pairs.enumerated() {
      guard let name = Self.name(of: pair.key) else {
        throw pair.key.mismatch(String.self, codingPath + [MessagePackKey(index: position)])
      }
      if index != nil, index?[name] == nil { index?[name] = position }
    }
    self.index = index
  }

  /// The key as a string: strings as they are, integers in decimal, anything else `nil`.
  private static func name(of key: MessagePackValue) -> String? {
    switch key {
    case .string(let string): string
    case .int(let number): String(number)
    case .uint(let number): String(number)
    default: nil
    }
  }

  var allKeys: [Key] { pairs.compactMap { Self.name(of: $0.key).flatMap(Key.init(stringValue:)) } }

  private func lookup(_ name: String) -> MessagePackValue? {
    if let index { return index[name].map { pairs[$0].value } }
    return pairs.first { Self.name(of: $0.key) == name }?.value
  }

  func contains(_ key: Key) -> Bool { lookup(key.stringValue) != nil }

  private func require(_ key: Key) throws -> MessagePackValue {
    guard let value = lookup(key.stringValue) else {
      throw DecodingError.keyNotFound(
        key, .init(codingPath: codingPath, debugDescription: "No value for key \"\(key.stringValue)\""))
    }
    return value
  }

  private func get<T: MessagePackDecodableScalar>(_: T.Type, _ key: Key) throws -> T {
    try T(messagePackValue: require(key), codingPath: codingPath + [key])
  }

  func decodeNil(forKey key: Key) throws -> Bool {
    if case .nil = try require(key) { true } else { false }
  }

  func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try get(type, key) }
  func decode(_ type: String.Type, forKey key: Key) throws -> String { try get(type, key) }
  func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try get(type, key) }
  func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try get(type, key) }
  func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try get(type, key) }
  func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try get(type, key) }
  func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try get(type, key) }
  func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try get(type, key) }
  func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try get(type, key) }
  func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try get(type, key) }
  func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try get(type, key) }
  func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try get(type, key) }
  func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try get(type, key) }
  func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try get(type, key) }
  func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
    try MessagePackDecoderImpl.unbox(type, require(key), codingPath: codingPath + [key])
  }

  private func decoder(for key: any CodingKey, value: MessagePackValue) -> MessagePackDecoderImpl {
    MessagePackDecoderImpl(value: value, codingPath: codingPath + [key])
  }

  func nestedContainer<NestedKey: CodingKey>(
    keyedBy type: NestedKey.Type, forKey key: Key
  ) throws -> KeyedDecodingContainer<NestedKey> {
    try decoder(for: key, value: require(key)).container(keyedBy: type)
  }

  func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
    try decoder(for: key, value: require(key)).unkeyedContainer()
  }

  func superDecoder() throws -> any Decoder {
    decoder(for: MessagePackKey.super, value: lookup(MessagePackKey.super.stringValue) ?? .nil)
  }

  func superDecoder(forKey key: Key) throws -> any Decoder {
    decoder(for: key, value: lookup(key.stringValue) ?? .nil)
  }
}

/// An unkeyed container over an array; the index moves only when a decode succeeds.
struct MessagePackUnkeyedDecoding: UnkeyedDecodingContainer {
  let elements: [MessagePackValue]
  let codingPath: [any CodingKey]
  private(set) var currentIndex = 0

  init(elements: [MessagePackValue], codingPath: [any CodingKey]) {
    self.elements = elements
    self.codingPath = codingPath
  }

  var count: Int? { elements.count }
  var isAtEnd: Bool { currentIndex >= elements.count }
  private var path: [any CodingKey] { codingPath + [MessagePackKey(index: currentIndex)] }

  private func peek(_ type: Any.Type) throws -> MessagePackValue {
    guard !isAtEnd else {
      throw DecodingError.valueNotFound(
        type, .init(codingPath: path, debugDescription: "Unkeyed container is at end (\(elements.count) elements)"))
    }
    return elements[currentIndex]
  }

  private mutating func get<T: MessagePackDecodableScalar>(_ type: T.Type) throws -> T {
    let value = try T(messagePackValue: peek(type), codingPath: path)
    currentIndex += 1
    return value
  }

  mutating func decodeNil() throws -> Bool {
    guard case .nil = try peek(Any?.self) else { return false }
    currentIndex += 1
    return true
  }

  mutating func decode(_ type: Bool.Type) throws -> Bool { try get(type) }
  mutating func decode(_ type: String.Type) throws -> String { try get(type) }
  mutating func decode(_ type: Double.Type) throws -> Double { try get(type) }
  mutating func decode(_ type: Float.Type) throws -> Float { try get(type) }
  mutating func decode(_ type: Int.Type) throws -> Int { try get(type) }
  mutating func decode(_ type: Int8.Type) throws -> Int8 { try get(type) }
  mutating func decode(_ type: Int16.Type) throws -> Int16 { try get(type) }
  mutating func decode(_ type: Int32.Type) throws -> Int32 { try get(type) }
  mutating func decode(_ type: Int64.Type) throws -> Int64 { try get(type) }
  mutating func decode(_ type: UInt.Type) throws -> UInt { try get(type) }
  mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try get(type) }
  mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try get(type) }
  mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try get(type) }
  mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try get(type) }
  mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
    let value = try MessagePackDecoderImpl.unbox(type, peek(type), codingPath: path)
    currentIndex += 1
    return value
  }

  private func nextDecoder(_ type: Any.Type) throws -> MessagePackDecoderImpl {
    MessagePackDecoderImpl(value: try peek(type), codingPath: path)
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy type: NestedKey.Type
  ) throws -> KeyedDecodingContainer<NestedKey> {
    let container = try nextDecoder([String: Any].self).container(keyedBy: type)
    currentIndex += 1
    return container
  }

  mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
    let container = try nextDecoder([Any].self).unkeyedContainer()
    currentIndex += 1
    return container
  }

  mutating func superDecoder() throws -> any Decoder {
    let decoder = try nextDecoder((any Decoder).self)
    currentIndex += 1
    return decoder
  }
}
