package import Foundation
import NodeComm

/// Decodes a call's arguments straight into a function's parameter types, from the bytes the
/// caller sent (JSON or MessagePack): no intermediate `JSONValue` tree for positional
/// arguments. Positional arguments come first, then parameters by name from the keyword
/// arguments; a missing optional parameter is `nil`. Every error names the parameter.
enum ArgumentReader {
  /// What the decoding of one call needs besides the bytes (a task-local: `Decodable` has no
  /// other way in, and the MessagePack decoder has no `userInfo`).
  struct Context: Sendable {
    var function: String
    var parameters: [String]
    /// Reads every parameter, in order, and keeps the values (made by the generic `decode`).
    var read: @Sendable (Reader) throws -> Void
  }

  @TaskLocal static var context: Context?

  /// The arguments of `payload` as the parameter types `types`.
  static func decode<each A: Decodable>(
    _ types: repeat (each A).Type, function: String, parameters: [String], from payload: Payload,
    serializers: SerializerRegistry
  ) throws -> (repeat each A) {
    let serializer: any PayloadSerializer
    do {
      serializer = try serializers.serializer(named: payload.serializer.isEmpty ? JSONSerializer.name : payload.serializer)
    } catch {
      throw EasyRemoteError(
        code: .invalidArguments, message: "the arguments of '\(function)' are in an unknown form: \(error.message)",
        function: function)
    }
    // The common call — scalars by position, in JSON — without the decoder.
    if serializer is JSONSerializer, let values = InvocationJSON.arguments(repeat (each A).self, from: payload.data) {
      return values
    }
    let box = Box<(repeat each A)>()
    let context = Context(function: function, parameters: parameters) { reader in
      box.value = (repeat try reader.next((each A).self))
    }
    do {
      try $context.withValue(context) { _ = try serializer.decode(ArgumentList.self, from: payload.data) }
    } catch let error as EasyRemoteError {
      throw error
    } catch {
      throw EasyRemoteError(
        code: .invalidArguments, message: "the arguments of '\(function)' cannot be read: \(error)", function: function)
    }
    guard let values = box.value else {
      throw EasyRemoteError(code: .internalError, message: "the arguments of '\(function)' were not read", function: function)
    }
    return values
  }

  /// Where the values of one decoding land.
  ///
  /// `@unchecked Sendable` is safe: a box is created, filled and read by one `decode` call,
  /// synchronously, on one thread; the `@Sendable` closure that fills it runs inside that
  /// same call (from `ArgumentList.init(from:)`) and never escapes it.
  private final class Box<Value>: @unchecked Sendable {
    var value: Value?
  }

  /// Reads the parameters one after the other from the call's `args` list, then `kwargs`.
  final class Reader {
    let context: Context
    var positional: (any UnkeyedDecodingContainer)?
    let keywords: [String: JSONValue]
    var index = 0
    var used: Set<String> = []

    init(context: Context, positional: (any UnkeyedDecodingContainer)?, keywords: [String: JSONValue]) {
      self.context = context
      self.positional = positional
      self.keywords = keywords
    }

    func next<T: Decodable>(_ type: T.Type) throws -> T {
      defer { index += 1 }
      let parameters = context.parameters
      let name = index < parameters.count ? parameters[index] : "#\(index + 1)"
      if var list = positional, !list.isAtEnd {
        defer { positional = list }
        if keywords[name] != nil {
          throw invalid("parameter '\(name)' of '\(context.function)' was given both by position and by name")
        }
        do {
          return try list.decode(T.self)
        } catch {
          // Say what was given, when it can be read at all.
          let given = (try? list.decode(JSONValue.self)).map { ", got \($0.jsonText)" } ?? ""
          throw invalid("argument '\(name)' of '\(context.function)' must be \(T.self)\(given)")
        }
      }
      if let keyword = keywords[name] {
        used.insert(name)
        do {
          return try keyword.decode(as: T.self)
        } catch {
          throw invalid("argument '\(name)' of '\(context.function)' must be \(T.self), got \(keyword.jsonText)")
        }
      }
      if let optional = T.self as? any ExpressibleByNilLiteral.Type, let none = optional.init(nilLiteral: ()) as? T {
        return none
      }
      throw invalid(
        "'\(context.function)' is missing its argument '\(name)' (\(T.self)), parameter \(index + 1) of \(parameters.count)")
    }

    /// Fails when the call has arguments the function does not take.
    func finish() throws {
      if let list = positional, !list.isAtEnd {
        let given = list.count.map(String.init) ?? "more"
        throw invalid("'\(context.function)' takes \(index) argument\(index == 1 ? "" : "s"), got \(given)")
      }
      if let name = Set(keywords.keys).subtracting(used).sorted().first {
        throw invalid("'\(context.function)' has no parameter named '\(name)'")
      }
    }

    private func invalid(_ message: String) -> EasyRemoteError {
      EasyRemoteError(code: .invalidArguments, message: message, function: context.function)
    }
  }
}

/// The keys of an `Invocation` on the wire.
enum InvocationKey: String, CodingKey {
  case function, args, kwargs, node
}

/// One call's arguments, read by the ``ArgumentReader/context``'s typed reader while the
/// decoder is at hand.
private struct ArgumentList: Decodable {
  init(from decoder: any Decoder) throws {
    guard let context = ArgumentReader.context else {
      throw EasyRemoteError(code: .internalError, message: "arguments decoded outside ArgumentReader")
    }
    let container = try decoder.container(keyedBy: InvocationKey.self)
    let positional = try container.contains(.args) ? container.nestedUnkeyedContainer(forKey: .args) : nil
    let keywords = try container.decodeIfPresent([String: JSONValue].self, forKey: .kwargs) ?? [:]
    let reader = ArgumentReader.Reader(context: context, positional: positional, keywords: keywords)
    try context.read(reader)
    try reader.finish()
  }
}

/// A typed call as a client sends it: the argument list encoded once, each value straight
/// with the call's serializer (the same shape as `Invocation`, so any node reads either).
struct TypedCall<each A: Encodable>: Encodable {
  var function: String
  var args: (repeat each A)
  var kwargs: [String: JSONValue]
  var node: String?

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: InvocationKey.self)
    try container.encode(function, forKey: .function)
    var list = container.nestedUnkeyedContainer(forKey: .args)
    for argument in repeat each args { try list.encode(argument) }
    try container.encode(kwargs, forKey: .kwargs)
    try container.encodeIfPresent(node, forKey: .node)
  }

  /// The call encoded for `method`: written directly when it goes as JSON and is of the
  /// simple form (``InvocationJSON``), else by the serializer.
  func payload(method: String, serializers: SerializerRegistry) throws(NodeError) -> Payload {
    let explicit = serializer
    if kwargs.isEmpty, serializers.name(for: method, explicit: explicit) == JSONSerializer.name,
      (try? serializers.serializer(named: JSONSerializer.name)) is JSONSerializer,
      let direct = InvocationJSON.encode(function: function, args: (repeat each args), node: node)
    {
      return Payload(data: direct, serializer: JSONSerializer.name)
    }
    return try serializers.encode(self, method: method, explicit: explicit)
  }

  /// MessagePack when an argument is bytes (they travel as they are), the default otherwise.
  var serializer: String? {
    var bytes = kwargs.values.contains { $0.containsBytes }
    for argument in repeat each args {
      if argument is Data || argument is [UInt8] { bytes = true }
      if let value = argument as? JSONValue, value.containsBytes { bytes = true }
    }
    return bytes ? BinarySerializer.name : nil
  }
}
