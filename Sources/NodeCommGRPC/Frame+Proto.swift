import Foundation
import NodeComm

extension Frame {
  /// The frame as it travels in a `FrameBatch`.
  var proto: Easyremote_Link_V1_Frame {
    var message = Easyremote_Link_V1_Frame()
    message.id = id
    message.type = Easyremote_Link_V1_FrameType(rawValue: type.rawValue) ?? .unspecified
    if !method.isEmpty { message.method = method }
    if !source.isEmpty { message.source = source }
    if !target.isEmpty { message.target = target }
    if !payload.isEmpty { message.payload = payload }
    if !serializer.isEmpty { message.serializer = serializer }
    message.correlationID = correlationID
    message.timestampMicros = timestampMicros
    if !metadata.isEmpty { message.metadata = metadata }
    if let error {
      var info = Easyremote_Link_V1_ErrorInfo()
      info.code = error.code
      info.message = error.message
      info.details = error.details
      if let detail = error.debugDetail { info.debugDetail = detail }
      message.error = info
    }
    message.timeoutMicros = timeoutMicros
    message.credit = credit
    if let chunk {
      var piece = Easyremote_Link_V1_Chunk()
      piece.index = chunk.index
      piece.last = chunk.last
      piece.totalSize = chunk.totalSize
      message.chunk = piece
    }
    message.streaming = streaming
    if !moreItems.isEmpty { message.moreItems = moreItems }
    return message
  }

  /// The frame a peer sent; nil for frame types this node does not know.
  init?(proto message: Easyremote_Link_V1_Frame) {
    guard let type = FrameType(rawValue: message.type.rawValue) else { return nil }
    self.init(
      id: message.id, type: type, method: message.method, source: message.source, target: message.target,
      payload: message.payload, serializer: message.serializer, correlationID: message.correlationID,
      timestampMicros: message.timestampMicros, metadata: message.metadata,
      error: message.hasError
        ? ErrorInfo(
          code: message.error.code, message: message.error.message, details: message.error.details,
          debugDetail: message.error.debugDetail.isEmpty ? nil : message.error.debugDetail) : nil,
      timeoutMicros: message.timeoutMicros, credit: message.credit,
      chunk: message.hasChunk
        ? Chunk(index: message.chunk.index, last: message.chunk.last, totalSize: message.chunk.totalSize) : nil,
      streaming: message.streaming, moreItems: message.moreItems)
  }
}

extension Easyremote_Link_V1_FrameBatch {
  init(frames: [Frame]) {
    self.init()
    self.frames = frames.map(\.proto)
  }

  var nodeFrames: [Frame] { frames.compactMap(Frame.init(proto:)) }
}
