// `rada train --setting eft`: everything from a resolved config to a finished run directory. Every rank loads
// the model and datasets (deterministic), the coordinator's parameters are broadcast, class features come from
// the prompt templates, image features from the frozen tower (augmented per step) or the feature cache (no
// augmentation), and the TrainLoop does the rest. Evaluation is sharded; base/new/HM when an eval set is given.
import CLIP
import Data
import Distributed
import Foundation
import Imaging
import Kernels
import RAda
import Tensor

public struct SessionOptions {
  public var resume = false
  public var featureCacheDirectory: String?
  /// EFT with augmentation: stop once the augmented features are in the cache (`rada sweep`'s extraction phase).
  public var extractFeaturesOnly = false
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
  case classUnreadable(className: String, images: Int, first: String)
  public var description: String {
    switch self {
    case let .featureWidth(model, head, path):
      return "the head in \(path) has width \(head) but the model's embedding width is \(model); "
        + "use a head trained for this model."
    case let .alreadyComplete(path): return "\(path) is already complete at the requested steps."
    case let .classUnreadable(className, images, first):
      return "--skip-bad-samples: every image of class '\(className)' is unreadable (\(images) image(s), first \(first)); "
        + "a replacement must come from the same class. Fix or remove those files, or drop the class from the dataset."
    }
  }
}

/// Shared pieces of the EFT, eval and TTT commands.
public enum SessionParts {
  public static func datasetOptions(_ config: TrainConfig, forTraining: Bool) throws -> DatasetOptions {
    DatasetOptions(shots: forTraining ? (config.data.shots ?? 0) : 0, splitSeed: config.data.splitSeed,
                   subsample: config.data.subsample)
  }

  /// Pixel loader for a dataset: decode, then center preprocess or (augment) torchvision-style random resized
  /// crop + flip seeded by (seed, epoch, position).
  ///
  /// With `badSamples` (--skip-bad-samples), an unreadable image is replaced by the next readable image of the
  /// SAME class (dataset order, cyclic), so its label stays true; the failure is recorded once. A class whose
  /// images are all unreadable is an error naming it. The choice depends only on which files are readable.
  public static func pixelLoader(dataset: Dataset, imageSize: Int, augment: Bool, seed: Int,
                                 badSamples: BadSampleLog? = nil) -> PixelLoader {
    let one = pixelLoaderOfOne(dataset: dataset, imageSize: imageSize, augment: augment, seed: seed)
    let rank = LaunchLayout.fromEnvironment().rank
    let load: PixelLoader = { position, epoch in
      if !StopSignal.loopStarted { PhaseFault.at("encode", rank: rank) }
      return try one(position, epoch)
    }
    guard let badSamples else { return load }
    var members: [Int: [Int]] = [:]  // label -> positions, in dataset order
    for (position, sample) in dataset.samples.enumerated() { members[sample.label, default: []].append(position) }
    return { position, epoch in
      let label = dataset.samples[position].label
      let sameClass = members[label] ?? [position]
      let start = sameClass.firstIndex(of: position) ?? 0
      for offset in 0..<sameClass.count {
        let candidate = sameClass[(start + offset) % sameClass.count]
        if badSamples.isBad(candidate) { continue }
        do { return try load(candidate, epoch) } catch { badSamples.note(candidate, reason: "\(error)") }
      }
      let name = label >= 0 && label < dataset.classNames.count ? dataset.classNames[label] : "(unlabelled)"
      throw SessionError.classUnreadable(className: name, images: sameClass.count, first: dataset.samples[sameClass[0]].path)
    }
  }

