import Foundation
import NodeComm
import TaskCenterHTTP
import Testing

@Suite("The gateway's configuration sections")
struct GatewaySettingsTests {
  func folder() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("er-gateway-config-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
  }

  @Test("http and tasks decode beside the node layer's keys; paths are relative to the file")
  func decodes() throws {
    let directory = try folder()
    defer { try? FileManager.default.removeItem(at: directory) }
    try "CERT".write(to: directory.appendingPathComponent("server.pem"), atomically: true, encoding: .utf8)
    try "KEY".write(to: directory.appendingPathComponent("server.key"), atomically: true, encoding: .utf8)
    let file = directory.appendingPathComponent("gateway.yaml")
    try """
      transport: { port: 9000 }
      auth: { token: s3cret }
      http: { port: 8443, host: 0.0.0.0, tls: { cert_file: server.pem, key_file: server.key } }
      tasks: { db: tasks.sqlite, lease_seconds: 20 }
      """.write(to: file, atomically: true, encoding: .utf8)
    let settings = try GatewaySettings.load(file: file.path)
    #expect(settings.http.port == 8443 && settings.http.host == "0.0.0.0" && settings.http.enabled)
    #expect(settings.http.certificateFile == directory.appendingPathComponent("server.pem").path)
    #expect(settings.http.keyFile == directory.appendingPathComponent("server.key").path)
    #expect(settings.tasks == GatewaySettings.Tasks(database: directory.appendingPathComponent("tasks.sqlite").path, leaseSeconds: 20))
    // The same file for the node layer, which leaves the gateway's sections alone.
    let node = try NodeConfig.load(file: file.path, otherSections: GatewaySettings.sections)
    #expect(node.transport.port == 9000 && node.authToken == "s3cret")

    let url = try GatewaySettings.load(yaml: "tasks: { db: \"postgres://easyremote@db.local/tasks\" }\n")
    #expect(url.tasks.database == "postgres://easyremote@db.local/tasks" && url.tasks.leaseSeconds == nil)
    #expect(try GatewaySettings.load(yaml: "") == GatewaySettings())
    #expect(try GatewaySettings.load(yaml: "http: { enabled: false }\n").http.enabled == false)
  }

  @Test("a wrong key or value in them is refused at load, naming its path")
  func refused() throws {
    for (yaml, words) in [
      ("http: { prot: 8000 }\n", ["unknown key 'http.prot'"]),
      ("http: { port: 70000 }\n", ["'http.port'", "port"]),
      ("http: { port: eighty }\n", ["'http.port'", "whole number"]),
      ("http: { tls: { cert_file: /nonexistent/server.pem, key_file: /nonexistent/server.key } }\n", ["/nonexistent/server.pem", "http.tls.cert_file"]),
      ("http: { tls: { cert: a.pem } }\n", ["unknown key 'http.tls.cert'"]),
      ("tasks: { lease_seconds: 0 }\n", ["'tasks.lease_seconds'", "1 to 3600"]),
      ("tasks: { lease_seconds: 1e9 }\n", ["'tasks.lease_seconds'"]),
      ("tasks: { database: x.sqlite }\n", ["unknown key 'tasks.database'"]),
      ("tasks: [db]\n", ["'tasks' must be a mapping"]),
    ] {
      do {
        _ = try GatewaySettings.load(yaml: yaml, source: "gateway.yaml")
        Issue.record("accepted: \(yaml)")
      } catch let error as NodeError {
        #expect(error.code == .invalidState)
        #expect(error.message.hasPrefix("invalid configuration in gateway.yaml: "), "\(error.message)")
        for word in words { #expect(error.message.contains(word), "\(yaml): \(error.message)") }
      }
    }
    // Both TLS files or neither.
    let directory = try folder()
    defer { try? FileManager.default.removeItem(at: directory) }
    try "CERT".write(to: directory.appendingPathComponent("server.pem"), atomically: true, encoding: .utf8)
    do {
      _ = try GatewaySettings.load(yaml: "http: { tls: { cert_file: server.pem } }\n", baseDirectory: directory)
      Issue.record("a certificate without its key was accepted")
    } catch let error as NodeError {
      #expect(error.message.contains("'http.tls' needs both cert_file and key_file"), "\(error.message)")
    }
  }
}
