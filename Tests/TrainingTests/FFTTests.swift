// FFT (FFTModel / FFTSession) on one process: the combined loss (w·contrastive + CE + α·mask) against central
// finite differences for parameters of both towers, the head and logit_scale; an end-to-end run on a tiny
// model and a tiny synthetic dataset (loss falls, accuracy rises); frozen parameter groups stay bit-identical; and
// global-norm clipping against a naive recomputation. The N ranks vs 1 rank checks run under mpirun in
// launch/tests/fft-distributed.sh.
import CLIP
import Data
import Distributed
import Foundation
import RAda
import Tensor
import Training
import XCTest

final class FFTTests: XCTestCase {
  var directory = ""

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "rada-fft-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }
  override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

  /// E 16, one layer per tower, 16 px images of 4 patches, 12 text tokens.
  static let tinyConfig = CLIPConfig(embedDim: 16,
                                     vision: CLIPVisionConfig(width: 16, layers: 1, heads: 2, patchSize: 8, imageSize: 16),
                                     text: CLIPTextConfig(width: 16, layers: 1, heads: 2, contextLength: 12))

  /// Deterministic pixels per position (no files): values in [-1, 1].
  static func pixels(position: Int, size: Int) -> [Float] {
    var rng = SeededRNG(seed: derivedSeed(7, UInt64(position)))
    return (0..<(3 * size * size)).map { _ in Float(rng.normal() * 0.5) }
  }

  func makeModel(alpha: Float, templates: Int, options: FFTOptions = FFTOptions()) throws -> FFTModel {
    let clip = CLIPModel.random(config: Self.tinyConfig, seed: 3)
    clip.logitScale = Float(log(5.0))  // a moderate scale keeps the softmaxes away from saturation
    let head = try RAdaHead(config: RAdaConfig(dim: 16, heads: 2, temperature: 1, alpha: alpha, loss: .mse), seed: 5)
    // a random out_proj (zero at init) so the mask is not identically 1 and every head tensor gets gradient
    var rng = SeededRNG(seed: 11)
    for i in 0..<head.parameters.count { head.parameters[i] += Float(rng.normal() * 0.05) }
    let classNames = ["red circle", "blue square", "green cross"]
    let allTemplates = ["a photo of a {}.", "a drawing of a {}."]
    let prompts = allTemplates.prefix(templates).map { t in classNames.map { t.replacingOccurrences(of: "{}", with: $0) } }
    let labels = [0, 1, 2, 1, 0, 2]
    var opts = options
    opts.contrastiveWeight = 0.7
    // The head reads logit_scale as a constant (FFTModel); a fixed head scale makes the finite difference of
    // the total loss w.r.t. logit_scale the contrastive term's alone, which is what backward computes.
    if opts.fixedHeadLogitScale == nil { opts.fixedHeadLogitScale = Float(log(8.0)) }
    return try FFTModel(clip: clip, head: head, world: LocalCollective(), microBatch: 4,
                        text: .classPrompts(prompts: Array(prompts), labels: labels), tokenizer: try CLIPTokenizer(),
                        loadPixels: { position, _ in Self.pixels(position: position, size: 16) }, options: opts)
  }

  func reducer(_ model: FFTModel) -> GradientReducer {
    GradientReducer(gradients: model.gradients.pointer, ranges: [], bucketFloats: 1 << 20, world: LocalCollective())
  }

  /// Checks d loss / d p at `index` of tensor `name` against a central difference.
  func checkGradients(templates: Int) throws {
    let model = try makeModel(alpha: 0.5, templates: templates)
    let positions = [0, 1, 2, 3]
    model.gradients.zero()
    _ = try model.forwardBackward(positions: positions, epoch: 0, reducer: reducer(model))
    let analytic = model.gradients.array
    let cases: [(String, Int)] = [
      ("visual.conv1.weight", 3), ("visual.class_embedding", 1), ("visual.transformer.resblocks.0.attn.in_proj_weight", 40),
      ("visual.transformer.resblocks.0.mlp.c_fc.weight", 5), ("visual.ln_post.weight", 2), ("visual.proj", 7),
      ("positional_embedding", 18), ("transformer.resblocks.0.attn.in_proj_weight", 11),
      ("transformer.resblocks.0.mlp.c_proj.bias", 3), ("ln_final.bias", 4), ("text_projection", 9),
      ("logit_scale", 0), ("mha.q_proj1.weight", 3), ("mha.k_proj.weight", 20), ("mha.out_proj.weight", 5),
      ("mha.out_proj.bias", 1),
    ]
    // Central differences of a Float loss (~3): h = 1e-3 keeps the curvature error small (it converges to the
    // analytic value as h shrinks) while rounding adds ~3e-7 / h = 3e-4.
    // Tolerance 2e-3 + 3% of |fd| (observed agreement is ~1e-4); a missing term or wrong factor is far outside.
    let h: Float = 1e-3
    for (name, index) in cases {
      let entry = try XCTUnwrap(model.table[name], name)
      let i = entry.offset + index
      let saved = model.parameters[i]
      model.parameters[i] = saved + h
      let plus = try model.forwardBackward(positions: positions, epoch: 0, reducer: reducer(model)).total
      model.parameters[i] = saved - h
      let minus = try model.forwardBackward(positions: positions, epoch: 0, reducer: reducer(model)).total
      model.parameters[i] = saved
      let numeric = (plus - minus) / (2 * Double(h))
      let diff = abs(Double(analytic[i]) - numeric)
      XCTAssertLessThanOrEqual(diff, 2e-3 + 0.03 * abs(numeric),
                               "templates \(templates): d loss / d \(name)[\(index)] analytic \(analytic[i]) vs finite difference \(numeric)")
    }
  }

