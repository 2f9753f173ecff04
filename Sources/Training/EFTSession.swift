// `rada train --setting eft`: the EFT setting for the session skeleton (Session.swift). The CLIP model stays
// frozen: class features come from the prompt templates, image features from the frozen tower (augmented per
// step, or extracted once per (epoch, sample) into the augmented cache) or the feature cache (no augmentation),
// and the step model is the RAda head on them (EFTModel). Evaluation is sharded over the ranks; the final file is
// RUN/head.safetensors. Shapes: N samples, K classes, D joint embedding dim; image features (N, D), class
// features (K, D).
import CLIP
import Data
import Distributed
import Foundation
import RAda
import Tensor

public enum EFTSession {
  public static func run(config: TrainConfig, world: Collective, options: SessionOptions) throws -> TrainSummary {
    try Session.run(EFTSetting(config: config), world: world, options: options)
  }
}

/// What EFT gives the skeleton: the labelled training set, the head on frozen image features, its evaluation and
/// the final head.
final class EFTSetting: TrainerSetting {
  let config: TrainConfig
  let name = "rada train (eft)"
  var trainer: Trainer?
  private var train: Dataset?
  private var evalDataset: Dataset?
  /// Built with the trainer; evaluation and the final files use them.
  private var head: RAdaHead?
  private var eft: EFTModel?
  private var tokenizer: CLIPTokenizer?
  private var logitScale: Float = 0

  init(config: TrainConfig) { self.config = config }

  func prepare() throws -> SessionInputs {
    let model = try CLIPModel.load(path: config.model.path)
    let fingerprint = ModelFingerprint(model: model)
    let train = try DatasetSpec.load(config.data.train, options: try SessionParts.datasetOptions(config, forTraining: true))
    guard train.isLabeled, !train.classNames.isEmpty else {
      throw DataError.badSpec(spec: config.data.train, reason: "training needs a labelled dataset with at least one class")
    }
    let evalDataset = try config.data.eval.map {
      try DatasetSpec.load($0, options: try SessionParts.datasetOptions(config, forTraining: false))
    }
    self.train = train; self.evalDataset = evalDataset
    return SessionInputs(model: model, fingerprint: fingerprint,
                         datasets: [(train, "train")] + (evalDataset.map { [($0, "eval")] } ?? []))
  }

  func makeTrainer(_ session: SessionContext) throws -> Trainer? {
    guard let train else { return nil }
    let model = session.inputs.model, world = session.world, log = session.log, options = session.options
    let tokenizer = try CLIPTokenizer()
    let classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: train.classNames,
                                              templates: config.rada.templates)
    let logitScale = SessionParts.logitScale(model: model, config: config)
    let imageSize = model.config.vision.imageSize
    for note in train.notes { log(note) }
    let plan = try RunPlan(config: config, datasetSize: train.count, rank: world.rank, ranks: world.size)
    let sampler = plan.sampler, totalSteps = plan.totalSteps
    // Bad images are replaced inside the pixel loader (same class), so the tower never sees a failure to skip.
    let badSamples = config.data.skipBadSamples ? BadSampleLog() : nil
    let tower = TowerFeatureSource(model: model, count: train.count,
                                   loadPixels: SessionParts.pixelLoader(dataset: train, imageSize: imageSize,
                                                                        augment: config.data.augment, seed: config.run.seed,
                                                                        badSamples: badSamples))
    // Where the step's image features come from: the tower on every augmented micro-batch, features of every
    // (epoch, sample) the run visits extracted once into the augmented cache, or (no augmentation) one feature
    // per sample. With --skip-bad-samples the tower runs per step, so bad_samples.txt lists what this run met.
    let source: ImageFeatureSource
    var towerPerStep = config.data.augment && (!config.data.cacheAugmentedFeatures || config.data.skipBadSamples)
    // Bounded before the plan is built: the run visits at most steps x B (epoch, sample) pairs.
    let visitBound = Checked.multiply(totalSteps, plan.globalBatch) ?? Int.max
    if config.data.augment && !towerPerStep, let tooLarge = AugmentedFeatureCache.memoryProblem(
         features: visitBound, dim: model.config.embedDim, world: world) {
      log("augmented feature cache not used: \(tooLarge); the tower runs on every augmented micro-batch")
      towerPerStep = true
    }
    let visits = config.data.augment && !towerPerStep
      ? AugmentedFeatureCache.plan(sampler: sampler, steps: 0..<totalSteps) : [:]
    let runDirectory = session.runDirectory
    if towerPerStep {
      source = tower
    } else if config.data.augment {
      let cache = AugmentedFeatureCache(root: SessionParts.featureCacheRoot(options.featureCacheDirectory), model: model,
                                        fingerprint: session.inputs.fingerprint, dataset: train, seed: config.run.seed,
                                        maxGB: config.data.featureCacheMaxGB)
      let phase = runDirectory.file(RunDirectory.extractionFile)
      source = try cache.prepare(plan: visits, tower: tower,
                                 dataset: train, world: world, workers: config.data.loaderThreads, log: log,
                                 progress: { try? runDirectory.writeAtomically(RunDirectory.extractionFile, $0 + "\n") })
      if world.isCoordinator { try? FileManager.default.removeItem(atPath: phase) }
      if options.extractFeaturesOnly { return nil }
    } else {
      let cache = SessionParts.featureCache(dataset: train, model: session.inputs.fingerprint,
                                            directory: options.featureCacheDirectory)
      source = try tower.cached(world: world, cachePath: cache.path, key: cache.key, log: log)
    }

