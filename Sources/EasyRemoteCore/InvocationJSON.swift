import Foundation
import NodeComm

/// The common call in JSON without `JSONEncoder`/`JSONDecoder`: a function, positional
/// arguments that are single scalars (whole numbers, numbers, true/false, strings without
/// escapes), no keyword arguments. Each function returns nil for anything else, and the
/// caller takes the general path — so what it writes is what `TypedCall` encodes and what it
/// reads is read as ``ArgumentReader`` reads it.
enum InvocationJSON {
  /// `{"function":…,"args":[…],"kwargs":{}}` (and `"node":…`), or nil.
  static func encode<each A: Encodable>(function: String, args: (repeat each A), node: String?) -> Data? {
    guard let name = JSONScalars.encode(function) else { return nil }
    var text = Data("{\"function\":".utf8)
    text.append(name)
    text.append(contentsOf: ",\"args\":[".utf8)
    var first = true
    for argument in repeat each args {
      // Bytes go as MessagePack (``TypedCall/serializer``); doubles as JSONEncoder writes them.
      if argument is Data || argument is Double || argument is Float { return nil }
      guard let value = JSONScalars.encode(argument) else { return nil }
      if !first { text.append(UInt8(ascii: ",")) }
      first = false
      text.append(value)
    }
    text.append(contentsOf: "],\"kwargs\":{}".utf8)
    if let node {
      guard let target = JSONScalars.encode(node) else { return nil }
      text.append(contentsOf: ",\"node\":".utf8)
      text.append(target)
    }
    text.append(UInt8(ascii: "}"))
    return text
  }

  /// The positional arguments as the parameter types, or nil when the call is not of the
  /// simple form, or does not give exactly one argument of a simple type per parameter.
  static func arguments<each A: Decodable>(_ types: repeat (each A).Type, from data: Data) -> (repeat each A)? {
    var scanner = Scanner(data)
    guard let elements = scanner.arguments() else { return nil }
    var count = 0
    for _ in repeat (each A).self { count += 1 }
    guard elements.count == count else { return nil }
    var index = 0
    func next<T: Decodable>(_ type: T.Type) -> T? {
      defer { index += 1 }
      return JSONScalars.decode(T.self, from: elements[index])
    }
    let values = (repeat next((each A).self))
    for value in repeat each values {
      if value == nil { return nil }
    }
    return (repeat (each values)!)
  }

  /// Reads `{"function": "…", "args": [scalars], "kwargs": {}, "node": "…"|null}` in any key
  /// order; nil at the first thing it does not expect.
  struct Scanner {
    let bytes: [UInt8]
    var index = 0

    init(_ data: Data) { bytes = Array(data) }

    mutating func arguments() -> [Data]? {
      var elements: [Data]?
      var seen: Set<String> = []
      guard take("{") else { return nil }
      if take("}") { return nil }  // no function
      repeat {
        guard let key = plainString(), seen.insert(key).inserted, take(":") else { return nil }
        switch key {
        case "function":
          guard plainString() != nil else { return nil }
        case "node":
          if !literal("null") { guard plainString() != nil else { return nil } }
        case "kwargs":
          guard take("{"), take("}") else { return nil }
        case "args":
          guard let list = scalarList() else { return nil }
          elements = list
        default:
          return nil
        }
      } while take(",")
      guard take("}"), seen.contains("function") else { return nil }
      skipSpace()
      guard index == bytes.count else { return nil }
      return elements ?? []
    }

    private mutating func skipSpace() {
      while index < bytes.count, Self.isSpace(bytes[index]) { index += 1 }
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// A byte of a number or of true/false (JSONScalars checks the token itself).
    private static func isTokenByte(_ byte: UInt8) -> Bool {
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"),
        UInt8(ascii: "E"), UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "u"), UInt8(ascii: "f"), UInt8(ascii: "a"),
        UInt8(ascii: "l"), UInt8(ascii: "s"):
        true
      default: false
      }
    }

    private mutating func take(_ character: Unicode.Scalar) -> Bool {
      skipSpace()
      guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
      index += 1
      return true
    }

    private mutating func literal(_ word: StaticString) -> Bool {
      skipSpace()
      let count = word.utf8CodeUnitCount
      guard index + count <= bytes.count else { return false }
      let matches = word.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
      if matches { index += count }
      return matches
    }

    /// A string with no escapes or control characters.
    private mutating func plainString() -> String? {
      skipSpace()
      guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
      var end = index + 1
      while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
        guard bytes[end] >= 0x20, bytes[end] != UInt8(ascii: "\\") else { return nil }
        end += 1
      }
      guard end < bytes.count, let text = String(validating: bytes[(index + 1)..<end], as: UTF8.self) else { return nil }
      index = end + 1
      return text
    }

    /// `[token, …]`: each a number, true/false or a plain string (its bytes, for JSONScalars).
    private mutating func scalarList() -> [Data]? {
      guard take("[") else { return nil }
      var list: [Data] = []
      if take("]") { return list }
      repeat {
        skipSpace()
        let start = index
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "\"") {
          guard plainString() != nil else { return nil }
        } else {
          while index < bytes.count, bytes[index] != UInt8(ascii: ","), bytes[index] != UInt8(ascii: "]"),
            !Self.isSpace(bytes[index])
          {
            guard Self.isTokenByte(bytes[index]) else { return nil }
            index += 1
          }
          guard index > start else { return nil }
        }
        list.append(Data(bytes[start..<index]))
      } while take(",")
      guard take("]") else { return nil }
      return list
    }
  }
}
