// What nodes say of their machines, checked where it enters the gateway (an HTTP heartbeat, a
// link's announcement) against ``InputBounds``: a node that claims Int.max slots or cores must
// neither crash a sum nor make an impossible task look possible.

extension NodeResources {
  /// Itself when its cores and memory are within bounds; the fields are named as the caller
  /// spelled them (`resources.cpu_cores` over HTTP, `resources.cores` on a link).
  package func checked(cores: String, memory: String) throws(InputBoundsError) -> NodeResources {
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
  package func checked(prefix: String) throws(InputBoundsError) -> NodeLoad {
    try InputBounds.check(cpuPercent, InputBounds.percent, field: "\(prefix).cpu_percent")
    try InputBounds.check(memoryPercent, InputBounds.percent, field: "\(prefix).memory_percent")
    return self
  }

}

extension LoadThresholds {
  package func checked(prefix: String = "thresholds.") throws(InputBoundsError) -> LoadThresholds {
    try InputBounds.check(maxCPUPercent, InputBounds.threshold, field: "\(prefix)maxCPUPercent")
    try InputBounds.check(maxMemoryPercent, InputBounds.threshold, field: "\(prefix)maxMemoryPercent")
    return self
  }
}

extension Membership.Worker {
  /// Itself when every number in it is within bounds (`prefix`: how the caller names it).
  package func checked(prefix: String = "worker.") throws(InputBoundsError) -> Membership.Worker {
    _ = try resources.checked(cores: "\(prefix)resources.cores", memory: "\(prefix)resources.memory")
    try InputBounds.check(taskSlots, InputBounds.slots, field: "\(prefix)slots")
    _ = try thresholds.checked(prefix: "\(prefix)thresholds.")
    return self
  }
}