    let head = try SessionParts.makeHead(config: config, dim: model.config.embedDim)
    let microBatch = plan.microBatch
    let eft = try EFTModel(head: head, source: source, labels: train.samples.map(\.label), classFeatures: classFeatures,
                           classes: train.classNames.count, logitScale: logitScale, microBatch: microBatch)
    let optimizer = try Optimizer(config: optimizerConfig(config), table: head.table)
    let schedule = learningRateSchedule(config, totalSteps: totalSteps, stepsPerEpoch: sampler.stepsPerEpoch)
    log("\(name): \(train.count) samples, \(train.classNames.count) classes, global batch \(config.run.batchSize) "
        + "= \(world.size) rank(s) x \(microBatch) x \(config.run.accumulation) accumulation, \(totalSteps) steps, "
        + "image tower width \(model.config.vision.width) x \(model.config.vision.layers) layers")

    let trainer = try Trainer(session: session, config: config, model: eft, optimizer: optimizer, plan: plan,
                              learningRate: { schedule.lr(step: $0) }, label: "eft", train: train, badSamples: badSamples)
    if towerPerStep {
      // Decode + augment upcoming micro-batches on background threads while the step computes.
      let accumulation = plan.accumulation, loaderThreads = config.data.loaderThreads
      let depth = config.data.prefetchBatches, loop = trainer.loop
      trainer.beforeRun = {
        tower.prefetch(plan: { index in
          let step = index / accumulation
          return (plan.positions(step: step, micro: index % accumulation), plan.epoch(ofStep: step))
        }, from: loop.step * accumulation, count: totalSteps * accumulation, workers: loaderThreads,
           depth: depth, dataset: train)
      }
    }
    trainer.afterRun = { tower.stopPrefetch() }
    self.head = head; self.eft = eft; self.tokenizer = tokenizer; self.logitScale = logitScale
    return trainer
  }

  func evaluation(_ session: SessionContext) throws -> ((Int) throws -> [String: Double])? {
    guard let evalDataset, let head, let tokenizer else { return nil }
    let world = session.world, logitScale = self.logitScale
    let evaluation = try EvalSet(dataset: evalDataset, config: config, model: session.inputs.model,
                                 modelFingerprint: session.inputs.fingerprint, tokenizer: tokenizer, world: world,
                                 cacheDirectory: session.options.featureCacheDirectory, log: session.log)
    return { _ in try evaluation.metrics(head: head, logitScale: logitScale, world: world, prefix: "val") }
  }

  func writeFinalFiles(_ session: SessionContext, trainer: Trainer) throws -> String {
    guard let headFile = eft?.checkpointFiles()["head.safetensors"] else { return "" }
    let path = session.runDirectory.file("head.safetensors")
    try SafetensorsWriter.write(headFile, metadata: ["format": "pt"], to: path)
    return "done: \(trainer.loop.step) steps; head saved to \(path)"
  }
}

/// An evaluation set with its class features and (cached) image features.
public struct EvalSet {
  public let dataset: Dataset
  public let classFeatures: FloatBuffer
  public let source: MatrixFeatureSource

  /// `modelFingerprint`: of the weights as loaded (before any broadcast), so every rank computes the same key.
  /// `block`: images per tower forward when the features are computed (fixed global blocks, see ShardedCompute).
  public init(dataset: Dataset, config: TrainConfig, model: CLIPModel, modelFingerprint: ModelFingerprint,
              tokenizer: CLIPTokenizer, world: Collective, cacheDirectory: String?, block: Int = 32,
              log: (String) -> Void) throws {
    self.dataset = dataset
    classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: dataset.classNames,
                                          templates: config.rada.templates)
    let tower = TowerFeatureSource(model: model, count: dataset.count,
                                   loadPixels: SessionParts.pixelLoader(dataset: dataset, imageSize: model.config.vision.imageSize,
                                                                        augment: false, seed: 0))
    let cache = SessionParts.featureCache(dataset: dataset, model: modelFingerprint, directory: cacheDirectory)
    source = try tower.cached(world: world, cachePath: cache.path, key: cache.key, block: block, log: log)
  }

  /// `chunk`: samples the head scores at once (Evaluator's blocks).
  public func evaluate(head: RAdaHead?, logitScale: Float, world: Collective, chunk: Int = 64,
                       gatherLogits: Bool = false) throws -> (result: EvalResult, logits: FloatBuffer?) {
    try Evaluator(chunk: chunk).run(source: source, labels: dataset.samples.map(\.label), classFeatures: classFeatures,
                        classes: dataset.classNames.count, head: head, logitScale: logitScale, world: world,
                        gatherLogits: gatherLogits)
  }

  public func metrics(head: RAdaHead?, logitScale: Float, world: Collective, prefix: String) throws -> [String: Double] {
    let result = try evaluate(head: head, logitScale: logitScale, world: world).result
    return [prefix + "/top1": result.top1, prefix + "/top5": result.top5, prefix + "/mean_per_class": result.meanPerClassAccuracy]
  }
}

