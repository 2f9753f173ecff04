// `rada train --setting fft` and `rada pretrain`: the tower settings for the session skeleton (Session.swift).
// FFT is FLYP-style contrastive fine-tuning of both towers plus the RAda head (FFTModel); pretraining is the same
// machinery without the head, on the manifest's captions (PretrainSession). The step model trains with gradient
// buckets of config.fft.bucketMB; evaluation REBUILDS class features with the updated text tower and re-encodes
// the evaluation images with the updated vision tower (no feature cache: the towers change). Final files:
// RUN/model.safetensors (our open_clip names, with the config) and RUN/head.safetensors (FFT).
// Shapes: N samples, K classes, D joint embedding dim; b the micro-batch (RunPlan).
import CLIP
import Data
import Distributed
import Foundation
import RAda
import Tensor

public enum FFTSession {
  /// Whether gradient buckets start their allreduce during backward (config.fft.overlap). "auto" overlaps only
  /// when the ranks span several nodes (some rank has fewer local ranks than the world), where the network moves
  /// the data while the cores compute; on one node it does not pay (see TrainConfig.FFT.overlap).
  public static func overlaps(_ setting: OverlapMode, layout: LaunchLayout) -> Bool {
    switch setting {
    case .always: return true
    case .never: return false
    case .auto: return layout.size > 1 && layout.localSize < layout.size
    }
  }

  /// `gradientDumpPath`: test hook, the coordinator writes the averaged gradients of the first step there.
  public static func run(config: TrainConfig, world: Collective, options: SessionOptions,
                         gradientDumpPath: String? = nil) throws -> TrainSummary {
    try Session.run(TowerSetting(config: config, withHead: true, gradientDumpPath: gradientDumpPath), world: world,
                    options: options)
  }
}

/// Evaluation with the current towers: class features from the prompts, image features of every evaluation
/// image encoded again (sharded over the ranks and gathered), then the head's and zero-shot top-1/top-5.
struct TowerEvaluation {
  let dataset: Dataset
  let templates: [String]
  let tokenizer: CLIPTokenizer

  func metrics(model: FFTModel, headLogitScale: Float?, world: Collective) throws -> [String: Double] {
    model.syncModules()
    let clip = model.clip
    let classFeatures = ClassPrompts.features(model: clip, tokenizer: tokenizer, classNames: dataset.classNames,
                                              templates: templates)
    let tower = TowerFeatureSource(model: clip, count: dataset.count,
                                   loadPixels: SessionParts.pixelLoader(dataset: dataset, imageSize: clip.config.vision.imageSize,
                                                                        augment: false, seed: 0))
    let source = try tower.cached(world: world, cachePath: nil, key: "", log: { _ in })
    let labels = dataset.samples.map(\.label), classes = dataset.classNames.count
    let zeroShot = try Evaluator().run(source: source, labels: labels, classFeatures: classFeatures, classes: classes,
                                       head: nil, logitScale: clip.logitScale, world: world).result
    guard let head = model.head else {
      return ["val/top1": zeroShot.top1, "val/top5": zeroShot.top5, "val/mean_per_class": zeroShot.meanPerClassAccuracy]
    }
    let withHead = try Evaluator().run(source: source, labels: labels, classFeatures: classFeatures, classes: classes,
                                       head: head, logitScale: headLogitScale ?? clip.logitScale, world: world).result
    return ["val/top1": withHead.top1, "val/top5": withHead.top5, "val/mean_per_class": withHead.meanPerClassAccuracy,
            "val/zeroshot_top1": zeroShot.top1]
  }
}

/// What FFT and pretraining give the skeleton: the training set (labelled for FFT, captioned for pretraining),
/// FFTModel on both towers (and the head), the tower evaluation and the final model (and head).
final class TowerSetting: TrainerSetting {
  let config: TrainConfig
  let withHead: Bool
  /// Test hook: the coordinator writes the averaged gradients of the first step there.
  let gradientDumpPath: String?
  var name: String { withHead ? "rada train (fft)" : "rada pretrain" }
  var trainer: Trainer?
  private var train: Dataset?
  private var evalDataset: Dataset?
  /// Built with the trainer; evaluation and the final files use them.
  private var model: FFTModel?
  private var tokenizer: CLIPTokenizer?

  init(config: TrainConfig, withHead: Bool, gradientDumpPath: String?) {
    self.config = config; self.withHead = withHead; self.gradientDumpPath = gradientDumpPath
  }

  func prepare() throws -> SessionInputs {
    let clip = try CLIPModel.load(path: config.model.path)
    let train = try DatasetSpec.load(config.data.train, options: try SessionParts.datasetOptions(config, forTraining: true))
    let evalDataset = try config.data.eval.map {
      try DatasetSpec.load($0, options: try SessionParts.datasetOptions(config, forTraining: false))
    }
    if withHead {
      guard train.isLabeled, !train.classNames.isEmpty else {
        throw DataError.badSpec(spec: config.data.train, reason: "FFT needs a labelled dataset with at least one class")
      }
    } else if let missing = train.samples.firstIndex(where: { ($0.caption ?? "").isEmpty }) {
      throw DataError.badSpec(spec: config.data.train, reason: "sample \(missing) (\(train.samples[missing].path)) has no "
                              + "caption; pretraining needs a manifest with a path,caption header")
    }
    self.train = train; self.evalDataset = evalDataset
    return SessionInputs(model: clip, fingerprint: ModelFingerprint(model: clip),
                         datasets: [(train, "train")] + (evalDataset.map { [($0, "eval")] } ?? []))
  }

