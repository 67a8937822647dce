import EasyRemote
import NodeComm
import Foundation
import Testing

@Suite("JSON values")
struct JSONValueTests {
  /// The fast paths give what a JSONEncoder/JSONDecoder round trip gives.
  @Test("common types convert as JSONEncoder would write them, and back")
  func fastPaths() throws {
    func viaEncoder(_ value: some Encodable) throws -> JSONValue {
      try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }
    let bytes = Data((0..<300).map { UInt8($0 % 256) })
    #expect(try JSONValue(encoding: "text") == viaEncoder("text"))
    #expect(try JSONValue(encoding: 42) == viaEncoder(42))
    #expect(try JSONValue(encoding: Int64(-7)) == viaEncoder(Int64(-7)))
    #expect(try JSONValue(encoding: 3.0) == viaEncoder(3.0))
    #expect(try JSONValue(encoding: 2.5) == viaEncoder(2.5))
    #expect(try JSONValue(encoding: true) == viaEncoder(true))
    #expect(try JSONValue(encoding: bytes) == viaEncoder(bytes))

    #expect(try JSONValue(encoding: bytes).decode(as: Data.self) == bytes)
    #expect(try JSONValue.int(3).decode(as: Double.self) == 3)
    #expect(try JSONValue.double(3).decode(as: Int.self) == 3)
    #expect(try JSONValue.string("x").decode(as: String.self) == "x")
    #expect(throws: (any Error).self) { try JSONValue.string("not base64!").decode(as: Data.self) }
    #expect(throws: (any Error).self) { try JSONValue.string("1").decode(as: Int.self) }
  }

  @Test("bytes stay bytes through MessagePack, equal their base64 text, and read as JSON base64")
  func bytes() throws {
    let data = Data([0, 1, 2, 250, 255, 63, 62])
    let value = try JSONValue(encoding: data)
    #expect(value == .bytes(data))
    #expect(value == .string(data.base64EncodedString()))
    #expect(value != .string("other"))
    #expect(try value.decode(as: Data.self) == data)
    #expect(try value.decode(as: [UInt8].self) == [UInt8](data))

    let binary = BinarySerializer()
    let mixed = JSONValue.array([.bytes(data), .int(3), .string("s"), .object(["b": .bytes(Data([9]))])])
    let back = try binary.decode(JSONValue.self, from: binary.encode(mixed))
    guard case .array(let items) = back, case .bytes(let first) = items[0] else {
      Issue.record("bytes did not come back as bytes: \(back)")
      return
    }
    #expect(first == data)
    #expect(back == mixed)
    // An array of small numbers is not mistaken for bytes.
    let numbers = JSONValue.array([.int(1), .int(2)])
    #expect(try binary.decode(JSONValue.self, from: binary.encode(numbers)) == numbers)
    // As JSON text, bytes are the base64 string JSONEncoder writes for Data.
    let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(mixed))
    #expect(json == mixed)
    #expect(try JSONDecoder().decode(Data.self, from: JSONEncoder().encode(value)) == data)
    #expect(mixed.containsBytes && !numbers.containsBytes)
  }
}