  static func pixelLoaderOfOne(dataset: Dataset, imageSize: Int, augment: Bool, seed: Int) -> PixelLoader {
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
  public static func writeBadSamples(_ badSamples: BadSampleLog?, dataset: Dataset, world: Collective,
                                     runDirectory: RunDirectory, log: (String) -> Void) throws {
    let mine = (badSamples?.entries ?? []).map { "\(dataset.samples[$0.position].path)\t\($0.reason)" }.joined(separator: "\n")
    let all = try world.allGather(string: mine).filter { !$0.isEmpty }
    guard world.isCoordinator, !all.isEmpty else { return }
    let lines = Array(Set(all.joined(separator: "\n").split(separator: "\n").map(String.init))).sorted()
    try runDirectory.writeAtomically("bad_samples.txt", lines.joined(separator: "\n") + "\n")
    log("skipped \(lines.count) unreadable image(s) (--skip-bad-samples); list in \(runDirectory.file("bad_samples.txt"))")
  }

  /// Prepares the run directory on the coordinator (refusing an existing run unless resuming), saves the
  /// resolved config and world.json; every rank learns the outcome, so all fail alike.
  /// When resuming, the checkpoint to resume from is checked first (all damaged, or another model's: refused
  /// before anything in the directory is written).
  public static func prepareRunDirectory(config: TrainConfig, world: Collective, resume: Bool,
                                         model: ModelFingerprint? = nil, header: String = "") throws -> RunDirectory {
    let runDirectory = RunDirectory(path: config.run.dir)
    var failure = ""
    if world.isCoordinator {
      do {
        if resume, let point = try Checkpointer(directory: runDirectory.checkpointsPath, keepLast: 1).resumePoint(warn: { _ in }) {
          try Checkpointer.checkCompatible(point.state, path: point.path, model: model, expected: [:])
        }
        try runDirectory.prepare(resuming: resume)
        try runDirectory.writeAtomically("config.resolved.yaml", header + (try config.yaml()))
      } catch { failure = "\(error)" }
    }
    failure = try world.broadcast(string: failure, root: 0)
    if !failure.isEmpty { throw AgreedFailure(description: failure) }
    try EFTSession.writeWorld(world: world, runDirectory: runDirectory)
    return runDirectory
  }

  /// The loop's options from the config (every setting uses the same keys).
  public static func loopOptions(config: TrainConfig, totalSteps: Int, label: String, model: ModelFingerprint?) -> LoopOptions {
    var options = LoopOptions(totalSteps: totalSteps, globalBatch: config.run.batchSize, accumulation: config.run.accumulation,
                logEvery: config.run.logEvery, evalEvery: config.run.evalEvery, checkpointEvery: config.run.checkpointEvery,
                skipNonFinite: config.run.nonFinite == .skip, checksumEvery: config.run.checksumEvery,
                bestMetric: config.run.bestMetric, bestIsMax: config.run.bestMode == .max, seed: config.run.seed,
                configYAML: (try? config.yaml()) ?? "", progress: config.run.progress.resolved(), label: label,
                watchdogSeconds: config.run.collectiveTimeout)
    options.modelFingerprint = model
    return options
  }

  /// After `loop.resume()`: true (and says so) when the run is already complete at the requested length, so
  /// rerunning a finished job changes nothing; a larger --steps/--epochs extends it instead.
  public static func resumeIsComplete(_ loop: TrainLoop, totalSteps: Int, runDirectory: RunDirectory,
                                      log: (String) -> Void) throws -> Bool {
    _ = try loop.resume()
    // COMPLETE is looked for on the coordinator only and the answer broadcast: run directories may be node-local,
    // and a rank that returned here while another went on to train would leave that one waiting in a collective.
    let complete = loop.world.isCoordinator && FileManager.default.fileExists(atPath: runDirectory.file("COMPLETE"))
    let agreed = try loop.world.broadcast(string: complete ? "complete" : "", root: 0) == "complete"
    guard loop.step >= totalSteps, agreed else { return false }
    log("\(runDirectory.path) is already complete at step \(loop.step) (asked for \(totalSteps)); nothing to do. "
        + "Give a larger --steps/--epochs to extend it.")
    return true
  }

  /// The logit scale in log space: the model's own unless `--logit-scale` (linear) is given.
  public static func logitScale(model: CLIPModel, config: TrainConfig) -> Float {
    if let s = config.model.logitScale { return Float(log(s)) }
    return model.parameters[model.table["logit_scale"]!.offset]
  }

  /// Keyed on the weights' content (not the model path or its folder's metadata: replacing model.safetensors
  /// inside an HF or open_clip folder must not reuse stale features), the dataset samples and the transform.
  public static func featureCache(dataset: Dataset, model: ModelFingerprint, directory: String?) -> (path: String?, key: String) {
    let samples = dataset.samples.map { "\($0.path)|\($0.label)" }.joined(separator: "\n")
    let key = cacheKey([model.shapes, model.weights, dataset.name, samples, "center-crop-v1"])
    return (featureCacheRoot(directory) + "/" + key + ".safetensors", key)
  }

  /// The feature cache folder: `directory` (--feature-cache), else $RADA_CACHE_DIR, else
  /// $XDG_CACHE_HOME/rada/features or $HOME/.cache/rada/features. $HOME as the process sees it (not the password
  /// database's home): on a cluster each node's HOME may be a different, node-local disk, and the cache follows it.
  public static func featureCacheRoot(_ directory: String?,
                                      environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let cacheHome = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? ((env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.cache")
    return directory ?? env["RADA_CACHE_DIR"] ?? (cacheHome + "/rada/features")
  }

  /// A head from a safetensors file in the reference names (mha.q_proj1.weight, ...), or a fresh one.
  public static func makeHead(config: TrainConfig, dim: Int) throws -> RAdaHead {
    let radaConfig = RAdaConfig(dim: dim, heads: 8, temperature: Float(config.rada.temperature),
                                alpha: Float(config.rada.alpha), loss: config.rada.maskLoss)
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

/// Unreadable images met with --skip-bad-samples (position -> first error), shared by the loader threads.
public final class BadSampleLog: @unchecked Sendable {
  private let lock = NSLock()
  private var reasons: [Int: String] = [:]
  public init() {}

  public func note(_ position: Int, reason: String) {
    lock.lock(); if reasons[position] == nil { reasons[position] = reason }; lock.unlock()
  }
  public func isBad(_ position: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return reasons[position] != nil }
  /// Every recorded failure, by position.
  public var entries: [(position: Int, reason: String)] {
    lock.lock(); defer { lock.unlock() }
    return reasons.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }
}

public enum EFTSession {
  public static func run(config: TrainConfig, world: Collective, options: SessionOptions) throws -> TrainSummary {
    let log: (String) -> Void = { if world.isCoordinator { options.log($0) } }
    try config.validate(ranks: world.size)

    // Every rank loads what it was given, then all agree on config, model, datasets and binary before anything
    // is broadcast or decided from local files (a different model on one rank would otherwise meet rank 0's
    // buffer in the broadcast).
    PhaseFault.at("start", rank: world.rank)
    let model = try CLIPModel.load(path: config.model.path)
    let modelFingerprint = ModelFingerprint(model: model)
    let train = try DatasetSpec.load(config.data.train, options: try SessionParts.datasetOptions(config, forTraining: true))
    guard train.isLabeled, !train.classNames.isEmpty else {
      throw DataError.badSpec(spec: config.data.train, reason: "training needs a labelled dataset with at least one class")
    }
    let evalDataset = try config.data.eval.map {
      try DatasetSpec.load($0, options: try SessionParts.datasetOptions(config, forTraining: false))
    }
    try RunFingerprint.agree(world: world, config: config, model: model, fingerprint: modelFingerprint,
                             datasets: [(train, "train")] + (evalDataset.map { [($0, "eval")] } ?? []))
    let runDirectory = try SessionParts.prepareRunDirectory(config: config, world: world, resume: options.resume,
                                                            model: modelFingerprint)

    try StopSignal.stopIfBeforeFirstStep()
    try world.broadcast(model.parameters.pointer, count: model.parameters.count, root: 0)
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
    let (visitBound, overflow) = totalSteps.multipliedReportingOverflow(by: plan.globalBatch)
    if config.data.augment && !towerPerStep, let tooLarge = AugmentedFeatureCache.memoryProblem(
         features: overflow ? Int.max : visitBound, dim: model.config.embedDim, world: world) {
      log("augmented feature cache not used: \(tooLarge); the tower runs on every augmented micro-batch")
      towerPerStep = true
    }
    let visits = config.data.augment && !towerPerStep
      ? AugmentedFeatureCache.plan(sampler: sampler, steps: 0..<totalSteps) : [:]
    if towerPerStep {
      source = tower
    } else if config.data.augment {
      let cache = AugmentedFeatureCache(root: SessionParts.featureCacheRoot(options.featureCacheDirectory), model: model,
                                        fingerprint: modelFingerprint, dataset: train, seed: config.run.seed,
                                        maxGB: config.data.featureCacheMaxGB)
      let phase = runDirectory.file(RunDirectory.extractionFile)
      source = try cache.prepare(plan: visits, tower: tower,
                                 dataset: train, world: world, workers: config.data.loaderThreads, log: log,
                                 progress: { try? runDirectory.writeAtomically(RunDirectory.extractionFile, $0 + "\n") })
      if world.isCoordinator { try? FileManager.default.removeItem(atPath: phase) }
      if options.extractFeaturesOnly { return TrainSummary(steps: 0, finalMetrics: [:], lossHistory: []) }
    } else {
      let cache = SessionParts.featureCache(dataset: train, model: modelFingerprint, directory: options.featureCacheDirectory)
      source = try tower.cached(world: world, cachePath: cache.path, key: cache.key, log: log)
    }

    let head = try SessionParts.makeHead(config: config, dim: model.config.embedDim)
    let microBatch = plan.microBatch
    let eft = try EFTModel(head: head, source: source, labels: train.samples.map(\.label), classFeatures: classFeatures,
                           classes: train.classNames.count, logitScale: logitScale, microBatch: microBatch)
    let optimizer = try Optimizer(config: optimizerConfig(config), table: head.table)
    let schedule = learningRateSchedule(config, totalSteps: totalSteps, stepsPerEpoch: sampler.stepsPerEpoch)
    log("rada train (eft): \(train.count) samples, \(train.classNames.count) classes, global batch \(config.run.batchSize) "
        + "= \(world.size) rank(s) x \(microBatch) x \(config.run.accumulation) accumulation, \(totalSteps) steps, "
        + "image tower width \(model.config.vision.width) x \(model.config.vision.layers) layers")

    let loop = try TrainLoop(
      world: world, model: eft, optimizer: optimizer, plan: plan,
      options: SessionParts.loopOptions(config: config, totalSteps: totalSteps, label: "eft", model: modelFingerprint),
      learningRate: { schedule.lr(step: $0) }, runDirectory: runDirectory, keepCheckpoints: config.run.keepCheckpoints)
    loop.log = options.log
    try loop.broadcastState()
    defer { tower.stopPrefetch() }
    if options.resume, try SessionParts.resumeIsComplete(loop, totalSteps: totalSteps, runDirectory: runDirectory, log: log) {
      return TrainSummary(steps: loop.step, finalMetrics: [:], lossHistory: [])
    }

    if let evalDataset {
      let evaluation = try EvalSet(dataset: evalDataset, config: config, model: model, modelFingerprint: modelFingerprint,
                                   tokenizer: tokenizer, world: world, cacheDirectory: options.featureCacheDirectory, log: log)
      loop.evaluate = { _ in try evaluation.metrics(head: head, logitScale: logitScale, world: world, prefix: "val") }
    }
    if towerPerStep {
      // Decode + augment upcoming micro-batches on background threads while the step computes.
      let accumulation = plan.accumulation
      tower.prefetch(plan: { index in
        let step = index / accumulation
        return (plan.positions(step: step, micro: index % accumulation), plan.epoch(ofStep: step))
      }, from: loop.step * accumulation, count: totalSteps * accumulation, workers: config.data.loaderThreads,
         depth: config.data.prefetchBatches, dataset: train)
    }
    // bad_samples.txt is gathered with a collective, so only on paths every rank takes together: the end of the
    // run, or a stop all ranks agreed on (never while unwinding from one rank's error).
    do { try loop.run() } catch let error as TrainError {
      if case .stopped = error {
        try SessionParts.writeBadSamples(badSamples, dataset: train, world: world, runDirectory: runDirectory, log: log)
      }
      throw error
    }
    let final = try loop.finish()
    try SessionParts.writeBadSamples(badSamples, dataset: train, world: world, runDirectory: runDirectory, log: log)
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

/// An evaluation set with its class features and (cached) image features.
public struct EvalSet {
  public let dataset: Dataset
  public let classFeatures: FloatBuffer
  public let source: MatrixFeatureSource

  public init(spec: String, config: TrainConfig, model: CLIPModel, tokenizer: CLIPTokenizer, world: Collective,
              cacheDirectory: String?, log: (String) -> Void) throws {
    try self.init(dataset: try DatasetSpec.load(spec, options: try SessionParts.datasetOptions(config, forTraining: false)),
                  config: config, model: model, modelFingerprint: ModelFingerprint(model: model), tokenizer: tokenizer,
                  world: world, cacheDirectory: cacheDirectory, log: log)
  }

  /// `modelFingerprint`: of the weights as loaded (before any broadcast), so every rank computes the same key.
  public init(dataset: Dataset, config: TrainConfig, model: CLIPModel, modelFingerprint: ModelFingerprint,
              tokenizer: CLIPTokenizer, world: Collective, cacheDirectory: String?, log: (String) -> Void) throws {
    self.dataset = dataset
    classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: dataset.classNames,
                                          templates: config.rada.templates)
    let tower = TowerFeatureSource(model: model, count: dataset.count,
                                   loadPixels: SessionParts.pixelLoader(dataset: dataset, imageSize: model.config.vision.imageSize,
                                                                        augment: false, seed: 0))
    let cache = SessionParts.featureCache(dataset: dataset, model: modelFingerprint, directory: cacheDirectory)
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

