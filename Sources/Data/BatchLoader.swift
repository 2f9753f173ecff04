// The background loading pipeline: worker threads run a caller-given `load` (decode + augment) for the
// positions of upcoming steps into a bounded prefetch window, and `next()` hands batches out in submission order.
// Plays the role of torch.utils.data.DataLoader(num_workers, prefetch_factor). Results never depend on thread
// timing: each sample is a function of its request, failures are resolved per batch in slot order.
// Shape letters: B batch (the positions given for one step, usually this rank's slice of the global batch).
import Foundation

/// What the load closure is asked for. `step` lets augmentation depend on (seed, epoch, position) only.
public struct LoadRequest: Equatable, Sendable {
  public var position: Int
  public var step: Int
  /// Index in the batch (0..<B).
  public var slot: Int
}

/// A decoded, augmented image ready for the model: pixels (3, imageSize, imageSize) and its label.
public struct LoadedSample: Sendable {
  public var pixels: [Float]
  public var label: Int
  public init(pixels: [Float], label: Int) { self.pixels = pixels; self.label = label }
}

/// A sample that failed to load and was replaced (`skipBadSamples`); the trainer writes these to bad_samples.txt.
public struct BadSample: Equatable, Sendable, CustomStringConvertible {
  public var position: Int
  public var path: String
  public var reason: String
  /// First step it failed at.
  public var step: Int
  public var description: String { "\(path)\t\(reason)" }
}

public struct LoadedBatch<Item> {
  public var step: Int
  /// (B) the positions asked for.
  public var positions: [Int]
  /// (B) the loaded items; a replaced slot holds a copy of the next good item of the batch (cyclic).
  public var items: [Item]
  /// Slots whose own sample failed and were replaced (empty unless `skipBadSamples`).
  public var replacedSlots: [Int]
}

/// Test hook: at most `limitForTesting` loader threads can be created (nil: no limit), to exercise the path
/// where the system refuses threads.
public enum LoaderThreads {
  nonisolated(unsafe) public static var limitForTesting: Int?
}

public enum LoaderError: Error, CustomStringConvertible {
  /// Not one worker thread could be started (pthread_create failed: thread or memory limits).
  case noWorkerThreads(requested: Int, reason: String)
  public var description: String {
    switch self {
    case let .noWorkerThreads(requested, reason):
      return "could not start any of \(requested) image loader thread(s) (\(reason)). Raise the process/thread "
        + "limit (ulimit -u) or lower --set data.loaderThreads."
    }
  }
}

/// Usage: `let loader = BatchLoader(workers: 4, prefetchDepth: 2, pathOf: { ds.samples[$0].path }) { request in
/// ... }`; `loader.submit(step:positions:)` a few steps ahead; `while let batch = try loader.next() { ... }`.
public final class BatchLoader<Item>: @unchecked Sendable {
  public typealias Load = (LoadRequest) throws -> Item
  private let core: LoaderCore<Item>

  /// - Parameters:
  ///   - pathOf: the file of a position, for error messages and bad_samples.txt.
  ///   - load: decodes and augments one sample; called concurrently from `workers` threads.
  public init(workers: Int, prefetchDepth: Int, skipBadSamples: Bool = false,
              pathOf: @escaping (Int) -> String, load: @escaping Load) {
    core = LoaderCore(workers: workers, prefetchDepth: prefetchDepth, skipBadSamples: skipBadSamples,
                      pathOf: pathOf, load: load)
  }

  /// Worker threads actually running (fewer than `workers` when the system refused some).
  public var startedWorkers: Int { core.startedWorkers }

  /// Workers hold the core, not the loader, so dropping the loader stops them.
  deinit { core.stop() }

  public var workers: Int { core.workers }
  /// At most this many batches are being loaded or waiting for `next()` at any time.
  public var prefetchDepth: Int { core.prefetchDepth }
  public var skipBadSamples: Bool { core.skipBadSamples }

