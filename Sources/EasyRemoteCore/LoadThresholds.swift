/// Above these, a node's machine is busy with its owner's work and gets no tasks.
public struct LoadThresholds: Codable, Sendable, Hashable {
  public var maxCPUPercent: Double
  public var maxMemoryPercent: Double

  public init(maxCPUPercent: Double = 80, maxMemoryPercent: Double = 90) {
    self.maxCPUPercent = maxCPUPercent
    self.maxMemoryPercent = maxMemoryPercent
  }

  public func allows(_ load: NodeLoad) -> Bool {
    load.cpuPercent < maxCPUPercent && load.memoryPercent < maxMemoryPercent
  }
}
