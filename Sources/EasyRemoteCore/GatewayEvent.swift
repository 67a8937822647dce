public import Foundation

/// Something that happened at the gateway, as every subscriber of ``Server/events(buffer:)``
/// gets it: its name and the whole event as JSON text, `{"data":{…},"event":"name"}`,
/// encoded once when it happened (and only if someone listens).
///
/// The gateway itself publishes `node_connected` (`{node_id, functions, max_workers}`) and
/// `node_disconnected` (`{node_id, reason}`); extensions publish theirs through
/// ``Server/publish(_:_:encoder:)`` — the task center its `node_joined`, `node_left` and
/// `task_*` events, whose data is the object its REST API answers for the same thing.
public struct GatewayEvent: Sendable, Equatable {
  public let name: String
  public let json: Data

  /// Encodes `data` under `name`.
  public init(name: String, data: some Encodable, encoder: JSONEncoder = GatewayEvent.encoder) throws {
    self.name = name
    self.json = try encoder.encode(Envelope(event: name, data: data))
  }

  /// The event's data, read back from ``json``.
  public var data: JSONValue {
    guard case .object(let fields)? = try? JSONValue(parsing: String(decoding: json, as: UTF8.self)) else { return .null }
    return fields["data"] ?? .null
  }

  /// Keys sorted, dates as ISO-8601 text (as the REST API writes them).
  public static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.sortedKeys]
    return encoder
  }

  private struct Envelope<Payload: Encodable>: Encodable {
    var event: String
    var data: Payload
  }
}
