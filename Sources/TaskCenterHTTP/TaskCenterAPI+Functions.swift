import EasyRemoteCore
import Foundation
import Hummingbird
import NIOCore
import HTTPTypes
import TaskCenter

// Function calls over HTTP: `POST /functions/{name}/call` and `/stream` (NDJSON).
extension TaskCenterAPI {
  func call(_ name: String, _ request: Request) async throws -> Response {
    let body = try await functionCallBody(request)
    let timeout = try callTimeout(body)
    let invocation = Invocation(function: name, args: body.args ?? [], kwargs: body.kwargs ?? [:], node: body.node)
    let data = try await server.call(invocation, timeout: .milliseconds(Int64(timeout * 1000)))
    let result = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
    return JSONBody.response(FunctionCallResponse(function: name, result: result))
  }

  func functionCallBody(_ request: Request) async throws -> FunctionCallRequest {
    var body = FunctionCallRequest()
    if request.headers[.contentLength] != "0" {
      var copy = request
      let buffer = try await copy.collectBody(upTo: configuration.maxBodyBytes)
      if buffer.readableBytes > 0 {
        let data = Data(buffer.readableBytesView)
        do {
          body = try JSONDecoder().decode(FunctionCallRequest.self, from: data)
        } catch let error as DecodingError {
          throw JSONBody.describe(error, body: data)
        }
      }
    }
    return body
  }

  func callTimeout(_ body: FunctionCallRequest) throws -> Double {
    let timeout = body.timeout ?? configuration.callTimeout
    guard timeout >= 0.001, timeout <= 3600 else {
      throw APIError.invalid("timeout", "timeout must be at least 0.001 and at most 3600 seconds, got \(timeout)")
    }
    return timeout
  }

  /// `POST /functions/{name}/stream`: a streaming function's items as they come, one JSON
  /// value per line (`application/x-ndjson`). A function that is unknown or not streaming is
  /// refused before the answer starts (404, 400); an error after the first item ends the
  /// body with a line `{"error": {"code", "message"}}`.
  func stream(_ name: String, _ request: Request) async throws -> Response {
    let body = try await functionCallBody(request)
    let timeout = try callTimeout(body)
    guard let function = server.functions().first(where: { $0.name == name }) else {
      throw APIError(code: "FUNCTION_NOT_FOUND", message: "no node serves '\(name)'")
    }
    guard function.streaming else {
      throw APIError.invalid("name", "'\(name)' is not a streaming function: call it with POST /functions/\(name)/call")
    }
    if let node = body.node, !function.nodes.contains(node) {
      throw APIError(code: "FUNCTION_NOT_FOUND", message: "node '\(node)' does not serve '\(name)'")
    }
    let invocation = Invocation(function: name, args: body.args ?? [], kwargs: body.kwargs ?? [:], node: body.node)
    let server = self.server
    return Response(
      status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-cache"],
      body: ResponseBody { writer in
        let lines = LineStream()
        // Unstructured: the gateway's stream is read while the body writer writes; the
        // writer's end (or its failure) cancels it just below.
        let producer = Task {
          do {
            try await server.stream(invocation, timeout: .milliseconds(Int64(timeout * 1000))) { items in
              try await lines.put(.lines(items))
            }
          } catch let error as EasyRemoteError {
            try? await lines.put(.lines([Data(APIError(error).jsonText.utf8)]))
          } catch {}
          try? await lines.put(.end)
        }
        do {
          try await lines.drain(into: &writer)
        } catch {
          producer.cancel()
          throw error
        }
        try await writer.finish(nil)
      })
  }
}
