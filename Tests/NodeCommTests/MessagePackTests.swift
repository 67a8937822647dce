import Foundation
import Testing

@testable import MessagePack
import NodeComm

/// Fixtures for the MessagePack tests.
private enum Color: String, Codable { case red, green }
private enum Level: Int, Codable { case low = 1, high = 300 }

private struct Inner: Codable, Equatable {
  var name: String
  var score: Double
}

private struct Everything: Codable, Equatable {
  var bool = true
  var int = -123_456
  var int8 = Int8.min
  var int16 = Int16.max
  var int32 = Int32.min
  var int64 = Int64.min
  var uint = UInt.max
  var uint8 = UInt8.max
  var uint16: UInt16 = 300
  var uint32 = UInt32.max
  var uint64 = UInt64.max
  var float: Float = 1.5
  var double = -2.25e300
  var string = "héllo ✓"
  var longString = String(repeating: "x", count: 300)
  var data = Data([0, 1, 2, 255])
  var bytes: [UInt8] = [9, 8, 7]
  var date = Date(timeIntervalSince1970: 1_700_000_000.25)
  var url = URL(string: "https://example.com/a?b=c")!
  var optionalPresent: Int? = 42
  var optionalAbsent: String? = nil
  var color = Color.green
  var level = Level.high
  var counts = ["one": 1, "two": 2, "minus": -5]
  var inners = [Inner(name: "a", score: 1), Inner(name: "b", score: -0.5)]
  var matrix = [[1, 2], [], [3]]
  var byNumber = [1: "one", 20: "twenty"]
}

private struct A: Codable, Equatable { var a: Int }
private struct OptionalA: Codable, Equatable { var a: Int? }
private struct Small: Codable { var a: Int; var b: String }

private class Base: Codable {
  var id = 0
  init(id: Int) { self.id = id }
}

private final class Derived: Base {
  var extra = ""
  private enum Keys: String, CodingKey { case extra }

  init(id: Int, extra: String) {
    self.extra = extra
    super.init(id: id)
  }

  required init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: Keys.self)
    extra = try container.decode(String.self, forKey: .extra)
    try super.init(from: container.superDecoder())
  }

  override func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: Keys.self)
    try container.encode(extra, forKey: .extra)
    try super.encode(to: container.superEncoder())
  }
}

private struct DerivedShape: Codable, Equatable {
  struct Parent: Codable, Equatable { var id: Int }
  enum CodingKeys: String, CodingKey { case extra, parent = "super" }
  var extra: String
  var parent: Parent
}

/// Arrays nested `depth` deep, coded through unkeyed containers.
private struct Nest: Codable {
  var child: [Nest]
  init(depth: Int) { child = depth <= 1 ? [] : [Nest(depth: depth - 1)] }
  init(from decoder: any Decoder) throws { child = try [Nest](from: decoder) }
  func encode(to encoder: any Encoder) throws { try child.encode(to: encoder) }
}

private func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
  [UInt8](try MessagePackEncoder().encode(value))
}

private func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
  try MessagePackDecoder().decode(type, from: Data(bytes))
}

/// The `DecodingError` thrown by decoding `bytes` as `type`, or `nil` if none is thrown.
private func decodingError<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> DecodingError? {
  do {
    _ = try decode(type, bytes)
    return nil
  } catch {
    return error as? DecodingError
  }
}

/// The debug description when `error` is `dataCorrupted`, else `nil`.
private func corruption(_ error: DecodingError?) -> String? {
  if case .dataCorrupted(let context)? = error { context.debugDescription } else { nil }
}

@Suite("MessagePack serialization")
struct MessagePackTests {
  @Test("a struct with every supported type round-trips")
  func roundTripEverything() throws {
    let value = Everything()
    let decoded = try MessagePackDecoder().decode(Everything.self, from: MessagePackEncoder().encode(value))
    #expect(decoded == value)
    #expect(decoded.optionalAbsent == nil)
    #expect(decoded.optionalPresent == 42)
  }

  @Test("collections, enums and Data round-trip at the top level")
  func roundTripCollections() throws {
    let counts = ["a": 1, "b": -2, "c": 70_000]
    #expect(try decode([String: Int].self, encode(counts)) == counts)
    let inners = (0..<40).map { Inner(name: "n\($0)", score: Double($0) / 4) }
    #expect(try decode([Inner].self, encode(inners)) == inners)
    #expect(try decode([Level].self, encode([Level.low, .high])) == [.low, .high])
    #expect(try decode(Color.self, encode(Color.red)) == .red)
    let payload = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let encoded = try encode(payload)
    #expect(Array(encoded.prefix(5)) == [0xc6, 0x00, 0x01, 0x11, 0x70])
    #expect(encoded.count == payload.count + 5)
    #expect(try decode(Data.self, encoded) == payload)
    #expect(try decode(Int?.self, encode(Int?.none)) == nil)
    #expect(try decode(Int?.self, encode(Int?.some(5))) == 5)
    #expect(try decode(Double.self, encode(Double.pi)) == .pi)
  }

