public import Foundation

/// What a host offers, found by ``HostInspector``.
public struct HostInspection: Sendable, Codable, Equatable {
  public var hostname: String
  public var os: String
  public var kernel: String
  public var architecture: String
  public var cores: Int
  public var memoryBytes: Int64
  public var home: String
  public var gpus: [GPU]
  public var environments: [RemoteEnvironment]
  /// An `easyremote` already on the host, with its version.
  public var agent: InstalledAgent?
  public var detectedAt: Date

  public struct GPU: Sendable, Codable, Equatable {
    public var name: String
    public var memoryMB: Int?
  }

  public struct InstalledAgent: Sendable, Codable, Equatable {
    public var path: String
    public var version: String
  }
}

/// A runtime on a host that code tasks can run in: a Python interpreter (the system's, a
/// virtualenv or a conda environment).
public struct RemoteEnvironment: Sendable, Codable, Equatable {
  public var name: String
  /// `system`, `venv` or `conda`.
  public var type: String
  public var pythonPath: String
  public var pythonVersion: String
}
