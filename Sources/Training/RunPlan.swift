// How a run's steps become samples, built once per run from the resolved config, the dataset size and the world
// layout (DESIGN.md "One training step"): the sampler gives step s's global batch, rank r takes its contiguous
// share, and micro-batch m of the accumulation is the m-th slice of that share. `positions(step:micro:)` is the
// only code that turns a step into this rank's sample positions: the training loop and the prefetchers call it.
// Letters: N dataset size, B global batch, R ranks, A accumulation micro-steps, b = B / (R·A) the micro-batch.
import Data

public struct RunPlan: Sendable {
  public let sampler: GlobalBatchSampler
  /// A: micro-batches per optimiser step.
  public let accumulation: Int
  public let rank: Int
  /// R
  public let ranks: Int
  /// b = B / (R·A)
  public let microBatch: Int
  /// Optimiser steps of the whole run (--steps, or --epochs x steps per epoch).
  public let totalSteps: Int

  /// B
  public var globalBatch: Int { sampler.globalBatch }
  public var stepsPerEpoch: Int { sampler.stepsPerEpoch }

  /// The run's plan for `datasetSize` samples. The batch's divisibility over ranks x accumulation was checked by
  /// `TrainConfig.validate(ranks:)` before any work started; what depends on the dataset is checked here, with
  /// the reasons users see (an empty dataset, a step count that overflows).
  public init(config: TrainConfig, datasetSize: Int, rank: Int, ranks: Int) throws {
    try GlobalBatchSampler.check(datasetSize: datasetSize, globalBatch: config.run.batchSize, dropLast: false)
    let sampler = GlobalBatchSampler(datasetSize: datasetSize, globalBatch: config.run.batchSize,
                                     shuffle: config.run.shuffle, seed: UInt64(config.run.seed))
    var steps = config.run.steps ?? 0
    if config.run.steps == nil, let epochs = config.run.epochs {
      let (product, overflow) = epochs.multipliedReportingOverflow(by: sampler.stepsPerEpoch)
      guard !overflow else {
        throw ConfigError.badValue(key: "run.epochs", value: "\(epochs)", reason: "\(epochs) epochs of "
          + "\(sampler.stepsPerEpoch) steps overflow the step counter; use fewer epochs")
      }
      steps = product
    }
    self.init(sampler: sampler, accumulation: config.run.accumulation, rank: rank, ranks: ranks, totalSteps: steps)
  }

  public init(sampler: GlobalBatchSampler, accumulation: Int, rank: Int, ranks: Int, totalSteps: Int) {
    precondition(ranks >= 1 && rank >= 0 && rank < ranks && accumulation >= 1
                   && sampler.globalBatch % (ranks * accumulation) == 0,
                 "RunPlan: batch \(sampler.globalBatch) over \(ranks) rank(s) x \(accumulation) (validated earlier)")
    self.sampler = sampler; self.accumulation = accumulation; self.rank = rank; self.ranks = ranks
    self.totalSteps = totalSteps
    microBatch = sampler.globalBatch / (ranks * accumulation)
  }

  /// The epoch that seeds augmentation for every sample of `step`.
  public func epoch(ofStep step: Int) -> Int { sampler.epoch(ofStep: step) }

  /// This rank's positions (b) for micro-batch `micro` of `step`: slice `micro` of the rank's contiguous share of
  /// the global batch, so R ranks x b see exactly the samples of one rank x B.
  public func positions(step: Int, micro: Int) -> [Int] {
    let share = GlobalBatchSampler.shardRange(count: globalBatch, rank: rank, size: ranks)
    let start = share.lowerBound + micro * microBatch
    return Array(sampler.positions(step: step)[start..<start + microBatch])
  }
}
