import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Keeps glibc's malloc from returning every large freed block to the kernel.
///
/// By default glibc serves blocks of 128 KiB and more (its threshold moves up to 32 MiB as
/// it learns) with their own `mmap` and trims free memory above 128 KiB at the top of a heap.
/// A link moving 1 MiB payloads frees and allocates such blocks on every call (gRPC frames,
/// protobuf bytes, reassembled payloads), so each call paid page faults and `munmap`s: one
/// 1 MiB echo at a time measured 240 MB/s with the defaults and 840 MB/s with these
/// settings (BENCHMARKS.md). Blocks up to 4 MiB now come from the heap, and up to 32 MiB of
/// free memory stays mapped for the next payload.
///
/// The process's allocator is the executable's business, not a library's: `easyremote` and
/// `easyremote-bench` call ``applyOnce()`` at start (unless ``LimitsConfig/tuneAllocator`` is
/// off); a program embedding nodes may call it too. `GLIBC_TUNABLES`/`MALLOC_*_` settings
/// present in the environment win.
public enum AllocatorTuning {
  // glibc's <malloc.h> is not in Swift's Glibc module: `mallopt` is looked up at run time
  // and its parameter numbers are glibc's stable ABI values.
  private static let mTrimThreshold: Int32 = -1
  private static let mMmapThreshold: Int32 = -3
  static let mmapThreshold: Int32 = 4 << 20
  static let trimThreshold: Int32 = 32 << 20
  private static let applied = Atomic<Bool>(false)

  /// Applies the settings once per process; later calls do nothing.
  public static func applyOnce() {
    guard !applied.exchange(true, ordering: .relaxed) else { return }
    #if canImport(Glibc)
    let environment = ProcessInfo.processInfo.environment
    if environment["GLIBC_TUNABLES"]?.contains("malloc") == true { return }
    if environment.keys.contains(where: { $0.hasPrefix("MALLOC_") && $0.hasSuffix("_") }) { return }
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(mMmapThreshold, mmapThreshold)
    _ = mallopt(mTrimThreshold, trimThreshold)
    #endif
  }

  /// When free memory was last given back, and whether a release is on its way.
  private static let releases = Mutex<(last: ContinuousClock.Instant?, pending: Bool)>((nil, false))
  /// Releases at most this often: each takes every arena's lock and gives back the memory
  /// kept for the next large payload. One asked for sooner happens when the interval ends.
  static let releaseInterval: Duration = .seconds(60)

  /// Gives the memory malloc holds free back to the kernel (`malloc_trim(0)`, every arena),
  /// on a thread of its own, at most once a ``releaseInterval`` (a request within it is done
  /// when it ends; requests meanwhile are one). After a flood of connections has gone
  /// (``ConnectionTable``) the gateway's freed per-connection memory otherwise stays mapped:
  /// measured 60 MB before 4,100 silent gRPC connections, 197 MB after they were closed,
  /// 71 MB once trimmed.
  public static func releaseFreeMemory() {
    #if canImport(Glibc)
    let now = ContinuousClock.now
    let delay = releases.withLock { state -> Duration? in
      guard !state.pending else { return nil }
      state.pending = true
      guard let last = state.last, now - last < releaseInterval else { return .zero }
      return releaseInterval - (now - last)
    }
    guard let delay else { return }
    Thread.detachNewThread {
      if delay > .zero {
        let (seconds, attoseconds) = delay.components
        Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
      }
      if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {  // RTLD_DEFAULT
        typealias MallocTrim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
      }
      releases.withLock { $0 = (ContinuousClock.now, false) }
    }
    #endif
  }
}
