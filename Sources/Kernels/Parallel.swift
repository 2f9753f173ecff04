// Threading for the non-BLAS kernels. Work is split into contiguous chunks over `Parallel.threads`
// workers; below `minimumWork` elements it stays on the calling thread (dispatch costs more than it saves).
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
}
