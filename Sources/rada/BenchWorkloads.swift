// `rada bench clip | rada | ttt`: the model workloads of issue 8 on random weights and inputs.
//   clip: image tower forward (B 32), text tower forward (B 100), full fine-tuning step (B 16: both towers
//         forward + backward, contrastive loss, AdamW) for the small config, ViT-B/32 and ViT-B/16.
//   rada: EFT step (frozen ViT-B/16 image forward B 32 + head forward/backward + AdamW, K 100) and the head
//         alone on cached features (B 32, D 512, K 100 and 1000).
//   ttt:  one test image through production's TTT path (TTTViewEncoder + TestTimeAdapter): 64 views of a decoded
//         image through the frozen image tower, head scores, one head step on the entropy of the averaged
//         confident views, prediction, reset (K 200).
// Shapes: B batch, K classes, D = E joint dim, S image side, T tokens, V vocab.
import ArgumentParser
import CLIP
import Distributed
import Foundation
import Imaging
import Kernels
import RAda
import Tensor
import Training

/// Models by preset name (CreateModel's presets, OpenAI QuickGELU as the released weights).
func benchConfig(_ name: String) throws -> CLIPConfig {
  guard let config = CLIPConfig.preset(name) else {
    throw ValidationError("unknown model '\(name)'; use \(CLIPConfig.presetNames).")
  }
  return config
}

/// pixels (B, 3, S, S) ~ N(0, 1): already-normalised images.
func randomPixels(_ config: CLIPConfig, batch: Int, seed: UInt64) -> FloatBuffer {
  let s = config.vision.imageSize
  var rng = SeededRNG(seed: seed)
  let pixels = FloatBuffer(count: batch * 3 * s * s)
  for i in 0..<pixels.count { pixels[i] = Float(rng.normal()) }
  return pixels
}

/// ids (B, T): start-of-text, 4 to T-2 random word ids, end-of-text, zero padding (as the tokenizer writes).
func randomTokenRows(_ config: CLIPConfig, batch: Int, seed: UInt64) -> [Int32] {
  let t = config.text, tokens = t.contextLength
  var rng = SeededRNG(seed: seed)
  var ids = [Int32](repeating: 0, count: batch * tokens)
  for b in 0..<batch {
    let length = 4 + rng.int(below: max(1, tokens - 5))
    ids[b * tokens] = Int32(t.vocabSize - 2)
    for i in 1...length { ids[b * tokens + i] = Int32(1 + rng.int(below: t.vocabSize - 3)) }
    ids[b * tokens + length + 1] = Int32(t.endOfTextId)
  }
  return ids
}

/// f (n, D) random unit rows.
func randomUnitRows(_ n: Int, _ d: Int, seed: UInt64) -> FloatBuffer {
  var rng = SeededRNG(seed: seed)
  let x = FloatBuffer(count: n * d)
  for r in 0..<n {
    var norm = 0.0
    for e in 0..<d { let v = rng.normal(); x[r * d + e] = Float(v); norm += v * v }
    let inverse = Float(1 / norm.squareRoot())
    for e in 0..<d { x[r * d + e] *= inverse }
  }
  return x
}

/// The AdamW every bench step uses (open_clip's fine-tuning defaults; the values do not change the timing).
func benchAdamW(_ table: ParameterTable) throws -> Optimizer {
  try Optimizer(config: OptimizerConfig(kind: .adamw, weightDecay: 0.1, beta1: 0.9, beta2: 0.98, epsilon: 1e-6), table: table)
}

// MARK: - Full fine-tuning step

