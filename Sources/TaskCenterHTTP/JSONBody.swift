import Hummingbird
import Foundation
import NIOCore
import TaskCenter

/// Reading and writing JSON bodies, with errors that name the field.
enum JSONBody {
  static var encoder: JSONEncoder { TaskCenterJSON.encoder }

  static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? encoder.encode(value)) ?? Data(#"{"error":{"code":"INTERNAL_ERROR","message":"encoding failed"}}"#.utf8)
    return Response(
      status: status, headers: [.contentType: "application/json; charset=utf-8"],
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
  }

  /// Decodes the body as `T`. Malformed JSON, wrong types and missing fields become
  /// `INVALID_REQUEST` naming the field; a body over `limit` bytes names `tooLargeField`.
  static func decode<T: Decodable>(
    _ type: T.Type, from request: Request, limit: Int, tooLargeField: String = "body"
  ) async throws -> T {
    var request = request
    let buffer: ByteBuffer
    do {
      buffer = try await request.collectBody(upTo: limit)
    } catch {
      throw APIError.invalid(tooLargeField, "the request body is larger than \(limit) bytes")
    }
    let data = Data(buffer.readableBytesView)
    guard !data.isEmpty else { throw APIError.invalid("body", "the request needs a JSON body") }
    do {
      return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
      throw describe(error, body: data)
    }
  }

  static func describe(_ error: DecodingError, body: Data) -> APIError {
    func path(_ keys: [any CodingKey]) -> String {
      keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        .replacingOccurrences(of: ".[", with: "[")
    }
    switch error {
    case .keyNotFound(let key, let context):
      let field = path(context.codingPath + [key])
      return .invalid(field, "'\(field)' is missing")
    case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
      let field = path(context.codingPath)
      return .invalid(field.isEmpty ? "body" : field, "'\(field.isEmpty ? "body" : field)' must be \(describe(type))")
    case .dataCorrupted(let context):
      let field = path(context.codingPath)
      if field.isEmpty {
        if let (name, number) = outOfRangeNumber(in: body) {
          return .invalid(name, "'\(name)' is out of range: \(number)")
        }
        return .invalid("body", "the body is not valid JSON")
      }
      return .invalid(field, "'\(field)' is not valid: \(context.debugDescription)")
    @unknown default:
      return .invalid("body", "the body could not be read")
    }
  }

  /// A number the parser cannot hold (`1e999`, an integer past 64 bits) and its field: why
  /// an otherwise well-formed body did not parse.
  static func outOfRangeNumber(in body: Data) -> (field: String, number: String)? {
    let text = String(decoding: body, as: UTF8.self)
    guard let pattern = try? NSRegularExpression(pattern: #""([^"\\]+)"\s*:\s*(-?[0-9][0-9.eE+-]*)"#) else { return nil }
    for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
      guard let nameRange = Range(match.range(at: 1), in: text), let numberRange = Range(match.range(at: 2), in: text) else {
        continue
      }
      let number = String(text[numberRange])
      let isInteger = !number.contains(where: { ".eE".contains($0) })
      if (isInteger && Int64(number) == nil) || !(Double(number)?.isFinite ?? false) || (Double(number) != 0 && Double(number)!.magnitude < Double.leastNormalMagnitude) {
        return (String(text[nameRange]), number)
      }
    }
    return nil
  }

  private static func describe(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "a string"
    case is Int.Type, is Int64.Type: "an integer"
    case is Double.Type: "a number"
    case is Bool.Type: "true or false"
    default: "\(type)".hasPrefix("Array") ? "an array" : (("\(type)".hasPrefix("Dictionary")) ? "an object" : "\(type)")
    }
  }
}
