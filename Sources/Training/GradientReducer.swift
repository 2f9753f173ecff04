// Averages gradients across ranks. The flat gradient buffer is cut into buckets of contiguous ranges in
// reverse layout order (the order backward fills them). As soon as backward has finished every tensor of a
// bucket, its non-blocking allreduce starts; `finish()` waits for all and divides by the world size.
// A small buffer (EFT's head) is one bucket: one fused allreduce.
//
// OpenMPI advances a non-blocking reduction only inside MPI calls. When the collective allows MPI calls from
// a second thread (MPI_THREAD_SERIALIZED), a progress thread owns every MPI call of the buckets: it starts them
// and tests them every 100 us while backward computes, so data keeps moving between layers, and it sleeps when
// nothing is in flight. Otherwise `gradientsReady` tests the reductions in flight once per call (between layers).
import Dispatch
import Distributed
import Foundation
import Tensor

public final class GradientReducer {
  public struct Bucket { public let start: Int; public let count: Int }

  public let buckets: [Bucket]
  private let gradients: MutableFloats
  private let world: Collective
  private var pending: [PendingReduction?]
  private var launched = 0
  private let progress: ProgressThread?
  /// The first error of `layerFinished`, rethrown by `finish`.
  private var deferredError: Error?
  /// Seconds spent blocked in `finish` during the last step (what was not hidden behind backward).
  public private(set) var lastWaitSeconds = 0.0
  /// True when a progress thread drives the reductions (see the file comment).
  public var usesProgressThread: Bool { progress != nil }

  /// `ranges` are the (offset, count) of trainable tensors in layout order; buckets hold whole tensors,
  /// up to `bucketFloats` each (a tensor larger than that is a bucket of its own).
  /// `progressThread: false` keeps every MPI call on the calling thread even when a second thread is allowed.
  public init(gradients: MutableFloats, ranges: [(offset: Int, count: Int)], bucketFloats: Int, world: Collective,
              progressThread: Bool = true) {
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
    let threaded = progressThread && world.size > 1 && world.allowsCallsFromSecondThread
    progress = threaded ? ProgressThread(world: world, gradients: gradients, buckets: result) : nil
  }

  deinit { progress?.stop() }

  /// Call when backward has produced every gradient at offsets >= `offset` (gradients fill back to front).
  /// Starts the allreduce of each bucket that is now complete.
  public func gradientsReady(from offset: Int) throws {
    guard world.size > 1 else { return }
    let first = launched
    while launched < buckets.count, buckets[launched].start >= offset { launched += 1 }
    if let progress {
      if launched > first { progress.start(first..<launched) }
      return
    }
    try startHere(first..<launched)
    // drive progress of the reductions in flight (the progress thread does this by itself)
    for case let p? in pending where !p.isComplete { _ = try world.test(p) }
  }

  /// Starts these buckets' reductions on the calling thread (no progress thread, or none needed).
  private func startHere(_ indices: Range<Int>) throws {
    for index in indices {
      pending[index] = try world.startAllReduceSum(gradients + buckets[index].start, count: buckets[index].count)
    }
  }

  /// For backward's per-layer callbacks, which cannot throw: `gradientsReady`, keeping the first error (later calls
  /// do nothing) for `finish` to rethrow.
  public func layerFinished(from offset: Int) {
    guard deferredError == nil else { return }
    do { try gradientsReady(from: offset) } catch { deferredError = error }
  }

  /// Starts what has not started, waits for everything, and turns sums into means.
  public func finish() throws {
    let start = DispatchTime.now().uptimeNanoseconds
    defer {
      pending = Array(repeating: nil, count: buckets.count)
      launched = 0
      deferredError = nil
    }
    if let deferredError { throw deferredError }
    if world.size > 1 {
      if let progress, launched > 0 {
        try gradientsReady(from: 0)
        try progress.waitAll()
      } else {
        // Polled, or nothing started during backward (EFT reduces once, after it): reduce on this thread.
        try startHere(launched..<buckets.count)
        launched = buckets.count
        for case let p? in pending { try world.wait(p) }
      }
      let scale = 1 / Float(world.size)
      for bucket in buckets {
        let base = gradients + bucket.start
        for i in 0..<bucket.count { base[i] *= scale }
      }
    }
    lastWaitSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
  }
}

/// The thread that makes every MPI call of the bucket reductions while backward runs on the other threads.
/// The training thread only hands it bucket indices and waits in `waitAll`; so at any moment one thread calls
/// MPI, as MPI_THREAD_SERIALIZED requires.
private final class ProgressThread: @unchecked Sendable {
  private let world: Collective
  private let gradients: MutableFloats
  private let buckets: [GradientReducer.Bucket]
  private let condition = NSCondition()
  // Guarded by `condition`:
  private var toStart: [Int] = []
  private var outstanding = 0
  private var failure: Error?
  private var stopping = false
  private var thread: Thread?
  /// Pause between two rounds of MPI_Test while reductions are in flight.
  private let pollInterval = timespec(tv_sec: 0, tv_nsec: 100_000)

  init(world: Collective, gradients: MutableFloats, buckets: [GradientReducer.Bucket]) {
    self.world = world; self.gradients = gradients; self.buckets = buckets
  }

  /// Queues the allreduce of these buckets (starts the thread on first use). After a failed MPI call nothing new
  /// starts: the caller is about to unwind, and its buffers may go away.
  func start(_ indices: Range<Int>) {
    condition.lock()
    if failure != nil { condition.unlock(); return }
    if thread == nil {
      // The thread keeps this object alive until `run` returns (after `stop`), then drops itself.
      let t = Thread {
        self.run()
        self.condition.lock(); self.thread = nil; self.condition.broadcast(); self.condition.unlock()
      }
      t.name = "rada-allreduce"
      thread = t
      t.start()
    }
    toStart.append(contentsOf: indices)
    outstanding += indices.count
    condition.broadcast()
    condition.unlock()
  }

  /// Blocks until every queued reduction is complete; rethrows the first MPI error.
  func waitAll() throws {
    condition.lock()
    defer { condition.unlock() }
    while outstanding > 0 && failure == nil { condition.wait() }
    if let failure { throw failure }
  }

  /// Returns once the thread has exited: after the reductions in flight complete (they write into the gradients,
  /// which must outlive them), or fail.
  func stop() {
    condition.lock()
    stopping = true
    condition.broadcast()
    while thread != nil { condition.wait() }
    condition.unlock()
  }

  private func run() {
    var inFlight: [PendingReduction] = []
    while true {
      condition.lock()
      while toStart.isEmpty && inFlight.isEmpty && !stopping { condition.wait() }
      if stopping && inFlight.isEmpty { condition.unlock(); return }
      let starting = stopping ? [] : toStart  // while stopping, start nothing new
      toStart.removeAll()
      condition.unlock()
      do {
        for index in starting {
          let bucket = buckets[index]
          inFlight.append(try world.startAllReduceSum(gradients + bucket.start, count: bucket.count))
        }
        var finished = 0
        for p in inFlight where try world.test(p) { finished += 1 }
        if finished > 0 {
          inFlight.removeAll { $0.isComplete }
          condition.lock()
          outstanding -= finished
          if outstanding == 0 { condition.broadcast() }
          condition.unlock()
        }
      } catch {
        condition.lock()
        failure = failure ?? error
        outstanding = 0
        condition.broadcast()
        condition.unlock()
        inFlight.removeAll()
        continue
      }
      if !inFlight.isEmpty {
        var interval = pollInterval
        nanosleep(&interval, nil)
      }
    }
  }
}