  func testCombinedLossGradientsMatchFiniteDifferences() throws { try checkGradients(templates: 1) }

  /// Two templates: t = normalise(Σ_τ text(prompt_τ)) is differentiated through the ensembling.
  func testGradientsThroughPromptEnsemble() throws { try checkGradients(templates: 2) }

  /// Prompt rows processed in chunks (forward recomputed in backward) give the same gradients as one chunk.
  func testChunkedTextBackwardEqualsSingleChunk() throws {
    var chunked = FFTOptions()
    chunked.textChunk = 2  // 6 rows (3 classes x 2 templates) in 3 chunks
    let a = try makeModel(alpha: 0.5, templates: 2), b = try makeModel(alpha: 0.5, templates: 2, options: chunked)
    for m in [a, b] { m.gradients.zero(); _ = try m.forwardBackward(positions: [0, 1, 2, 3], epoch: 0, reducer: reducer(m)) }
    // Same arithmetic per row, but each chunk's weight gradients are added by their own product, so sums over
    // rows are split differently and round differently by BLAS kernel (Haswell/Zen: 1.5e-5 absolute on a tensor
    // whose largest gradient is 45). Per tensor: |a - b| <= 1e-7 + 1e-5 · max|a of the tensor|, 20x the largest
    // difference relative to the tensor's scale seen under the Cooperlake, SkylakeX, Haswell and Sandybridge kernels
    // (4.9e-7); a dropped or doubled chunk changes gradients by a sizeable fraction of their scale.
    for entry in a.table.entries {
      var scale: Float = 0, worst: Float = 0, at = 0
      for i in entry.offset..<entry.offset + entry.count {
        scale = max(scale, abs(a.gradients[i]))
        if abs(a.gradients[i] - b.gradients[i]) > worst { worst = abs(a.gradients[i] - b.gradients[i]); at = i - entry.offset }
      }
      XCTAssertLessThanOrEqual(worst, 1e-7 + 1e-5 * scale,
                               "chunked vs single-chunk text backward: \(entry.name)[\(at)] differs by \(worst) (tensor's largest gradient \(scale))")
    }
  }

  /// clip_grad_norm_: g · max_norm / (‖g‖ + 1e-6) when the norm exceeds max_norm; a naive loop is the referee.
  func testGradientClippingByGlobalNorm() throws {
    var options = FFTOptions()
    options.clipGradNorm = 0.05
    let model = try makeModel(alpha: 0.5, templates: 1, options: options)
    model.gradients.zero()
    _ = try model.forwardBackward(positions: [0, 1, 2, 3], epoch: 0, reducer: reducer(model))
    let before = model.gradients.array
    var sum = 0.0
    for e in model.table.entries where e.isTrainable { for i in e.offset..<(e.offset + e.count) { sum += Double(before[i]) * Double(before[i]) } }
    let norm = sum.squareRoot()
    XCTAssertGreaterThan(norm, 0.05, "the test needs a gradient norm above the clipping threshold")
    try model.gradientsAveraged()
    XCTAssertEqual(model.lastGradientNorm, norm, accuracy: 1e-9 * norm)
    let scale = 0.05 / (norm + 1e-6)
    for i in stride(from: 0, to: before.count, by: 97) {
      XCTAssertEqual(Double(model.gradients[i]), Double(before[i]) * scale, accuracy: 1e-6 * abs(Double(before[i])) + 1e-12,
                     "clipped gradient at flat index \(i)")
    }
  }

  // MARK: End to end

