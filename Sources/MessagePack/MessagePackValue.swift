import Foundation

/// One MessagePack value, as read from bytes or as written by the encoder.
///
/// ``MessagePackDecoder`` first parses its input into a tree of these values (checking every
/// length against the bytes that are left), then decodes the `Decodable` type from the tree.
/// ``MessagePackEncoder`` uses the scalar cases as the leaves of its own tree. Integers keep
/// their sign: non-negative values read from any `uint` form are `.uint`, values read from
/// `int` forms or negative fixints are `.int`.
enum MessagePackValue: Sendable {
  case `nil`
  case bool(Bool)
  case int(Int64)
  case uint(UInt64)
  case float(Float)
  case double(Double)
  case string(String)
  case binary(Data)
  case array([MessagePackValue])
  case map([(key: MessagePackValue, value: MessagePackValue)])
  case `extension`(type: Int8, data: Data)

  /// The deepest nesting of arrays and maps that is read or written.
  static let maxDepth = 512

  /// A short name of the value's kind, for error messages.
  var kindDescription: String {
    switch self {
    case .nil: "nil"
    case .bool: "a boolean"
    case .int(let value): "the integer \(value)"
    case .uint(let value): "the integer \(value)"
    case .float(let value): "the number \(value)"
    case .double(let value): "the number \(value)"
    case .string: "a string"
    case .binary: "binary data"
    case .array: "an array"
    case .map: "a map"
    case .extension(let type, _): "an extension value of type \(type)"
    }
  }
}

/// Appends MessagePack encodings to a byte buffer, always in the smallest form that fits.
///
/// Lengths above `UInt32.max` cannot be expressed in MessagePack and throw
/// `EncodingError.invalidValue`.
struct MessagePackWriter {
  var bytes: [UInt8] = []

  init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

  mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
  }

  mutating func writeNil() { bytes.append(0xc0) }

  mutating func writeBool(_ value: Bool) { bytes.append(value ? 0xc3 : 0xc2) }

  mutating func writeUInt(_ value: UInt64) {
    switch value {
    case 0...0x7f: bytes.append(UInt8(value))
    case ...0xff: bytes.append(0xcc); bytes.append(UInt8(value))
    case ...0xffff: bytes.append(0xcd); appendBigEndian(UInt16(value))
    case ...0xffff_ffff: bytes.append(0xce); appendBigEndian(UInt32(value))
    default: bytes.append(0xcf); appendBigEndian(value)
    }
  }

  mutating func writeInt(_ value: Int64) {
    switch value {
    case 0...: writeUInt(UInt64(value))
    case (-32)...: bytes.append(UInt8(truncatingIfNeeded: value))
    case Int64(Int8.min)...: bytes.append(0xd0); bytes.append(UInt8(truncatingIfNeeded: value))
    case Int64(Int16.min)...: bytes.append(0xd1); appendBigEndian(Int16(value))
    case Int64(Int32.min)...: bytes.append(0xd2); appendBigEndian(Int32(value))
    default: bytes.append(0xd3); appendBigEndian(value)
    }
  }

  mutating func writeFloat(_ value: Float) { bytes.append(0xca); appendBigEndian(value.bitPattern) }

  mutating func writeDouble(_ value: Double) { bytes.append(0xcb); appendBigEndian(value.bitPattern) }

  /// Writes a length-prefixed header: the fix form when `count <= fixMax`, else 8/16/32-bit.
  private mutating func writeHeader(
    _ count: Int, fix: UInt8?, fixMax: Int, codes: (UInt8?, UInt8, UInt8), what: String
  ) throws {
    if let fix, count <= fixMax {
      bytes.append(fix | UInt8(count))
    } else if let code8 = codes.0, count <= 0xff {
      bytes.append(code8); bytes.append(UInt8(count))
    } else if count <= 0xffff {
      bytes.append(codes.1); appendBigEndian(UInt16(count))
    } else if count <= 0xffff_ffff {
      bytes.append(codes.2); appendBigEndian(UInt32(count))
    } else {
      throw EncodingError.invalidValue(
        count, .init(codingPath: [], debugDescription: "\(what) of length \(count) is too long for MessagePack"))
    }
  }

  mutating func writeString(_ value: String) throws {
    var value = value
    try value.withUTF8 { utf8 in
      try writeHeader(utf8.count, fix: 0xa0, fixMax: 31, codes: (0xd9, 0xda, 0xdb), what: "string")
      bytes.append(contentsOf: utf8)
    }
  }

  mutating func writeBinary<Bytes: Collection<UInt8>>(_ value: Bytes) throws {
    try writeHeader(value.count, fix: nil, fixMax: -1, codes: (0xc4, 0xc5, 0xc6), what: "binary data")
    // A large value: room for it and what usually follows, so that it is copied once (a
    // memcpy); growing at least geometrically, so that many of them stay linear.
    if value.count >= 64 << 10 {
      bytes.reserveCapacity(Swift.max(bytes.count + value.count + 1024, bytes.capacity * 2))
    }
    if value.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil {
      bytes.append(contentsOf: value)
    }
  }

  mutating func writeArrayHeader(_ count: Int) throws {
    try writeHeader(count, fix: 0x90, fixMax: 15, codes: (nil, 0xdc, 0xdd), what: "array")
  }

  mutating func writeMapHeader(_ count: Int) throws {
    try writeHeader(count, fix: 0x80, fixMax: 15, codes: (nil, 0xde, 0xdf), what: "map")
  }

  mutating func writeExtension(type: Int8, data: Data) throws {
    let fixCodes: [Int: UInt8] = [1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8]
    if let code = fixCodes[data.count] {
      bytes.append(code)
    } else {
      try writeHeader(data.count, fix: nil, fixMax: -1, codes: (0xc7, 0xc8, 0xc9), what: "extension data")
    }
    bytes.append(UInt8(bitPattern: type))
    bytes.append(contentsOf: data)
  }

  /// Writes any value, recursing into arrays and maps up to ``MessagePackValue/maxDepth``.
  mutating func write(_ value: MessagePackValue, depth: Int = 0) throws {
    switch value {
    case .nil: writeNil()
    case .bool(let value): writeBool(value)
    case .int(let value): writeInt(value)
    case .uint(let value): writeUInt(value)
    case .float(let value): writeFloat(value)
    case .double(let value): writeDouble(value)
    case .string(let value): try writeString(value)
    case .binary(let value): try writeBinary(value)
    case .extension(let type, let data): try writeExtension(type: type, data: data)
    case .array(let elements):
      try Self.checkDepth(depth)
      try writeArrayHeader(elements.count)
      for element in elements { try write(element, depth: depth + 1) }
    case .map(let pairs):
      try Self.checkDepth(depth)
      try writeMapHeader(pairs.count)
      for pair in pairs {
        try write(pair.key, depth: depth + 1)
        try write(pair.value, depth: depth + 1)
      }
    }
  }

  /// Throws when a container at `depth` (0 for the top level) would exceed the nesting limit.
  static func checkDepth(_ depth: Int) throws {
    guard depth < MessagePackValue.maxDepth else {
      throw EncodingError.invalidValue(
        depth,
        .init(codingPath: [], debugDescription: "nesting deeper than \(MessagePackValue.maxDepth) levels"))
    }
  }
}

