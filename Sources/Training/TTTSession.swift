// `rada ttt`: test-time training of the RAda head, TPT-style (Shu et al. 2022, "Test-Time Prompt Tuning",
// Sec. 3.2; the RAda paper's TTT setting). Per test image: V views (view 0 the plain eval transform), one batched
// frozen image-tower forward, head logits for every view, keep the ⌈p·V⌉ views of lowest prediction entropy,
// minimise the entropy of their AVERAGED softmax with AdamW on the head for S steps, predict view 0 with the
// adapted head, then reset the head and optimiser before the next image. The test set is sharded over ranks;
// `TTTSetting` is this setting for the session skeleton (Session.swift), the adaptation of every image its run
// stage. Shapes: D joint embedding dim, K classes, and TPT's own counts as the paper names them: V views, M kept
// views, S steps (V is not the vocabulary here: TTT never touches the text tokens).
import CLIP
import Data
import Distributed
import Foundation
import Imaging
import Kernels
import RAda
import Tensor

public struct TTTOptions: Equatable, Sendable {
  /// V: views per image (TPT: 64, the original image and 63 augmented ones).
  public var views = 64
  /// p: fraction of the views kept by confidence (TPT: 0.1). We keep ⌈p·V⌉ (at least 1); TPT's int(p·V) floors.
  public var keepFraction = 0.1
  /// S: optimiser steps per image (TPT: 1).
  public var steps = 1
  /// AdamW learning rate (TPT: 5e-3) and weight decay (TPT builds torch.optim.AdamW(params, lr): wd 0.01).
  public var lr: Float = 5e-3
  public var weightDecay: Float = 0.01
  /// Seeds the random crops and flips of views 1..<V: derivedSeed(seed, image index, view).
  public var seed = 1

  public init(views: Int = 64, keepFraction: Double = 0.1, steps: Int = 1, lr: Float = 5e-3,
              weightDecay: Float = 0.01, seed: Int = 1) {
    self.views = views; self.keepFraction = keepFraction; self.steps = steps; self.lr = lr
    self.weightDecay = weightDecay; self.seed = seed
  }

  /// M = ⌈p·V⌉ clamped to 1...V. The small epsilon keeps 0.1·30 = 3.0000000000000004 at 3.
  /// TPT's (and so RAda's) confidence selection keeps int(p·V) views (Python truncation: 6 of 64 at p = 0.1),
  /// at least one; a tiny epsilon keeps 0.3·10 = 2.9999999999999996 at 3 as the user meant.
  public var keptViews: Int { Swift.max(1, Swift.min(views, Int((keepFraction * Double(views) + 1e-9).rounded(.down)))) }

  public func validate() throws {
    guard views >= 1 && views <= 4096 else { throw TTTError.badOption("--views must be in 1...4096 (got \(views))") }
    guard keepFraction > 0, keepFraction <= 1 else {
      throw TTTError.badOption("--keep must be in (0, 1] (got \(keepFraction))")
    }
    guard steps >= 0 else { throw TTTError.badOption("--steps must be >= 0 (got \(steps))") }
    guard seed >= 0 else { throw TTTError.badOption("--seed must be >= 0 (got \(seed))") }
    guard lr >= 0, lr.isFinite, weightDecay >= 0 else {
      throw TTTError.badOption("--lr and the weight decay must be finite and >= 0 (got \(lr), \(weightDecay))")
    }
  }
}

public enum TTTError: Error, CustomStringConvertible {
  case badOption(String)
  case runExists(String)
  case labelOutOfRange(index: Int, label: Int, classes: Int, spec: String)
  case damagedOutcome(index: Int)

  public var description: String {
    switch self {
    case let .badOption(text): return "rada ttt: \(text). Fix the option and rerun."
    case let .runExists(path):
      return "rada ttt: \(path) already holds results (metrics.jsonl). Choose another --run-dir or delete it."
    case let .labelOutOfRange(index, label, classes, spec):
      return "\(spec): sample \(index) has label \(label) but there are \(classes) classes. "
        + "Check the dataset's class list (or --classes)."
    case let .damagedOutcome(index):
      return "rada ttt: the gathered prediction for image \(index) is not a class index (damaged data from a rank). "
        + "Rerun; if it repeats, check that every rank runs the same rada binary."
    }
  }
}