  func makeTrainer(_ session: SessionContext) throws -> Trainer? {
    guard let train else { return nil }
    let clip = session.inputs.model, world = session.world, log = session.log
    let tokenizer = try CLIPTokenizer()
    let text: FFTText
    var head: RAdaHead?
    if withHead {
      text = .classPrompts(prompts: config.rada.templates.map { ClassPrompts.prompts(classNames: train.classNames, template: $0) },
                           labels: train.samples.map(\.label))
      head = try SessionParts.makeHead(config: config, dim: clip.config.embedDim)
    } else {
      text = .captions(train.samples.map { $0.caption ?? "" })
    }

    let plan = try RunPlan(config: config, datasetSize: train.count, rank: world.rank, ranks: world.size)
    let microBatch = plan.microBatch, sampler = plan.sampler, totalSteps = plan.totalSteps
    var fftOptions = FFTOptions()
    fftOptions.contrastiveWeight = withHead ? Float(config.fft.contrastiveWeight) : 1
    let groups = ResolvedParameterGroups(config)
    fftOptions.lockImageTower = groups[.image].frozen
    fftOptions.lockTextTower = groups[.text].frozen
    fftOptions.lockHead = groups[.head].frozen
    fftOptions.lockLogitScale = groups[.logitScale].frozen
    fftOptions.clipGradNorm = config.optim.clipGradNorm
    fftOptions.fixedHeadLogitScale = config.model.logitScale.map { Float(Foundation.log($0)) }
    fftOptions.overlapCommunication = config.run.accumulation == 1
      && FFTSession.overlaps(config.fft.overlap, layout: LaunchLayout.fromEnvironment())
    let badSamples = config.data.skipBadSamples ? BadSampleLog() : nil  // same-class replacement, as in EFT
    let model = try FFTModel(clip: clip, head: head, world: world, microBatch: microBatch, text: text, tokenizer: tokenizer,
                             loadPixels: SessionParts.pixelLoader(dataset: train, imageSize: clip.config.vision.imageSize,
                                                                  augment: config.data.augment, seed: config.run.seed,
                                                                  badSamples: badSamples),
                             options: fftOptions)
    model.gradientDumpPath = gradientDumpPath
    guard model.table.trainableCount > 0 else {
      throw ConfigError.badValue(key: "optim.groups", value: "all frozen", reason: "nothing is left to train; unfreeze a group")
    }
    let optimizer = try Optimizer(config: optimizerConfig(config), table: model.table,
                                  groups: groups.optimizerGroups(table: model.table))
    let schedule = learningRateSchedule(config, totalSteps: totalSteps, stepsPerEpoch: sampler.stepsPerEpoch)
    let bucketFloats = max(1, Int(config.fft.bucketMB * 1024 * 1024) / MemoryLayout<Float>.size)
    log("\(name): \(train.count) samples" + (withHead ? ", \(train.classNames.count) classes" : "")
        + ", global batch \(config.run.batchSize) = \(world.size) rank(s) x \(microBatch) x \(config.run.accumulation) "
        + "accumulation, \(totalSteps) steps, \(model.table.trainableCount) trainable parameters")
    log("parameter groups: " + groups.summary(table: model.table))

    let trainer = try Trainer(session: session, config: config, model: model, optimizer: optimizer, plan: plan,
                              learningRate: { schedule.lr(step: $0) }, label: withHead ? "fft" : "pretrain", train: train,
                              badSamples: badSamples, bucketFloats: bucketFloats)
    trainer.loop.parameterGroups = (groups, groups.learningRates(config, totalSteps: totalSteps,
                                                                 stepsPerEpoch: sampler.stepsPerEpoch))
    if world.size > 1 {
      let reduction = trainer.loop.gradientReduction
      let how = !fftOptions.overlapCommunication
        ? (config.run.accumulation > 1 ? "after backward (gradient accumulation)"
           : config.fft.overlap == .never ? "after backward (fft.overlap: never)"
           : "after backward (fft.overlap: auto, all ranks on one node)")
        : (reduction.progressThread ? "during backward on a progress thread" : "during backward, polled between layers")
      log("gradient allreduce: \(reduction.buckets) bucket(s) of up to \(config.fft.bucketMB) MB, \(how)")
    }
    self.model = model; self.tokenizer = tokenizer
    return trainer
  }

  func evaluation(_ session: SessionContext) throws -> ((Int) throws -> [String: Double])? {
    guard let evalSpec = config.data.eval, let evalDataset, let model, let tokenizer else { return nil }
    let evaluation = TowerEvaluation(dataset: evalDataset, templates: config.rada.templates, tokenizer: tokenizer)
    guard evaluation.dataset.isLabeled else {
      throw DataError.badSpec(spec: evalSpec, reason: "evaluation needs a labelled dataset (classes)")
    }
    let world = session.world, headLogitScale = config.model.logitScale.map { Float(Foundation.log($0)) }
    return { _ in try evaluation.metrics(model: model, headLogitScale: headLogitScale, world: world) }
  }

  func writeFinalFiles(_ session: SessionContext, trainer: Trainer) throws -> String {
    guard let model else { return "" }
    let runDirectory = session.runDirectory
    model.syncModules()
    try model.clip.save(path: runDirectory.file("model.safetensors"))
    if let headFile = model.checkpointFiles()["head.safetensors"] {
      try SafetensorsWriter.write(headFile, metadata: ["format": "pt"], to: runDirectory.file("head.safetensors"))
    }
    return "done: \(trainer.loop.step) steps; model saved to \(runDirectory.file("model.safetensors"))"
      + (withHead ? ", head to \(runDirectory.file("head.safetensors"))" : "")
  }
}
