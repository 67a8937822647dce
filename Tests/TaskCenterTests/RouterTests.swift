import EasyRemote
import Foundation
import Hummingbird
import HummingbirdTesting
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
}
