// Test-time training (Training/TTTSession.swift): the entropy-of-the-mean gradient against central finite
// differences in Double, confident-view selection against a naive sort, the head reset between images, a
// controlled feature-level setup where TTT should help, and the whole `rada ttt` pipeline on a tiny random CLIP
// (before-adaptation predictions against an independent zero-shot computation).
import CLIP
import Data
import Distributed
import Foundation
import Imaging
import RAda
import Tensor
import XCTest
@testable import Training

final class TTTTests: XCTestCase {
  // MARK: Naive Double references

  static func softmax(_ z: [Double]) -> [Double] {
    let best = z.max()!
    let e = z.map { exp($0 - best) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
  }

  static func entropy(_ p: [Double]) -> Double { -p.reduce(0) { $0 + ($1 > 0 ? $1 * log($1) : 0) } }

  /// H(mean_v softmax(z_v)) for logits (M, K) row-major, straight from the definition.
  static func marginalEntropy(_ z: [Double], rows: Int, classes: Int) -> Double {
    var mean = [Double](repeating: 0, count: classes)
    for v in 0..<rows {
      let p = softmax(Array(z[(v * classes)..<((v + 1) * classes)]))
      for j in 0..<classes { mean[j] += p[j] / Double(rows) }
    }
    return entropy(mean)
  }

  static func randomLogits(rows: Int, classes: Int, seed: UInt64, scales: [Double]) -> [Float] {
    var rng = SeededRNG(seed: seed)
    return (0..<(rows * classes)).map { i in Float(rng.normal() * scales[(i / classes) % scales.count]) }
  }

  // MARK: Loss and gradient

  func testMarginalEntropyGradientMatchesFiniteDifferences() {
    let k = 7
    for rows in [1, 2, 5] {
      // Row scales from flat (0.3) to peaked (25: probabilities down to ~e-40, where a naive log p̄ would break).
      let logits = Self.randomLogits(rows: rows, classes: k, seed: UInt64(10 + rows), scales: [3, 0.3, 25, 1, 8])
      var dLogits = [Float](repeating: .nan, count: rows * k)
      let scratch = UnsafeMutablePointer<Double>.allocate(capacity: rows + k)
      defer { scratch.deallocate() }
      let loss = logits.withUnsafeBufferPointer { z in
        dLogits.withUnsafeMutableBufferPointer { d in
          TTTLoss.marginalEntropy(logits: z.baseAddress!, rows: rows, classes: k, dLogits: d.baseAddress!, scratch: scratch)
        }
      }
      let z = logits.map(Double.init)
      let reference = Self.marginalEntropy(z, rows: rows, classes: k)
      // Same Float inputs, both in Double: only summation order differs.
      XCTAssertEqual(loss, reference, accuracy: 1e-10, "loss, rows \(rows)")
      // Central differences with h = 1e-5 in Double: truncation ~h²·|f'''| ≲ 1e-8, cancellation ~1e-16/h = 1e-11;
      // dLogits are rounded to Float (relative 6e-8). Tolerance 1e-6 + 1e-5·|ref|.
      let h = 1e-5
      var worst = 0.0, firstBad = -1
      for i in 0..<(rows * k) {
        var plus = z, minus = z
        plus[i] += h; minus[i] -= h
        let fd = (Self.marginalEntropy(plus, rows: rows, classes: k) - Self.marginalEntropy(minus, rows: rows, classes: k)) / (2 * h)
        let diff = abs(Double(dLogits[i]) - fd)
        worst = max(worst, diff)
        if diff > 1e-6 + 1e-5 * abs(fd), firstBad < 0 { firstBad = i }
      }
      XCTAssertEqual(firstBad, -1, "dLogits (rows \(rows)): max abs diff \(worst), first bad index \(firstBad)")
    }
  }

  // MARK: Selection

  func testKeptViewCountIsCeilingOfFraction() {
    XCTAssertEqual(TTTOptions(views: 64, keepFraction: 0.1).keptViews, 6)   // 6.4 -> 6, as TPT's int()
    XCTAssertEqual(TTTOptions(views: 30, keepFraction: 0.1).keptViews, 3)   // 0.1·30 = 3.0000000000000004 in Double
    XCTAssertEqual(TTTOptions(views: 8, keepFraction: 0.3).keptViews, 2)   // 2.4 -> 2
    XCTAssertEqual(TTTOptions(views: 10, keepFraction: 0.3).keptViews, 3)  // 2.9999999999999996 -> 3
    XCTAssertEqual(TTTOptions(views: 1, keepFraction: 0.1).keptViews, 1)
    XCTAssertEqual(TTTOptions(views: 10, keepFraction: 1).keptViews, 10)
    XCTAssertThrowsError(try TTTOptions(views: 4, keepFraction: 0).validate())
  }

  func testSelectionKeepsExactlyTheLowestEntropyViews() {
    let views = 12, k = 6, keep = TTTOptions(views: views, keepFraction: 0.25).keptViews
    let logits = Self.randomLogits(rows: views, classes: k, seed: 3, scales: [0.2, 4, 1, 9, 0.5, 2, 6])
    let entropies = UnsafeMutablePointer<Double>.allocate(capacity: views)
    defer { entropies.deallocate() }
    logits.withUnsafeBufferPointer { TTTLoss.entropies(logits: $0.baseAddress!, rows: views, classes: k, into: entropies) }
    var naive = [Double]()
    for v in 0..<views {
      naive.append(Self.entropy(Self.softmax(logits[(v * k)..<((v + 1) * k)].map(Double.init))))
      XCTAssertEqual(entropies[v], naive[v], accuracy: 1e-10, "entropy of view \(v)")
    }
    let kept = TTTLoss.selectConfident(entropies: entropies, count: views, keep: keep)
    XCTAssertEqual(kept.count, keep)
    XCTAssertEqual(kept, Array((0..<views).sorted { naive[$0] < naive[$1] }.prefix(keep)), "lowest-entropy views")
    let worstKept = kept.map { naive[$0] }.max()!
    for v in 0..<views where !kept.contains(v) {
      XCTAssertGreaterThan(naive[v], worstKept, "view \(v) was left out but is more confident than a kept one")
    }
  }

  // MARK: Adapter on features

  /// Random unit rows (n, d).
  static func unitRows(_ n: Int, _ d: Int, rng: inout SeededRNG) -> [Float] {
    var x = (0..<(n * d)).map { _ in Float(rng.normal()) }
    x.withUnsafeMutableBufferPointer { normalizeRows($0.baseAddress!, rows: n, dim: d) }
    return x
  }

  static func head(dim: Int, seed: UInt64 = 5) throws -> RAdaHead {
    try RAdaHead(config: RAdaConfig(dim: dim, heads: 2, temperature: 1, alpha: 0), seed: seed)
  }

  func testAdapterSelectsByZeroShotEntropyAndLowersTheLoss() throws {
    let d = 16, k = 5, views = 10
    var rng = SeededRNG(seed: 21)
    let text = Self.unitRows(k, d, rng: &rng), features = Self.unitRows(views, d, rng: &rng)
    let logitScale = Float(log(30.0))
    let adapter = try TestTimeAdapter(head: try Self.head(dim: d), classFeatures: FloatBuffer(text), classes: k,
                                      logitScale: logitScale,
                                      options: TTTOptions(views: views, keepFraction: 0.3, steps: 1, lr: 1e-3))
    let outcome = try features.withUnsafeBufferPointer { try adapter.adapt(viewFeatures: $0.baseAddress!, views: views) }
    // out_proj = 0: the starting head is zero-shot CLIP, logits = s·f·tᵀ; naive entropies pick the kept views.
    var naive = [Double]()
    for v in 0..<views {
      let z = (0..<k).map { j in 30 * (0..<d).reduce(0.0) { $0 + Double(features[v * d + $1]) * Double(text[j * d + $1]) } }
      naive.append(Self.entropy(Self.softmax(z)))
      if v == 0 { XCTAssertEqual(outcome.before, z.indices.max { z[$0] < z[$1] }!, "zero-shot prediction of view 0") }
    }
    XCTAssertEqual(Set(outcome.kept), Set((0..<views).sorted { naive[$0] < naive[$1] }.prefix(3)), "kept views")
    XCTAssertLessThan(outcome.lossAfter, outcome.lossBefore, "one small AdamW step should lower H(p̄)")
  }

  func testHeadIsResetBetweenImages() throws {
    let d = 16, k = 5, views = 8
    var rng = SeededRNG(seed: 7)
    let text = Self.unitRows(k, d, rng: &rng)
    let image1 = Self.unitRows(views, d, rng: &rng), image2 = Self.unitRows(views, d, rng: &rng)
    // Several large steps, so that a head left adapted by image 1 would visibly change image 2's result.
    let options = TTTOptions(views: views, keepFraction: 0.25, steps: 3, lr: 0.05)
    func adapter() throws -> TestTimeAdapter {
      try TestTimeAdapter(head: try Self.head(dim: d), classFeatures: FloatBuffer(text), classes: k,
                          logitScale: Float(log(50.0)), options: options)
    }
    let both = try adapter()
    let initial = both.head.parameters.array
    let first = try image1.withUnsafeBufferPointer { try both.adapt(viewFeatures: $0.baseAddress!, views: views) }
    XCTAssertEqual(both.head.parameters.array, initial, "head parameters restored after an image")
    let second = try image2.withUnsafeBufferPointer { try both.adapt(viewFeatures: $0.baseAddress!, views: views) }
    let alone = try image2.withUnsafeBufferPointer { try adapter().adapt(viewFeatures: $0.baseAddress!, views: views) }
    XCTAssertEqual(second, alone, "image 2 after image 1 must equal image 2 alone (head and optimiser reset)")
    // The views' head forward in chunks of 3 (as for large K·D) gives the same logits, selection and result.
    let chunked = try TestTimeAdapter(head: try Self.head(dim: d), classFeatures: FloatBuffer(text), classes: k,
                                      logitScale: Float(log(50.0)), options: options, maxViewsPerForward: 3)
    let inChunks = try image2.withUnsafeBufferPointer { try chunked.adapt(viewFeatures: $0.baseAddress!, views: views) }
    XCTAssertEqual(inChunks.kept, alone.kept, "kept views with a chunked view forward")
    XCTAssertEqual(inChunks.before, alone.before)
    XCTAssertEqual(Double(zip(inChunks.logitsAfter, alone.logitsAfter).map { abs($0 - $1) }.max()!), 0, accuracy: 1e-4,
                   "adapted logits with a chunked view forward (gemm row blocking may round differently)")

    // The adaptation did change the head: view 0's logits moved away from zero-shot s·f·tᵀ.
    let zeroShot = (0..<k).map { j in 50 * (0..<d).reduce(Float(0)) { $0 + image1[$1] * text[j * d + $1] } }
    let moved = zip(first.logitsAfter, zeroShot).map { abs($0 - $1) }.max()!
    XCTAssertGreaterThan(moved, 0.01, "3 AdamW steps at lr 0.05 should change view 0's logits")
  }

  /// A setup built so that TTT should help: view 0 is ambiguous between the true class c and a distractor,
  /// a few views show c clearly (these are the confident ones TPT keeps), the rest are as ambiguous as view 0.
  /// Entropy minimisation on the kept views can only push the head towards c.
  func testTTTHelpsWhenConfidentViewsAreRight() throws {
    let d = 32, k = 4, views = 16, images = 48
    var rng = SeededRNG(seed: 99)
    let text = Self.unitRows(k, d, rng: &rng)
    let adapter = try TestTimeAdapter(head: try Self.head(dim: d, seed: 11), classFeatures: FloatBuffer(text),
                                      classes: k, logitScale: Float(log(100.0)),
                                      options: TTTOptions(views: views, keepFraction: 0.25))
    var correctBefore = 0, correctAfter = 0, changed = 0
    for i in 0..<images {
      let c = i % k, distractor = (c + 1 + rng.int(below: k - 1)) % k
      var f = [Float](repeating: 0, count: views * d)
      for v in 0..<views {
        let clear = v >= 1 && v <= 3
        for e in 0..<d {
          let noise = Float(rng.normal())
          f[v * d + e] = clear ? text[c * d + e] + 0.05 * noise
            : 0.5 * text[c * d + e] + 0.5 * text[distractor * d + e] + 0.06 * noise
        }
      }
      f.withUnsafeMutableBufferPointer { normalizeRows($0.baseAddress!, rows: views, dim: d) }
      let outcome = try f.withUnsafeBufferPointer { try adapter.adapt(viewFeatures: $0.baseAddress!, views: views) }
      XCTAssertTrue(Set(outcome.kept).isSuperset(of: [1, 2, 3]), "image \(i): the clear views are the confident ones")
      if outcome.before == c { correctBefore += 1 }
      if outcome.after == c { correctAfter += 1 }
      if outcome.before != outcome.after { changed += 1 }
    }
    print("TTT on the controlled feature setup: zero-shot \(correctBefore)/\(images), after TTT \(correctAfter)/\(images), "
          + "\(changed) changed")
    XCTAssertGreaterThan(changed, 0, "TTT should change some ambiguous predictions")
    XCTAssertGreaterThanOrEqual(correctAfter, correctBefore, "TTT should not lower accuracy here")
  }
  // MARK: The whole pipeline

  /// `rada ttt` on a tiny random CLIP and a 4-class synthetic shifted split, single rank: view 0 before
  /// adaptation must be zero-shot CLIP (computed here independently: center preprocessing, encodeImages, Double
  /// dot products), the files must match the summary, and a second run into the same folder is refused.
  func testSessionBeforeAdaptationIsZeroShotCLIP() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rada-ttt-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var spec = SyntheticSpec()
    spec.colours = ["blue", "red"]; spec.shapes = ["circle", "square"]
    spec.pretrainPerClass = 0; spec.trainPerClass = 1; spec.testPerClass = 1; spec.shiftedPerClass = 4
    _ = try Synthetic.generate(spec, into: dir + "/data")
    let clipConfig = CLIPConfig(embedDim: 32, vision: CLIPVisionConfig(width: 32, layers: 1, heads: 2, patchSize: 8, imageSize: 32),
                                text: CLIPTextConfig(width: 32, layers: 1, heads: 2, contextLength: 16))
    let model = CLIPModel.random(config: clipConfig, seed: 3)
    try model.save(path: dir + "/tiny.safetensors")
    var config = TrainConfig()
    config.model.path = dir + "/tiny.safetensors"
    config.data.eval = "imagefolder:\(dir)/data/shifted"
    config.run.dir = dir + "/run"
    let options = TTTOptions(views: 8, keepFraction: 0.25, steps: 2, lr: 0.05)
    let summary = try TTTSession.run(config: config, options: options, world: LocalCollective(), log: { _ in })

    let dataset = try DatasetSpec.load(config.data.eval!)
    XCTAssertEqual(summary.predictions.count, dataset.count)
    let text = ClassPrompts.features(model: model, tokenizer: try CLIPTokenizer(), classNames: dataset.classNames,
                                     templates: config.rada.templates)
    let size = clipConfig.vision.imageSize, perImage = 3 * size * size, e = clipConfig.embedDim, k = dataset.classNames.count
    var pixels = [Float](repeating: 0, count: dataset.count * perImage)
    try pixels.withUnsafeMutableBufferPointer { out in
      for (i, sample) in dataset.samples.enumerated() {
        CLIPPreprocessor(size: size)(try ImageDecoder.decode(path: sample.path), into: out.baseAddress! + i * perImage)
      }
    }
    let features = model.encodeImages(pixels: pixels, count: dataset.count)
    let s = exp(Double(model.logitScale))
    var correct = 0, compared = 0
    for i in 0..<dataset.count {
      let z = (0..<k).map { j in s * (0..<e).reduce(0.0) { $0 + Double(features[i * e + $1]) * Double(text[j * e + $1]) } }
      let order = z.indices.sorted { z[$0] > z[$1] }
      if dataset.samples[i].label == order[0] { correct += 1 }
      // Float head vs Double dot product: near-ties (margin < 1e-3) may legitimately flip.
      if z[order[0]] - z[order[1]] > 1e-3 {
        compared += 1
        XCTAssertEqual(summary.predictions[i].before, order[0], "image \(i): prediction before adaptation")
      }
      XCTAssertEqual(summary.predictions[i].label, dataset.samples[i].label)
    }
    XCTAssertGreaterThan(compared, dataset.count / 2, "too many near-ties to compare")
    if compared == dataset.count {
      XCTAssertEqual(summary.zeroShotTop1!, Double(correct) / Double(dataset.count), accuracy: 1e-12, "zero-shot top-1")
    }

    let csv = try String(contentsOfFile: dir + "/run/predictions.csv", encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(csv.first, "index,label,before,after")
    XCTAssertEqual(csv.count, dataset.count + 1)
    for (i, p) in summary.predictions.enumerated() { XCTAssertEqual(String(csv[i + 1]), "\(i),\(p.label),\(p.before),\(p.after)") }
    let metrics = MetricsLog.read(path: dir + "/run/metrics.jsonl")
    XCTAssertEqual(metrics.count, 1)
    XCTAssertEqual(metrics.first?["ttt/top1"] as? Double, summary.tttTop1)
    XCTAssertEqual(metrics.first?["zeroshot/top1"] as? Double, summary.zeroShotTop1)
    print("TTT on a tiny random CLIP (synthetic shifted split, \(dataset.count) images): zero-shot "
          + "\(summary.zeroShotTop1!), after TTT \(summary.tttTop1!), \(summary.changed) changed")
    XCTAssertThrowsError(try TTTSession.run(config: config, options: options, world: LocalCollective(), log: { _ in }),
                         "a second run into the same folder must be refused")
  }
}
