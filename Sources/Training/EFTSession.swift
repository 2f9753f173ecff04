// `rada train --setting eft`: everything from a resolved config to a finished run directory. Every rank loads
// the model and datasets (deterministic), the coordinator's parameters are broadcast, class features come from
// the prompt templates, image features from the frozen tower (augmented per step) or the feature cache (no
// augmentation), and the TrainLoop does the rest. Evaluation is sharded; base/new/HM when an eval set is given.
import CLIP
import Data
import Distributed
import Foundation
import Kernels
import RAda
import Tensor

public struct SessionOptions {
  public var resume = false
  public var featureCacheDirectory: String?
  public var log: (String) -> Void = { print($0); fflush(stdout) }
  public init(resume: Bool = false, featureCacheDirectory: String? = nil) {
    self.resume = resume; self.featureCacheDirectory = featureCacheDirectory
  }
}

public struct TrainSummary {
  public var steps: Int
  public var finalMetrics: [String: Double]
  public var lossHistory: [Double]
}

public enum SessionError: Error, CustomStringConvertible {
  case featureWidth(model: Int, head: Int, path: String)
  case alreadyComplete(String)
  public var description: String {
    switch self {
    case let .featureWidth(model, head, path):
      return "the head in \(path) has width \(head) but the model's embedding width is \(model); "
        + "use a head trained for this model."
    case let .alreadyComplete(path): return "\(path) is already complete at the requested steps."
    }
  }
}

/// Shared pieces of the EFT, eval and TTT commands.
public enum SessionParts {
  public static func datasetOptions(_ config: TrainConfig, forTraining: Bool) throws -> DatasetOptions {
    DatasetOptions(shots: forTraining ? (config.data.shots ?? 0) : 0, splitSeed: config.data.splitSeed,
                   subsample: ClassSubset(rawValue: config.data.subsample) ?? .all)
  }

  /// Pixel loader for a dataset: decode, then center preprocess or (augment) torchvision-style random resized
  /// crop + flip seeded by (seed, epoch, position).
  public static func pixelLoader(dataset: Dataset, imageSize: Int, augment: Bool, seed: Int) -> PixelLoader {
    let preprocess = CLIPPreprocessor(size: imageSize)
    let augmentation = Augmentation(preprocessor: preprocess)
    return { position, epoch in
      let sample = dataset.samples[position]
      let image = try ImageDecoder.decode(path: sample.path)
      var pixels = [Float](repeating: 0, count: 3 * imageSize * imageSize)
      pixels.withUnsafeMutableBufferPointer { out in
        if augment {
          augmentation(image, seed: UInt64(seed), epoch: epoch, sampleIndex: position, into: out.baseAddress!)
        } else {
          preprocess(image, into: out.baseAddress!)
        }
      }
      return pixels
    }
  }

  /// RUN/bad_samples.txt: every image skipped by --skip-bad-samples on any rank (path and reason), and a count
  /// on the console. Nothing is written when no image failed.
  public static func writeBadSamples(_ tower: TowerFeatureSource, dataset: Dataset, world: Collective,
                                     runDirectory: RunDirectory, log: (String) -> Void) throws {
    let mine = tower.badSamples.map { "\(dataset.samples[$0.position].path)\t\($0.reason)" }.joined(separator: "\n")
    let all = try world.allGather(string: mine).filter { !$0.isEmpty }
    guard world.isCoordinator, !all.isEmpty else { return }
    let lines = Array(Set(all.joined(separator: "\n").split(separator: "\n").map(String.init))).sorted()
    try runDirectory.writeAtomically("bad_samples.txt", lines.joined(separator: "\n") + "\n")
    log("skipped \(lines.count) unreadable image(s) (--skip-bad-samples); list in \(runDirectory.file("bad_samples.txt"))")
  }

  /// Prepares the run directory on the coordinator (refusing an existing run unless resuming), saves the
  /// resolved config and world.json; every rank learns the outcome, so all fail alike.
  public static func prepareRunDirectory(config: TrainConfig, world: Collective, resume: Bool,
                                         header: String = "") throws -> RunDirectory {
    let runDirectory = RunDirectory(path: config.run.dir)
    var failure = ""
    if world.isCoordinator {
      do {
        try runDirectory.prepare(resuming: resume)
        try runDirectory.writeAtomically("config.resolved.yaml", header + (try config.yaml()))
      } catch { failure = "\(error)" }
    }
    failure = try world.broadcast(string: failure, root: 0)
    if !failure.isEmpty { throw ConfigError.invalid(failure) }
    try EFTSession.writeWorld(world: world, runDirectory: runDirectory)
    return runDirectory
  }