/// The test-time objective and its helpers; static so that tests can check each piece alone.
public enum TTTLoss {
  /// Entropy −Σ_k p_k log p_k of softmax(logits row) for each of `rows` rows. logits (R, K) -> entropies (R).
  public static func entropies(logits: Floats, rows: Int, classes: Int, into out: UnsafeMutablePointer<Double>) {
    for r in 0..<rows {
      let z = logits + r * classes
      var best = z[0]
      for j in 1..<Swift.max(classes, 1) where z[j] > best { best = z[j] }
      // H = lse − Σ p z with lse = log Σ exp z (both relative to the row max)
      var sum = 0.0, weighted = 0.0
      for j in 0..<classes {
        let shifted = Double(z[j]) - Double(best)
        let e = exp(shifted)
        sum += e; weighted += e * shifted
      }
      out[r] = log(sum) - weighted / sum
    }
  }

  /// Indices of the `keep` lowest entropies, lowest first (ties: lower index first).
  public static func selectConfident(entropies: UnsafePointer<Double>, count: Int, keep: Int) -> [Int] {
    let order = (0..<count).sorted { a, b in
      entropies[a] < entropies[b] || (entropies[a] == entropies[b] && a < b)
    }
    return Array(order.prefix(keep))
  }

  /// L = H(p̄) = −Σ_k p̄_k log p̄_k with p̄ = (1/M) Σ_v softmax(z_v), over all M rows of logits z (M, K).
  /// Writes dL/dz into dLogits (M, K). scratch: M + K Doubles.
  ///
  /// Derivation: dL/dp̄_k = −(log p̄_k + 1) and dp_{v,k}/dz_{v,j} = p_{v,k}(δ_kj − p_{v,j}), so
  ///   dL/dz_{v,j} = (1/M) Σ_k −(log p̄_k + 1) p_{v,k}(δ_kj − p_{v,j}) = −(1/M) p_{v,j} (log p̄_j − Σ_k p_{v,k} log p̄_k)
  /// (the +1 cancels because Σ_k p_{v,k}(δ_kj − p_{v,j}) = 0). log p̄ is computed as a log-sum-exp of the rows'
  /// log-probabilities (TPT's avg_entropy does the same), so a class no view believes in gives no log 0.
  @discardableResult
  public static func marginalEntropy(logits: Floats, rows: Int, classes: Int, dLogits: MutableFloats,
                                     scratch: UnsafeMutablePointer<Double>) -> Double {
    let lse = scratch, logMean = scratch + rows, k = classes
    let logRows = log(Double(rows))
    for v in 0..<rows {
      let z = logits + v * k
      var best = z[0]
      for j in 1..<Swift.max(k, 1) where z[j] > best { best = z[j] }
      var sum = 0.0
      for j in 0..<k { sum += exp(Double(z[j]) - Double(best)) }
      lse[v] = Double(best) + log(sum)
    }
    // log p̄_j = log Σ_v exp(z_vj − lse_v) − log M
    var loss = 0.0
    for j in 0..<k {
      var best = -Double.infinity
      for v in 0..<rows { best = Swift.max(best, Double(logits[v * k + j]) - lse[v]) }
      var sum = 0.0
      for v in 0..<rows { sum += exp(Double(logits[v * k + j]) - lse[v] - best) }
      logMean[j] = best + log(sum) - logRows
      loss -= exp(logMean[j]) * logMean[j]
    }
    let inverseRows = 1 / Double(rows)
    for v in 0..<rows {
      let z = logits + v * k, dz = dLogits + v * k
      var expected = 0.0  // Σ_k p_{v,k} log p̄_k
      for j in 0..<k { expected += exp(Double(z[j]) - lse[v]) * logMean[j] }
      for j in 0..<k {
        let p = exp(Double(z[j]) - lse[v])
        dz[j] = Float(-inverseRows * p * (logMean[j] - expected))
      }
    }
    return loss
  }
}

