package import Foundation

/// The JSON of single scalars without `JSONEncoder`/`JSONDecoder`. Each function returns nil
/// when the value or text is not one of its simple forms, and the caller takes the general
/// path, so the result is always what Foundation would produce or accept.
package enum JSONScalars {
  private static let quote = UInt8(ascii: "\"")
  private static let backslash = UInt8(ascii: "\\")

  package static func encode<T>(_ value: T) -> Data? {
    switch value {
    case let number as Int: return Data(String(number).utf8)
    case let number as Int64: return Data(String(number).utf8)
    case let flag as Bool: return Data((flag ? "true" : "false").utf8)
    case let text as String:
      guard text.utf8.allSatisfy(isPlain) else { return nil }
      return quotedEscapingSlashes(text.utf8, count: text.utf8.count)
    case let bytes as Data:
      let base64 = bytes.base64EncodedData()
      return quotedEscapingSlashes(base64, count: base64.count)
    default: return nil
    }
  }

  package static func decode<T>(_ type: T.Type, from data: Data) -> T? {
    if T.self == Int.self { return integer(data).flatMap { Int(exactly: $0) } as? T }
    if T.self == Double.self { return number(data) as? T }
    if T.self == Int64.self { return integer(data) as? T }
    if T.self == Bool.self {
      if data.elementsEqual("true".utf8) { return true as? T }
      if data.elementsEqual("false".utf8) { return false as? T }
      return nil
    }
    if T.self == String.self { return quoted(data).flatMap { String(validating: $0, as: UTF8.self) } as? T }
    if T.self == Data.self { return quoted(data).flatMap { Data(base64Encoded: Data($0)) } as? T }
    return nil
  }

  private static let slash = UInt8(ascii: "/")

  /// `"…"` around `bytes`, with `/` written `\/` as JSONEncoder writes it by default.
  private static func quotedEscapingSlashes(_ bytes: some Sequence<UInt8>, count: Int) -> Data {
    var text: [UInt8] = []
    text.reserveCapacity(count + count / 16 + 2)
    text.append(quote)
    for byte in bytes {
      if byte == slash { text.append(backslash) }
      text.append(byte)
    }
    text.append(quote)
    return Data(text)
  }

  /// A byte a JSON string may hold without an escape (`/` is escaped when written, as
  /// JSONEncoder does, but read either way).
  private static func isPlain(_ byte: UInt8) -> Bool {
    byte >= 0x20 && byte != quote && byte != backslash
  }

  /// `-?(0|[1-9][0-9]{0,17})` as a number (shorter than any overflow).
  private static func integer(_ data: Data) -> Int64? {
    guard !data.isEmpty, data.count <= 19 else { return nil }
    var negative = false
    var value: Int64 = 0
    var digits = 0
    for (offset, byte) in data.enumerated() {
      if offset == 0, byte == UInt8(ascii: "-") {
        negative = true
        continue
      }
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 18 else { return nil }
      value = value * 10 + Int64(byte - UInt8(ascii: "0"))
      digits += 1
    }
    guard digits > 0, digits == 1 || data[data.startIndex + (negative ? 1 : 0)] != UInt8(ascii: "0") else {
      return nil
    }
    return negative ? -value : value
  }

  /// A JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, at most 32 bytes) as a
  /// `Double`, as `JSONDecoder` reads it.
  private static func number(_ data: Data) -> Double? {
    guard !data.isEmpty, data.count <= 32 else { return nil }
    let bytes = Array(data)
    var index = 0
    func digits() -> Int {
      let start = index
      while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
      return index - start
    }
    if bytes[index] == UInt8(ascii: "-") { index += 1 }
    let leading = index
    let whole = digits()
    guard whole > 0, whole == 1 || bytes[leading] != UInt8(ascii: "0") else { return nil }
    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
      index += 1
      guard digits() > 0 else { return nil }
    }
    if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
      index += 1
      if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
      guard digits() > 0 else { return nil }
    }
    guard index == bytes.count, let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
    return value
  }

  /// The bytes between the quotes of a string with no escapes or control characters.
  private static func quoted(_ data: Data) -> Data.SubSequence? {
    guard data.count >= 2, data.first == quote, data.last == quote else { return nil }
    let inner = data[(data.startIndex + 1)..<(data.endIndex - 1)]
    return inner.allSatisfy(isPlain) ? inner : nil
  }
}
