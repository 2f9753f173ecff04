// FFT (and contrastive pretraining) as a StepModel: both CLIP towers train, plus the RAda head (FFT only).
// Per micro-batch (FLYP, Goyal et al. 2023, with open_clip's ClipLoss(local_loss, gather_with_grad)):
//   f (b, D) = vision(pixels) normalised;  caption features u (b, D) = t[label] (FFT: class prompts through the
//   text tower, t (K, D)) or text(caption) (pretraining);  gather f, u over the R ranks -> (R·b, D);
//   L = w·contrastive(f, u vs gathered, labels rank·b + i, logit_scale) + CE(head(f, t)) + α·mask loss.
// Backward through the gather: the gradients w.r.t. the gathered (R·b, D) features are summed over ranks
// (allreduce) and each rank keeps its own slice, so 2 ranks x B equal 1 rank x 2B in loss and every gradient.
// t carries gradient into the text tower every step (exact: the K·templates prompt rows are re-encoded each step,
// in chunks of `textChunk` rows with a recomputed forward when there are more). The head reads logit_scale as a
// constant; the contrastive term trains it (clamped to [0, ln 100] after each step, as open_clip).
// Layout: our CLIP table (vision, text, logit_scale) then the head's tensors. Backward fills it from the end
// (head and logit_scale, text blocks L-1..0, vision blocks L-1..0), so gradient buckets start their allreduce
// while backward continues. The head keeps its own buffers (copied in/out each step; they are small).
// Shapes: b local micro-batch (RunPlan), R ranks, D joint embedding dim, K classes, T text tokens; `rows` =
// K·templates prompt rows (template-major).
import CLIP
import Distributed
import Foundation
import Kernels
import RAda
import Tensor

/// What the text tower encodes for a micro-batch.
public enum FFTText {
  /// FFT (FLYP): sample i's caption is its class prompt. `prompts[τ][k]` for template τ and class k;
  /// `labels[position]` the class of each dataset position. t (K, D) = normalise(Σ_τ text(prompts[τ][k])).
  case classPrompts(prompts: [[String]], labels: [Int])
  /// Contrastive pretraining: `captions[position]`, tokenised per step.
  case captions([String])
}

public struct FFTOptions {
  /// Weight w of the contrastive term (config.fft.contrastiveWeight).
  public var contrastiveWeight: Float = 1
  /// Frozen towers (optim.groups.image/text.frozen): no update and no backward pass through them.
  public var lockImageTower = false
  public var lockTextTower = false
  /// Frozen head (optim.groups.head.frozen): it still adds its loss and passes gradients to the towers.
  public var lockHead = false
  /// Frozen logit scale (optim.groups.logitScale.frozen).
  public var lockLogitScale = false
  /// Global gradient-norm clipping after the allreduce (torch clip_grad_norm_); 0 = off.
  public var clipGradNorm: Double = 0
  /// The head's logit scale (log space) when fixed by --logit-scale; nil = the model's current logit_scale.
  public var fixedHeadLogitScale: Float?
  /// Start bucket allreduces during backward. Only with one micro-batch per step: with accumulation the
  /// next micro-batch adds into the same buffers, so reductions must wait for the last one.
  public var overlapCommunication = true
  /// Most prompt rows encoded (and saved for backward) at once; more rows are processed in chunks.
  public var textChunk = 128
  public init() {}
}

public final class FFTModel: StepModel {
  public let clip: CLIPModel
  public let head: RAdaHead?
  public let world: Collective
  public let options: FFTOptions
  public let table: ParameterTable
  /// Model then head, laid out by `table`; the model's part is `clip.parameters` itself (a view), the head's
  /// part is copied out by `syncModules()`.
  public let parameters: FloatBuffer
  public let gradients: FloatBuffer
  /// Where the head's tensors start in `parameters` (= the CLIP parameter count).
  public let headOffset: Int
  public let logitScaleOffset: Int
  /// Global gradient norm of the last step before clipping (0 when clipping is off).
  public private(set) var lastGradientNorm = 0.0
  /// Test hook: the coordinator writes the averaged gradients of the first step here (then it is cleared).
  public var gradientDumpPath: String?

