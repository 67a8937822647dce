import ArgumentParser
import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// `easyremote remote ...`: remote hosts over SSH through the gateway's HTTP API
/// (`/api/remote/`). The connections live in the gateway; these commands only ask it.
struct RemoteCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "remote", abstract: "Make machines you can ssh into nodes of the pool (through the gateway).",
    subcommands: [
      RemoteConnect.self, RemoteList.self, RemoteEnvs.self, RemoteStart.self, RemoteStop.self, RemoteStatus.self,
      RemoteLogs.self, RemotePing.self, RemoteHealth.self, RemoteDisconnect.self,
    ])
}

/// `--api URL --token T --json`, and the requests every `remote` command makes.
struct RemoteAPIOptions: ParsableArguments {
  @Option(help: "The gateway's HTTP API (default: $EASYREMOTE_API or http://127.0.0.1:8000).") var api: String?
  @Option(help: "The gateway's token (default: $EASYREMOTE_TOKEN).") var token: String?
  @Flag(help: "Print the gateway's JSON answer.") var json = false

  var base: String {
    (api ?? ProcessInfo.processInfo.environment["EASYREMOTE_API"] ?? "http://127.0.0.1:8000")
      .trimmingCharacters(in: CharacterSet(charactersIn: "/"))
  }

  struct Failure: Error {
    var status: Int
    var object: [String: Any]
  }

