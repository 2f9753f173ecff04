// The RAda head against the authors' PyTorch formulation (float64 fixtures from float32 inputs): mask, logits,
// loss parts, every parameter gradient and the feature gradients, for the LInf loss with a random non-zero
// out_proj, the zero-init out_proj (zero-shot CLIP), and the MSE variant.
// Shape letters: B batch, K classes, D joint embedding dim, H heads.
import Foundation
import Kernels
import RAda
import Tensor
import XCTest

// Tolerances: float32 accumulation over D = 32 with s = 100 scaled relations gives ~1e-5 relative error; 1e-4
// (mask), 1e-3 (logits, relative to max(1, |ref|)) and 1e-3 of each tensor's largest |gradient| leave room and
// still catch any wrong term (a missing map, scale or transpose moves values by O(1) of that scale).

final class RAdaHeadTests: XCTestCase {
  struct Case {
    var config: RAdaConfig
    var batch: Int, classes: Int, logitScale: Float
    var image: [Float], text: [Float], labels: [Int], params: [Float]
    var meta: [String: Any]
  }

  func loadCase(_ name: String) throws -> Case {
    let meta = try Fixture.json(name)
    let config = RAdaConfig(dim: meta["dim"] as! Int, heads: meta["heads"] as! Int,
                            temperature: Float(meta["temperature"] as! Double), alpha: Float(meta["alpha"] as! Double),
                            loss: MaskLossKind(rawValue: meta["loss"] as! String)!)
    return Case(config: config, batch: meta["batch"] as! Int, classes: meta["classes"] as! Int,
                logitScale: Float(meta["logit_scale"] as! Double),
                image: try Fixture.array("\(name)_image").floats(), text: try Fixture.array("\(name)_text").floats(),
                labels: try Fixture.array("\(name)_labels").ints(), params: try Fixture.array("\(name)_params").floats(),
                meta: meta)
  }

  /// Runs forward, loss and backward (with feature gradients) on a fixture case.
  func run(_ c: Case, workers: Int? = nil) throws -> (RAdaHead, RAdaWorkspace, RAdaLoss, [Float], [Float]) {
    let head = try RAdaHead(config: c.config, seed: 0)
    XCTAssertEqual(head.table.totalCount, c.params.count, "parameter count vs torch named_parameters")
    head.parameters.pointer.update(from: c.params, count: c.params.count)
    let ws = try RAdaWorkspace(config: c.config, maxBatch: c.batch, classes: c.classes, inputGradients: true,
                               workers: workers)
    try head.forward(imageFeatures: c.image, textFeatures: c.text, batch: c.batch, classes: c.classes,
                     logitScale: c.logitScale, workspace: ws)
    let loss = try head.loss(labels: c.labels, workspace: ws)
    let dImage = FloatBuffer(count: c.batch * c.config.dim), dText = FloatBuffer(count: c.classes * c.config.dim)
    head.gradients.zero()
    try head.backward(workspace: ws, maskLossWeight: head.config.alpha, dImageFeatures: dImage.pointer, dTextFeatures: dText.pointer)
    return (head, ws, loss, dImage.array, dText.array)
  }

  func checkAgainstTorch(_ name: String) throws {
    let c = try loadCase(name)
    let (head, ws, loss, dImage, dText) = try run(c)
    let rows = c.batch * c.classes
    assertClose(Array(ws.mask.array.prefix(rows * c.config.dim)), try Fixture.array("\(name)_mask").floats(),
                "\(name) mask") { 1e-4 * max(1, abs($0)) }
    assertClose(Array(ws.logits.array.prefix(rows)), try Fixture.array("\(name)_logits").floats(),
                "\(name) logits") { 1e-3 * max(1, abs($0)) }
    for (key, value) in [("total", loss.total), ("ce", loss.ce), ("mask_loss", loss.maskLoss)] {
      let expected = Float(c.meta[key] as! Double)
      XCTAssertEqual(value, expected, accuracy: 1e-4 * max(1, abs(expected)), "\(name) loss \(key)")
    }
    let grads = try Fixture.array("\(name)_grads").floats(), ours = head.gradients.array
    for entry in head.table.entries {
      let expected = Array(grads[entry.offset..<(entry.offset + entry.count)])
      let actual = Array(ours[entry.offset..<(entry.offset + entry.count)])
      let scale = max(maxAbs(expected), 1e-6)
      assertClose(actual, expected, "\(name) gradient \(entry.name)") { _ in 1e-3 * scale }
    }
    let expectedImage = try Fixture.array("\(name)_dimage").floats()
    let expectedText = try Fixture.array("\(name)_dtext").floats()
    let imageScale = maxAbs(expectedImage), textScale = maxAbs(expectedText)
    assertClose(dImage, expectedImage, "\(name) dImage") { _ in 1e-3 * imageScale }
    assertClose(dText, expectedText, "\(name) dText") { _ in 1e-3 * textScale }
  }

