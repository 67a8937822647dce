/// Takes a call's arguments apart for a function's parameters, in order: positional first,
/// then by parameter name from the keyword arguments.
struct ArgumentDecoder {
  let function: String
  let parameters: [String]
  let invocation: Invocation
  private var index = 0
  private var usedKeywords: Set<String> = []

  init(function: String, parameters: [String], invocation: Invocation) {
    self.function = function
    self.parameters = parameters
    self.invocation = invocation
  }

  /// The next parameter's value, decoded as `T`.
  mutating func next<T: Decodable>(_ type: T.Type) throws -> T {
    defer { index += 1 }
    let name = index < parameters.count ? parameters[index] : "#\(index + 1)"
    let value: JSONValue
    if index < invocation.args.count {
      value = invocation.args[index]
      if invocation.kwargs[name] != nil {
        throw invalid("parameter '\(name)' of '\(function)' was given both by position and by name")
      }
    } else if let keyword = invocation.kwargs[name] {
      value = keyword
      usedKeywords.insert(name)
    } else if let optional = T.self as? any ExpressibleByNilLiteral.Type, let none = optional.init(nilLiteral: ()) as? T {
      return none
    } else {
      throw invalid("'\(function)' is missing its argument '\(name)' (\(T.self)), parameter \(index + 1) of \(parameters.count)")
    }
    do {
      return try value.decode(as: T.self)
    } catch {
      throw invalid("argument '\(name)' of '\(function)' must be \(T.self), got \(value.jsonText)")
    }
  }

  /// Fails when the call has arguments the function does not take.
  func finish(count: Int) throws {
    if invocation.args.count > count {
      throw invalid("'\(function)' takes \(count) argument\(count == 1 ? "" : "s"), got \(invocation.args.count)")
    }
    let unknown = Set(invocation.kwargs.keys).subtracting(usedKeywords)
    if let name = unknown.sorted().first {
      throw invalid("'\(function)' has no parameter named '\(name)'")
    }
  }

  private func invalid(_ message: String) -> EasyRemoteError {
    EasyRemoteError(code: .invalidArguments, message: message, function: function)
  }
}