  private let text: FFTText
  private let tokenizer: CLIPTokenizer
  private let loadPixels: PixelLoader
  private let microBatch: Int, dim: Int, contextLength: Int, perImage: Int
  private let pixels: FloatBuffer
  private let visionActivations: VisionActivations
  private let textActivations: TextActivations
  private let contrastive: ContrastiveLoss
  private let workspace: RAdaWorkspace?
  /// (b, D) caption features of this rank; (2·R·b, D) gathered image then caption features; their gradients.
  private let textLocal, gathered, dGathered, dImageLocal, dTextLocal: FloatBuffer
  // classPrompts: `rows` = K·templates rows of token ids (T each, template-major), their embeddings (rows, D),
  // s = Σ_τ (K, D), t = normalise(s) (K, D) with norms (K); gradients dT (K, D), dRows (rows, D).
  private let classes: Int, templates: Int, promptRows: Int
  private let promptIds: UnsafeMutablePointer<Int32>
  private let rowEmbeds, classSum, classFeatures, classNorms, dClass, dRows: FloatBuffer
  private var classFeaturesFresh = false
  private let captionIds: UnsafeMutablePointer<Int32>
  private let visionLayerOffsets: [Int], textLayerOffsets: [Int]

  public init(clip: CLIPModel, head: RAdaHead?, world: Collective, microBatch: Int, text: FFTText,
              tokenizer: CLIPTokenizer, loadPixels: @escaping PixelLoader, options: FFTOptions) throws {
    self.clip = clip; self.head = head; self.world = world; self.options = options; self.text = text
    self.tokenizer = tokenizer; self.loadPixels = loadPixels; self.microBatch = microBatch
    let config = clip.config
    dim = config.embedDim; contextLength = config.text.contextLength
    perImage = 3 * config.vision.imageSize * config.vision.imageSize

    // One table: the model's tensors (frozen where a tower is locked), then the head's. Weight decay as open_clip's
    // trainer: only tensors of two or more dimensions (not biases, norms, class embedding, logit_scale), the head
    // included (EFT keeps Dassl's decay of every head tensor).
    var combined = ParameterTable()
    for entry in clip.table.entries {
      let isVision = entry.name.hasPrefix("visual.")
      let trainable = entry.name == "logit_scale" ? !options.lockLogitScale
        : (isVision ? !options.lockImageTower : !options.lockTextTower)
      combined.add(entry.name, entry.shape, decays: entry.shape.count >= 2, trainable: trainable)
    }
    headOffset = combined.totalCount
    if let head {
      for entry in head.table.entries {
        combined.add(entry.name, entry.shape, decays: entry.shape.count >= 2, trainable: entry.isTrainable && !options.lockHead)
      }
    }
    table = combined
    parameters = FloatBuffer(count: combined.totalCount)
    gradients = FloatBuffer(count: combined.totalCount)
    // The model's parameters live inside ours from now on (no second copy of the towers; for ViT-B/16 600 MB).
    clip.moveParameters(into: FloatBuffer(viewing: parameters, offset: 0, count: clip.parameters.count))
    if let head { (parameters.pointer + headOffset).update(from: head.parameters.readOnly, count: head.parameters.count) }
    logitScaleOffset = clip.logitScaleIndex
    (visionLayerOffsets, textLayerOffsets) = CLIPModel.blockStartOffsets(config, in: combined)

    // Arenas, sized once.
    let n = microBatch, bigN = n * world.size, e = dim
    pixels = FloatBuffer(count: n * perImage)
    visionActivations = VisionActivations(config: config, batch: n, saving: !options.lockImageTower)
    contrastive = ContrastiveLoss(localRows: n, globalRows: bigN, dim: e)
    textLocal = FloatBuffer(count: n * e)
    gathered = FloatBuffer(count: 2 * bigN * e); dGathered = FloatBuffer(count: 2 * bigN * e)
    dImageLocal = FloatBuffer(count: n * e); dTextLocal = FloatBuffer(count: n * e)
    switch text {
    case let .classPrompts(prompts, _):
      precondition(!prompts.isEmpty && !prompts[0].isEmpty, "FFTModel: no prompts")
      templates = prompts.count; classes = prompts[0].count
      promptRows = classes * templates
      promptIds = .allocate(capacity: promptRows * contextLength)
      var row = 0
      for templatePrompts in prompts {
        for ids in tokenizer.tokenize(templatePrompts, contextLength: contextLength) {
          for (j, id) in ids.enumerated() { promptIds[row * contextLength + j] = id }
          row += 1
        }
      }
      textActivations = TextActivations(config: config, batch: min(promptRows, options.textChunk),
                                        saving: !options.lockTextTower)
      captionIds = .allocate(capacity: 1)
    case .captions:
      templates = 0; classes = 0; promptRows = 0
      promptIds = .allocate(capacity: 1)
      textActivations = TextActivations(config: config, batch: n, saving: !options.lockTextTower)
      captionIds = .allocate(capacity: n * contextLength)
    }
    rowEmbeds = FloatBuffer(count: promptRows * e)
    classSum = FloatBuffer(count: classes * e); classFeatures = FloatBuffer(count: classes * e)
    classNorms = FloatBuffer(count: classes); dClass = FloatBuffer(count: classes * e)
    dRows = FloatBuffer(count: promptRows * e)
    if let head {
      guard classes > 0 else { throw ConfigError.invalid("FFT with a head needs class prompts (a labelled training set)") }
      guard head.config.dim == dim else {
        throw SessionError.featureWidth(model: dim, head: head.config.dim, path: "the RAda head")
      }
      workspace = try RAdaWorkspace(config: head.config, maxBatch: n, classes: classes,
                                    inputGradients: !(options.lockImageTower && options.lockTextTower))
    } else {
      workspace = nil
    }
  }

