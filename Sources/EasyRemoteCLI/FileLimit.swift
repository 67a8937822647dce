#if canImport(Glibc)
  import Glibc
#endif

/// The open-file limit, raised once at start from the soft to the hard limit: a gateway
/// holds a descriptor per connection, and a soft limit of 1,024 (common) would make it refuse
/// honest clients long before its own connection caps do.
enum FileLimit {
  static func raise() {
    #if canImport(Glibc)
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    #endif
  }
}