  /// The answer's JSON object; an error answer (`success: false`) throws ``Failure``.
  func send(_ method: String, _ path: String, query: [String: String] = [:], body: [String: Any]? = nil) async throws
    -> [String: Any]
  {
    var components = URLComponents(string: base + path)!
    if !query.isEmpty { components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
    var request = URLRequest(url: components.url!)
    request.httpMethod = method
    request.timeoutInterval = 600
    if let token = token ?? ProcessInfo.processInfo.environment["EASYREMOTE_TOKEN"] {
      request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    }
    if let body {
      request.httpBody = try JSONSerialization.data(withJSONObject: body)
      request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let data: Data
    let response: URLResponse
    do {
      (data, response) = try await URLSession.shared.data(for: request)
    } catch {
      throw RemoteCLIError("cannot reach the gateway's HTTP API at \(base): \(error.localizedDescription)")
    }
    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
    let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    if status >= 400 || object["success"] as? Bool == false { throw Failure(status: status, object: object) }
    return object
  }

  /// Runs `body`; a gateway error is printed (`error: CODE: message`, or its JSON with
  /// `--json`) and becomes exit code 1.
  func run(_ body: () async throws -> [String: Any], show: ([String: Any]) -> Void) async throws {
    do {
      let object = try await body()
      if json { emit(Self.text(object)) } else { show(object) }
    } catch let failure as Failure {
      if json { emit(Self.text(failure.object)) }
      let code = failure.object["error"] as? String ?? (failure.object["error"] as? [String: Any])?["code"] as? String ?? "HTTP \(failure.status)"
      let message = failure.object["message"] as? String ?? (failure.object["error"] as? [String: Any])?["message"] as? String ?? ""
      try? FileHandle.standardError.write(contentsOf: Data("error: \(code): \(message)\n".utf8))
      throw ExitCode(1)
    } catch let error as RemoteCLIError {
      try? FileHandle.standardError.write(contentsOf: Data("error: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
  }

  static func text(_ object: Any) -> String {
    (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
      .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
  }
}

struct RemoteCLIError: Error {
  var message: String
  init(_ message: String) { self.message = message }
}

struct RemoteConnect: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "connect", abstract: "Connect the gateway to a host over SSH (user@host[:port] or an ~/.ssh/config alias).")

  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "user@host[:port], host, or an alias from the gateway user's ~/.ssh/config.") var target: String
  @Option(help: "A private key file on the gateway's machine.") var key: String?
  @Flag(help: "Read the SSH password from the first line of stdin.") var passwordStdin = false
  @Flag(help: "Read the key's passphrase from the first line of stdin.") var passphraseStdin = false
  @Flag(help: "Log in with the gateway user's ssh-agent.") var agent = false
  @Flag(help: "Trust the host key the host presents now (its fingerprint is printed), when it is not known yet.")
  var acceptHostKey = false
  @Option(help: "Trust the host key only if its fingerprint is this one (SHA256:...).") var hostKey: String?
  @Option(help: "Seconds to wait for the connection.") var timeout: Double = 30

  func run() async throws {
    var (user, host, port) = (String?.none, target, Int?.none)
    if let at = host.lastIndex(of: "@") {
      user = String(host[..<at])
      host = String(host[host.index(after: at)...])
    }
    if let colon = host.lastIndex(of: ":"), !host.hasPrefix("["), let value = Int(host[host.index(after: colon)...]) {
      port = value
      host = String(host[..<colon])
    }
    var body: [String: Any] = ["host": host, "timeout": timeout]
    body["username"] = user
    body["port"] = port
    if passwordStdin {
      guard let password = readLine(strippingNewline: true), !password.isEmpty else { throw ValidationError("no password on stdin") }
      body["auth_method"] = "password"
      body["password"] = password
    } else if agent {
      body["auth_method"] = "agent"
    } else {
      body["auth_method"] = "key"
      body["private_key_path"] = key.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
      if passphraseStdin { body["key_passphrase"] = readLine(strippingNewline: true) }
    }
    body["accept_host_key"] = hostKey
    try await options.run(
      {
        do {
          return try await options.send("POST", "/api/remote/connect", body: body)
        } catch let failure as RemoteAPIOptions.Failure
          where failure.object["error"] as? String == "host_key_unknown" && acceptHostKey && hostKey == nil
        {
          guard let fingerprint = (failure.object["details"] as? [String: Any])?["fingerprint"] as? String else { throw failure }
          try? FileHandle.standardError.write(contentsOf: Data("accepting the host key of \(host): \(fingerprint)\n".utf8))
          body["accept_host_key"] = fingerprint
          return try await options.send("POST", "/api/remote/connect", body: body)
        }
      },
      show: { object in
        let info = object["server_info"] as? [String: Any] ?? [:]
        emit(object["connection_id"] as? String ?? "")
        try? FileHandle.standardError.write(
          contentsOf: Data(
            "connected to \(info["hostname"] as? String ?? host) (\(info["os"] as? String ?? "?") \(info["kernel"] as? String ?? ""), Python \(info["python_version"] as? String ?? "none"))\n"
              .utf8))
      })
  }
}

struct RemoteList: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "list", abstract: "The gateway's SSH connections.")
  @OptionGroup var options: RemoteAPIOptions

  func run() async throws {
    try await options.run({ try await options.send("GET", "/api/remote/connections") }) { object in
      let rows = (object["connections"] as? [[String: Any]] ?? []).map { connection -> [String] in
        let viewer = connection["viewer"] as? [String: Any]
        return [
          connection["connection_id"] as? String ?? "", "\(connection["username"] as? String ?? "")@\(connection["host"] as? String ?? ""):\(connection["port"] as? Int ?? 22)",
          connection["status"] as? String ?? "", viewer?["status"] as? String ?? "-", viewer?["node_id"] as? String ?? "-",
        ]
      }
      emit(table(["ID", "HOST", "STATUS", "AGENT", "NODE"], rows))
    }
  }
}

struct RemoteEnvs: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "envs", abstract: "The environments (Python runtimes) on a host.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String
  @Flag(help: "Inspect the host again first.") var refresh = false

