import Foundation
import NodeComm
import Testing

@testable import EasyRemoteCore

/// The direct JSON of the common call says exactly what the encoder and decoder would.
@Suite("The common call's JSON without the coder")
struct InvocationJSONTests {
  /// JSON by `JSONDecoder` alone, under the name "json": the general path of ``ArgumentReader``.
  struct CoderJSON: PayloadSerializer {
    var name: String { JSONSerializer.name }
    func encode<T: Encodable>(_ value: T) throws -> Data { try JSONEncoder().encode(value) }
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try JSONDecoder().decode(type, from: data) }
  }

  /// What the general decoder makes of `data` for a function taking `types`.
  func general<each A: Decodable>(_ types: repeat (each A).Type, from data: Data) throws -> (repeat each A) {
    let serializers = SerializerRegistry()
    serializers.register(CoderJSON())
    return try ArgumentReader.decode(
      repeat (each A).self, function: "f", parameters: ["a", "b", "c", "d", "e"], from: Payload(data: data, serializer: "json"),
      serializers: serializers)
  }

  func same(_ one: Data, _ other: Data) throws -> Bool {
    let decoder = JSONDecoder()
    let (a, b) = (try decoder.decode(Invocation.self, from: one), try decoder.decode(Invocation.self, from: other))
    return a.function == b.function && a.args == b.args && a.kwargs == b.kwargs && a.node == b.node
  }

  @Test("what it writes decodes as the encoder's text does")
  func writes() throws {
    let direct = try #require(InvocationJSON.encode(function: "add", args: (1, -20, Int64(1) << 40), node: nil))
    let encoded = try JSONEncoder().encode(TypedCall(function: "add", args: (1, -20, Int64(1) << 40), kwargs: [:], node: nil))
    #expect(try same(direct, encoded))
    let named = try #require(InvocationJSON.encode(function: "greet", args: ("a/b é", true), node: "n-1"))
    let namedEncoded = try JSONEncoder().encode(TypedCall(function: "greet", args: ("a/b é", true), kwargs: [:], node: "n-1"))
    #expect(try same(named, namedEncoded))
    // Not of the simple form: the general path.
    #expect(InvocationJSON.encode(function: "f", args: ("say \"hi\"", 1), node: nil) == nil)
    #expect(InvocationJSON.encode(function: "f", args: (1.5, 1), node: nil) == nil)
    #expect(InvocationJSON.encode(function: "f", args: (Data([1]), 1), node: nil) == nil)
    #expect(InvocationJSON.encode(function: "f", args: ([1, 2], 1), node: nil) == nil)
    #expect(InvocationJSON.encode(function: "tab\there", args: (1, 2), node: nil) == nil)
  }

  @Test("what it reads is what the decoder reads; anything else it leaves to the decoder")
  func reads() throws {
    let simple = [
      #"{"function":"f","args":[1,2],"kwargs":{}}"#,
      #" { "args" : [ 1 , 2 ] , "function" : "f" , "node" : null } "#,
      #"{"function":"f","args":[1,2],"kwargs":{},"node":"n-1"}"#,
    ]
    for text in simple {
      let fast = try #require(InvocationJSON.arguments(Int.self, Int.self, from: Data(text.utf8)), "\(text)")
      let slow = try general(Int.self, Int.self, from: Data(text.utf8))
      #expect(fast == slow, "\(text)")
    }
    let mixed = #"{"function":"f","args":[-7, "a/b é", true, 1.5e3, 0.25],"kwargs":{}}"#
    let fast = try #require(InvocationJSON.arguments(Int.self, String.self, Bool.self, Double.self, Double.self, from: Data(mixed.utf8)))
    let slow = try general(Int.self, String.self, Bool.self, Double.self, Double.self, from: Data(mixed.utf8))
    #expect(fast.0 == slow.0 && fast.1 == slow.1 && fast.2 == slow.2 && fast.3 == slow.3 && fast.4 == slow.4)

    for text in [
      #"{"args":[1,2]}"#,  // no function
      #"[1,2]"#,
      #"{"function":"f","args":[1,[2]]}"#,
      #"{"function":"f","args":[1,"a\"b"]}"#,
      #"{"function":"f","args":[1,2],"kwargs":{"c":3}}"#,
      #"{"function":"f","args":[1]}"#,  // a parameter short
      #"{"function":"f","args":[1,2,3]}"#,  // one too many
      #"{"function":"f","function":"g","args":[1,2]}"#,
      #"{"function":"f","args":[1,2]} x"#,
      #"{"function":"f","args":[01,2]}"#,
      #"{"function":"f","args":[1.0,2]}"#,
      #"{"function":"f","args":[true,2]}"#,
      #"{"function":"f","args":[null,2]}"#,
      #"{"function":"f","args":[1,2],"extra":1}"#,
      #"{"function":"f","args":[1,2]"#,
    ] {
      #expect(InvocationJSON.arguments(Int.self, Int.self, from: Data(text.utf8)) == nil, "\(text)")
    }
    // A string where a number is wanted: left to the decoder, which names the argument.
    #expect(InvocationJSON.arguments(Int.self, from: Data(#"{"function":"f","args":["1"]}"#.utf8)) == nil)
    #expect(throws: EasyRemoteError.self) { try general(Int.self, from: Data(#"{"function":"f","args":["1"]}"#.utf8)) }
  }
}
