/// What a link has to send, in the order it goes: a pure value type (no I/O, no
/// continuations), tested on its own (`BulkWindowTests`, `StreamBatchingTests`).
///
/// Small frames wait in `outbox`; payloads above the chunk size wait as pieces in `bulk`, and
/// go only as fast as the peer acknowledges them (`bulkWindow`), so a small frame is never
/// behind more than one window of pieces. Stream items ready together share a frame.
struct Outbox: Sendable {
  /// Frames ready to go, in order.
  var outbox: [Frame] = []
  /// Pieces of large payloads (and frames of streams that have pieces waiting), in order.
  var bulk: [Frame] = []
  var bulkHead = 0
  /// Stream ids with pieces of an item still in the bulk queue: their next frames queue
  /// behind them so that items and the end stay in order.
  var bulkPending: [UInt64: Int] = [:]
  /// Payload bytes of the stream items gathered in the outbox's last frame.
  var lastItemBytes = 0
  /// Whether the peer acknowledges the pieces it receives (said in its HELLO).
  var peerAcksPieces = false
  /// Whether the peer reads several items from one STREAM_ITEM frame (said in its HELLO):
  /// toward an older peer each item keeps a frame of its own.
  var peerTakesItemBatches = false
  /// Bytes of pieces sent and not yet acknowledged.
  var bulkUnacked = 0
  /// At most this many bytes of pieces are unacknowledged (one chunk, at least 1 MiB):
  /// whatever is queued behind them (a small call, an answer) is never behind more than
  /// this on the way to the peer, however large the transfer. (HTTP/2 flow control alone
  /// lets 16 MiB pile up ahead: small calls then waited up to 60 ms behind a 100 MiB echo.)
  var bulkWindow = 1 << 20
  /// The link is closing: what is left goes without waiting for acknowledgements.
  var closing = false

  /// The peer has taken in `bytes` of pieces.
  mutating func acknowledge(bytes: Int) { bulkUnacked = max(0, bulkUnacked - bytes) }

  /// Drops everything (the link closed).
  mutating func discardAll() {
    outbox.removeAll()
    bulk.removeAll()
    bulkHead = 0
    bulkPending.removeAll()
  }

  /// Whether a frame's payload travels in pieces: above the chunk size plus an eighth, so
  /// that a value of exactly the chunk size with its envelope (arguments, names) is not
  /// split into a large and a tiny piece, and copied back together.
  static func needsPieces(_ frame: Frame, chunkSize: Int) -> Bool {
    frame.payload.count > chunkSize + chunkSize / 8
  }

  /// Stream items of one frame: up to this many payload bytes (and at most a chunk) go
  /// together; a larger item never joins (it travels alone or in pieces).
  static let itemFrameBytes = 64 << 10

  /// Queues a frame, split into pieces when large.
  ///
  /// A stream item joins the outbox's last frame when that is an item of the same stream
  /// still waiting for the writer: items that are ready together travel as one frame.
  mutating func enqueue(_ frame: Frame, chunkSize: Int) {
    let isStreamFrame = frame.type == .streamItem || frame.type == .streamEnd
    if frame.type == .streamItem, peerTakesItemBatches, let last = outbox.indices.last, outbox[last].type == .streamItem,
      outbox[last].correlationID == frame.correlationID, outbox[last].serializer == frame.serializer,
      lastItemBytes + frame.payload.count <= min(Self.itemFrameBytes, chunkSize), bulkPending[frame.correlationID] == nil
    {
      outbox[last].moreItems.append(frame.payload)
      outbox[last].moreItems.append(contentsOf: frame.moreItems)
      lastItemBytes += frame.payload.count
    } else if isStreamFrame, !Self.needsPieces(frame, chunkSize: chunkSize), bulkPending[frame.correlationID, default: 0] > 0 {
      bulk.append(frame)
      bulkPending[frame.correlationID, default: 0] += 1
    } else if Self.needsPieces(frame, chunkSize: chunkSize) {
      let total = frame.payload.count
      var offset = frame.payload.startIndex
      var index: UInt32 = 0
      while offset < frame.payload.endIndex {
        let end = min(offset + chunkSize, frame.payload.endIndex)
        var piece: Frame
        if index == 0 {
          piece = frame
          piece.payload = frame.payload[offset..<end]
        } else {
          piece = Frame(
            id: frame.id, type: frame.type, payload: frame.payload[offset..<end], correlationID: frame.correlationID)
        }
        piece.chunk = Frame.Chunk(index: index, last: end == frame.payload.endIndex, totalSize: UInt64(total))
        bulk.append(piece)
        if isStreamFrame { bulkPending[frame.correlationID, default: 0] += 1 }
        offset = end
        index += 1
      }
    } else {
      outbox.append(frame)
      lastItemBytes = frame.payload.count
    }
  }

  /// Whether the next frame of the bulk queue may go now: within the acknowledgement
  /// window (always when nothing is unacknowledged, when the peer does not acknowledge,
  /// or when closing).
  func mayWritePiece(_ frame: Frame) -> Bool {
    frame.chunk == nil || !peerAcksPieces || closing || bulkUnacked == 0
      || bulkUnacked + frame.payload.count <= bulkWindow
  }

  /// What is ready, in order, up to about `budget` bytes (at least one frame): the outbox
  /// first, then pieces of the bulk queue within the acknowledgement window. A batch is one
  /// message of the transport, so it must stay bounded even when many frames of up to a
  /// chunk wait together.
  mutating func takeBatch(budget: Int) -> [Frame]? {
    if outbox.isEmpty && (bulkHead == bulk.count || !mayWritePiece(bulk[bulkHead])) { return nil }
    var bytes = 0
    var cut = 0
    while cut < outbox.count {
      let size = outbox[cut].payloadBytes
      if cut > 0, bytes + size > budget { break }
      bytes += size
      cut += 1
    }
    var batch: [Frame]
    if cut == outbox.count {
      batch = outbox
      outbox = []
    } else {
      // The rest of the outbox goes next, still ahead of the bulk queue (a stream's
      // frames must not overtake each other between the two).
      batch = Array(outbox[..<cut])
      outbox.removeFirst(cut)
      return batch
    }
    while bulkHead < bulk.count, bytes == 0 || bytes + bulk[bulkHead].payload.count <= budget,
      mayWritePiece(bulk[bulkHead])
    {
      let frame = bulk[bulkHead]
      bytes += frame.payload.count
      if frame.chunk != nil, peerAcksPieces { bulkUnacked += frame.payload.count }
      batch.append(frame)
      bulkHead += 1
      if frame.type == .streamItem || frame.type == .streamEnd {
        let left = bulkPending[frame.correlationID, default: 1] - 1
        bulkPending[frame.correlationID] = left > 0 ? left : nil
      }
    }
    if bulkHead == bulk.count {
      bulk.removeAll(keepingCapacity: true)
      bulkHead = 0
    }
    return batch
  }
}