  func run() async throws {
    try await options.run(
      {
        if refresh { _ = try await options.send("POST", "/api/remote/environments/detect", body: ["connection_id": id, "force_refresh": true]) }
        return try await options.send("GET", "/api/remote/environments", query: ["connection_id": id])
      },
      show: { object in
        let host = object["host"] as? [String: Any] ?? [:]
        emit(
          "\(host["hostname"] as? String ?? "") · \(host["os"] as? String ?? "") \(host["architecture"] as? String ?? "") · \(host["cpu_cores"] as? Int ?? 0) cores · agent: \(host["agent"] as? String ?? "?")"
        )
        let rows = (object["environments"] as? [[String: Any]] ?? []).map {
          [$0["name"] as? String ?? "", $0["type"] as? String ?? "", $0["python_version"] as? String ?? "", $0["python_path"] as? String ?? ""]
        }
        emit(table(["NAME", "TYPE", "PYTHON", "PATH"], rows))
      })
  }
}

struct RemoteStart: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "start", abstract: "Start a compute-node agent on the host; it joins the pool through the SSH connection.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String
  @Option(help: "The environment its code tasks run in (default: the first, see `remote envs`).") var env: String?
  @Option(help: "The folder on the host the agent's folder (log, pid) goes in.") var root: String?

  func run() async throws {
    try await options.run(
      {
        var name = env
        if name == nil {
          let list = try await options.send("GET", "/api/remote/environments", query: ["connection_id": id])
          name = (list["environments"] as? [[String: Any]])?.first?["name"] as? String
          guard name != nil else { throw RemoteCLIError("the host has no Python environment; see `easyremote remote envs \(id)`") }
        }
        var body: [String: Any] = ["connection_id": id, "env_name": name!]
        body["remote_root"] = root
        return try await options.send("POST", "/api/remote/viewer/start", body: body)
      },
      show: { object in
        let viewer = object["viewer"] as? [String: Any] ?? [:]
        emit("node \(viewer["node_id"] as? String ?? "?") started; its status page: \(viewer["url"] as? String ?? "?")")
      })
  }
}

struct RemoteStop: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the agent on the host (its node leaves the pool).")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String

  func run() async throws {
    try await options.run({ try await options.send("POST", "/api/remote/viewer/stop", body: ["connection_id": id]) }) { _ in
      emit("stopped")
    }
  }
}

struct RemoteStatus: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "status", abstract: "The agent's state.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String

  func run() async throws {
    try await options.run({ try await options.send("GET", "/api/remote/viewer/status", query: ["connection_id": id]) }) { object in
      let viewer = object["viewer"] as? [String: Any] ?? [:]
      emit(
        "\(viewer["status"] as? String ?? "?") · node \(viewer["node_id"] as? String ?? "?") · up \(viewer["uptime_seconds"] as? Int ?? 0) s · \(viewer["health"] as? String ?? "") · \(viewer["url"] as? String ?? "")"
      )
    }
  }
}

struct RemoteLogs: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "logs", abstract: "The last lines of the agent's log on the host.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String
  @Option(help: "How many lines.") var lines = 100

  func run() async throws {
    try await options.run({
      try await options.send("GET", "/api/remote/viewer/logs", query: ["connection_id": id, "lines": String(lines)])
    }) { object in
      for line in object["logs"] as? [String] ?? [] { emit(line) }
    }
  }
}

struct RemotePing: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "ping", abstract: "Round-trip time over the SSH connection.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String

  func run() async throws {
    try await options.run({ try await options.send("GET", "/api/remote/ping", query: ["connection_id": id]) }) { object in
      emit("\((object["latency_ms"] as? NSNumber)?.doubleValue ?? 0) ms")
    }
  }
}

struct RemoteHealth: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "health", abstract: "Checks of the connection, the agent and its tunnel.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String

  func run() async throws {
    try await options.run({ try await options.send("GET", "/api/remote/health", query: ["connection_id": id]) }) { object in
      let checks = (object["checks"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
      emit("\(object["health"] as? String ?? "?") (\(checks.joined(separator: ", ")))")
    }
  }
}

struct RemoteDisconnect: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "disconnect", abstract: "Stop the agent and close the SSH connection.")
  @OptionGroup var options: RemoteAPIOptions
  @Argument(help: "The connection id.") var id: String

  func run() async throws {
    try await options.run({ try await options.send("DELETE", "/api/remote/connections/\(id)") }) { _ in emit("disconnected") }
  }
}
