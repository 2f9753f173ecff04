// Threading for the non-BLAS kernels. Work is split into contiguous chunks over `Parallel.threads` workers;
// below `minimumWork` elements it stays on the calling thread (dispatch costs more than it saves). `forEachItem`
// is for many small matrix products (attention per (batch, head), the RAda head per sample): each worker runs
// whole items with OpenBLAS single-threaded, instead of OpenBLAS splitting every tiny product over its own pool.
// Shape letters: none (items and chunks are counts).
import Dispatch

public enum Parallel {
  /// Worker threads for element-wise kernels; set once at start-up from the launch layout.
  nonisolated(unsafe) public static var threads = 1

  /// Calls body(start, end) on disjoint chunks of 0..<count, in parallel when worth it.
  @inlinable
  public static func forChunks(_ count: Int, minimumWork: Int = 1 << 15, _ body: (Int, Int) -> Void) {
    let workers = min(threads, max(1, count / max(1, minimumWork)))
    if workers <= 1 { body(0, count); return }
    let chunk = (count + workers - 1) / workers
    DispatchQueue.concurrentPerform(iterations: workers) { w in
      let start = w * chunk, end = min(count, start + chunk)
      if start < end { body(start, end) }
    }
  }

  /// Calls body(item, worker) for every item of 0..<count, up to `workers` (default `threads`) threads at a time;
  /// worker w takes items w, w + workers, ... so a worker index can select per-worker scratch. While several
  /// workers run, OpenBLAS is set to one thread (its pool would otherwise oversubscribe the cores).
  public static func forEachItem(_ count: Int, workers planned: Int? = nil, _ body: (_ item: Int, _ worker: Int) -> Void) {
    let workers = min(planned ?? threads, count, max(1, threads))
    if workers <= 1 {
      for item in 0..<count { body(item, 0) }
      return
    }
    let blasThreads = BLASRuntime.threads
    BLASRuntime.setThreads(1)
    defer { BLASRuntime.setThreads(blasThreads) }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
      var item = w
      while item < count { body(item, w); item += workers }
    }
  }
}