  /// 4 classes of 32 px shapes, 8 training and 8 test images per class; a tiny random CLIP.
  func makeData() throws -> (model: String, train: String, test: String) {
    var spec = SyntheticSpec()
    spec.shapes = ["circle", "cross"]; spec.colours = ["blue", "red"]
    spec.pretrainPerClass = 0; spec.trainPerClass = 8; spec.testPerClass = 8; spec.shiftedPerClass = 0
    try Synthetic.generate(spec, into: directory + "/synth")
    let config = CLIPConfig(embedDim: 32, vision: CLIPVisionConfig(width: 32, layers: 1, heads: 2, patchSize: 8, imageSize: 32),
                            text: CLIPTextConfig(width: 32, layers: 1, heads: 2, contextLength: 16))
    let path = directory + "/tiny.safetensors"
    try CLIPModel.random(config: config, seed: 1).save(path: path)
    return (path, "imagefolder:" + directory + "/synth/train", "imagefolder:" + directory + "/synth/test")
  }

  func fftConfig(model: String, train: String, eval: String, run: String, steps: Int) -> TrainConfig {
    var c = TrainConfig()
    c.setting = .fft
    c.model.path = model
    c.data.train = train; c.data.eval = eval; c.data.augment = false
    c.optim.name = .adamw; c.optim.lr = 3e-4; c.optim.weightDecay = 0.01  // 1e-2 collapses this from-scratch model
    c.schedule.name = .constant
    c.run.dir = run; c.run.steps = steps; c.run.batchSize = 8; c.run.logEvery = 1000; c.run.checksumEvery = 0
    return c
  }

  func quietOptions() -> SessionOptions {
    var o = SessionOptions()
    o.log = { _ in }
    return o
  }

  func testEndToEndLossFallsAndAccuracyRises() throws {
    let data = try makeData()
    // The training split is the evaluation set: 60 steps must fit it well beyond the 25% of chance (observed
    // 0.72-0.78 at 60-80 steps; the untrained model scores 0.25).
    let before = try FFTSession.run(config: fftConfig(model: data.model, train: data.train, eval: data.train,
                                                      run: directory + "/run0", steps: 0), world: LocalCollective(), options: quietOptions())
    let after = try FFTSession.run(config: fftConfig(model: data.model, train: data.train, eval: data.train,
                                                     run: directory + "/run1", steps: 60), world: LocalCollective(), options: quietOptions())
    let losses = after.lossHistory
    XCTAssertEqual(losses.count, 60)
    let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
    XCTAssertLessThan(last, 0.6 * first, "FFT loss should fall: first 5 steps \(first), last 5 \(last)")
    let top1Before = try XCTUnwrap(before.finalMetrics["val/top1"]), top1After = try XCTUnwrap(after.finalMetrics["val/top1"])
    XCTAssertGreaterThan(top1After, top1Before + 0.2, "accuracy should rise: \(top1Before) -> \(top1After)")
    XCTAssertGreaterThanOrEqual(top1After, 0.6, "accuracy after 60 steps: \(top1After)")
    for file in ["model.safetensors", "head.safetensors", "COMPLETE"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/run1/" + file), "RUN/\(file) missing")
    }
    // RUN/model.safetensors loads back as a CLIP model
    XCTAssertEqual(try CLIPModel.load(path: directory + "/run1/model.safetensors").config.embedDim, 32)
  }

  /// FFTModel keeps one copy of the towers: the CLIP model's parameters are the first part of the trainer's buffer,
  /// so an update is what the model encodes with, without syncModules (the head is still copied out by it).
  func testTheModelsParametersAreTheTrainersBuffer() throws {
    let model = try makeModel(alpha: 0.5, templates: 1)
    XCTAssertEqual(model.clip.parameters.pointer, model.parameters.pointer)
    XCTAssertEqual(model.clip.parameters.count, model.headOffset)
    let pixels = Self.pixels(position: 0, size: 16)
    let before = model.clip.encodeImages(pixels: pixels, count: 1, normalize: false)
    // What an optimiser step does: write the trainer's buffer. visual.proj maps the pooled row to f linearly, so
    // doubling it doubles the unnormalised features (exactly, in floats; the tolerance only guards the comparison).
    let projection = try XCTUnwrap(model.table["visual.proj"])
    for i in 0..<projection.count { model.parameters[projection.offset + i] *= 2 }
    let after = model.clip.encodeImages(pixels: pixels, count: 1, normalize: false)
    XCTAssertEqual(after.count, before.count)
    XCTAssertTrue(before.contains { $0 != 0 })
    for (a, b) in zip(after, before) { XCTAssertEqual(a, 2 * b, accuracy: 1e-6 + 1e-5 * abs(2 * b)) }
  }

