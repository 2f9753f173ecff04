// The session stages EFT, FFT and pretraining share: their run directory (config.resolved.yaml, checkpoints
// checked before anything is written when resuming), a TrainLoop around the setting's step model, resume (a run
// already complete at the requested length is left alone), the loop with evaluation attached, the final
// evaluation and checkpoint, and RUN/bad_samples.txt. A `TrainerSetting` gives only its step model
// (`makeTrainer`), its evaluation, its final files and its start-up line. Letters as in RunPlan (B, R, A, b).
import Data
import Distributed
import Foundation

/// A training setting's loop and what the shared stages need of it.
final class Trainer {
  let loop: TrainLoop
  let train: Dataset
  /// --skip-bad-samples: the images replaced on this rank (gathered into RUN/bad_samples.txt).
  let badSamples: BadSampleLog?
  /// Before the loop runs (EFT: start the prefetching loaders) and after it stops.
  var beforeRun: () throws -> Void = {}
  var afterRun: () -> Void = {}
  /// The final evaluation, once the run is finished.
  var finalMetrics: [String: Double]?

  /// A TrainLoop over `model` with the config's loop options (every setting uses the same keys).
  init(session: SessionContext, config: TrainConfig, model: StepModel, optimizer: Optimizer, plan: RunPlan,
       learningRate: @escaping (Int) -> Double, label: String, train: Dataset, badSamples: BadSampleLog?,
       bucketFloats: Int = 1 << 30) throws {
    var options = LoopOptions(totalSteps: plan.totalSteps, globalBatch: plan.globalBatch, accumulation: plan.accumulation,
                logEvery: config.run.logEvery, evalEvery: config.run.evalEvery, checkpointEvery: config.run.checkpointEvery,
                skipNonFinite: config.run.nonFinite == .skip, checksumEvery: config.run.checksumEvery,
                bestMetric: config.run.bestMetric, bestIsMax: config.run.bestMode == .max, seed: config.run.seed,
                configYAML: (try? config.yaml()) ?? "", progress: config.run.progress.resolved(), label: label,
                watchdogSeconds: config.run.collectiveTimeout)
    options.modelFingerprint = session.inputs.fingerprint
    loop = try TrainLoop(world: session.world, model: model, optimizer: optimizer, plan: plan, options: options,
                         learningRate: learningRate, runDirectory: session.runDirectory,
                         keepCheckpoints: config.run.keepCheckpoints, bucketFloats: bucketFloats)
    loop.log = session.options.log
    self.train = train; self.badSamples = badSamples
  }
}

protocol TrainerSetting: SessionSetting where Outcome == TrainSummary {
  /// The console name, also the first line of config.resolved.yaml ("rada train (eft)").
  var name: String { get }
  /// Set by `build` from `makeTrainer`.
  var trainer: Trainer? { get set }
  /// The step model, its optimiser and loop, and the start-up line; nil when nothing is left to train.
  func makeTrainer(_ session: SessionContext) throws -> Trainer?
  /// Metrics at the loop's evaluation points and at the end; nil without an evaluation set.
  func evaluation(_ session: SessionContext) throws -> ((Int) throws -> [String: Double])?
  /// The coordinator writes the final model/head files; returns the last console line.
  func writeFinalFiles(_ session: SessionContext, trainer: Trainer) throws -> String
}

extension TrainerSetting {
  func validate(ranks: Int) throws { try config.validate(ranks: ranks) }

  /// Refuses an existing run unless resuming; when resuming, the checkpoint to resume from is checked first (all
  /// damaged, or another model's: refused before anything in the directory is written).
  func claimRunDirectory(_ runDirectory: RunDirectory, inputs: SessionInputs, resume: Bool) throws {
    if resume, let point = try Checkpointer(directory: runDirectory.checkpointsPath, keepLast: 1).resumePoint(warn: { _ in }) {
      try Checkpointer.checkCompatible(point.state, path: point.path, model: inputs.fingerprint, expected: [:])
    }
    try runDirectory.prepare(resuming: resume)
    try runDirectory.writeAtomically("config.resolved.yaml", "# \(name)\n" + (try config.yaml()))
  }

  func build(_ session: SessionContext) throws -> Bool {
    guard let made = try makeTrainer(session) else { return false }
    trainer = made
    try made.loop.broadcastState()
    return true
  }

