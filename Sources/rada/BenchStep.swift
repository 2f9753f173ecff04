// The training steps `rada bench` times, built from production's step models (issue 19: a benchmark of code that
// production never runs is not a measurement). `BenchTrainStep` drives any StepModel through one optimiser step in
// TrainLoop's order; `benchEFTModel` and `benchFineTuneModel` build the EFT and fine-tuning models on random
// weights and inputs. Nothing here computes a loss, a gradient or a matrix product itself.
//   EFT:       EFTModel (RAda head on an ImageFeatureSource: the frozen tower, or a feature matrix).
//   fine-tune: FFTModel without a head, text = captions (contrastive pretraining's step, which is the step
//              torch_bench.py's FineTuneStep measures: both towers fwd + bwd, symmetric contrastive loss, AdamW).
// Shape letters (README): b micro-batch, K classes, D joint embedding dim.
import CLIP
import Distributed
import Foundation
import RAda
import Tensor
import Training

/// A finite-loss check that failed (random weights should never produce one; if they do, the timing is void).
struct BenchStepFailure: Error, CustomStringConvertible {
  let description: String
}

/// One optimiser step of a production StepModel on a fixed micro-batch, in TrainLoop.run's order: zero the
/// gradients, `forwardBackward` (which may start bucket allreduces during backward), `GradientReducer.finish`
/// (average over ranks), the model's `gradientsAveraged` hook, the optimiser, `parametersUpdated`.
/// TrainLoop's per-step bookkeeping is left out: the one allreduce of the loss sums and stop flag, the non-finite
/// scan of the gradients, metrics and progress lines.
final class BenchTrainStep {
  let model: StepModel
  let optimizer: Optimizer
  let reducer: GradientReducer
  /// This rank's micro-batch (dataset positions), the same every step; epoch 0.
  let positions: [Int]
  let lr: Float
  /// Seconds each step spent in `reducer.finish` (the allreduce time not hidden behind backward).
  private(set) var exposedWaits: [Double] = []

  /// `bucketFloats`: the reducer's bucket size as TrainLoop's (EFT: one bucket; FFT: fft.bucketMB).
  init(model: StepModel, positions: [Int], world: Collective, bucketFloats: Int = 1 << 30, lr: Float) throws {
    self.model = model; self.positions = positions; self.lr = lr
    optimizer = try benchAdamW(model.table)
    reducer = GradientReducer(gradients: model.gradients.pointer,
                              ranges: model.table.entries.filter(\.isTrainable).map { (offset: $0.offset, count: $0.count) },
                              bucketFloats: bucketFloats, world: world)
  }

  func run() throws {
    model.gradients.zero()
    let losses = try model.forwardBackward(positions: positions, epoch: 0, reducer: reducer)
    try reducer.finish()
    exposedWaits.append(reducer.lastWaitSeconds)
    try model.gradientsAveraged()
    optimizer.step(parameters: model.parameters, gradients: model.gradients, lr: lr)
    model.parametersUpdated()
    guard losses.total.isFinite else {
      throw BenchStepFailure(description: "bench step: the loss is \(losses.total) on random weights; the timing is void. "
                             + "Report this with the command line.")
    }
  }
}

/// The AdamW every bench step uses (open_clip's fine-tuning defaults; the values do not change the timing).
func benchAdamW(_ table: ParameterTable) throws -> Optimizer {
  try Optimizer(config: OptimizerConfig(kind: .adamw, weightDecay: 0.1, beta1: 0.9, beta2: 0.98, epsilon: 1e-6), table: table)
}

/// The EFT step model: a fresh RAda head (α = RAdaConfig's default) on `source`'s features, class features
/// t (K, D) random unit rows, labels position % K, CLIP's trained logit scale log(100).
func benchEFTModel(source: ImageFeatureSource, microBatch: Int, classes: Int, seed: UInt64 = 1) throws -> EFTModel {
  let dim = source.dim
  return try EFTModel(head: try RAdaHead(config: RAdaConfig(dim: dim), seed: seed), source: source,
                      labels: (0..<source.count).map { $0 % classes },
                      classFeatures: randomUnitRows(classes, dim, seed: seed + 10), classes: classes,
                      logitScale: Float(log(100.0)), microBatch: microBatch)
}

/// n already-normalised images (3, imageSize, imageSize) ~ N(0, 1), one array per dataset position (what a PixelLoader returns).
func randomImages(_ config: CLIPConfig, count: Int, seed: UInt64) -> [[Float]] {
  let perImage = 3 * config.vision.imageSize * config.vision.imageSize
  let pixels = randomPixels(config, batch: count, seed: seed)
  return (0..<count).map { Array(UnsafeBufferPointer(start: pixels.readOnly + $0 * perImage, count: perImage)) }
}

/// n captions of 3 to 12 random lower-case words (tokenised by FFTModel each step, as pretraining does).
func randomCaptions(_ count: Int, seed: UInt64) -> [String] {
  var rng = SeededRNG(seed: seed)
  let letters = Array("abcdefghijklmnopqrstuvwxyz")
  return (0..<count).map { _ in
    (0..<(3 + rng.int(below: 10))).map { _ in String((0..<(2 + rng.int(below: 7))).map { _ in letters[rng.int(below: 26)] }) }
      .joined(separator: " ")
  }
}

/// The fine-tuning step model: FFTModel on random weights with no head and captions as text, i.e. contrastive
/// pretraining's step (FFT proper adds the RAda head and class-prompt text; torch_bench.py measures the step without
/// them, so this is the production setting that matches its row). Every rank encodes its own n random images and
/// captions; the features are gathered over ranks as production does. `overlap` starts bucket allreduces during
/// backward (FFTOptions.overlapCommunication, fft.overlap); otherwise they start after backward, in `finish`.
func benchFineTuneModel(_ config: CLIPConfig, microBatch: Int, world: Collective, overlap: Bool,
                        seed: UInt64 = 1) throws -> FFTModel {
  let images = randomImages(config, count: microBatch, seed: seed + UInt64(world.rank) + 2)
  var options = FFTOptions()
  options.overlapCommunication = overlap
  return try FFTModel(clip: CLIPModel.random(config: config, seed: seed), head: nil, world: world, microBatch: microBatch,
                      text: .captions(randomCaptions(microBatch, seed: seed + UInt64(world.rank) + 3)),
                      tokenizer: try CLIPTokenizer(), loadPixels: { position, _ in images[position] }, options: options)
}