/// What TTT did to one image.
public struct TTTOutcome: Equatable, Sendable {
  /// argmax of view 0 before adaptation (zero-shot CLIP when the head starts with out_proj = 0).
  public var before: Int
  /// argmax of view 0 after the S steps.
  public var after: Int
  /// The kept views, lowest entropy first.
  public var kept: [Int]
  /// H(p̄) of the kept views before the first step and after the last one.
  public var lossBefore: Double
  public var lossAfter: Double
  /// view 0's logits (K) after adaptation.
  public var logitsAfter: [Float]
}

/// Runs TPT-style adaptation of an RAda head on one image's view features at a time. Every buffer is planned
/// once for (V views, K classes); the head's parameters and the optimiser state are restored before each image.
public final class TestTimeAdapter {
  public let head: RAdaHead
  public let options: TTTOptions
  public let classes: Int
  /// t (K, D) L2-normalised class features.
  let classFeatures: FloatBuffer
  let logitScale: Float
  /// The head's parameters at start: restored before every image.
  let initialParameters: FloatBuffer
  let optimizer: Optimizer
  let zeroMoments: [Float]
  /// Forward-only workspace for the views, `viewChunk` at a time (B·K·D buffers get large for K = 1000).
  let viewWorkspace: RAdaWorkspace
  let viewChunk: Int
  /// Forward + backward workspace for the M kept views.
  let workspace: RAdaWorkspace
  let viewLogits: FloatBuffer                 // (V, K) starting head's logits of every view
  let kept: FloatBuffer                       // (M, D) features of the kept views
  let doubles: UnsafeMutablePointer<Double>   // entropies (V), then loss scratch (M + K)

  /// maxViewsPerForward: views per forward-only head pass (default: keeps each (B·K, D) buffer under 16 MB).
  public init(head: RAdaHead, classFeatures: FloatBuffer, classes: Int, logitScale: Float, options: TTTOptions,
              maxViewsPerForward: Int? = nil) throws {
    try options.validate()
    self.head = head; self.options = options; self.classes = classes
    self.classFeatures = classFeatures; self.logitScale = logitScale
    initialParameters = FloatBuffer(count: head.parameters.count)
    initialParameters.copy(from: head.parameters)
    optimizer = try Optimizer(config: OptimizerConfig(kind: .adamw, weightDecay: options.weightDecay), table: head.table)
    zeroMoments = [Float](repeating: 0, count: head.parameters.count)
    // Views per head forward: keep each (B·K, D) buffer under 4M floats (16 MB).
    let planned = maxViewsPerForward ?? (1 << 22) / Swift.max(1, classes * head.config.dim)
    viewChunk = Swift.max(1, Swift.min(options.views, planned))
    viewWorkspace = try RAdaWorkspace(config: head.config, maxBatch: viewChunk, classes: classes, training: false)
    workspace = try RAdaWorkspace(config: head.config, maxBatch: options.keptViews, classes: classes)
    viewLogits = FloatBuffer(count: options.views * classes)
    kept = FloatBuffer(count: options.keptViews * head.config.dim)
    let doubleCount = options.views + options.keptViews + classes
    doubles = .allocate(capacity: doubleCount)
    doubles.initialize(repeating: 0, count: doubleCount)
  }

  deinit { doubles.deallocate() }

  /// Restores the head's starting parameters and a fresh optimiser (step 0, zero moments).
  public func reset() throws {
    head.parameters.copy(from: initialParameters)
    try optimizer.load(stepCount: 0, firstMoment: zeroMoments, secondMoment: zeroMoments)
  }

  static func argmax(_ row: Floats, _ count: Int) -> Int {
    var best = 0
    for j in 1..<Swift.max(count, 1) where row[j] > row[best] { best = j }
    return best
  }

