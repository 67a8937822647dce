import TestSupport
import EasyRemote
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
import TaskCenter
import TaskCenterHTTP
import Testing

#if canImport(Glibc)
  import Glibc
#endif

// Nodes that pull their work over HTTP, and who may speak for whom.
extension HTTPAPITests {
  @Test("a node in another language pulls work over HTTP: heartbeat, request, result")
  func pullNode() async throws {
    // This node sends one heartbeat: a timeout that a slow machine cannot reach mid-test.
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    let stack = try await Stack(configuration: configuration)
    let beat: [String: Any] = [
      "node_id": "py-1", "resources": ["cpu_cores": 2, "memory_mb": 2048, "platform": "linux"],
      "current_load": ["cpu_percent": 3.5, "memory_percent": 40.0],
    ]
    #expect(try await stack.post("/internal/heartbeat", beat).object["status"] as? String == "ok")
    let idle = try await stack.get("/internal/task/request?node_id=py-1")
    #expect(idle.object["has_task"] as? Bool == false)
    #expect(idle.object["wait_time"] as? Double == 5)

    let created = try await stack.post("/tasks", ["code": "print('hi')", "timeout": 12])
    let id = try #require(created.object["task_id"] as? String)
    let offer = try await stack.get("/internal/task/request?node_id=py-1")
    #expect(offer.object["has_task"] as? Bool == true)
    let offered = try #require(offer.object["task"] as? [String: Any])
    #expect(offered["task_id"] as? String == id && offered["code"] as? String == "print('hi')")
    #expect(offered["timeout"] as? Double == 12)
    #expect(try await stack.get("/tasks/\(id)").object["status"] as? String == "running")
    // One slot: no second task while this one runs.
    _ = try await stack.post("/tasks", ["code": "print('later')"])
    #expect(try await stack.get("/internal/task/request?node_id=py-1").object["has_task"] as? Bool == false)

    let reported = try await stack.post(
      "/internal/task/result",
      ["task_id": id, "node_id": "py-1", "status": "success", "result": "hi\n", "execution_time": 0.25, "error_message": NSNull()])
    #expect(reported.status == 200)
    let task = try await stack.get("/tasks/\(id)").object
    #expect(task["status"] as? String == "completed" && task["result"] as? String == "hi")
    #expect(task["executed_on"] as? String == "py-1" && task["execution_time"] as? Double == 0.25)
    // A second report changes nothing.
    let again = try await stack.post("/internal/task/result", ["task_id": id, "node_id": "py-1", "status": "failed"])
    #expect(again.object["status"] as? String == "completed")
    #expect(try await stack.get("/nodes/py-1").object["completed_tasks"] as? Int == 1)
    #expect(try await stack.get("/internal/task/request?node_id=py-1").object["has_task"] as? Bool == true)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("a node on a link cannot be spoken for over HTTP: a forged result and heartbeat are refused and change nothing")
  func forgedForLinkedNode() async throws {
    let stack = try await Stack()
    try await stack.fabric.addNode("linked")
    let before = try await stack.get("/nodes/linked").object
    // It says how it isolates its code tasks.
    let isolation = before["isolation"] as? [String: Any]
    #expect(isolation?["mechanism"] as? String == (CodeRunnerTests.hasBubblewrap ? "bubblewrap" : "namespaces"))
    #expect(isolation?["dies_with_node"] as? Bool == true)
    // The task holds its worker until the test lets it go: it is running while the forgeries come.
    let created = try await stack.post("/tasks", ["function": "hold"])
    let id = try #require(created.object["task_id"] as? String, "\(created.text)")
    #expect(await stack.fabric.holding.wait() == "linked")

    let forged = try await stack.post(
      "/internal/task/result", ["task_id": id, "node_id": "linked", "status": "success", "result": "forged"])
    #expect(forged.status == 403 && forged.errorCode == "FORBIDDEN", "\(forged.text)")
    let anonymous = try await stack.post("/internal/task/result", ["task_id": id, "status": "success", "result": "forged"])
    #expect(anonymous.status == 403 && anonymous.errorCode == "FORBIDDEN", "\(anonymous.text)")
    let beat = try await stack.post(
      "/internal/heartbeat",
      ["node_id": "linked", "resources": ["cpu_cores": 1, "memory_mb": 1], "current_load": ["cpu_percent": 99, "memory_percent": 99]])
    #expect(beat.status == 403 && beat.errorCode == "FORBIDDEN", "\(beat.text)")
    #expect(try await stack.get("/internal/task/request?node_id=linked").status == 403)

    // Nothing changed: the real result is the one stored, the node's resources are its own,
    // and tasks are still accepted.
    stack.fabric.release.open()
    let task = try await stack.finished(id)
    #expect(task["status"] as? String == "completed" && task["result"] as? String == "linked", "\(task)")
    let after = try await stack.get("/nodes/linked").object
    #expect(after["resources"] as? NSDictionary == before["resources"] as? NSDictionary)
    #expect(try await stack.post("/tasks", ["code": "print(1)"]).status == 201)
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }

  @Test("a pulling node gets a key; once it presents it, nobody else speaks for it; results only from the runner, for its attempt")
  func pullNodeKey() async throws {
    var configuration = TaskFabric.configuration
    configuration.scheduler.heartbeatTimeout = 600
    let stack = try await Stack(configuration: configuration)
    func beat(_ id: String, key: String? = nil) async throws -> HTTPClient.Reply {
      try await stack.send(
        "POST", "/internal/heartbeat", json: ["node_id": id, "resources": ["cpu_cores": 2, "memory_mb": 2048]],
        headers: key.map { ["X-Node-Key": $0] } ?? [:])
    }
    let first = try await beat("py-2")
    let key = try #require(first.object["node_key"] as? String)
    // Presenting it makes it required; the answer no longer carries it.
    let keyed = try await beat("py-2", key: key)
    #expect(keyed.status == 200 && keyed.object["node_key"] == nil)
    #expect(try await beat("py-2").status == 403)
    #expect(try await beat("py-2", key: "wrong").status == 403)
    #expect(try await stack.get("/internal/task/request?node_id=py-2").status == 403)

    let created = try await stack.post("/tasks", ["code": "print(2)"])
    let id = try #require(created.object["task_id"] as? String)
    let offer = try await stack.send("GET", "/internal/task/request?node_id=py-2", headers: ["X-Node-Key": key])
    let offered = try #require(offer.object["task"] as? [String: Any], "\(offer.text)")
    #expect(offered["task_id"] as? String == id && offered["attempt"] as? Int == 1)

    // Another pulling node, a missing key, a wrong attempt: refused, and the task still runs.
    _ = try await beat("py-3")
    let other = try await stack.post("/internal/task/result", ["task_id": id, "node_id": "py-3", "status": "success", "result": "x"])
    #expect(other.status == 403, "\(other.text)")
    let keyless = try await stack.post("/internal/task/result", ["task_id": id, "node_id": "py-2", "status": "success", "result": "x"])
    #expect(keyless.status == 403, "\(keyless.text)")
    let stale = try await stack.send(
      "POST", "/internal/task/result", json: ["task_id": id, "node_id": "py-2", "attempt": 7, "status": "success", "result": "x"],
      headers: ["X-Node-Key": key])
    #expect(stale.status == 403 && stale.errorDetails == "field: attempt", "\(stale.text)")
    #expect(try await stack.get("/tasks/\(id)").object["status"] as? String == "running")

    let real = try await stack.send(
      "POST", "/internal/task/result",
      json: ["task_id": id, "node_id": "py-2", "node_key": key, "attempt": 1, "status": "success", "result": "2\n"])
    #expect(real.status == 200, "\(real.text)")
    #expect(try await stack.get("/tasks/\(id)").object["result"] as? String == "2")
    #expect(stack.problems.withLock { $0 } == [])
    await stack.stop()
  }
}
