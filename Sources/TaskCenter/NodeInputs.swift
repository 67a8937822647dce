import EasyRemoteCore

// What nodes say of themselves, checked where it enters the task center (an HTTP heartbeat,
// a link's join or heartbeat) against ``InputBounds``: a node that claims Int.max slots or
// cores must neither crash a sum nor make an impossible task look possible.

extension TaskCenterError {
  /// The `INVALID_REQUEST` that names the field out of range.
  init(_ error: InputBoundsError) {
    self = .invalid(error.field, error.message)
  }

  /// What `body` returns; its ``InputBoundsError`` as this `INVALID_REQUEST`.
  static func bounded<T>(_ body: () throws(InputBoundsError) -> T) throws(TaskCenterError) -> T {
    do throws(InputBoundsError) {
      return try body()
    } catch {
      throw TaskCenterError(error)
    }
  }
}

extension NodeResources {
  /// Itself when its cores and memory are within bounds; the fields are named as the caller
  /// spelled them (`resources.cpu_cores` over HTTP, `resources.cores` on a link).
  func checked(cores: String, memory: String) throws(InputBoundsError) -> NodeResources {
    try InputBounds.check(self.cores, InputBounds.cores, field: cores)
    try InputBounds.check(memoryMB, InputBounds.memoryMB, field: memory)
    guard platform.utf8.count <= 64 else {
      throw InputBoundsError(field: "resources.platform", value: "\(platform.utf8.count) bytes", range: "0...64 bytes")
    }
    return self
  }
}

extension NodeLoad {
  /// Itself when both figures are percentages (`prefix`: how the caller names the load).
  func checked(prefix: String) throws(InputBoundsError) -> NodeLoad {
    try InputBounds.check(cpuPercent, InputBounds.percent, field: "\(prefix).cpu_percent")
    try InputBounds.check(memoryPercent, InputBounds.percent, field: "\(prefix).memory_percent")
    return self
  }

}

extension LoadThresholds {
  func checked() throws(InputBoundsError) -> LoadThresholds {
    try InputBounds.check(maxCPUPercent, InputBounds.threshold, field: "thresholds.maxCPUPercent")
    try InputBounds.check(maxMemoryPercent, InputBounds.threshold, field: "thresholds.maxMemoryPercent")
    return self
  }
}

extension TaskNodeJoin {
  /// Itself when every number in it is within bounds.
  func checked() throws(InputBoundsError) -> TaskNodeJoin {
    _ = try resources.checked(cores: "resources.cores", memory: "resources.memory")
    try InputBounds.check(slots, InputBounds.slots, field: "slots")
    _ = try thresholds.checked()
    return self
  }
}