  /// The loop's options from the config (every setting uses the same keys).
  public static func loopOptions(config: TrainConfig, totalSteps: Int, label: String) -> LoopOptions {
    LoopOptions(totalSteps: totalSteps, globalBatch: config.run.batchSize, accumulation: config.run.accumulation,
                logEvery: config.run.logEvery, evalEvery: config.run.evalEvery, checkpointEvery: config.run.checkpointEvery,
                skipNonFinite: config.run.nonFinite == "skip", checksumEvery: config.run.checksumEvery,
                bestMetric: config.run.bestMetric, bestIsMax: config.run.bestMode == "max", seed: config.run.seed,
                configYAML: (try? config.yaml()) ?? "", label: label, watchdogSeconds: config.run.collectiveTimeout)
  }

  /// After `loop.resume()`: true (and says so) when the run is already complete at the requested length, so
  /// rerunning a finished job changes nothing; a larger --steps/--epochs extends it instead.
  public static func resumeIsComplete(_ loop: TrainLoop, totalSteps: Int, runDirectory: RunDirectory,
                                      log: (String) -> Void) throws -> Bool {
    _ = try loop.resume()
    guard loop.step >= totalSteps, FileManager.default.fileExists(atPath: runDirectory.file("COMPLETE")) else { return false }
    log("\(runDirectory.path) is already complete at step \(loop.step) (asked for \(totalSteps)); nothing to do. "
        + "Give a larger --steps/--epochs to extend it.")
    return true
  }

  /// The logit scale in log space: the model's own unless `--logit-scale` (linear) is given.
  public static func logitScale(model: CLIPModel, config: TrainConfig) -> Float {
    if let s = config.model.logitScale { return Float(log(s)) }
    return model.parameters[model.table["logit_scale"]!.offset]
  }

  public static func featureCache(dataset: Dataset, config: TrainConfig, directory: String?) -> (path: String?, key: String) {
    let modelStamp: String = {
      let attributes = try? FileManager.default.attributesOfItem(atPath: config.model.path)
      return "\(config.model.path)|\(attributes?[.size] ?? 0)|\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
    }()
    let samples = dataset.samples.map { "\($0.path)|\($0.label)" }.joined(separator: "\n")
    let key = cacheKey([modelStamp, dataset.name, samples, "center-crop-v1"])
    let dir = directory ?? ProcessInfo.processInfo.environment["RADA_CACHE_DIR"]
      ?? (NSHomeDirectory() + "/.cache/rada/features")
    return (dir + "/" + key + ".safetensors", key)
  }

  /// A head from a safetensors file in the reference names (mha.q_proj1.weight, ...), or a fresh one.
  public static func makeHead(config: TrainConfig, dim: Int) throws -> RAdaHead {
    let radaConfig = RAdaConfig(dim: dim, heads: 8, temperature: Float(config.rada.temperature),
                                alpha: Float(config.rada.alpha), loss: config.rada.maskLoss == "mse" ? .mse : .linf)
    let head = try RAdaHead(config: radaConfig, seed: derivedSeed(UInt64(config.run.seed), 0x4EAD))
    if let path = config.rada.headInit { try loadHead(head, path: path) }
    return head
  }

  public static func loadHead(_ head: RAdaHead, path: String) throws {
    let file = try SafetensorsFile(path: path)
    for entry in head.table.entries {
      guard let info = file[entry.name] else {
        throw SafetensorsError.missingTensor(path: path, tensor: entry.name)
      }
      guard info.shape == entry.shape else {
        throw SessionError.featureWidth(model: entry.shape[0], head: info.shape.first ?? 0, path: path)
      }
      try file.read(entry.name, into: head.parameters.pointer + entry.offset, count: entry.count)
    }
  }
}