/// Parses MessagePack bytes into a ``MessagePackValue`` tree without trusting declared lengths.
///
/// Every length is checked against the bytes that remain before anything is allocated, so a
/// header claiming gigabytes in a short buffer fails fast. Problems throw
/// `DecodingError.dataCorrupted` naming the offset.
struct MessagePackReader {
  private let bytes: UnsafeRawBufferPointer
  private(set) var offset = 0

  init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  /// Parses exactly one value that must span the whole buffer.
  static func parse(_ data: Data) throws -> MessagePackValue {
    try data.withUnsafeBytes { buffer in
      var reader = MessagePackReader(buffer)
      guard !buffer.isEmpty else { throw corrupted("empty input: expected a MessagePack value") }
      let value = try reader.readValue(depth: 0)
      guard reader.offset == buffer.count else {
        throw corrupted(
          "\(buffer.count - reader.offset) unexpected trailing byte(s) after the top-level value at offset \(reader.offset)")
      }
      return value
    }
  }

  static func corrupted(_ message: String) -> DecodingError {
    .dataCorrupted(.init(codingPath: [], debugDescription: "Invalid MessagePack data: \(message)"))
  }

  private var remaining: Int { bytes.count - offset }

  private mutating func need(_ count: Int, _ what: @autoclosure () -> String) throws {
    guard count <= remaining else {
      throw Self.corrupted(
        "truncated \(what()) at offset \(offset): needs \(count) byte(s), only \(remaining) left")
    }
  }