/// One CLIP fine-tuning step on B (image, text) pairs: both towers forward (saving activations), the symmetric
/// contrastive loss of the local batch (open_clip ClipLoss, labels = diagonal), both towers backward, the
/// gradient averaged over ranks (one blocking allreduce after backward, as DDP without overlap; or, with
/// `overlapBucketMB`, bucketed allreduces started as backward completes each bucket, as FFT training does), AdamW.
/// All buffers planned here.
final class FineTuneStep {
  let model: CLIPModel
  let batch: Int
  let gradients: FloatBuffer
  let vision: VisionActivations
  let text: TextActivations
  let loss: ContrastiveLoss
  let optimizer: Optimizer
  let pixels: FloatBuffer
  let ids: [Int32]
  /// (B, E) gradients of the normalised embeddings
  let dImage, dText: FloatBuffer
  let world: Collective
  /// With several ranks and overlap on: buckets whose allreduce starts as backward completes them (FFT's scheme).
  let reducer: GradientReducer?
  /// Block offsets where backward reports each layer done (the ln_1 weight, first tensor of a block).
  let visionLayerOffsets: [Int], textLayerOffsets: [Int]
  /// Seconds each step spent waiting for allreduces after backward (the part not hidden behind it).
  private(set) var exposedWaits: [Double] = []

  /// `overlapBucketMB`: nil averages gradients with one blocking allreduce after backward; a size in MB uses
  /// bucketed allreduces started during backward, as FFT training does (fft.bucketMB).
  init(config: CLIPConfig, batch: Int, world: Collective, seed: UInt64 = 1, overlapBucketMB: Int? = nil) throws {
    model = CLIPModel.random(config: config, seed: seed)
    self.batch = batch
    self.world = world
    gradients = FloatBuffer(count: model.table.totalCount)
    vision = VisionActivations(config: config, batch: batch, saving: true)
    text = TextActivations(config: config, batch: batch, saving: true)
    loss = ContrastiveLoss(localRows: batch, globalRows: batch, dim: config.embedDim)
    optimizer = try benchAdamW(model.table)
    pixels = randomPixels(config, batch: batch, seed: seed + UInt64(world.rank) + 2)
    ids = randomTokenRows(config, batch: batch, seed: seed + UInt64(world.rank) + 3)
    dImage = FloatBuffer(count: batch * config.embedDim); dText = FloatBuffer(count: batch * config.embedDim)
    let table = model.table
    (visionLayerOffsets, textLayerOffsets) = CLIPModel.blockStartOffsets(config, in: table)
    let gradients = self.gradients
    reducer = overlapBucketMB.map { megabytes in
      GradientReducer(gradients: gradients.pointer,
                      ranges: table.entries.filter(\.isTrainable).map { ($0.offset, $0.count) },
                      bucketFloats: megabytes * (1 << 20) / 4, world: world)
    }
  }

  func run() throws {
    let p = model.parameters.readOnly, e = model.config.embedDim
    gradients.zero()
    model.vision.forward(pixels: pixels.readOnly, batch: batch, parameters: p, activations: vision)
    ids.withUnsafeBufferPointer { model.text.forward(ids: $0.baseAddress!, batch: batch, parameters: p, activations: text) }
    dImage.zero(); dText.zero()
    let result = loss.compute(imageLocal: vision.embeds.readOnly, textLocal: text.embeds.readOnly,
                              imageGlobal: vision.embeds.readOnly, textGlobal: text.embeds.readOnly,
                              rows: batch, columns: batch, labelOffset: 0, logitScale: model.logitScale,
                              dImageLocal: dImage.pointer, dTextLocal: dText.pointer)
    gradients[model.logitScaleIndex] += result.dLogitScale
    if let reducer {
      // back to front in the layout (text after vision), starting each bucket's allreduce as it completes
      let ready: (Int) -> Void = { reducer.layerFinished(from: $0) }
      ready(model.logitScaleIndex)
      ids.withUnsafeBufferPointer {
        model.text.backward(dEmbeds: dText.readOnly, ids: $0.baseAddress!, batch: batch, parameters: p,
                            gradients: gradients.pointer, activations: text,
                            afterLayer: { [textLayerOffsets] l in ready(textLayerOffsets[l]) })
      }
      model.vision.backward(dEmbeds: dImage.readOnly, batch: batch, parameters: p, gradients: gradients.pointer,
                            activations: vision, afterLayer: { [visionLayerOffsets] l in ready(visionLayerOffsets[l]) })
      try reducer.finish()
      exposedWaits.append(reducer.lastWaitSeconds)
    } else {
      model.vision.backward(dEmbeds: dImage.readOnly, batch: batch, parameters: p, gradients: gradients.pointer,
                            activations: vision)
      ids.withUnsafeBufferPointer {
        model.text.backward(dEmbeds: dText.readOnly, ids: $0.baseAddress!, batch: batch, parameters: p,
                            gradients: gradients.pointer, activations: text)
      }
      if world.size > 1 { try world.allReduceMean(gradients.pointer, count: gradients.count) }
    }
    optimizer.step(parameters: model.parameters, gradients: gradients, lr: 1e-5)
    precondition(result.loss.isFinite && e > 0, "bench fine-tuning step: loss is not finite")
  }
}