public enum EFTSession {
  public static func run(config: TrainConfig, world: Collective, options: SessionOptions) throws -> TrainSummary {
    let log: (String) -> Void = { if world.isCoordinator { options.log($0) } }
    try config.validate(ranks: world.size)

    let runDirectory = try SessionParts.prepareRunDirectory(config: config, world: world, resume: options.resume)

    let model = try CLIPModel.load(path: config.model.path)
    try world.broadcast(model.parameters.pointer, count: model.parameters.count, root: 0)
    let tokenizer = try CLIPTokenizer()
    let train = try DatasetSpec.load(config.data.train, options: try SessionParts.datasetOptions(config, forTraining: true))
    guard train.isLabeled, !train.classNames.isEmpty else {
      throw DataError.badSpec(spec: config.data.train, reason: "training needs a labelled dataset with at least one class")
    }
    let classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: train.classNames,
                                              templates: config.rada.templates)
    let logitScale = SessionParts.logitScale(model: model, config: config)
    let imageSize = model.config.vision.imageSize
    for note in train.notes { log(note) }
    try GlobalBatchSampler.check(datasetSize: train.count, globalBatch: config.run.batchSize, dropLast: false)
    let tower = TowerFeatureSource(model: model, count: train.count, skipBadSamples: config.data.skipBadSamples,
                                   loadPixels: SessionParts.pixelLoader(dataset: train, imageSize: imageSize,
                                                                        augment: config.data.augment, seed: config.run.seed))
    let source: ImageFeatureSource
    if config.data.augment {
      source = tower
    } else {
      let cache = SessionParts.featureCache(dataset: train, config: config, directory: options.featureCacheDirectory)
      source = try tower.cached(world: world, cachePath: cache.path, key: cache.key, log: log)
    }

    let head = try SessionParts.makeHead(config: config, dim: model.config.embedDim)
    let microBatch = config.run.batchSize / world.size / config.run.accumulation
    let eft = try EFTModel(head: head, source: source, labels: train.samples.map(\.label), classFeatures: classFeatures,
                           classes: train.classNames.count, logitScale: logitScale, microBatch: microBatch)
    let optimizer = try Optimizer(config: optimizerConfig(config), table: head.table)
    let sampler = GlobalBatchSampler(datasetSize: train.count, globalBatch: config.run.batchSize,
                                     shuffle: config.run.shuffle, seed: UInt64(config.run.seed))
    let totalSteps = config.run.steps ?? (config.run.epochs! * sampler.stepsPerEpoch)
    let schedule = learningRateSchedule(config, totalSteps: totalSteps, stepsPerEpoch: sampler.stepsPerEpoch)
    log("rada train (eft): \(train.count) samples, \(train.classNames.count) classes, global batch \(config.run.batchSize) "
        + "= \(world.size) rank(s) x \(microBatch) x \(config.run.accumulation) accumulation, \(totalSteps) steps, "
        + "image tower width \(model.config.vision.width) x \(model.config.vision.layers) layers")

    let loop = try TrainLoop(
      world: world, model: eft, optimizer: optimizer, sampler: sampler,
      options: SessionParts.loopOptions(config: config, totalSteps: totalSteps, label: "eft"),
      learningRate: { schedule.lr(step: $0) }, runDirectory: runDirectory, keepCheckpoints: config.run.keepCheckpoints)
    loop.log = options.log
    try loop.broadcastState()
    defer { tower.stopPrefetch() }
    if options.resume, try SessionParts.resumeIsComplete(loop, totalSteps: totalSteps, runDirectory: runDirectory, log: log) {
      return TrainSummary(steps: loop.step, finalMetrics: [:], lossHistory: [])
    }

    if let evalSpec = config.data.eval {
      let evaluation = try EvalSet(spec: evalSpec, config: config, model: model, tokenizer: tokenizer, world: world,
                                   cacheDirectory: options.featureCacheDirectory, log: log)
      loop.evaluate = { _ in try evaluation.metrics(head: head, logitScale: logitScale, world: world, prefix: "val") }
    }
    if config.data.augment {
      // Decode + augment upcoming micro-batches on background threads while the step computes.
      let accumulation = config.run.accumulation, rank = world.rank, size = world.size
      tower.prefetch(plan: { index in
        let step = index / accumulation, micro = index % accumulation
        let mine = GlobalBatchSampler.shard(sampler.positions(step: step), rank: rank, size: size)
        return (Array(mine[(micro * microBatch)..<((micro + 1) * microBatch)]), sampler.epoch(ofStep: step))
      }, from: loop.step * accumulation, count: totalSteps * accumulation, workers: config.data.loaderThreads,
         depth: config.data.prefetchBatches, dataset: train)
    }
    // bad_samples.txt is gathered with a collective, so only on paths every rank takes together: the end of the
    // run, or a stop all ranks agreed on (never while unwinding from one rank's error).
    do { try loop.run() } catch let error as TrainError {
      if case .stopped = error {
        try SessionParts.writeBadSamples(tower, dataset: train, world: world, runDirectory: runDirectory, log: log)
      }
      throw error
    }
    let final = try loop.finish()
    try SessionParts.writeBadSamples(tower, dataset: train, world: world, runDirectory: runDirectory, log: log)
    if world.isCoordinator {
      try SafetensorsWriter.write(eft.checkpointFiles()["head.safetensors"]!, metadata: ["format": "pt"],
                                  to: runDirectory.file("head.safetensors"))
      var summary: [String: Any] = ["steps": loop.step]
      for (k, v) in final { summary[k] = v }
      try runDirectory.writeAtomically("COMPLETE", String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n")
      log("done: \(loop.step) steps; head saved to \(runDirectory.file("head.safetensors"))")
    }
    return TrainSummary(steps: loop.step, finalMetrics: final, lossHistory: loop.lossHistory)
  }