  deinit { promptIds.deallocate(); captionIds.deallocate() }

  // MARK: Text features

  /// t (K, D) from the current text tower: the prompt rows in chunks, then Σ over templates and normalise.
  /// Leaves the last chunk's activations in the arena (reused by backward when there is one chunk).
  private func encodeClassPrompts() {
    let e = dim, chunk = textActivations.batch, p = parameters.readOnly
    var start = 0
    while start < promptRows {
      let rows = min(chunk, promptRows - start)
      clip.text.forward(ids: promptIds + start * contextLength, batch: rows, parameters: p, activations: textActivations)
      (rowEmbeds.pointer + start * e).update(from: textActivations.embeds.readOnly, count: rows * e)
      start += rows
    }
    if templates == 1 {
      classFeatures.pointer.update(from: rowEmbeds.readOnly, count: classes * e)
    } else {
      // s (K, D) = Σ_τ rows of template τ;  t = s / ‖s‖ (CLIP's prompt ensembling)
      classSum.zero()
      for tau in 0..<templates { accumulate(classSum.pointer, rowEmbeds.readOnly + tau * classes * e, classes * e) }
      L2Normalize.forward(out: classFeatures.pointer, norms: classNorms.pointer, x: classSum.readOnly, rows: classes, dim: e)
    }
  }

  /// Adds the text tower's gradients for dT (K, D) (normalised class features), mirroring `encodeClassPrompts`.
  private func backwardClassPrompts(afterLayer: ((Int) -> Void)?) {
    let e = dim, chunk = textActivations.batch, p = parameters.readOnly, g = gradients.pointer
    // dRows: each template's rows get d s = normalise-backward(dT) (or dT itself with one template)
    if templates == 1 {
      dRows.pointer.update(from: dClass.readOnly, count: classes * e)
    } else {
      let dSum = classSum.pointer  // s is no longer needed: reuse it for d s
      dSum.update(repeating: 0, count: classes * e)
      L2Normalize.backward(dX: dSum, dOut: dClass.readOnly, out: classFeatures.readOnly, norms: classNorms.readOnly,
                           rows: classes, dim: e)
      for tau in 0..<templates { (dRows.pointer + tau * classes * e).update(from: dSum, count: classes * e) }
    }
    if promptRows <= chunk {
      // the forward of this step is still in the arena
      clip.text.backward(dEmbeds: dRows.readOnly, ids: promptIds, batch: promptRows, parameters: p, gradients: g,
                         activations: textActivations, afterLayer: afterLayer)
      return
    }
    // Chunks: recompute each chunk's forward (saving), then its backward; the last chunk completes the gradients.
    var start = 0
    while start < promptRows {
      let rows = min(chunk, promptRows - start)
      let isLast = start + rows == promptRows
      clip.text.forward(ids: promptIds + start * contextLength, batch: rows, parameters: p, activations: textActivations)
      clip.text.backward(dEmbeds: dRows.readOnly + start * e, ids: promptIds + start * contextLength, batch: rows,
                         parameters: p, gradients: g, activations: textActivations, afterLayer: isLast ? afterLayer : nil)
      start += rows
    }
  }

