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