  @Test("known encodings from the MessagePack spec")
  func exactBytes() throws {
    #expect(try encode(1) == [0x01])
    #expect(try encode(-1) == [0xff])
    #expect(try encode("a") == [0xa1, 0x61])
    #expect(try encode(true) == [0xc3])
    #expect(try encode(false) == [0xc2])
    #expect(try encode(Int?.none) == [0xc0])
    #expect(try encode(A(a: 1)) == [0x81, 0xa1, 0x61, 0x01])
    #expect(try encode([1, 2]) == [0x92, 0x01, 0x02])
    #expect(try encode(127) == [0x7f])
    #expect(try encode(128) == [0xcc, 0x80])
    #expect(try encode(256) == [0xcd, 0x01, 0x00])
    #expect(try encode(65_536) == [0xce, 0x00, 0x01, 0x00, 0x00])
    #expect(try encode(UInt64.max) == [0xcf] + [UInt8](repeating: 0xff, count: 8))
    #expect(try encode(-32) == [0xe0])
    #expect(try encode(-33) == [0xd0, 0xdf])
    #expect(try encode(-129) == [0xd1, 0xff, 0x7f])
    #expect(try encode(-32_769) == [0xd2, 0xff, 0xff, 0x7f, 0xff])
    #expect(try encode(Int64.min) == [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0])
    #expect(try encode(Float(1.5)) == [0xca, 0x3f, 0xc0, 0x00, 0x00])
    #expect(try encode(1.5) == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
    #expect(try encode(Data([1, 2, 3])) == [0xc4, 0x03, 0x01, 0x02, 0x03])
    #expect(try encode([UInt8]([1, 2])) == [0xc4, 0x02, 0x01, 0x02])
    #expect(try encode(Date(timeIntervalSince1970: 1.5)) == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
    #expect(try encode(URL(string: "a:b")!) == [0xa3, 0x61, 0x3a, 0x62])
    #expect(try encode(OptionalA(a: nil)) == [0x80])
  }

  @Test("length prefixes switch form at the spec's boundaries")
  func lengthBoundaries() throws {
    let strings: [(Int, [UInt8])] = [
      (31, [0xbf]), (32, [0xd9, 0x20]), (255, [0xd9, 0xff]), (256, [0xda, 0x01, 0x00]),
      (65_536, [0xdb, 0x00, 0x01, 0x00, 0x00]),
    ]
    for (length, header) in strings {
      let string = String(repeating: "z", count: length)
      let encoded = try encode(string)
      #expect(Array(encoded.prefix(header.count)) == header)
      #expect(try decode(String.self, encoded) == string)
    }
    let array = [Int](repeating: 7, count: 16)
    #expect(Array(try encode(array).prefix(3)) == [0xdc, 0x00, 0x10])
    #expect(try decode([Int].self, encode(array)) == array)
    let map = Dictionary(uniqueKeysWithValues: (0..<16).map { ("k\($0)", $0) })
    #expect(Array(try encode(map).prefix(3)) == [0xde, 0x00, 0x10])
    #expect(try decode([String: Int].self, encode(map)) == map)
    #expect(Array(try encode(Data(count: 256)).prefix(3)) == [0xc5, 0x01, 0x00])
  }

  @Test("optionals: absent keys are skipped, explicit nil decodes as nil")
  func optionals() throws {
    #expect(try decode(OptionalA.self, [0x80]) == OptionalA(a: nil))
    #expect(try decode(OptionalA.self, [0x81, 0xa1, 0x61, 0xc0]) == OptionalA(a: nil))
    #expect(try decode(OptionalA.self, encode(OptionalA(a: 3))) == OptionalA(a: 3))
  }

  @Test("superEncoder writes under \"super\" and superDecoder reads it back")
  func superCoders() throws {
    let bytes = try encode(Derived(id: 7, extra: "x"))
    #expect(try decode(DerivedShape.self, bytes) == DerivedShape(extra: "x", parent: .init(id: 7)))
    let decoded = try decode(Derived.self, bytes)
    #expect(decoded.id == 7)
    #expect(decoded.extra == "x")
  }