// MARK: - clip

struct BenchCLIP: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clip", abstract: "CLIP towers: image forward B 32, text forward B 100, fine-tuning step B 16.")

  @OptionGroup var options: BenchOptions
  @Option(help: "Models, comma-separated: small, vit-b-32, vit-b-16.") var models = "small,vit-b-32,vit-b-16"

  func run() throws {
    let runner = try BenchRunner(options: options)
    for name in models.split(separator: ",").map(String.init) {
      let config = try benchConfig(name)
      try runner.measure("clip/image_forward", "\(name) b32", items: 32,
                         flops: BenchFLOPs.visionForward(config, batch: 32),
                         setup: { () -> (CLIPModel, VisionActivations, FloatBuffer) in
                           (CLIPModel.random(config: config, seed: 1),
                            VisionActivations(config: config, batch: 32, saving: false),
                            randomPixels(config, batch: 32, seed: 2))
                         }, step: { model, activations, pixels in
                           model.vision.forward(pixels: pixels.readOnly, batch: 32, parameters: model.parameters.readOnly,
                                                activations: activations)
                         })
      try runner.measure("clip/text_forward", "\(name) b100", items: 100,
                         flops: BenchFLOPs.textForward(config, batch: 100),
                         setup: { () -> (CLIPModel, TextActivations, [Int32]) in
                           (CLIPModel.random(config: config, seed: 1),
                            TextActivations(config: config, batch: 100, saving: false),
                            randomTokenRows(config, batch: 100, seed: 3))
                         }, step: { model, activations, ids in
                           ids.withUnsafeBufferPointer {
                             model.text.forward(ids: $0.baseAddress!, batch: 100, parameters: model.parameters.readOnly,
                                                activations: activations)
                           }
                         })
      try runner.measure("clip/finetune_step", "\(name) b16", items: 16,
                         flops: BenchFLOPs.fineTuneStep(config, batch: 16),
                         setup: { try FineTuneStep(config: config, batch: 16, world: LocalCollective()) },
                         step: { try $0.run() })
    }
  }
}

// MARK: - RAda head

/// One head step on given image features: forward, CE + α·L∞, backward, AdamW.
final class HeadStep {
  let head: RAdaHead
  let workspace: RAdaWorkspace
  let optimizer: Optimizer
  let classFeatures: FloatBuffer
  let batch: Int, classes: Int
  let labels: [Int]
  /// log(100): CLIP's trained logit scale
  let logitScale = Float(log(100.0))

  init(batch: Int, classes: Int, dim: Int = 512, seed: UInt64 = 1) throws {
    head = try RAdaHead(config: RAdaConfig(dim: dim), seed: seed)
    workspace = try RAdaWorkspace(config: head.config, maxBatch: batch, classes: classes)
    optimizer = try benchAdamW(head.table)
    classFeatures = randomUnitRows(classes, dim, seed: seed + 10)
    self.batch = batch; self.classes = classes
    labels = (0..<batch).map { $0 % classes }
  }

  /// Forward on f (B, D), CE + α·L∞, backward, AdamW.
  func run(features: Floats) throws {
    head.gradients.zero()
    try head.forward(imageFeatures: features, textFeatures: classFeatures.readOnly, batch: batch, classes: classes,
                     logitScale: logitScale, workspace: workspace)
    _ = try head.loss(labels: labels, workspace: workspace)
    try head.backward(workspace: workspace, maskLossWeight: head.config.alpha)
    optimizer.step(parameters: head.parameters, gradients: head.gradients, lr: 1e-4)
  }
}

