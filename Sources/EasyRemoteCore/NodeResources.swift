import Foundation

/// What a node's machine has (`{"cores": 8, "memory": 16384, "platform": "linux"}`; MiB).
public struct NodeResources: Codable, Sendable, Hashable {
  public var cores: Int
  public var memoryMB: Int
  public var platform: String

  public init(cores: Int, memoryMB: Int, platform: String) {
    self.cores = cores
    self.memoryMB = memoryMB
    self.platform = platform
  }

  /// This machine, read from the system.
  public static var current: NodeResources {
    #if os(Linux)
      let platform = "linux"
    #elseif os(macOS)
      let platform = "macos"
    #else
      let platform = "unknown"
    #endif
    return NodeResources(
      cores: ProcessInfo.processInfo.activeProcessorCount,
      memoryMB: Int(ProcessInfo.processInfo.physicalMemory / 1_048_576), platform: platform)
  }

  enum CodingKeys: String, CodingKey {
    case cores
    case memoryMB = "memory"
    case platform
  }
}