  /// Adapts on `views` view features f (V, D) (row 0 the plain view), predicts row 0, and resets the head.
  public func adapt(viewFeatures: Floats, views: Int) throws -> TTTOutcome {
    precondition(views >= 1 && views <= options.views, "adapt: \(views) views, planned for \(options.views)")
    let d = head.config.dim, k = classes, m = Swift.min(options.keptViews, views)
    try reset()
    let t = classFeatures.readOnly
    // 1. head logits (V, K) of every view with the starting head; entropies; confident selection.
    var start = 0
    while start < views {
      let n = Swift.min(viewChunk, views - start)
      let chunk = try head.forward(imageFeatures: viewFeatures + start * d, textFeatures: t, batch: n, classes: k,
                                   logitScale: logitScale, workspace: viewWorkspace)
      (viewLogits.pointer + start * k).update(from: chunk, count: n * k)
      start += n
    }
    let logits = viewLogits.readOnly
    let before = Self.argmax(logits, k)
    TTTLoss.entropies(logits: logits, rows: views, classes: k, into: doubles)
    let selected = TTTLoss.selectConfident(entropies: doubles, count: views, keep: m)
    for (row, view) in selected.enumerated() {
      (kept.pointer + row * d).update(from: viewFeatures + view * d, count: d)
    }

    // 2. S steps of AdamW on H(p̄) of the kept views. The forward runs on the M kept rows only (each sample's
    //    head output depends on its own features alone, so these rows equal the kept rows of step 1), which
    //    makes the backward M/V of a backward over every view.
    let scratch = doubles + options.views
    var lossBefore = 0.0, lossAfter = 0.0
    for step in 0..<options.steps {
      let keptLogits = try head.forward(imageFeatures: kept.readOnly, textFeatures: t, batch: m, classes: k,
                                        logitScale: logitScale, workspace: workspace)
      let loss = TTTLoss.marginalEntropy(logits: keptLogits, rows: m, classes: k, dLogits: workspace.dLogits.pointer,
                                         scratch: scratch)
      if step == 0 { lossBefore = loss }
      head.gradients.zero()
      try head.backward(workspace: workspace, maskLossWeight: 0)  // the entropy objective has no mask loss
      optimizer.step(parameters: head.parameters, gradients: head.gradients, lr: options.lr)
    }
    // The loss after the last step (for logs and tests), then the prediction of view 0.
    let keptLogits = try head.forward(imageFeatures: kept.readOnly, textFeatures: t, batch: m, classes: k,
                                      logitScale: logitScale, workspace: workspace)
    lossAfter = TTTLoss.marginalEntropy(logits: keptLogits, rows: m, classes: k, dLogits: workspace.dLogits.pointer,
                                        scratch: scratch)
    if options.steps == 0 { lossBefore = lossAfter }
    let adapted = try head.forward(imageFeatures: viewFeatures, textFeatures: t, batch: 1, classes: k,
                                   logitScale: logitScale, workspace: viewWorkspace)
    let outcome = TTTOutcome(before: before, after: Self.argmax(adapted, k), kept: selected, lossBefore: lossBefore,
                             lossAfter: lossAfter, logitsAfter: Array(UnsafeBufferPointer(start: adapted, count: k)))
    try reset()
    return outcome
  }
}

/// Decodes nothing, owns the pixels and the tower arena for V views: image -> V views -> features (V, D).
public final class TTTViewEncoder {
  public let model: CLIPModel
  public let views: Int
  let augmentation: Augmentation
  let pixels: FloatBuffer             // (V, 3, imageSize, imageSize)
  let activations: VisionActivations  // batch V, forward only

  public init(model: CLIPModel, views: Int) {
    self.model = model; self.views = views
    let size = model.config.vision.imageSize
    augmentation = Augmentation(preprocessor: CLIPPreprocessor(size: size))
    pixels = FloatBuffer(count: views * 3 * size * size)
    activations = VisionActivations(config: model.config, batch: views, saving: false)
  }

  /// L2-normalised features (V, D) of the views of `image` (valid until the next call).
  public func encode(_ image: DecodedImage, seed: Int, sampleIndex: Int) -> Floats {
    augmentation.tttViews(image, count: views, seed: UInt64(seed), sampleIndex: sampleIndex, into: pixels.pointer)
    model.vision.forward(pixels: pixels.readOnly, batch: views, parameters: model.parameters.readOnly,
                         activations: activations)
    return activations.embeds.readOnly
  }
}

public struct TTTSummary {
  public var count: Int
  /// Accuracy of view 0 before / after adaptation (nil for unlabelled data).
  public var zeroShotTop1: Double?
  public var tttTop1: Double?
  public var changed: Int
  /// (label, before, after) per image in dataset order.
  public var predictions: [(label: Int, before: Int, after: Int)]
}