  /// Appends the batch of one upcoming step to the schedule (call in step order; submit ahead to prefetch).
  public func submit(step: Int, positions: [Int]) { core.submit(step: step, positions: positions) }
  /// Batches submitted but not yet returned by `next()`.
  public var pending: Int { core.pending }
  /// The most batches held (loading or loaded, not yet handed out) at one time; never above `prefetchDepth`.
  public var peakBatchesInMemory: Int { core.peakBatchesInMemory }
  /// Samples replaced so far, in (step, slot) order, each file once.
  public var badSamples: [BadSample] { core.badSamples }
  /// The next batch in submission order, blocking until it is loaded; nil when nothing is pending or after stop.
  /// Throws `DataError.sampleFailed` for the first failed slot unless `skipBadSamples`.
  public func next() throws -> LoadedBatch<Item>? { try core.next() }
  /// Stops the workers after their current sample and waits for them to exit.
  public func stop() { core.stop() }
}

/// The shared state of a loader and its worker threads (one lock, one condition).
private final class LoaderCore<Item>: @unchecked Sendable {
  typealias Load = (LoadRequest) throws -> Item

  private struct Scheduled { var step: Int; var positions: [Int] }
  private final class InFlight {
    var items: [Item?]
    var failures: [Int: String] = [:]
    var remaining: Int
    init(count: Int) { items = Array(repeating: nil, count: count); remaining = count }
  }

  let workers: Int
  let prefetchDepth: Int
  let skipBadSamples: Bool
  private let load: Load
  private let pathOf: (Int) -> String

  private let condition = NSCondition()
  private var schedule: [Scheduled] = []     // every submitted batch, by sequence number
  private var inFlight: [Int: InFlight] = [:]
  private var delivered = 0                  // batches handed out by next()
  private var dispatchBatch = 0              // next task: (dispatchBatch, dispatchSlot)
  private var dispatchSlot = 0
  private var isStopped = false
  private var runningWorkers = 0
  private var recordedBad: [BadSample] = []
  private var badPaths: Set<String> = []
  private var peak = 0

  init(workers: Int, prefetchDepth: Int, skipBadSamples: Bool,
       pathOf: @escaping (Int) -> String, load: @escaping Load) {
    precondition(workers >= 1 && prefetchDepth >= 1, "BatchLoader: workers and prefetchDepth must be >= 1")
    self.workers = workers; self.prefetchDepth = prefetchDepth; self.skipBadSamples = skipBadSamples
    self.pathOf = pathOf; self.load = load
    // pthread_create rather than Foundation's Thread: Thread.start cannot report a failed creation, and a worker
    // counted as running that never ran made stop() (and so the trainer's exit) wait forever.
    condition.lock()
    for index in 0..<workers {
      let code = (LoaderThreads.limitForTesting.map { index >= $0 } ?? false)
        ? EAGAIN : startThread(name: "rada.loader.\(index)", stackSize: 8 << 20) { self.workerLoop() }
      if code == 0 { runningWorkers += 1 } else if startFailure == nil { startFailure = String(cString: strerror(code)) }
    }
    startedWorkers = runningWorkers
    condition.unlock()
  }

  private(set) var startedWorkers = 0
  private var startFailure: String?

  func submit(step: Int, positions: [Int]) {
    condition.lock()
    schedule.append(Scheduled(step: step, positions: positions))
    condition.broadcast()
    condition.unlock()
  }

  var pending: Int {
    condition.lock(); defer { condition.unlock() }
    return schedule.count - delivered
  }

  var peakBatchesInMemory: Int {
    condition.lock(); defer { condition.unlock() }
    return peak
  }

  var badSamples: [BadSample] {
    condition.lock(); defer { condition.unlock() }
    return recordedBad
  }

  func next() throws -> LoadedBatch<Item>? {
    condition.lock()
    if startedWorkers == 0 {
      condition.unlock()
      throw LoaderError.noWorkerThreads(requested: workers, reason: startFailure ?? "unknown")
    }
    let sequence = delivered
    guard sequence < schedule.count else { condition.unlock(); return nil }
    while !isStopped && (inFlight[sequence] == nil || inFlight[sequence]!.remaining > 0) { condition.wait() }
    guard let batch = inFlight.removeValue(forKey: sequence), batch.remaining == 0 else {
      condition.unlock(); return nil
    }
    delivered += 1
    let scheduled = schedule[sequence]
    condition.broadcast()  // the window moved: workers may start the next batch
    condition.unlock()
    return try assemble(batch, scheduled)
  }

