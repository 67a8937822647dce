import Foundation
#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// A real HTTP client (URLSession, libcurl underneath on Linux) for the API tests.
struct HTTPClient {
  let base: String

  struct Reply {
    var status: Int
    var body: Data
    var headers: [String: String] = [:]
    var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
    /// `error.code` of an error reply.
    var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    var errorDetails: String? { (object["error"] as? [String: Any])?["details"] as? String }
  }

  func send(
    _ method: String, _ path: String, json: Any? = nil, raw: String? = nil, headers: [String: String] = [:]
  ) async throws -> Reply {
    var request = URLRequest(url: URL(string: base + path)!)
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    request.timeoutInterval = 30
    if let json {
      request.httpBody = try JSONSerialization.data(withJSONObject: json)
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    } else if let raw {
      request.httpBody = Data(raw.utf8)
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    let http = response as? HTTPURLResponse
    var headers: [String: String] = [:]
    for (name, value) in http?.allHeaderFields ?? [:] {
      if let name = name as? String, let value = value as? String { headers[name] = value }
    }
    return Reply(status: http?.statusCode ?? 0, body: data, headers: headers)
  }

  func get(_ path: String) async throws -> Reply { try await send("GET", path) }
  func post(_ path: String, _ json: Any) async throws -> Reply { try await send("POST", path, json: json) }
  func delete(_ path: String) async throws -> Reply { try await send("DELETE", path) }
}
