import CompressNIO
import Foundation
import NIOCore

/// Deflates and inflates payloads on links (see ``CompressionConfig``), through compress-nio.
///
/// A compressed payload keeps its serializer's name with ``suffix`` appended, so the peer
/// knows to inflate it and then decodes it as before. Inflating stops at the payload limit:
/// a small payload that would inflate past it is refused as too large, never held whole.
package enum PayloadCompression {
  /// The HELLO metadata key listing the compressions a node reads.
  package static let helloKey = "compression"
  package static let deflate = "deflate"
  /// Appended to the serializer name of a deflated payload.
  package static let suffix = "+deflate"

  package static func isCompressed(_ payload: Payload) -> Bool { payload.serializer.hasSuffix(suffix) }

  /// `payload` deflated, or `payload` itself when deflating does not make it smaller.
  package static func compress(_ payload: Payload) -> Payload {
    var input = ByteBuffer(bytes: payload.data)
    guard let output = try? input.compress(with: .deflate()), output.readableBytes < payload.data.count else {
      return payload
    }
    return Payload(data: Data(output.readableBytesView), serializer: payload.serializer + suffix)
  }

  /// `payload` inflated when it is deflated, else itself.
  ///
  /// - Throws: ``NodeError`` `payloadTooLarge` when it inflates past `limit` bytes,
  ///   `serializationFailed` when it is not valid deflate data.
  package static func decompress(_ payload: Payload, limit: Int, method: String) throws(NodeError) -> Payload {
    guard isCompressed(payload) else { return payload }
    let serializer = String(payload.serializer.dropLast(suffix.count))
    var input = ByteBuffer(bytes: payload.data)
    do {
      let output = try input.decompress(with: .deflate(), maxSize: limit)
      return Payload(data: Data(output.readableBytesView), serializer: serializer)
    } catch let error as CompressNIOError where error == .bufferOverflow {
      var tooLarge = NodeError.payloadTooLarge(size: limit + 1, limit: limit, method: method)
      tooLarge.message = "a deflated payload of \(payload.data.count) bytes for '\(method)' inflates past the limit of \(limit) bytes"
      throw tooLarge
    } catch {
      throw NodeError(
        code: .serializationFailed,
        message: "a deflated payload of \(payload.data.count) bytes for '\(method)' cannot be inflated: \(error)",
        method: method)
    }
  }
}

extension Link {
  /// Whether both sides of this link offered deflate in their HELLO.
  var compresses: Bool { state.withLock { $0.peerInflates } && node.config.compression.enabled }

  /// `payload` as it goes out: deflated when the link compresses, it is large enough and the
  /// configuration selects it (or `answeringCompressed`: it answers a deflated request).
  func packed(
    _ payload: Payload, method: String, metadata: [String: String], answeringCompressed: Bool = false
  ) -> Payload {
    let settings = node.config.compression
    guard payload.data.count >= max(1, settings.minimumSize), !PayloadCompression.isCompressed(payload),
      answeringCompressed || settings.selects(method: method, metadata: metadata, serializer: payload.serializer),
      compresses
    else { return payload }
    return PayloadCompression.compress(payload)
  }

  /// A payload that came in, inflated when it was deflated (within the payload limit).
  func unpacked(_ payload: Payload, method: String) throws(NodeError) -> Payload {
    try PayloadCompression.decompress(payload, limit: node.config.limits.maxPayloadSize, method: method)
  }
}