public enum TTTSession {
  /// config supplies model.path, model.logitScale, data.eval (the test set), rada.{templates, temperature,
  /// headInit}, run.dir and run.seed; `options` the TTT settings.
  public static func run(config: TrainConfig, options: TTTOptions, world: Collective,
                         log: @escaping (String) -> Void = { print($0); fflush(stdout) }) throws -> TTTSummary {
    var session = SessionOptions()
    session.log = log
    return try Session.run(TTTSetting(config: config, options: options), world: world, options: session)
  }
}

/// What TTT gives the skeleton: the test set, a run directory that must not hold results yet, the adapter, the
/// per-image adaptation as its run stage, the accuracies before/after, and predictions.csv + metrics.jsonl.
final class TTTSetting: SessionSetting {
  let config: TrainConfig
  let options: TTTOptions
  private var dataset: Dataset?
  private var adapter: TestTimeAdapter?
  private var encoder: TTTViewEncoder?
  /// (before, after) of every image in dataset order, on every rank.
  private var outcomes: FloatBuffer?
  private var seconds = 0.0
  private var summary = TTTSummary(count: 0, zeroShotTop1: nil, tttTop1: nil, changed: 0, predictions: [])

  init(config: TrainConfig, options: TTTOptions) { self.config = config; self.options = options }

  func validate(ranks: Int) throws {
    try options.validate()
    guard let spec = config.data.eval, !spec.isEmpty else { throw TTTError.badOption("--data is required") }
  }

  func prepare() throws -> SessionInputs {
    let spec = config.data.eval ?? ""
    let model = try CLIPModel.load(path: config.model.path)
    let dataset = try DatasetSpec.load(spec, options: try SessionParts.datasetOptions(config, forTraining: false))
    guard !dataset.classNames.isEmpty else {
      throw DataError.badSpec(spec: spec, reason: "test-time training needs the class names of the dataset")
    }
    let k = dataset.classNames.count
    for (i, sample) in dataset.samples.enumerated() where sample.label >= k {
      throw TTTError.labelOutOfRange(index: i, label: sample.label, classes: k, spec: spec)
    }
    self.dataset = dataset
    return SessionInputs(model: model, fingerprint: ModelFingerprint(model: model), datasets: [(dataset, "eval")])
  }

  /// A folder that already holds results (metrics.jsonl) is refused; TTT has no resume.
  func claimRunDirectory(_ runDirectory: RunDirectory, inputs: SessionInputs, resume: Bool) throws {
    if FileManager.default.fileExists(atPath: runDirectory.metricsPath) { throw TTTError.runExists(runDirectory.path) }
    do { try FileManager.default.createDirectory(atPath: runDirectory.path, withIntermediateDirectories: true) }
    catch { throw RunDirectoryError.cannotCreate(runDirectory.path, reason: error.localizedDescription) }
  }

  func build(_ session: SessionContext) throws -> Bool {
    guard let dataset else { return false }
    let model = session.inputs.model, k = dataset.classNames.count
    let tokenizer = try CLIPTokenizer()
    let classFeatures = ClassPrompts.features(model: model, tokenizer: tokenizer, classNames: dataset.classNames,
                                              templates: config.rada.templates)
    let head = try SessionParts.makeHead(config: config, dim: model.config.embedDim)
    try session.world.broadcast(head.parameters.pointer, count: head.parameters.count, root: 0)
    adapter = try TestTimeAdapter(head: head, classFeatures: classFeatures, classes: k,
                                  logitScale: SessionParts.logitScale(model: model, config: config), options: options)
    encoder = TTTViewEncoder(model: model, views: options.views)
    session.log("rada ttt: \(dataset.count) images, \(k) classes, \(session.world.size) rank(s); \(options.views) views, keep "
                + "\(options.keptViews), \(options.steps) step(s) of AdamW lr \(options.lr)"
                + (config.rada.headInit.map { ", head \($0)" } ?? ", zero-initialised head (step 0 = zero-shot CLIP)"))
    return true
  }

  func resume(_ session: SessionContext) throws -> Bool { false }