  func stop() {
    condition.lock()
    isStopped = true
    condition.broadcast()
    while runningWorkers > 0 { condition.wait() }
    condition.unlock()
  }

  private func assemble(_ batch: InFlight, _ scheduled: Scheduled) throws -> LoadedBatch<Item> {
    let count = scheduled.positions.count
    var replaced: [Int] = []
    if !batch.failures.isEmpty {
      let firstSlot = batch.failures.keys.min()!
      if !skipBadSamples {
        let position = scheduled.positions[firstSlot]
        throw DataError.sampleFailed(path: pathOf(position), position: position, reason: batch.failures[firstSlot]!)
      }
      if batch.failures.count == count {
        throw DataError.allSamplesFailed(step: scheduled.step, first: pathOf(scheduled.positions[firstSlot]))
      }
      replaced = batch.failures.keys.sorted()
      condition.lock()
      for slot in replaced {
        let position = scheduled.positions[slot], path = pathOf(position)
        if badPaths.insert(path).inserted {
          recordedBad.append(BadSample(position: position, path: path, reason: batch.failures[slot]!,
                                       step: scheduled.step))
        }
      }
      condition.unlock()
      for slot in replaced {
        var source = (slot + 1) % count
        while batch.items[source] == nil { source = (source + 1) % count }
        batch.items[slot] = batch.items[source]
      }
    }
    return LoadedBatch(step: scheduled.step, positions: scheduled.positions, items: batch.items.map { $0! },
                       replacedSlots: replaced)
  }

  private func workerLoop() {
    condition.lock()
    while true {
      // A task exists when the dispatch cursor is inside the schedule and inside the prefetch window.
      while !isStopped && !(dispatchBatch < schedule.count && dispatchBatch < delivered + prefetchDepth) {
        condition.wait()
      }
      if isStopped { break }
      let sequence = dispatchBatch, slot = dispatchSlot
      let scheduled = schedule[sequence]
      if slot == 0 {
        inFlight[sequence] = InFlight(count: scheduled.positions.count)
        peak = max(peak, sequence + 1 - delivered)
      }
      let batch = inFlight[sequence]!
      dispatchSlot += 1
      if dispatchSlot >= scheduled.positions.count { dispatchBatch += 1; dispatchSlot = 0 }
      if scheduled.positions.isEmpty { condition.broadcast(); continue }  // an empty batch is complete at once
      condition.unlock()

      let request = LoadRequest(position: scheduled.positions[slot], step: scheduled.step, slot: slot)
      var item: Item? = nil
      var failure: String? = nil
      do { item = try load(request) } catch { failure = String(describing: error) }

      condition.lock()
      if let failure { batch.failures[slot] = failure } else { batch.items[slot] = item }
      batch.remaining -= 1
      if batch.remaining == 0 { condition.broadcast() }
    }
    runningWorkers -= 1
    condition.broadcast()
    condition.unlock()
  }
}


/// Starts a detached thread running `body`; returns pthread_create's code (0 = started).
/// Image decoders keep large buffers on the stack, hence the explicit stack size.
private func startThread(name: String, stackSize: Int, _ body: @escaping () -> Void) -> Int32 {
  final class Box { let body: () -> Void; let name: String; init(_ b: @escaping () -> Void, _ n: String) { body = b; name = n } }
  var attributes = pthread_attr_t()
  pthread_attr_init(&attributes)
  defer { pthread_attr_destroy(&attributes) }
  pthread_attr_setstacksize(&attributes, stackSize)
  pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
  let context = Unmanaged.passRetained(Box(body, name)).toOpaque()
  var thread = pthread_t()
  let code = pthread_create(&thread, &attributes, { context in
    guard let context else { return nil }
    let box = Unmanaged<Box>.fromOpaque(context).takeRetainedValue()
    Thread.current.name = box.name
    box.body()
    return nil
  }, context)
  if code != 0 { Unmanaged<Box>.fromOpaque(context).release() }
  return code
}
