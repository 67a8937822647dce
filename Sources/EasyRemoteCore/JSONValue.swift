public import Foundation
import MessagePack
import NodeComm

/// Any JSON value: how arguments travel from clients (Swift, the command line, HTTP) to the
/// node that decodes them into the function's parameter types.
public enum JSONValue: Sendable, Equatable, Codable {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])
  /// Bytes. A binary serializer carries them as they are; as JSON text they are a base64
  /// string, as `JSONEncoder` writes `Data` (and they equal that string).
  case bytes(Data)

  public init(from decoder: any Decoder) throws {
    if let binary = (decoder as? any BinaryValueDecoding)?.binaryValue {
      self = .bytes(binary)
      return
    }
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Int64.self) {
      self = .int(value)
    } else if let value = try? container.decode(Double.self) {
      self = .double(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let value): try container.encode(value)
    case .int(let value): try container.encode(value)
    case .double(let value): try container.encode(value)
    case .string(let value): try container.encode(value)
    case .array(let value): try container.encode(value)
    case .object(let value): try container.encode(value)
    case .bytes(let value): try container.encode(value)
    }
  }

  public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): true
    case (.bool(let a), .bool(let b)): a == b
    case (.int(let a), .int(let b)): a == b
    case (.double(let a), .double(let b)): a == b
    case (.string(let a), .string(let b)): a == b
    case (.array(let a), .array(let b)): a == b
    case (.object(let a), .object(let b)): a == b
    case (.bytes(let a), .bytes(let b)): a == b
    case (.bytes(let data), .string(let text)), (.string(let text), .bytes(let data)): data.base64EncodedString() == text
    default: false
    }
  }

  /// Whether bytes are somewhere in the value (a binary serializer then carries it best).
  package var containsBytes: Bool {
    switch self {
    case .bytes: true
    case .array(let values): values.contains { $0.containsBytes }
    case .object(let values): values.values.contains { $0.containsBytes }
    default: false
    }
  }

  /// The JSON form of any `Encodable` value.
  public init(encoding value: some Encodable) throws {
    // The common types directly, as JSONEncoder would write them (Data as bytes, which
    // JSON writes as base64).
    switch value {
    case let value as JSONValue: self = value; return
    case let value as String: self = .string(value); return
    case let value as Bool: self = .bool(value); return
    case let value as Int: self = .int(Int64(value)); return
    case let value as Int64: self = .int(value); return
    case let value as Double where value.isFinite:
      // JSONEncoder writes 3.0 as 3, which reads back as an integer.
      self = value.rounded() == value && abs(value) < 1e15 ? .int(Int64(value)) : .double(value)
      return
    case let value as Data: self = .bytes(value); return
    default: break
    }
    let data = try JSONEncoder().encode(value)
    self = try JSONDecoder().decode(JSONValue.self, from: data)
  }

  /// Parses JSON text (a literal such as `3`, `"text"`, `[1,2]`, `{"a":1}`).
  public init(parsing text: String) throws {
    self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
  }

  /// This value decoded as `T`.
  public func decode<T: Decodable>(as type: T.Type) throws -> T {
    if let value = self as? T { return value }
    // The common types directly (Data from base64, as JSONDecoder reads it).
    switch self {
    case .string(let text):
      if T.self == String.self, let value = text as? T { return value }
      if T.self == Data.self, let data = Data(base64Encoded: text), let value = data as? T { return value }
    case .int(let number):
      if T.self == Int.self, let value = Int(exactly: number) as? T { return value }
      if T.self == Double.self, let value = Double(number) as? T { return value }
    case .double(let number):
      if T.self == Double.self, let value = number as? T { return value }
    case .bool(let flag):
      if T.self == Bool.self, let value = flag as? T { return value }
    case .bytes(let data):
      if T.self == Data.self, let value = data as? T { return value }
      if T.self == [UInt8].self, let value = [UInt8](data) as? T { return value }
    default:
      break
    }
    return try JSONDecoder().decode(T.self, from: try JSONEncoder().encode(self))
  }

  /// Compact JSON text.
  public var jsonText: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "null"
  }
}
