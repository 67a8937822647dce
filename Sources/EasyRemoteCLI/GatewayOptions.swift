import ArgumentParser
import EasyRemote
import NodeComm
import TaskCenter
import TaskCenterHTTP
import Foundation
import Synchronization

/// `--gateway host:port`, defaulting to `$EASYREMOTE_GATEWAY`, then 127.0.0.1:8080; the token;
/// TLS (`--tls-ca`, `--tls-cert`, `--tls-key`, or `$EASYREMOTE_TLS_*`); and a YAML node
/// configuration (`--config`, `$EASYREMOTE_CONFIG`) whose TLS and token count unless a flag
/// says otherwise.
struct GatewayOptions: ParsableArguments {
  @Option(name: .long, help: "The gateway's host:port, or several comma-separated (gateways sharing one PostgreSQL store: the next is used when one is away) (default: $EASYREMOTE_GATEWAY or 127.0.0.1:8080).")
  var gateway: String?

  @Option(name: .long, help: "The gateway's shared token (default: $EASYREMOTE_TOKEN).")
  var token: String?

  @Option(name: .customLong("tls-ca"), help: "Trust the gateway's certificate if this CA (PEM) signed it: speak TLS (default: $EASYREMOTE_TLS_CA).")
  var tlsCA: String?

  @Option(name: .customLong("tls-cert"), help: "This side's certificate (PEM) for mutual TLS (default: $EASYREMOTE_TLS_CERT).")
  var tlsCert: String?

  @Option(name: .customLong("tls-key"), help: "The private key (PEM) of --tls-cert (default: $EASYREMOTE_TLS_KEY).")
  var tlsKey: String?

  @Option(name: .customLong("config"), help: "A YAML node configuration for TLS, token, heartbeat and limits (default: $EASYREMOTE_CONFIG).")
  var configFile: String?

  private var environment: [String: String] { ProcessInfo.processInfo.environment }

  var address: String {
    gateway ?? environment["EASYREMOTE_GATEWAY"] ?? "127.0.0.1:8080"
  }

  var authToken: String? { token(file: fileConfig) }

  private func token(file: NodeConfig?) -> String? { token ?? environment["EASYREMOTE_TOKEN"] ?? file?.authToken }

  /// The YAML file's settings, parsed at each read (options keep no state): read it once per use.
  private var fileConfig: NodeConfig? {
    (configFile ?? environment["EASYREMOTE_CONFIG"]).flatMap { try? NodeConfig.load(file: $0, otherSections: GatewaySettings.sections) }
  }

  func validate() throws {
    if let file = configFile ?? environment["EASYREMOTE_CONFIG"] {
      do {
        _ = try NodeConfig.load(file: file, otherSections: GatewaySettings.sections)
      } catch {
        throw ValidationError("\(error)")
      }
    }
    _ = try tls(file: fileConfig)
  }

  /// The TLS settings for dialing the gateway: flags, then environment, then the file.
  private func tls(file: NodeConfig?) throws -> TLSConfig? {
    func read(_ path: String?, _ what: String) throws -> String? {
      guard let path else { return nil }
      guard let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("-----BEGIN") else {
        throw ValidationError("cannot read the \(what) PEM file \(path)")
      }
      return text
    }
    let ca = try read(tlsCA ?? environment["EASYREMOTE_TLS_CA"], "CA")
    let cert = try read(tlsCert ?? environment["EASYREMOTE_TLS_CERT"], "certificate")
    let key = try read(tlsKey ?? environment["EASYREMOTE_TLS_KEY"], "key")
    if (cert == nil) != (key == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
    if ca == nil && cert == nil { return file?.transport.tls }
    var tls = file?.transport.tls ?? TLSConfig()
    if let ca { tls.trustedCAPEM = ca }
    if let cert, let key {
      tls.certificatePEM = cert
      tls.privateKeyPEM = key
    }
    return tls
  }

  /// Node-layer settings carrying the token and TLS.
  var config: NodeConfig {
    let file = fileConfig
    var config = file ?? .defaults
    // The file may be the gateway's own (its node_id is the gateway's): a client or node
    // here takes its id from --id, never from the file.
    config.nodeID = nil
    config.authToken = token(file: file)
    config.transport.tls = (try? tls(file: file)) ?? nil
    return config
  }

  func client(timeout: Duration = .seconds(30)) -> Client {
    Client(serverAddress: address, timeout: timeout, config: config)
  }

  /// Runs `body` with a client of the gateway and closes it before returning, also when
  /// `body` throws; a failure is printed and becomes the exit code (``fail(_:)``).
  func withClient(_ body: (Client) async throws -> Void) async throws {
    let client = client()
    do {
      try await body(client)
      await finish(client)
    } catch let exit as ExitCode {
      await finish(client)
      throw exit
    } catch {
      await finish(client)
      throw fail(error)
    }
  }
}

/// Closes a command's client once its answer is out. The close is bounded on its own: a
/// gateway that went away (or stopped answering) is given 2 s to end the link's stream, then
/// the stream is cut (`GRPCClientChannel.close`).
func finish(_ client: Client) async {
  await client.close()
}

/// Prints a failure the way scripts expect: the message on stderr, a non-zero exit code
/// (2 when the gateway cannot be reached, 1 otherwise).
func fail(_ error: any Error) -> ExitCode {
  let remote = error as? EasyRemoteError
  var text = remote.map { "error: \($0.code): \($0.message)" + ($0.cause.map { " (\($0))" } ?? "") } ?? "error: \(error)"
  if let task = error as? TaskCenterError {
    text = "error: \(task.code): \(task.message)" + (task.details.map { " (\($0))" } ?? "")
  }
  try? FileHandle.standardError.write(contentsOf: Data((text + "\n").utf8))
  return remote?.code == .connectionFailed ? ExitCode(2) : ExitCode(1)
}

/// Writes a line to stdout at once (scripts read streams line by line); a reader that went
/// away (EPIPE) is not an error worth a crash.
func emit(_ line: String) {
  try? FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}

/// A table for people: columns padded to their widest cell.
func table(_ header: [String], _ rows: [[String]]) -> String {
  let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
  func line(_ cells: [String]) -> String {
    cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
      .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
  }
  return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line))
    .joined(separator: "\n")
}

/// JSON text of a Codable value, pretty or on one line.
func jsonText(_ value: some Encodable, pretty: Bool = false) -> String {
  let encoder = JSONEncoder()
  encoder.dateEncodingStrategy = .iso8601
  encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
  return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
}

/// A command-line argument as JSON: a JSON literal, or else the text as a string.
func jsonArgument(_ text: String) -> JSONValue {
  (try? JSONValue(parsing: text)) ?? .string(text)
}
