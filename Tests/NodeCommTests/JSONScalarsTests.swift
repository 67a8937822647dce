import Foundation
@testable import NodeComm
import Testing

/// The JSON serializer's direct paths for single scalars agree with Foundation.
@Suite("JSON scalars")
struct JSONScalarsTests {
  let serializer = JSONSerializer()

  @Test("values written directly read back through JSONDecoder, and JSONEncoder's text reads back directly")
  func roundTrips() throws {
    for number in [0, -1, 42, 1_000_000_007, Int.max, Int.min] {
      #expect(try JSONDecoder().decode(Int.self, from: serializer.encode(number)) == number)
      #expect(try serializer.decode(Int.self, from: JSONEncoder().encode(number)) == number)
    }
    #expect(JSONScalars.encode(42) == Data("42".utf8))
    for text in ["", "plain", "héllo ✓", "a/b", "quote\"inside", "back\\slash", "line\nbreak", "\u{01}"] {
      #expect(try JSONDecoder().decode(String.self, from: serializer.encode(text)) == text)
      #expect(try serializer.decode(String.self, from: JSONEncoder().encode(text)) == text)
    }
    #expect(JSONScalars.encode("needs \"escaping\"") == nil)
    // Byte for byte what JSONEncoder writes, `\/` included.
    for text in ["", "a/b", "//", "héllo ✓ / x"] {
      #expect(try serializer.encode(text) == JSONEncoder().encode(text), "\(text)")
    }
    for data in [Data(), Data([0xff, 0xff, 0xff]), Data((0..<999).map { UInt8(truncatingIfNeeded: $0 &* 13) })] {
      #expect(try serializer.encode(data) == JSONEncoder().encode(data))
    }
    for number in [0, -5, Int.max, Int.min] { #expect(try serializer.encode(number) == JSONEncoder().encode(number)) }
    for flag in [true, false] {
      #expect(try serializer.decode(Bool.self, from: serializer.encode(flag)) == flag)
    }
    let bytes = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    #expect(try JSONDecoder().decode(Data.self, from: serializer.encode(bytes)) == bytes)
    #expect(try serializer.decode(Data.self, from: JSONEncoder().encode(bytes)) == bytes)
  }

  @Test("text the direct path does not take is read exactly as JSONDecoder reads it")
  func fallbacks() {
    let integers = ["007", "-", "", " 1", "1 ", "1.0", "1e3", "99999999999999999999", "-0", "+1", "0x10", "\"1\""]
    for text in integers {
      let data = Data(text.utf8)
      #expect((try? serializer.decode(Int.self, from: data)) == (try? JSONDecoder().decode(Int.self, from: data)), "\(text)")
    }
    let strings = ["\"abc", "abc\"", "\"\\u0041\"", "\"tab\\there\"", "\"\"", "null", "\"", "\"a\u{01}b\""]
    for text in strings {
      let data = Data(text.utf8)
      #expect((try? serializer.decode(String.self, from: data)) == (try? JSONDecoder().decode(String.self, from: data)), "\(text)")
    }
    let invalidUTF8 = Data([0x22, 0xff, 0xfe, 0x22])
    #expect((try? serializer.decode(String.self, from: invalidUTF8)) == nil)
    #expect((try? serializer.decode(Data.self, from: Data("\"not base64!\"".utf8))) == nil)
    #expect((try? serializer.decode(Bool.self, from: Data("True".utf8))) == nil)
  }
}