  // MARK: Step

  public func forwardBackward(positions: [Int], epoch: Int, reducer: GradientReducer) throws -> StepLosses {
    let n = positions.count, e = dim, ranks = world.size, bigN = n * ranks, offset = world.rank * n
    precondition(n == microBatch, "FFTModel: micro-batch \(n), planned \(microBatch) (every rank takes the same count)")
    let p = parameters.readOnly, g = gradients.pointer

    // 1. images (augmented by the loader, seeded by position) -> f (b, D)
    for (i, position) in positions.enumerated() {
      let values = try loadPixels(position, epoch)
      values.withUnsafeBufferPointer { (pixels.pointer + i * perImage).update(from: $0.baseAddress!, count: perImage) }
    }
    clip.vision.forward(pixels: pixels.readOnly, batch: n, parameters: p, activations: visionActivations)
    let imageLocal = visionActivations.embeds.readOnly

    // 2. caption features u (b, D)
    var labels: [Int] = []
    switch text {
    case let .classPrompts(_, allLabels):
      if !options.lockTextTower || !classFeaturesFresh { encodeClassPrompts(); classFeaturesFresh = true }
      labels = positions.map { allLabels[$0] }
      for (i, label) in labels.enumerated() {
        (textLocal.pointer + i * e).update(from: classFeatures.readOnly + label * e, count: e)
      }
    case let .captions(captions):
      let rows = tokenizer.tokenize(positions.map { captions[$0] }, contextLength: contextLength)
      for (i, ids) in rows.enumerated() { for (j, id) in ids.enumerated() { captionIds[i * contextLength + j] = id } }
      clip.text.forward(ids: captionIds, batch: n, parameters: p, activations: textActivations)
      textLocal.pointer.update(from: textActivations.embeds.readOnly, count: n * e)
    }

    // 3. gather (R·b, D) image and caption features in rank order
    let imageGlobal = gathered.pointer, textGlobal = gathered.pointer + bigN * e
    try world.allGather(imageLocal, count: n * e, into: imageGlobal)
    try world.allGather(textLocal.readOnly, count: n * e, into: textGlobal)

    // 4. contrastive loss; its gradients w.r.t. the gathered features are summed over ranks (the backward of
    //    all-gather), this rank keeps rows offset..<offset+b and adds them to its local gradients.
    let w = options.contrastiveWeight
    dGathered.zero(); dImageLocal.zero(); dTextLocal.zero()
    let result = contrastive.compute(imageLocal: imageLocal, textLocal: textLocal.readOnly, imageGlobal: imageGlobal,
                                     textGlobal: textGlobal, rows: n, columns: bigN, labelOffset: offset,
                                     logitScale: p[logitScaleOffset], dImageLocal: dImageLocal.pointer,
                                     dTextLocal: dTextLocal.pointer, dImageGlobal: dGathered.pointer,
                                     dTextGlobal: dGathered.pointer + bigN * e)
    try world.allReduceSum(dGathered.pointer, count: 2 * bigN * e)
    let dImageMine = dGathered.readOnly + offset * e, dTextMine = dGathered.readOnly + (bigN + offset) * e
    for i in 0..<(n * e) {
      dImageLocal[i] = w * (dImageLocal[i] + dImageMine[i])
      dTextLocal[i] = w * (dTextLocal[i] + dTextMine[i])
    }
    g[logitScaleOffset] += w * result.dLogitScale
    var losses = StepLosses(total: Double(w * result.loss), ce: 0, maskLoss: 0,
                            extra: ["train/contrastive": Double(result.loss), "train/contrastive_acc": Double(result.accuracy),
                                    "train/logit_scale": Double(exp(p[logitScaleOffset]))])

    // 5. the RAda head on (f, t): CE + α·mask loss; dF into dImageLocal, dT into dClass
    if case .classPrompts = text {
      dClass.zero()
      // the contrastive caption of sample i is row labels[i] of t
      for (i, label) in labels.enumerated() { accumulate(dClass.pointer + label * e, dTextLocal.readOnly + i * e, e) }
    }
    if let head, let workspace {
      (head.parameters.pointer).update(from: p + headOffset, count: head.parameters.count)
      let headScale = options.fixedHeadLogitScale ?? p[logitScaleOffset]
      try head.forward(imageFeatures: imageLocal, textFeatures: classFeatures.readOnly, batch: n, classes: classes,
                       logitScale: headScale, workspace: workspace)
      let headLoss = try head.loss(labels: labels, workspace: workspace)
      head.gradients.zero()
      try head.backward(workspace: workspace, maskLossWeight: head.config.alpha,
                        dImageFeatures: options.lockImageTower ? nil : dImageLocal.pointer,
                        dTextFeatures: options.lockTextTower ? nil : dClass.pointer)
      accumulate(g + headOffset, head.gradients.readOnly, head.gradients.count)
      losses.total += Double(headLoss.total); losses.ce = Double(headLoss.ce); losses.maskLoss = Double(headLoss.maskLoss)
    }

    // 6. backward through the towers, text then vision (back to front in the layout); buckets start as layers finish
    // (an MPI error there surfaces in the loop's reducer.finish)
    let overlap = options.overlapCommunication
    let ready: (Int) -> Void = { offset in if overlap { reducer.layerFinished(from: offset) } }
    ready(logitScaleOffset)
    if !options.lockTextTower {
      let afterLayer: (Int) -> Void = { [textLayerOffsets] l in ready(textLayerOffsets[l]) }
      switch text {
      case .classPrompts: backwardClassPrompts(afterLayer: afterLayer)
      case .captions:
        clip.text.backward(dEmbeds: dTextLocal.readOnly, ids: captionIds, batch: n, parameters: p, gradients: g,
                           activations: textActivations, afterLayer: afterLayer)
      }
      ready(clip.table["token_embedding.weight"]!.offset)
    }
    if !options.lockImageTower {
      clip.vision.backward(dEmbeds: dImageLocal.readOnly, batch: n, parameters: p, gradients: g,
                           activations: visionActivations, afterLayer: { [visionLayerOffsets] l in ready(visionLayerOffsets[l]) })
    }
    return losses
  }

