/// How busy a node's machine is right now, as its heartbeat reports it.
public struct NodeLoad: Codable, Sendable, Hashable {
  public var cpuPercent: Double
  public var memoryPercent: Double

  public init(cpuPercent: Double = 0, memoryPercent: Double = 0) {
    self.cpuPercent = cpuPercent
    self.memoryPercent = memoryPercent
  }

  enum CodingKeys: String, CodingKey {
    case cpuPercent = "cpu_percent"
    case memoryPercent = "memory_percent"
  }
}
