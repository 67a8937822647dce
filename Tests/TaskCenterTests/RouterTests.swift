import EasyRemote
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import NIOCore
import TaskCenter
import TaskCenterHTTP
import Testing

/// The API's router without sockets (HummingbirdTesting's router mode), beside the real-HTTP
/// suite: the mapping of requests to the task center and of errors to statuses.
@Suite("Task center router", .timeLimit(.minutes(1)))
struct RouterTests {
  @Test("requests reach the task center and errors map to their statuses")
  func router() async throws {
    let fabric = try await TaskFabric()
    let app = Application(router: TaskCenterAPI(center: fabric.center, server: fabric.server).router())
    try await app.test(.router) { client in
      try await client.execute(uri: "/", method: .get) { response in
        #expect(response.status == .ok)
        #expect(String(buffer: response.body).contains("\"queue_size\":0"))
      }
      let body = ByteBuffer(string: #"{"code": "print(1)", "timeout": 5}"#)
      let id = try await client.execute(uri: "/tasks", method: .post, body: body) { response -> String in
        #expect(response.status == .created)
        let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        return object?["task_id"] as? String ?? ""
      }
      #expect(try await fabric.center.task(id).timeout == 5)
      try await client.execute(uri: "/tasks/\(id)", method: .delete) { response in
        #expect(response.status == .ok)
        #expect(String(buffer: response.body).contains("\"status\":\"cancelled\""))
      }
      try await client.execute(uri: "/tasks", method: .post, body: ByteBuffer(string: "[1, 2]")) { response in
        #expect(response.status == .badRequest)
        #expect(String(buffer: response.body).contains("INVALID_REQUEST"))
      }
      try await client.execute(uri: "/tasks/\(id)", method: .put) { response in
        #expect(response.status == .methodNotAllowed || response.status == .notFound)
        #expect(String(buffer: response.body).contains("\"error\""))
      }
      try await client.execute(uri: "/nodes/none", method: .get) { response in
        #expect(response.status == .notFound)
        #expect(String(buffer: response.body).contains("NODE_NOT_FOUND"))
      }
    }
    await fabric.stop()
  }

  @Test("a gateway with a token refuses HTTP requests without it; /health stays open")
  func token() async throws {
    let fabric = try await TaskFabric(token: "s3cret")
    // No token in the API's configuration: it takes the gateway's.
    let app = Application(router: TaskCenterAPI(center: fabric.center, server: fabric.server).router())
    try await app.test(.router) { client in
      for (uri, method) in [("/", HTTPRequest.Method.get), ("/tasks", .get), ("/functions", .get), ("/ws/updates", .get)] {
        try await client.execute(uri: uri, method: method) { response in
          #expect(response.status == .unauthorized, "\(method) \(uri)")
          #expect(String(buffer: response.body).contains("\"code\":\"UNAUTHORIZED\""))
        }
      }
      let submit = ByteBuffer(string: #"{"code": "print(1)"}"#)
      try await client.execute(uri: "/tasks", method: .post, body: submit) { response in
        #expect(response.status == .unauthorized)
      }
      #expect(try await fabric.center.tasks(status: nil, limit: 10, offset: 0).isEmpty, "nothing was stored")
      for header in ["Bearer wrong", "Bearer s3cret2", "s3cret", "Basic s3cret"] {
        try await client.execute(uri: "/tasks", method: .get, headers: [.authorization: header]) { response in
          #expect(response.status == .unauthorized, "\(header)")
        }
      }
      try await client.execute(uri: "/tasks", method: .get, headers: [.authorization: "Bearer s3cret"]) { response in
        #expect(response.status == .ok)
      }
      try await client.execute(uri: "/tasks", method: .get, headers: [.easyRemoteToken: "s3cret"]) { response in
        #expect(response.status == .ok)
      }
      // A token in the query counts only for the WebSocket, whose browsers cannot set headers.
      try await client.execute(uri: "/tasks?token=s3cret", method: .get) { response in
        #expect(response.status == .unauthorized)
      }
      try await client.execute(uri: "/health", method: .get) { response in
        #expect(response.status == .ok)
      }
      try await client.execute(uri: "/openapi.yaml", method: .get) { response in
        #expect(response.status == .ok)
      }
    }
    await fabric.stop()
  }
}

extension RouterTests {
  @Test("POST /functions/{name}/call answers JSON even when the gateway's default serializer is binary")
  func callWithBinaryDefault() async throws {
    let fabric = try await TaskFabric(serializer: "binary")
    try await fabric.addNode("n1")
    let app = Application(router: TaskCenterAPI(center: fabric.center, server: fabric.server).router())
    try await app.test(.router) { client in
      let body = ByteBuffer(string: #"{"args": [2, 3]}"#)
      try await client.execute(uri: "/functions/sync_add/call", method: .post, body: body) { response in
        #expect(response.status == .ok)
        let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        #expect(object?["result"] as? Double == 5, "\(String(buffer: response.body))")
      }
    }
    await fabric.stop()
  }
}

extension HTTPField.Name {
  static var easyRemoteToken: Self { Self("X-EasyRemote-Token")! }
}
