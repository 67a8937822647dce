import EasyRemote
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
}
