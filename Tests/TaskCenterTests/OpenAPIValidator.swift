import Foundation
import Yams

/// Checks real responses against the repository's `openapi.yaml`: the path, method and
/// status must be documented, and the JSON body must match the schema (types, required
/// properties, enums, items, `$ref`s, nullable).
struct OpenAPIValidator {
  let document: [String: Any]

  init() throws {
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
      directory = directory.deletingLastPathComponent()
    }
    let text = try String(
      contentsOf: directory.appendingPathComponent("Sources/TaskCenterHTTP/openapi.yaml"), encoding: .utf8)
    document = try Yams.load(yaml: text) as? [String: Any] ?? [:]
  }

  /// The problems of one response; empty when it conforms.
  func problems(method: String, path: String, status: Int, body: Data) -> [String] {
    let bare = path.split(separator: "?").first.map(String.init) ?? path
    guard let (template, item) = operation(for: bare) else {
      // An unknown endpoint must still answer with the documented error shape.
      guard status >= 400, let json = try? JSONSerialization.jsonObject(with: body) else {
        return ["\(bare) is not documented"]
      }
      return check(json, against: ["$ref": "#/components/schemas/Error"], at: "\(bare) \(status) body")
    }
    guard let operation = item[method.lowercased()] as? [String: Any] else {
      return ["\(method) \(template) is not documented"]
    }
    guard let responses = operation["responses"] as? [String: Any],
      let response = resolve(responses[String(status)]) as? [String: Any]
    else { return ["\(method) \(template) does not document status \(status)"] }
    guard let content = response["content"] as? [String: Any],
      let media = content["application/json"] as? [String: Any], let schema = media["schema"]
    else { return [] }
    guard let json = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) else {
      return ["\(method) \(template) \(status): the body is not JSON"]
    }
    return check(json, against: schema, at: "\(method) \(template) \(status) body")
  }

  /// JSONSerialization's booleans (on Linux, numbers 0 and 1 also say `is Bool`).
  private func isBool(_ value: Any) -> Bool {
    type(of: value) == Bool.self || String(describing: type(of: value)).contains("Boolean")
  }

  private func operation(for path: String) -> (String, [String: Any])? {
    let paths = document["paths"] as? [String: Any] ?? [:]
    for (template, item) in paths {
      let pattern = "^" + template.replacingOccurrences(of: #"\{[^}]+\}"#, with: "[^/]+", options: .regularExpression) + "$"
      if path.range(of: pattern, options: .regularExpression) != nil, let item = item as? [String: Any] {
        return (template, item)
      }
    }
    return nil
  }

  private func resolve(_ node: Any?) -> Any? {
    guard let object = node as? [String: Any], let reference = object["$ref"] as? String else { return node }
    var current: Any? = document
    for part in reference.dropFirst(2).split(separator: "/") {
      current = (current as? [String: Any])?[String(part)]
    }
    return resolve(current)
  }

  private func check(_ value: Any, against schemaNode: Any, at location: String) -> [String] {
    guard let schema = resolve(schemaNode) as? [String: Any] else { return [] }
    if value is NSNull {
      return schema["nullable"] as? Bool == true ? [] : ["\(location) is null"]
    }
    var problems: [String] = []
    if let allowed = schema["enum"] as? [Any] {
      let text = "\(value)"
      if !allowed.contains(where: { "\($0)" == text }) { problems.append("\(location) = \(text) is not one of \(allowed)") }
    }
    switch schema["type"] as? String {
    case "object":
      guard let object = value as? [String: Any] else { return ["\(location) is not an object"] }
      for key in schema["required"] as? [String] ?? [] where object[key] == nil {
        problems.append("\(location) lacks '\(key)'")
      }
      let properties = schema["properties"] as? [String: Any] ?? [:]
      for (key, item) in object {
        if let property = properties[key] {
          problems += check(item, against: property, at: "\(location).\(key)")
        } else if let additional = schema["additionalProperties"], !(additional is Bool) {
          problems += check(item, against: additional, at: "\(location).\(key)")
        } else if properties.isEmpty == false, schema["additionalProperties"] == nil {
          problems.append("\(location) has undocumented '\(key)'")
        }
      }
    case "array":
      guard let array = value as? [Any] else { return ["\(location) is not an array"] }
      if let items = schema["items"] {
        for (index, item) in array.enumerated() { problems += check(item, against: items, at: "\(location)[\(index)]") }
      }
    case "string":
      if !(value is String) { problems.append("\(location) is not a string") }
      if schema["format"] as? String == "date-time", let text = value as? String,
        ISO8601DateFormatter().date(from: text) == nil
      {
        problems.append("\(location) = \(text) is not a date-time")
      }
    case "integer":
      let isInteger = !isBool(value) && (value is Int || ((value as? Double).map { $0.rounded() == $0 } ?? false))
      if !isInteger { problems.append("\(location) is not an integer") }
    case "number":
      if isBool(value) || !(value is Int || value is Double) { problems.append("\(location) is not a number") }
    case "boolean":
      if !isBool(value) { problems.append("\(location) is not a boolean") }
    default:
      break
    }
    return problems
  }
}