  func testLInfCaseMatchesTorch() throws { try checkAgainstTorch("linf") }
  func testMSECaseMatchesTorch() throws { try checkAgainstTorch("mse") }
  /// K = 21: the SIMD paths of the attention kernels (rows of 16 plus a tail of 5).
  func testWideCaseMatchesTorch() throws { try checkAgainstTorch("wide") }
  func testZeroInitOutProjIsZeroShotCLIP() throws {
    try checkAgainstTorch("zeroshot")
    // Independent referee: logits = s·f·tᵀ in Double, mask ≡ 1.
    let c = try loadCase("zeroshot")
    let (_, ws, loss, _, _) = try run(c)
    let s = exp(Double(c.logitScale)), d = c.config.dim
    for b in 0..<c.batch {
      for k in 0..<c.classes {
        var dot = 0.0
        for e in 0..<d { dot += Double(c.image[b * d + e]) * Double(c.text[k * d + e]) }
        XCTAssertEqual(Double(ws.logits[b * c.classes + k]), s * dot, accuracy: 1e-4 * max(1, abs(s * dot)),
                       "zero-shot logit (\(b), \(k))")
      }
    }
    XCTAssertTrue(ws.mask.array.prefix(c.batch * c.classes * d).allSatisfy { $0 == 1 }, "mask must be exactly 1")
    XCTAssertEqual(loss.maskLoss, 0)
  }

  func testFreshHeadIsZeroShotAndInitIsTorchLike() throws {
    let head = try RAdaHead(config: RAdaConfig(dim: 64), seed: 3)
    let bound = 1 / Float(64).squareRoot()
    for entry in head.table.entries {
      let values = Array(head.parameters.array[entry.offset..<(entry.offset + entry.count)])
      if entry.name.hasPrefix("mha.out_proj") {
        XCTAssertTrue(values.allSatisfy { $0 == 0 }, "\(entry.name) must start at zero")
      } else {
        XCTAssertLessThanOrEqual(maxAbs(values), bound, "\(entry.name) outside ±1/sqrt(D)")
        XCTAssertGreaterThan(maxAbs(values), 0.9 * bound, "\(entry.name) does not span the uniform range")
      }
    }
    XCTAssertEqual(head.table.entries.map(\.name).prefix(3), ["mha.q_proj1.weight", "mha.q_proj1.bias", "mha.q_proj2.weight"])
  }

  /// Evaluating a batch in two chunks (and with 1 or 2 worker threads) gives the same logits, and the
  /// gradients of the whole batch equal the batch-size-weighted mean of the chunks' gradients.
  func testChunkedEvaluationEqualsWhole() throws {
    var c = try loadCase("linf")
    // LInf and CE are means over samples, so per-chunk gradients combine as (B1·g1 + B2·g2) / B.
    let savedThreads = Parallel.threads
    defer { Parallel.threads = savedThreads }
    Parallel.threads = 2
    let (wholeHead, wholeWS, _, wholeImage, _) = try run(c, workers: 2)
    Parallel.threads = 1
    let (serialHead, serialWS, _, _, _) = try run(c, workers: 1)
    let rows = c.batch * c.classes, d = c.config.dim
    assertClose(Array(serialWS.logits.array.prefix(rows)), Array(wholeWS.logits.array.prefix(rows)),
                "logits 1 vs 2 workers") { 1e-5 * max(1, abs($0)) }
    let gradientScale = maxAbs(wholeHead.gradients.array), imageScale = maxAbs(wholeImage)
    assertClose(serialHead.gradients.array, wholeHead.gradients.array, "gradients 1 vs 2 workers") { _ in
      1e-5 * gradientScale
    }
    let full = c
    var combined = [Float](repeating: 0, count: wholeHead.table.totalCount)
    var logits: [Float] = [], dImage: [Float] = []
    for (start, end) in [(0, 1), (1, full.batch)] {
      c.batch = end - start
      c.image = Array(full.image[(start * d)..<(end * d)])
      c.labels = Array(full.labels[start..<end])
      let (head, ws, _, dI, _) = try run(c)
      logits += Array(ws.logits.array.prefix(c.batch * c.classes))
      let weight = Float(c.batch) / Float(full.batch)
      for i in 0..<combined.count { combined[i] += weight * head.gradients[i] }
      dImage += dI.map { $0 * weight }
    }
    assertClose(logits, Array(wholeWS.logits.array.prefix(rows)), "chunked logits") { 1e-5 * max(1, abs($0)) }
    assertClose(combined, wholeHead.gradients.array, "chunked gradients") { _ in 1e-5 * gradientScale }
    assertClose(dImage, wholeImage, "chunked dImage") { _ in 1e-5 * imageScale }
  }

