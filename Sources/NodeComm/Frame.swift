public import Foundation

/// The unit that travels on a link.
///
/// A frame is transport-neutral: the memory transport passes it as it is, the gRPC transport
/// maps it onto `easyremote.link.v1.Frame` (see `Protos/link.proto`). Frames that are ready
/// together travel as one batch.
public struct Frame: Sendable, Equatable {
  public var id: UInt64
  public var type: FrameType
  public var method: String
  public var source: String
  public var target: String
  public var payload: Data
  public var serializer: String
  public var correlationID: UInt64
  public var timestampMicros: Int64
  public var metadata: [String: String]
  public var error: ErrorInfo?
  /// For requests: the caller's remaining time budget in microseconds, 0 for none.
  public var timeoutMicros: Int64
  /// For credit frames: items granted; for streaming requests: the initial window.
  public var credit: UInt32
  /// Set when `payload` is one piece of a larger payload.
  public var chunk: Chunk?
  /// For requests: the caller expects a stream of items.
  public var streaming: Bool
  /// For stream items: the items after `payload`, in order (items that were ready together
  /// travel in one frame).
  public var moreItems: [Data]

  public init(
    id: UInt64 = 0,
    type: FrameType,
    method: String = "",
    source: String = "",
    target: String = "",
    payload: Data = Data(),
    serializer: String = "",
    correlationID: UInt64 = 0,
    timestampMicros: Int64 = 0,
    metadata: [String: String] = [:],
    error: ErrorInfo? = nil,
    timeoutMicros: Int64 = 0,
    credit: UInt32 = 0,
    chunk: Chunk? = nil,
    streaming: Bool = false,
    moreItems: [Data] = []
  ) {
    self.id = id
    self.type = type
    self.method = method
    self.source = source
    self.target = target
    self.payload = payload
    self.serializer = serializer
    self.correlationID = correlationID
    self.timestampMicros = timestampMicros
    self.metadata = metadata
    self.error = error
    self.timeoutMicros = timeoutMicros
    self.credit = credit
    self.chunk = chunk
    self.streaming = streaming
    self.moreItems = moreItems
  }

  /// One piece of a payload split for transfer; pieces share the frame id.
  public struct Chunk: Sendable, Equatable {
    public var index: UInt32
    public var last: Bool
    public var totalSize: UInt64

    public init(index: UInt32, last: Bool, totalSize: UInt64) {
      self.index = index
      self.last = last
      self.totalSize = totalSize
    }
  }

  /// Payload bytes, with every item of a batched stream frame: what bounds a batch.
  var payloadBytes: Int { moreItems.reduce(payload.count) { $0 + $1.count } }

  /// How many stream items the frame carries.
  var itemCount: Int { 1 + moreItems.count }
}

/// What a frame is for. See `Protos/link.proto` for the meaning of each.
public enum FrameType: Int, Sendable, CaseIterable {
  case hello = 1
  case request = 2
  case response = 3
  case notify = 4
  case streamItem = 5
  case streamEnd = 6
  case cancel = 7
  case credit = 8
  case heartbeat = 9
  case goodbye = 10
}

/// A structured error as it travels between nodes.
public struct ErrorInfo: Sendable, Equatable, Codable {
  public var code: String
  public var message: String
  public var details: [String: String]
  /// Stack or context; only nodes running in debug mode fill it in.
  public var debugDetail: String?

  public init(code: String, message: String, details: [String: String] = [:], debugDetail: String? = nil) {
    self.code = code
    self.message = message
    self.details = details
    self.debugDetail = debugDetail
  }
}

extension Frame {
  static func nowMicros() -> Int64 {
    Int64(Date().timeIntervalSince1970 * 1_000_000)
  }
}