  /// Adapts on every test image of this rank's shard, then gathers (before, after) of all images on every rank.
  func run(_ session: SessionContext) throws {
    guard let dataset, let adapter, let encoder else { return }
    let world = session.world, options = self.options
    let started = Date()
    var lastReport = Date(), done = 0
    // Each image adapts alone (blocks of one), so the outcome does not depend on the number of ranks.
    let shard = BlockShard(count: dataset.count, blockSize: 1, world: world)
    let mine = shard.positions(rank: world.rank)
    let local = try shard.computeLocal(rank: world.rank, width: 2) { block, out in
      let position = block.lowerBound
      let image = try ImageDecoder.decode(path: dataset.samples[position].path)
      let features = encoder.encode(image, seed: options.seed, sampleIndex: position)
      let outcome = try adapter.adapt(viewFeatures: features, views: options.views)
      out[0] = Float(outcome.before)
      out[1] = Float(outcome.after)
      done += 1
      if Date().timeIntervalSince(lastReport) > 10 {
        lastReport = Date()
        let rate = Double(done) / Date().timeIntervalSince(started)
        session.log(String(format: "ttt: %d/%d images on rank 0 | %.2f img/s per rank", done, mine.count, rate))
      }
    }
    outcomes = try shard.gather(local, width: 2, world: world)
    seconds = Date().timeIntervalSince(started)
  }

  /// Accuracy before and after adaptation (labelled images only); every rank computes the same summary.
  func evaluate(_ session: SessionContext) throws -> [String: Double] {
    guard let dataset, let outcomes else { return [:] }
    var predictions: [(label: Int, before: Int, after: Int)] = []
    var labelled = 0, correctBefore = 0, correctAfter = 0, changed = 0
    let classIndices = 0...(dataset.classNames.count - 1)
    for (i, sample) in dataset.samples.enumerated() {
      // Gathered from every rank: checked, never trapped on.
      guard let before = Checked.integer(Double(outcomes[2 * i]), in: classIndices),
            let after = Checked.integer(Double(outcomes[2 * i + 1]), in: classIndices)
      else { throw TTTError.damagedOutcome(index: i) }
      predictions.append((sample.label, before, after))
      if before != after { changed += 1 }
      if sample.label >= 0 {
        labelled += 1
        if before == sample.label { correctBefore += 1 }
        if after == sample.label { correctAfter += 1 }
      }
    }
    summary = TTTSummary(count: dataset.count,
                         zeroShotTop1: labelled > 0 ? Double(correctBefore) / Double(labelled) : nil,
                         tttTop1: labelled > 0 ? Double(correctAfter) / Double(labelled) : nil,
                         changed: changed, predictions: predictions)
    guard let before = summary.zeroShotTop1, let after = summary.tttTop1 else { return [:] }
    return ["zeroshot/top1": before, "ttt/top1": after]
  }

  /// RUN/predictions.csv (index, label, before, after) and one metrics.jsonl line.
  func finish(_ session: SessionContext, metrics: [String: Double]) throws -> (complete: [String: Any], done: String) {
    var complete: [String: Any] = ["ttt/count": summary.count, "ttt/changed": summary.changed, "ttt/views": options.views,
                                   "ttt/kept": options.keptViews, "ttt/steps": options.steps,
                                   "ttt/lr": Double(options.lr), "ttt/ranks": session.world.size]
    for (key, value) in metrics { complete[key] = value }
    guard session.world.isCoordinator else { return (complete, "") }
    let runDirectory = session.runDirectory
    var csv = "index,label,before,after\n"
    for (i, p) in summary.predictions.enumerated() { csv += "\(i),\(p.label),\(p.before),\(p.after)\n" }
    try runDirectory.writeAtomically("predictions.csv", csv)
    var line = complete
    line["time"] = seconds
    try MetricsLog(path: runDirectory.metricsPath, enabled: true).append(line)
    let accuracy = summary.tttTop1.map { a in
      let z = summary.zeroShotTop1 ?? 0
      return String(format: "top-1 %.2f%% before adaptation -> %.2f%% after (%+.2f)", 100 * z, 100 * a, 100 * (a - z))
    } ?? "unlabelled data, no accuracy"
    session.log("ttt done: \(summary.count) images, \(accuracy); \(summary.changed) prediction(s) changed; "
                + String(format: "%.1f s (%.2f img/s)", seconds, Double(summary.count) / Swift.max(seconds, 1e-9)))
    return (complete, "wrote \(runDirectory.file("predictions.csv")) and \(runDirectory.metricsPath)")
  }

  func outcome() -> TTTSummary { summary }
}
