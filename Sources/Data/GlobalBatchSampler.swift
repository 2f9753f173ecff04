// Which dataset positions form the global batch of each step, identical on every rank (DESIGN.md "One training
// step": every rank computes the same global batch and takes its contiguous slice). Matches the role of
// torch.utils.data.DistributedSampler, but slices one global batch instead of striding, so `world` ranks of
// B / world samples see exactly the samples of 1 rank x B.
// Shape letters: N dataset size, B global batch (all ranks).
import Foundation
import Tensor

public struct GlobalBatchSampler: Sendable {
  public let datasetSize: Int
  public let globalBatch: Int
  public let shuffle: Bool
  public let seed: UInt64
  /// Each epoch yields floor(N / B) full batches and drops its remainder; otherwise steps run across epoch
  /// boundaries, continuing into the next epoch's order.
  public let dropLast: Bool
  private let cache = PermutationCache()

  /// Sizes must be valid (call `check` first to turn bad user settings into an error).
  public init(datasetSize: Int, globalBatch: Int, shuffle: Bool, seed: UInt64, dropLast: Bool = false) {
    precondition((try? GlobalBatchSampler.check(datasetSize: datasetSize, globalBatch: globalBatch,
                                                dropLast: dropLast)) != nil,
                 "GlobalBatchSampler: invalid sizes N=\(datasetSize) B=\(globalBatch); call check() first")
    self.datasetSize = datasetSize; self.globalBatch = globalBatch; self.shuffle = shuffle; self.seed = seed
    self.dropLast = dropLast
  }

  /// The user-facing validation of the sizes.
  public static func check(datasetSize: Int, globalBatch: Int, dropLast: Bool) throws {
    if datasetSize < 1 {
      throw DataError.badSpec(spec: "dataset", reason: "it has no samples")
    }
    if globalBatch < 1 {
      throw DataError.badSpec(spec: "batch size \(globalBatch)", reason: "the global batch must be at least 1")
    }
    if dropLast && globalBatch > datasetSize {
      throw DataError.badSpec(spec: "batch size \(globalBatch)", reason: "with drop-last, a global batch larger than"
        + " the \(datasetSize) samples leaves no full batch; lower the batch size or turn drop-last off")
    }
  }

  /// Full batches per epoch with dropLast; otherwise the (fractional) epoch length rounded up.
  public var stepsPerEpoch: Int {
    dropLast ? datasetSize / globalBatch : (datasetSize + globalBatch - 1) / globalBatch
  }

  /// The epoch that the first sample of `step`'s batch belongs to.
  public func epoch(ofStep step: Int) -> Int {
    dropLast ? step / stepsPerEpoch : (globalBatch * step) / datasetSize
  }

  /// (B) dataset positions of the global batch at `step`. Without shuffle: (B·step + j) mod N. With shuffle:
  /// the same slots read through the permutation of their epoch, drawn from (seed, epoch).
  public func positions(step: Int) -> [Int] {
    precondition(step >= 0, "GlobalBatchSampler: negative step \(step)")
    var out = [Int](repeating: 0, count: globalBatch)
    var currentEpoch = -1
    var order: [Int] = []
    for j in 0..<globalBatch {
      let epoch: Int, index: Int
      if dropLast {
        epoch = step / stepsPerEpoch
        index = (step % stepsPerEpoch) * globalBatch + j
      } else {
        let slot = globalBatch * step + j
        (epoch, index) = slot.quotientAndRemainder(dividingBy: datasetSize)
      }
      if !shuffle { out[j] = index; continue }
      if epoch != currentEpoch { order = permutation(epoch: epoch); currentEpoch = epoch }
      out[j] = order[index]
    }
    return out
  }

  /// The order of epoch `epoch`: a Fisher-Yates shuffle of 0..<N seeded by derivedSeed(seed, epoch).
  public func permutation(epoch: Int) -> [Int] {
    if let cached = cache.get(epoch) { return cached }
    var order = Array(0..<datasetSize)
    var rng = SeededRNG(seed: derivedSeed(seed, UInt64(epoch)))
    var i = datasetSize - 1
    while i > 0 {
      order.swapAt(i, rng.int(below: i + 1))
      i -= 1
    }
    cache.put(epoch, order)
    return order
  }

  /// Range of the positions that `rank` of `size` takes: contiguous, the first (B mod size) ranks one longer.
  public static func shardRange(count: Int, rank: Int, size: Int) -> Range<Int> {
    precondition(size >= 1 && rank >= 0 && rank < size, "shard: rank \(rank) of \(size)")
    let (base, extra) = count.quotientAndRemainder(dividingBy: size)
    let start = rank * base + min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
  }

  /// This rank's contiguous slice of the global batch.
  public static func shard(_ positions: [Int], rank: Int, size: Int) -> [Int] {
    Array(positions[shardRange(count: positions.count, rank: rank, size: size)])
  }
}

/// The last two epoch orders (a step spans at most two epochs unless B > N), shared by copies of a sampler.
private final class PermutationCache: @unchecked Sendable {
  private let lock = NSLock()
  private var entries: [(epoch: Int, order: [Int])] = []

  func get(_ epoch: Int) -> [Int]? {
    lock.lock(); defer { lock.unlock() }
    return entries.first(where: { $0.epoch == epoch })?.order
  }

  func put(_ epoch: Int, _ order: [Int]) {
    lock.lock(); defer { lock.unlock() }
    entries.removeAll { $0.epoch == epoch }
    entries.append((epoch, order))
    if entries.count > 2 { entries.removeFirst() }
  }
}