  static func writeWorld(world: Collective, runDirectory: RunDirectory) throws {
    let status = BLASRuntime.status()
    let rows = try world.allGather(string: "{\"rank\": \(world.rank), \"host\": \"\(world.hostName)\", \"localRank\": \(world.localRank), "
                                   + "\"threads\": \(status.threads), \"blasCore\": \"\(status.coreName)\"}")
    if world.isCoordinator {
      try runDirectory.writeAtomically("world.json", "{\"size\": \(world.size), \"mpi\": \"\(world.libraryVersion)\", \"ranks\": [\n  "
                                       + rows.joined(separator: ",\n  ") + "\n]}\n")
    }
  }
}

/// Optimiser settings from the config.
public func optimizerConfig(_ config: TrainConfig) -> OptimizerConfig {
  OptimizerConfig(kind: OptimizerKind(rawValue: config.optim.name) ?? .adam, momentum: Float(config.optim.momentum),
                  nesterov: config.optim.nesterov, weightDecay: Float(config.optim.weightDecay),
                  beta1: Float(config.optim.beta1), beta2: Float(config.optim.beta2), epsilon: Float(config.optim.eps))
}

public func learningRateSchedule(_ config: TrainConfig, totalSteps: Int, stepsPerEpoch: Int) -> LearningRateSchedule {
  switch config.schedule.name {
  case "constant": return .constant(lr: config.optim.lr)
  case "dassl_cosine":
    let epochs = config.run.epochs ?? max(1, totalSteps / max(1, stepsPerEpoch))
    return .dasslCosine(baseLR: config.optim.lr, maxEpochs: epochs, warmupEpochs: config.schedule.warmupEpochs,
                        warmupLR: config.schedule.warmupLR, stepsPerEpoch: stepsPerEpoch)
  default:
    return .cosine(baseLR: config.optim.lr, warmupSteps: config.schedule.warmupSteps, totalSteps: totalSteps, minLR: 0)
  }
}

/// An evaluation set with its class features and (cached) image features.
public struct EvalSet {
  public let dataset: Dataset
  public let classFeatures: FloatBuffer
  public let source: MatrixFeatureSource

  public init(spec: String, config: TrainConfig, model: CLIPModel, tokenizer: CLIPTokenizer, world: Collective,
              cacheDirectory: String?, log: (String) -> Void) throws {
    dataset = try DatasetSpec.load(spec, options: try SessionParts.datasetOptions(config, forTraining: false))
    classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: dataset.classNames,
                                          templates: config.rada.templates)
    let tower = TowerFeatureSource(model: model, count: dataset.count,
                                   loadPixels: SessionParts.pixelLoader(dataset: dataset, imageSize: model.config.vision.imageSize,
                                                                        augment: false, seed: 0))
    let cache = SessionParts.featureCache(dataset: dataset, config: config, directory: cacheDirectory)
    source = try tower.cached(world: world, cachePath: cache.path, key: cache.key, log: log)
  }

  public func evaluate(head: RAdaHead?, logitScale: Float, world: Collective, gatherLogits: Bool = false) throws
    -> (result: EvalResult, logits: FloatBuffer?) {
    try Evaluator().run(source: source, labels: dataset.samples.map(\.label), classFeatures: classFeatures,
                        classes: dataset.classNames.count, head: head, logitScale: logitScale, world: world,
                        gatherLogits: gatherLogits)
  }

  public func metrics(head: RAdaHead?, logitScale: Float, world: Collective, prefix: String) throws -> [String: Double] {
    let result = try evaluate(head: head, logitScale: logitScale, world: world).result
    return [prefix + "/top1": result.top1, prefix + "/top5": result.top5, prefix + "/mean_per_class": result.meanPerClassAccuracy]
  }
}

