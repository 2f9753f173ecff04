// `rada bench clip | rada | ttt`: the model workloads of issue 8 on random weights and inputs.
//   clip: image tower forward (B 32), text tower forward (B 100), full fine-tuning step (B 16: production's
//         FFTModel without a head, both towers forward + backward, contrastive loss, AdamW; see BenchStep.swift)
//         for the small config, ViT-B/32 and ViT-B/16.
//   rada: EFT step (production's EFTModel: frozen ViT-B/16 image forward B 32 through TowerFeatureSource + head
//         forward/backward + AdamW, K 100) and the head alone on a feature matrix (B 32, D 512, K 100 and 1000).
//   ttt:  one test image through production's TTT path (TTTViewEncoder + TestTimeAdapter): 64 views of a decoded
//         image through the frozen image tower, head scores, one head step on the entropy of the averaged
//         confident views, prediction, reset (K 200).
// Shape letters (README): B batch, K classes, D joint embedding dim, T tokens, V vocab; `imageSize` spelt out.
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

/// pixels (B, 3, imageSize, imageSize) ~ N(0, 1): already-normalised images.
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
                         setup: { () -> BenchTrainStep in
                           let world = LocalCollective()
                           return try BenchTrainStep(model: try benchFineTuneModel(config, microBatch: 16, world: world,
                                                                                   overlap: false),
                                                     positions: Array(0..<16), world: world, lr: 1e-5)
                         }, step: { try $0.run() })
    }
  }
}

// MARK: - RAda

struct BenchRAda: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rada", abstract: "RAda: EFT step (ViT-B/16 frozen, B 32, K 100); head only (B 32, D 512, K 100 and 1000).")

  @OptionGroup var options: BenchOptions
  @Option(help: "Image tower of the EFT step.") var model = "vit-b-16"

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    // EFT step: EFTModel with the frozen tower as its feature source (TowerFeatureSource: pixels of each position,
    // forward without saved activations, normalise) + head forward/backward + AdamW. FLOPs: image forward + 3x head forward.
    try runner.measure("rada/eft_step", "\(model) b32 k100", items: 32,
                       flops: BenchFLOPs.visionForward(config, batch: 32)
                         + BenchFLOPs.headStep(batch: 32, classes: 100, dim: config.embedDim),
                       setup: { () -> BenchTrainStep in
                         let images = randomImages(config, count: 32, seed: 2)
                         let tower = TowerFeatureSource(model: CLIPModel.random(config: config, seed: 1), count: 32,
                                                        loadPixels: { position, _ in images[position] })
                         return try BenchTrainStep(model: try benchEFTModel(source: tower, microBatch: 32, classes: 100),
                                                   positions: Array(0..<32), world: LocalCollective(), lr: 1e-4)
                       }, step: { try $0.run() })
    // The head alone: EFTModel on a feature matrix f (32, 512), as EFT without augmentation trains from the cache.
    for classes in [100, 1000] {
      try runner.measure("rada/head_step", "b32 d512 k\(classes)", items: 1,
                         flops: BenchFLOPs.headStep(batch: 32, classes: classes, dim: 512),
                         setup: { () -> BenchTrainStep in
                           let features = MatrixFeatureSource(matrix: randomUnitRows(32, 512, seed: 5), count: 32, dim: 512)
                           return try BenchTrainStep(model: try benchEFTModel(source: features, microBatch: 32, classes: classes),
                                                     positions: Array(0..<32), world: LocalCollective(), lr: 1e-4)
                         }, step: { try $0.run() })
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