  private mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
    try need(MemoryLayout<T>.size, what())
    defer { offset += MemoryLayout<T>.size }
    return T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
  }

  private mutating func readLength(_ width: Int, _ what: String) throws -> Int {
    switch width {
    case 1: Int(try read(UInt8.self, "\(what) length"))
    case 2: Int(try read(UInt16.self, "\(what) length"))
    default: Int(try read(UInt32.self, "\(what) length"))
    }
  }

  private mutating func readBytes(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
    try need(count, what)
    defer { offset += count }
    return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
  }

  private mutating func readString(_ count: Int) throws -> MessagePackValue {
    let start = offset
    let raw = try readBytes(count, "string of \(count) byte(s)")
    let string = raw.withMemoryRebound(to: UInt8.self) { String(validating: $0, as: UTF8.self) }
    guard let string else { throw Self.corrupted("string at offset \(start) is not valid UTF-8") }
    return .string(string)
  }

  private mutating func readArray(_ count: Int, depth: Int) throws -> MessagePackValue {
    try checkDepth(depth)
    // Every element takes at least one byte.
    try need(count, "array of \(count) element(s)")
    var elements: [MessagePackValue] = []
    elements.reserveCapacity(count)
    for _ in 0..<count { elements.append(try readValue(depth: depth + 1)) }
    return .array(elements)
  }

  private mutating func readMap(_ count: Int, depth: Int) throws -> MessagePackValue {
    try checkDepth(depth)
    // Every key and every value takes at least one byte.
    guard count <= remaining / 2 else { throw Self.corrupted("truncated map of \(count) entries at offset \(offset)") }
    var pairs: [(key: MessagePackValue, value: MessagePackValue)] = []
    pairs.reserveCapacity(count)
    for _ in 0..<count {
      let key = try readValue(depth: depth + 1)
      pairs.append((key, try readValue(depth: depth + 1)))
    }
    return .map(pairs)
  }

  private mutating func readExtension(_ count: Int) throws -> MessagePackValue {
    let type = try read(Int8.self, "extension type")
    return .extension(type: type, data: Data(try readBytes(count, "extension of \(count) byte(s)")))
  }

  private func checkDepth(_ depth: Int) throws {
    guard depth < MessagePackValue.maxDepth else {
      throw Self.corrupted("nesting deeper than \(MessagePackValue.maxDepth) levels at offset \(offset)")
    }
  }

  /// Reads one value; `depth` counts the arrays and maps it is inside.
  mutating func readValue(depth: Int) throws -> MessagePackValue {
    let typeOffset = offset
    let byte = try read(UInt8.self, "value")
    switch byte {
    case 0x00...0x7f: return .uint(UInt64(byte))
    case 0x80...0x8f: return try readMap(Int(byte & 0x0f), depth: depth)
    case 0x90...0x9f: return try readArray(Int(byte & 0x0f), depth: depth)
    case 0xa0...0xbf: return try readString(Int(byte & 0x1f))
    case 0xc0: return .nil
    case 0xc2: return .bool(false)
    case 0xc3: return .bool(true)
    case 0xc4...0xc6:
      let count = try readLength(1 << Int(byte - 0xc4), "binary")
      return .binary(Data(try readBytes(count, "binary data of \(count) byte(s)")))
    case 0xc7...0xc9: return try readExtension(try readLength(1 << Int(byte - 0xc7), "extension"))
    case 0xca: return .float(Float(bitPattern: try read(UInt32.self, "float32")))
    case 0xcb: return .double(Double(bitPattern: try read(UInt64.self, "float64")))
    case 0xcc: return .uint(UInt64(try read(UInt8.self, "uint8")))
    case 0xcd: return .uint(UInt64(try read(UInt16.self, "uint16")))
    case 0xce: return .uint(UInt64(try read(UInt32.self, "uint32")))
    case 0xcf: return .uint(try read(UInt64.self, "uint64"))
    case 0xd0: return .int(Int64(try read(Int8.self, "int8")))
    case 0xd1: return .int(Int64(try read(Int16.self, "int16")))
    case 0xd2: return .int(Int64(try read(Int32.self, "int32")))
    case 0xd3: return .int(try read(Int64.self, "int64"))
    case 0xd4...0xd8: return try readExtension(1 << Int(byte - 0xd4))
    case 0xd9...0xdb: return try readString(try readLength(1 << Int(byte - 0xd9), "string"))
    case 0xdc, 0xdd: return try readArray(try readLength(byte == 0xdc ? 2 : 4, "array"), depth: depth)
    case 0xde, 0xdf: return try readMap(try readLength(byte == 0xde ? 2 : 4, "map"), depth: depth)
    case 0xe0...0xff: return .int(Int64(Int8(bitPattern: byte)))
    default: throw Self.corrupted("unknown type byte 0x\(String(byte, radix: 16)) at offset \(typeOffset)")
    }
  }
}
