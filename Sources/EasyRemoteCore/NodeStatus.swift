/// idle (a free slot and a quiet machine), busy, or offline (missed heartbeats or gone).
public enum NodeStatus: String, Codable, Sendable {
  case idle, busy, offline
}
