public import Logging
import Synchronization

/// The process's log level as ``setupLogging(level:)`` set it; handlers read it on every check,
/// so changing it reaches loggers made before.
package final class SharedLogLevel: Sendable {
  private let raw: Atomic<Int>

  package init(_ level: Logger.Level) { raw = Atomic(Self.index(level)) }

  package var level: Logger.Level {
    get { Logger.Level.allCases[raw.load(ordering: .relaxed)] }
    set { raw.store(Self.index(newValue), ordering: .relaxed) }
  }

  private static func index(_ level: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: level) ?? 3 }
}

/// A `StreamLogHandler` whose level is the shared one unless a logger sets its own.
package struct LevelledLogHandler: LogHandler {
  package var base: StreamLogHandler
  package let shared: SharedLogLevel
  private var ownLevel: Logger.Level?

  package init(base: StreamLogHandler, shared: SharedLogLevel) {
    self.base = base
    self.shared = shared
  }

  package var logLevel: Logger.Level {
    get { ownLevel ?? shared.level }
    set { ownLevel = newValue }
  }

  package var metadata: Logger.Metadata {
    get { base.metadata }
    set { base.metadata = newValue }
  }

  package var metadataProvider: Logger.MetadataProvider? {
    get { base.metadataProvider }
    set { base.metadataProvider = newValue }
  }

  package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { base[metadataKey: key] }
    set { base[metadataKey: key] = newValue }
  }

  package func log(event: LogEvent) {
    guard event.level >= logLevel else { return }
    base.log(event: event)
  }
}

/// Where ``setupLogging(level:output:)`` writes.
public enum LogOutput: Sendable {
  case standardError
  case standardOutput
}

private let sharedLevel = Mutex<SharedLogLevel?>(nil)

/// Sets up logging for the whole process at `level` (seed 000's `setup_logging`): lines of
/// the gateway, compute nodes, clients and the node layer at that level and above go to
/// `output`, with their metadata (node, peer, method, ...).
///
/// swift-log is set up once per process: the first call bootstraps it, later calls change the
/// level only (also for loggers made before), so libraries and tests may call it freely. A
/// program that bootstraps swift-log itself (to send logs elsewhere) does not call this.
///
/// ```swift
/// setupLogging(level: .info)
/// ```
/// - Returns: true when this call set logging up, false when it only changed the level.
@discardableResult
public func setupLogging(level: Logger.Level = .info, output: LogOutput = .standardError) -> Bool {
  let (shared, first) = sharedLevel.withLock { current -> (SharedLogLevel, Bool) in
    if let current {
      current.level = level
      return (current, false)
    }
    let made = SharedLogLevel(level)
    current = made
    return (made, true)
  }
  guard first else { return false }
  LoggingSystem.bootstrap { label in
    let base = output == .standardError ? StreamLogHandler.standardError(label: label) : StreamLogHandler.standardOutput(label: label)
    return LevelledLogHandler(base: base, shared: shared)
  }
  return true
}