  /// optim.groups.*.frozen: run 1 freezes the image tower and the head, run 2 the text tower and the logit scale.
  func testFrozenGroupsStayBitIdentical() throws {
    let data = try makeData()
    for lockImage in [true, false] {
      let run = directory + "/lock\(lockImage)"
      var config = fftConfig(model: data.model, train: data.train, eval: data.test, run: run, steps: 3)
      config.data.eval = nil
      config.optim.groups.image.frozen = lockImage; config.optim.groups.text.frozen = !lockImage
      config.optim.groups.head.frozen = lockImage; config.optim.groups.logitScale.frozen = !lockImage
      _ = try FFTSession.run(config: config, world: LocalCollective(), options: quietOptions())
      let initial = try SafetensorsFile(path: data.model), trained = try SafetensorsFile(path: run + "/model.safetensors")
      var lockedChecked = 0, trainedChanged = 0
      for name in initial.names {
        let isLocked = name == "logit_scale" ? !lockImage : name.hasPrefix("visual.") == lockImage
        let a = try initial.floats(name), b = try trained.floats(name)
        if isLocked {
          XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "frozen tensor \(name) changed (image frozen \(lockImage))")
          lockedChecked += 1
        } else if a != b {
          trainedChanged += 1
        }
      }
      XCTAssertGreaterThan(lockedChecked, 5)
      XCTAssertGreaterThan(trainedChanged, 5, "the unfrozen tower should train (image frozen \(lockImage))")
      // out_proj starts at zero: a frozen head keeps it there, a trained one moves it.
      let outProj = try SafetensorsFile(path: run + "/head.safetensors").floats("mha.out_proj.weight")
      if lockImage {
        XCTAssertTrue(outProj.allSatisfy { $0 == 0 }, "frozen head: out_proj moved")
      } else {
        XCTAssertGreaterThan(outProj.map(abs).max() ?? 0, 0, "trained head: out_proj stayed zero")
      }
    }
  }

  /// Checkpoints carry the group settings (state.json scalars); a resume with other settings is refused, with the
  /// same ones it continues.
  func testResumeKeepsParameterGroups() throws {
    let data = try makeData()
    let run = directory + "/groups"
    var config = fftConfig(model: data.model, train: data.train, eval: data.test, run: run, steps: 2)
    config.data.eval = nil; config.run.checkpointEvery = 2
    config.optim.groups.head.lr = 1e-3; config.optim.groups.text.frozen = true
    _ = try FFTSession.run(config: config, world: LocalCollective(), options: quietOptions())
    let state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: URL(fileURLWithPath:
      run + "/checkpoints/" + Checkpointer.name(step: 2) + "/state.json")))
    XCTAssertEqual(state.scalars["group/head/lr"], 1e-3)
    XCTAssertEqual(state.scalars["group/text/frozen"], 1)
    var resume = quietOptions()
    resume.resume = true
    config.run.steps = 3
    var changed = config
    changed.optim.groups.text.frozen = false
    XCTAssertThrowsError(try FFTSession.run(config: changed, world: LocalCollective(), options: resume)) { error in
      XCTAssertTrue("\(error)".contains("group/text/frozen"), "\(error)")
    }
    XCTAssertEqual(try FFTSession.run(config: config, world: LocalCollective(), options: resume).steps, 3)
  }

  /// FFT decays as open_clip's trainer: matrices and embeddings yes; biases, norms, class embedding, logit_scale and
  /// the head's biases no (EFT's head decays every tensor, Dassl's rule).
  func testWeightDecayFollowsOpenCLIP() throws {
    let model = try makeModel(alpha: 0, templates: 1)
    let decays = Dictionary(uniqueKeysWithValues: model.table.entries.map { ($0.name, $0.decays) })
    for name in ["visual.conv1.weight", "visual.proj", "token_embedding.weight", "positional_embedding", "mha.out_proj.weight"] {
      XCTAssertEqual(decays[name], true, name)
    }
    for name in ["visual.class_embedding", "visual.ln_pre.weight", "ln_final.bias", "logit_scale", "mha.q_proj1.bias",
                 "mha.out_proj.bias"] {
      XCTAssertEqual(decays[name], false, name)
    }
    XCTAssertEqual(try RAdaHead(config: RAdaConfig(dim: 16, heads: 2, temperature: 1, alpha: 0, loss: .mse), seed: 5)
      .table["mha.q_proj1.bias"]?.decays, true, "EFT's head keeps Dassl's decay of every tensor")
  }
}
