// How a run's steps become samples, built once per run from the resolved config, the dataset size and the world
// layout (DESIGN.md "One training step"): the sampler gives step s's global batch, rank r takes its contiguous
// share, and micro-batch m of the accumulation is the m-th slice of that share. `positions(step:micro:)` is the
// only code that turns a step into this rank's sample positions: the training loop and the prefetchers call it.
// `RunPlan.Layout` is the only code that checks the batch layout (ranges, divisibility, --steps or --epochs).
// Letters: N dataset size, B global batch, R ranks, A accumulation micro-steps, b = B / (R·A) the micro-batch.
import Data
import Tensor

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

  /// The batch layout of a run, checked: B in range and divisible over R ranks x A accumulation micro-steps, and
  /// the run's length given as --steps or --epochs (one of them, in range). `TrainConfig.validate(ranks:)` builds
  /// one before any work starts (so a bad batch is refused before the model loads) and `RunPlan(config:...)`
  /// builds its own from the same config: the checks and the reasons users see live here only.
  public struct Layout: Sendable {
    /// B
    public let globalBatch: Int
    /// A
    public let accumulation: Int
    /// R
    public let ranks: Int
    /// b = B / (R·A)
    public let microBatch: Int

    public init(config: TrainConfig, ranks: Int) throws {
      func bad(_ key: String, _ value: Any, _ reason: String) -> ConfigError {
        .badValue(key: key, value: "\(value)", reason: reason)
      }
      // Bounded so that products of them (epochs x steps per epoch, ranks x accumulation) cannot overflow.
      let run = config.run, big = 1 << 40
      let counts: [(String, Int, ClosedRange<Int>)] = [
        ("run.batchSize", run.batchSize, 1...(1 << 24)), ("run.accumulation", run.accumulation, 1...(1 << 16)),
        ("run.steps", run.steps ?? 0, 0...big), ("run.epochs", run.epochs ?? 0, 0...(1 << 20))]
      for (key, value, range) in counts where !range.contains(value) {
        throw bad(key, value, "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
      }
      guard ranks >= 1, let perStep = Checked.multiply(ranks, run.accumulation), run.batchSize % perStep == 0 else {
        throw bad("run.batchSize", run.batchSize, "the global batch must divide over \(ranks) rank(s) x \(run.accumulation) "
                  + "accumulation step(s); use a multiple of \(Checked.multiply(ranks, run.accumulation).map(String.init) ?? "their product")")
      }
      guard run.steps != nil || run.epochs != nil else { throw bad("run.steps", "none", "give --steps N or --epochs N") }
      if let steps = run.steps, run.epochs != nil { throw bad("run.steps", steps, "give --steps or --epochs, not both") }
      globalBatch = run.batchSize; accumulation = run.accumulation; self.ranks = ranks
      microBatch = run.batchSize / perStep
    }
  }

  /// The run's plan for `datasetSize` samples: the batch layout checked (Layout), then what depends on the
  /// dataset, with the reasons users see (an empty dataset, a step count that overflows).
  public init(config: TrainConfig, datasetSize: Int, rank: Int, ranks: Int) throws {
    let layout = try Layout(config: config, ranks: ranks)
    try GlobalBatchSampler.check(datasetSize: datasetSize, globalBatch: layout.globalBatch, dropLast: false)
    let sampler = GlobalBatchSampler(datasetSize: datasetSize, globalBatch: layout.globalBatch,
                                     shuffle: config.run.shuffle, seed: UInt64(config.run.seed))
    var steps = config.run.steps ?? 0
    if config.run.steps == nil, let epochs = config.run.epochs {
      guard let product = Checked.multiply(epochs, sampler.stepsPerEpoch) else {
        throw ConfigError.badValue(key: "run.epochs", value: "\(epochs)", reason: "\(epochs) epochs of "
          + "\(sampler.stepsPerEpoch) steps overflow the step counter; use fewer epochs")
      }
      steps = product
    }
    self.init(sampler: sampler, accumulation: layout.accumulation, rank: rank, ranks: ranks, totalSteps: steps)
  }

  /// A plan from parts already checked (tests, and the config init above); user input goes through Layout.
  public init(sampler: GlobalBatchSampler, accumulation: Int, rank: Int, ranks: Int, totalSteps: Int) {
    precondition(ranks >= 1 && rank >= 0 && rank < ranks && accumulation >= 1
                   && sampler.globalBatch % (ranks * accumulation) == 0,
                 "RunPlan: batch \(sampler.globalBatch) over \(ranks) rank(s) x \(accumulation) (RunPlan.Layout checks user input)")
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
