// Averages gradients across ranks. The flat gradient buffer is cut into buckets of contiguous ranges in
// reverse layout order (the order backward fills them). As soon as backward has finished every tensor of a
// bucket, its non-blocking allreduce starts; `poll()` (called between layers) drives MPI progress, because
// OpenMPI does not progress a request in the background; `finish()` waits for all and divides by the world
// size. A small buffer (EFT's head) is one bucket: one fused allreduce.
import Distributed
import Tensor

public final class GradientReducer {
  public struct Bucket { public let start: Int; public let count: Int }

  public let buckets: [Bucket]
  private let gradients: MutableFloats
  private let world: Collective
  private var pending: [PendingReduction?]
  private var launched = 0
  /// Seconds spent blocked in `finish` during the last step (what was not hidden behind backward).
  public private(set) var lastWaitSeconds = 0.0

  /// `ranges` are the (offset, count) of trainable tensors in layout order; buckets hold whole tensors,
  /// up to `bucketFloats` each (a tensor larger than that is a bucket of its own).
  public init(gradients: MutableFloats, ranges: [(offset: Int, count: Int)], bucketFloats: Int, world: Collective) {
    self.gradients = gradients
    self.world = world
    var result: [Bucket] = []
    var end = -1, start = -1
    // walk from the last tensor backwards, merging adjacent ranges
    for range in ranges.sorted(by: { $0.offset > $1.offset }) {
      if start >= 0, range.offset + range.count == start, end - range.offset <= bucketFloats {
        start = range.offset
      } else {
        if start >= 0 { result.append(Bucket(start: start, count: end - start)) }
        start = range.offset; end = range.offset + range.count
      }
    }
    if start >= 0 { result.append(Bucket(start: start, count: end - start)) }
    buckets = result
    pending = Array(repeating: nil, count: result.count)
  }

  /// Call when backward has produced every gradient at offsets >= `offset` (gradients fill back to front).
  /// Starts the allreduce of each bucket that is now complete.
  public func gradientsReady(from offset: Int) throws {
    guard world.size > 1 else { return }
    while launched < buckets.count, buckets[launched].start >= offset {
      pending[launched] = try world.startAllReduceSum(gradients + buckets[launched].start, count: buckets[launched].count)
      launched += 1
    }
    try poll()
  }

  /// Drives progress of the reductions in flight.
  public func poll() throws {
    for case let p? in pending where !p.isComplete { _ = try world.test(p) }
  }

  /// Starts what has not started, waits for everything, and turns sums into means.
  public func finish() throws {
    let start = DispatchTime.now().uptimeNanoseconds
    if world.size > 1 {
      try gradientsReady(from: 0)
      for case let p? in pending { try world.wait(p) }
      let scale = 1 / Float(world.size)
      for bucket in buckets {
        let base = gradients + bucket.start
        for i in 0..<bucket.count { base[i] *= scale }
      }
    }
    lastWaitSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    pending = Array(repeating: nil, count: buckets.count)
    launched = 0
  }
}

import Dispatch