struct BenchRAda: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rada", abstract: "RAda: EFT step (ViT-B/16 frozen, B 32, K 100); head only (B 32, D 512, K 100 and 1000).")

  @OptionGroup var options: BenchOptions
  @Option(help: "Image tower of the EFT step.") var model = "vit-b-16"

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    // EFT step: frozen image forward (no saved activations) + head step. FLOPs: image forward + 3x head forward.
    try runner.measure("rada/eft_step", "\(model) b32 k100", items: 32,
                       flops: BenchFLOPs.visionForward(config, batch: 32)
                         + BenchFLOPs.headStep(batch: 32, classes: 100, dim: config.embedDim),
                       setup: { () -> (CLIPModel, VisionActivations, FloatBuffer, HeadStep) in
                         (CLIPModel.random(config: config, seed: 1), VisionActivations(config: config, batch: 32, saving: false),
                          randomPixels(config, batch: 32, seed: 2), try HeadStep(batch: 32, classes: 100, dim: config.embedDim))
                       }, step: { model, activations, pixels, head in
                         model.vision.forward(pixels: pixels.readOnly, batch: 32, parameters: model.parameters.readOnly,
                                              activations: activations)
                         try head.run(features: activations.embeds.readOnly)
                       })
    for classes in [100, 1000] {
      try runner.measure("rada/head_step", "b32 d512 k\(classes)", items: 1,
                         flops: BenchFLOPs.headStep(batch: 32, classes: classes, dim: 512),
                         setup: { () -> (HeadStep, FloatBuffer) in
                           (try HeadStep(batch: 32, classes: classes), randomUnitRows(32, 512, seed: 5))
                         }, step: { head, features in try head.run(features: features.readOnly) })
    }
  }
}

struct BenchTTT: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ttt", abstract: "Test-time training of one image: 64 views forward (ViT-B/16) + one head step, K 200.",
    discussion: """
      Runs production's per-image path (Training/TTTSession.swift): TTTViewEncoder makes the views of a 500x375
      image (plain view + random resized crops with flips) and runs the frozen tower on them, TestTimeAdapter scores
      every view with the head, keeps the most confident, takes one AdamW step on the entropy of their mean,
      predicts the plain view and resets the head.
      """)

  @OptionGroup var options: BenchOptions
  @Option(help: "Image tower.") var model = "vit-b-16"
  @Option(help: "Views per test image.") var views = 64
  @Option(help: "Classes.") var classes = 200
  @Option(help: "Confident views kept for the entropy loss (TPT keeps 10%).") var selected = 6

  func validate() throws {
    try checkRange("--views", views, 1...4096)
    try checkRange("--classes", classes, 1...100_000)
    try checkRange("--selected", selected, 1...views)
  }

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    let views = self.views, classes = self.classes
    // keep fraction p with int(p·V) = selected (TTTOptions.keptViews)
    let ttt = TTTOptions(views: views, keepFraction: Double(selected) / Double(views), steps: 1, lr: 5e-3)
    try runner.measure("ttt/image", "\(model) v\(views) k\(classes)", items: 1,
                       flops: BenchFLOPs.visionForward(config, batch: views)
                         + BenchFLOPs.headStep(batch: views, classes: classes, dim: config.embedDim),
                       setup: { () -> (TTTViewEncoder, TestTimeAdapter, DecodedImage) in
                         let clip = CLIPModel.random(config: config, seed: 1)
                         let head = try RAdaHead(config: RAdaConfig(dim: config.embedDim), seed: 1)
                         let adapter = try TestTimeAdapter(head: head,
                                                           classFeatures: randomUnitRows(classes, config.embedDim, seed: 11),
                                                           classes: classes, logitScale: Float(log(100.0)), options: ttt)
                         var rng = SeededRNG(seed: 3)
                         let image = DecodedImage(width: 500, height: 375, mode: .rgb,
                                                  pixels: (0..<(500 * 375 * 3)).map { _ in UInt8(rng.int(below: 256)) })
                         return (TTTViewEncoder(model: clip, views: views), adapter, image)
                       }, step: { encoder, adapter, image in
                         let features = encoder.encode(image, seed: 1, sampleIndex: 0)
                         _ = try adapter.adapt(viewFeatures: features, views: views)
                       })
  }
}