  /// After `loop.resume()`: true (and says so) when the run is already complete at the requested length, so
  /// rerunning a finished job changes nothing; a larger --steps/--epochs extends it instead.
  func resume(_ session: SessionContext) throws -> Bool {
    guard let loop = trainer?.loop else { return false }
    _ = try loop.resume()
    // COMPLETE is looked for on the coordinator only and the answer broadcast: run directories may be node-local,
    // and a rank that returned here while another went on to train would leave that one waiting in a collective.
    let runDirectory = session.runDirectory
    let complete = loop.world.isCoordinator && FileManager.default.fileExists(atPath: runDirectory.file("COMPLETE"))
    let agreed = try loop.world.broadcast(string: complete ? "complete" : "", root: 0) == "complete"
    guard loop.step >= loop.options.totalSteps, agreed else { return false }
    session.log("\(runDirectory.path) is already complete at step \(loop.step) (asked for \(loop.options.totalSteps)); "
                + "nothing to do. Give a larger --steps/--epochs to extend it.")
    return true
  }

  func run(_ session: SessionContext) throws {
    guard let trainer else { return }
    trainer.loop.evaluate = try evaluation(session)
    defer { trainer.afterRun() }
    try trainer.beforeRun()
    // bad_samples.txt is gathered with a collective, so only on paths every rank takes together: the end of the
    // run, or a stop all ranks agreed on (never while unwinding from one rank's error).
    do { try trainer.loop.run() } catch let error as TrainError {
      if case .stopped = error { try writeBadSamples(session, trainer: trainer) }
      throw error
    }
  }

  /// The final evaluation and checkpoint.
  func evaluate(_ session: SessionContext) throws -> [String: Double] {
    guard let trainer else { return [:] }
    let final = try trainer.loop.finish()
    trainer.finalMetrics = final
    return final
  }

  func finish(_ session: SessionContext, metrics: [String: Double]) throws -> (complete: [String: Any], done: String) {
    guard let trainer else { return ([:], "") }
    try writeBadSamples(session, trainer: trainer)
    var complete: [String: Any] = ["steps": trainer.loop.step]
    for (key, value) in metrics { complete[key] = value }
    let done = session.world.isCoordinator ? try writeFinalFiles(session, trainer: trainer) : ""
    return (complete, done)
  }

  func outcome() -> TrainSummary {
    guard let trainer else { return TrainSummary(steps: 0, finalMetrics: [:], lossHistory: []) }
    guard let final = trainer.finalMetrics else { return TrainSummary(steps: trainer.loop.step, finalMetrics: [:], lossHistory: []) }
    return TrainSummary(steps: trainer.loop.step, finalMetrics: final, lossHistory: trainer.loop.lossHistory)
  }

  private func writeBadSamples(_ session: SessionContext, trainer: Trainer) throws {
    try SessionParts.writeBadSamples(trainer.badSamples, dataset: trainer.train, world: session.world,
                                     runDirectory: session.runDirectory, log: session.log)
  }
}

/// Optimiser settings from the config.
public func optimizerConfig(_ config: TrainConfig) -> OptimizerConfig {
  OptimizerConfig(kind: config.optim.name, momentum: Float(config.optim.momentum),
                  nesterov: config.optim.nesterov, weightDecay: Float(config.optim.weightDecay),
                  beta1: Float(config.optim.beta1), beta2: Float(config.optim.beta2), epsilon: Float(config.optim.eps))
}

/// The config's schedule on `baseLR` (default optim.lr; a parameter group's own base lr for FFT groups).
public func learningRateSchedule(_ config: TrainConfig, baseLR: Double? = nil, totalSteps: Int,
                                 stepsPerEpoch: Int) -> LearningRateSchedule {
  let base = baseLR ?? config.optim.lr
  switch config.schedule.name {
  case .constant: return .constant(lr: base)
  case .dasslCosine:
    let epochs = config.run.epochs ?? max(1, totalSteps / max(1, stepsPerEpoch))
    return .dasslCosine(baseLR: base, maxEpochs: epochs, warmupEpochs: config.schedule.warmupEpochs,
                        warmupLR: config.schedule.warmupLR, stepsPerEpoch: stepsPerEpoch)
  case .cosine:
    return .cosine(baseLR: base, warmupSteps: config.schedule.warmupSteps, totalSteps: totalSteps, minLR: 0)
  }
}
