public import Foundation

/// Bytes of a call's argument or result, with the name of the serializer that produced them.
///
/// The transport never looks inside a payload. Raw bytes (`Data`, `[UInt8]`) travel with the
/// serializer name `raw` and are never re-encoded.
public struct Payload: Sendable, Equatable {
  public var data: Data
  public var serializer: String

  public init(data: Data, serializer: String) {
    self.data = data
    self.serializer = serializer
  }

  /// Raw bytes, passed without encoding.
  public static func raw(_ data: Data) -> Payload { Payload(data: data, serializer: RawSerializer.name) }

  /// Raw bytes, passed without encoding.
  public static func raw(_ bytes: [UInt8]) -> Payload { .raw(Data(bytes)) }

  /// A value encoded as JSON.
  public static func json(_ value: some Encodable) throws -> Payload {
    Payload(data: try JSONSerializer().encode(value), serializer: JSONSerializer.name)
  }

  /// The empty payload (used for notifications' acknowledgements and `Void` results).
  public static let empty = Payload(data: Data(), serializer: RawSerializer.name)

  /// The payload as UTF-8 text, for logs and tests.
  public var text: String { String(decoding: data, as: UTF8.self) }
}