  @Test("decoding accepts every form that holds the value")
  func lenientDecoding() throws {
    #expect(try decode(Int.self, [0xcc, 0x05]) == 5)
    #expect(try decode(UInt8.self, [0xd3, 0, 0, 0, 0, 0, 0, 0, 0xff]) == 255)
    #expect(try decode(Int8.self, [0xd1, 0xff, 0x80]) == -128)
    #expect(try decode(Int.self, [0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0]) == 2)
    #expect(try decode(Double.self, [0x07]) == 7)
    #expect(try decode(Double.self, [0xca, 0x3f, 0xc0, 0x00, 0x00]) == 1.5)
    #expect(try decode(Float.self, encode(0.25)) == 0.25)
    #expect(try decode(Data.self, [0x93, 0x01, 0x02, 0x03]) == Data([1, 2, 3]))
    #expect(try decode([UInt8].self, [0x92, 0x04, 0x05]) == [4, 5])
    #expect(try decode(Date.self, [0xd6, 0xff, 0x00, 0x00, 0x00, 0x10]) == Date(timeIntervalSince1970: 16))
    #expect(try decode([Int: String].self, [0x81, 0x05, 0xa1, 0x61]) == [5: "a"])
  }

  @Test("the binary form is smaller than JSON for a typical struct")
  func smallerThanJSON() throws {
    let value = [Inner(name: "alpha", score: 12), Inner(name: "beta", score: 0.5)]
    let binary = try MessagePackEncoder().encode(value)
    let json = try JSONEncoder().encode(value)
    #expect(binary.count < json.count)
    #expect(try BinarySerializer().decode([Inner].self, from: BinarySerializer().encode(value)) == value)
  }

  @Test("truncated, garbage and trailing input is rejected as corrupted")
  func corruptInput() throws {
    let full = try encode(Small(a: 1, b: "hello"))
    for length in 0..<full.count {
      #expect(throws: DecodingError.self) { try decode(Small.self, Array(full.prefix(length))) }
      #expect(corruption(decodingError(Small.self, Array(full.prefix(length)))) != nil)
    }
    #expect(corruption(decodingError(Int.self, [0xcd, 0x01]))?.contains("truncated") == true)
    #expect(corruption(decodingError(Int.self, [0xc1]))?.contains("0xc1") == true)
    #expect(corruption(decodingError(Int.self, [])) != nil)
    #expect(corruption(decodingError(Int.self, [0x01, 0x02]))?.contains("trailing") == true)
    #expect(corruption(decodingError(String.self, [0xa2, 0xff, 0xfe])) != nil)
    #expect(corruption(decodingError(Small.self, [0x81, 0x91, 0x01, 0x01])) == nil)
    #expect(throws: DecodingError.self) { try decode(Small.self, [0x81, 0x91, 0x01, 0x01]) }
  }

  @Test("declared lengths beyond the buffer throw instead of allocating")
  func hugeLengths() {
    let headers: [[UInt8]] = [
      [0xdb, 0xff, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xff], [0xdd, 0xff, 0xff, 0xff, 0xff],
      [0xdf, 0xff, 0xff, 0xff, 0xff], [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
    ]
    for header in headers {
      let bytes = header + [UInt8](repeating: 0x61, count: 10 - header.count)
      #expect(corruption(decodingError(Data.self, bytes)) != nil)
    }
  }

  @Test("nesting is limited to 512 levels when decoding and encoding")
  func nestingLimit() throws {
    let deepest = try encode(Nest(depth: 512))
    #expect(deepest == [UInt8](repeating: 0x91, count: 511) + [0x90])
    #expect(try decode(Nest.self, deepest).child.count == 1)
    let tooDeep = [UInt8](repeating: 0x91, count: 512) + [0x90]
    let error = try #require(decodingError(Nest.self, tooDeep))
    #expect(corruption(error)?.contains("512") == true)
    #expect(throws: EncodingError.self) { try encode(Nest(depth: 513)) }
  }

  @Test("values of the wrong kind or out of range are rejected")
  func mismatches() throws {
    let threeHundred = try encode(300), oneAndAHalf = try encode(1.5), huge = try encode(1e300), two = try encode(2)
    #expect(corruption(decodingError(UInt8.self, threeHundred))?.contains("UInt8") == true)
    #expect(corruption(decodingError(UInt.self, [0xff])) != nil)
    #expect(corruption(decodingError(Int.self, oneAndAHalf)) != nil)
    #expect(corruption(decodingError(Float.self, huge)) != nil)
    #expect(corruption(decodingError(Level.self, two)) != nil)
    guard case .typeMismatch? = decodingError(String.self, try encode(1)) else {
      Issue.record("expected typeMismatch for an integer decoded as String")
      return
    }
    guard case .typeMismatch? = decodingError(Small.self, try encode([1, 2])) else {
      Issue.record("expected typeMismatch for an array decoded as a struct")
      return
    }
    guard case .keyNotFound(let key, _)? = decodingError(Small.self, try encode(A(a: 1))) else {
      Issue.record("expected keyNotFound for a missing key")
      return
    }
    #expect(key.stringValue == "b")
    guard case .typeMismatch(_, let context)? = decodingError(Small.self, [0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x02])
    else {
      Issue.record("expected typeMismatch for a number in a string field")
      return
    }
    #expect(context.codingPath.map(\.stringValue) == ["b"])
  }
}