  /// LInf backward routes α/B to the FIRST maximal |mask - 1| of each sample (torch.max(dim) semantics;
  /// the generator asserts torch does this) and nothing through relu-clipped entries.
  func testLInfTieGoesToFirstMaximum() throws {
    let d = 16, k = 3, batch = 2
    func outBiasGradient(alpha: Float) throws -> [Float] {
      let config = RAdaConfig(dim: d, heads: 8, temperature: 1, alpha: alpha)
      let head = try RAdaHead(config: config, seed: 5)
      // out_proj.weight = 0 and bias b: mask[b, k, e] = relu(1 + b[e]) for every sample and class.
      let bias = head.table["mha.out_proj.bias"]!
      let values: [Float] = [0.3, 1, -2, 1, -1] + [Float](repeating: 0.1, count: d - 5)
      for e in 0..<d { head.parameters[bias.offset + e] = values[e] }
      var rng = SeededRNG(seed: 9)
      let f = (0..<(batch * d)).map { _ in Float(rng.normal()) }, t = (0..<(k * d)).map { _ in Float(rng.normal()) }
      let ws = try RAdaWorkspace(config: config, maxBatch: batch, classes: k)
      try head.forward(imageFeatures: f, textFeatures: t, batch: batch, classes: k, logitScale: 0, workspace: ws)
      let loss = try head.loss(labels: [0, 2], workspace: ws)
      XCTAssertEqual(loss.maskLoss, 1, accuracy: 1e-6, "max |mask - 1| is 1 (ties at e = 1, 2, 3, 4)")
      head.gradients.zero()
      try head.backward(workspace: ws, maskLossWeight: head.config.alpha)
      return Array(head.gradients.array[bias.offset..<(bias.offset + d)])
    }
    let with = try outBiasGradient(alpha: 0.7), without = try outBiasGradient(alpha: 0)
    for e in 0..<d {
      // e = 1 (mask 2, sign +) is the first maximum in flat order (k = 0), chosen by both samples:
      // 2 · (α / B) = α. The tie at e = 3 (mask 2) gets nothing; e = 2, 4 are relu-clipped (mask 0).
      XCTAssertEqual(with[e] - without[e], e == 1 ? 0.7 : 0, accuracy: 1e-6, "LInf share of dBias[\(e)]")
    }
    XCTAssertEqual(with[2], 0, "relu-clipped entry must get no gradient")
  }

  func testLabelOutOfRangeIsAnError() throws {
    let config = RAdaConfig(dim: 16)
    let head = try RAdaHead(config: config, seed: 1)
    let ws = try RAdaWorkspace(config: config, maxBatch: 1, classes: 2)
    try head.forward(imageFeatures: [Float](repeating: 0.25, count: 16), textFeatures: [Float](repeating: 0.25, count: 32),
                     batch: 1, classes: 2, logitScale: 0, workspace: ws)
    XCTAssertThrowsError(try head.loss(labels: [2], workspace: ws)) { error in
      XCTAssertTrue("\(error)".contains("label 2"), "\(error)")
    }
    XCTAssertThrowsError(try RAdaConfig(dim: 20, heads: 8).validate())
    // An evaluation-only workspace gives the same logits and refuses backward.
    let eval = try RAdaWorkspace(config: config, maxBatch: 1, classes: 2, training: false)
    try head.forward(imageFeatures: [Float](repeating: 0.25, count: 16), textFeatures: [Float](repeating: 0.25, count: 32),
                     batch: 1, classes: 2, logitScale: 0, workspace: eval)
    XCTAssertEqual(Array(eval.logits.array.prefix(2)), Array(ws.logits.array.prefix(2)))
    XCTAssertLessThan(eval.byteCount, ws.byteCount)
    XCTAssertThrowsError(try head.backward(workspace: eval, maskLossWeight: 0))
    // The L∞ mask loss's gradient needs the indices `loss` found for this forward: without it, only a weight of
    // 0 (a caller-written objective, e.g. test-time entropy) may backpropagate.
    try head.forward(imageFeatures: [Float](repeating: 0.25, count: 16), textFeatures: [Float](repeating: 0.25, count: 32),
                     batch: 1, classes: 2, logitScale: 0, workspace: ws)
    XCTAssertThrowsError(try head.backward(workspace: ws, maskLossWeight: 0.5)) { error in
      XCTAssertTrue("\(error)".contains("mask loss state"), "\(error)")
    }
    XCTAssertNoThrow(try head.backward(workspace: ws, maskLossWeight: 0))
  }
}