  // MARK: Hooks

  /// Global-norm clipping over every trainable gradient (torch.nn.utils.clip_grad_norm_: coefficient
  /// max_norm / (norm + 1e-6), applied when below 1), after the allreduce so every rank clips alike.
  public func gradientsAveraged() throws {
    if let path = gradientDumpPath {
      gradientDumpPath = nil
      if world.isCoordinator {
        try SafetensorsWriter.write(table.entries.filter(\.isTrainable).map {
          SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: gradients.readOnly + $0.offset)
        }, metadata: ["format": "pt"], to: path)
      }
    }
    guard options.clipGradNorm > 0 else { return }
    let g = gradients.pointer
    var sum = 0.0
    for entry in table.entries where entry.isTrainable {
      for i in entry.offset..<(entry.offset + entry.count) { sum += Double(g[i]) * Double(g[i]) }
    }
    lastGradientNorm = sum.squareRoot()
    let coefficient = options.clipGradNorm / (lastGradientNorm + 1e-6)
    guard coefficient < 1 else { return }
    let scale = Float(coefficient)
    for entry in table.entries where entry.isTrainable {
      for i in entry.offset..<(entry.offset + entry.count) { g[i] *= scale }
    }
  }

  /// open_clip clamps logit_scale to [0, ln 100] after every optimiser step.
  public func parametersUpdated() {
    let p = parameters.pointer
    p[logitScaleOffset] = min(max(p[logitScaleOffset], 0), Float(log(100.0)))
  }

  /// Copies the trained values into `head.parameters` (before evaluation or saving). `clip.parameters` needs no
  /// copy: it is a view of the first part of `parameters`.
  public func syncModules() {
    if let head { head.parameters.pointer.update(from: parameters.readOnly + headOffset, count: head.parameters.count) }
  }

  public func checkpointFiles() -> [String: [SafetensorsWriter.Tensor]] {
    var files = ["model.safetensors": clip.table.entries.map {
      SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: parameters.readOnly + $0.offset)
    }]
    if let head {
      files["head.safetensors"] = head.table.entries.map {
        SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: parameters.readOnly + headOffset + $0.offset)
      }
    }
    return files
  }
}

/// y (count) += x (count)
@inline(__always)
private func accumulate(_ y: MutableFloats, _ x: Floats, _ count: Int) {
  for i in 0..<count { y[i] += x[i] }
}
