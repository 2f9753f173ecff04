// Two referees that do not involve PyTorch: a naive Double implementation of the reference forward (full
// K·K map 1 built from the repeated query, flattened softmax, · K, mean of three maps) checks our logits, and
// central finite differences of it (h = 1e-6 in Double, truncation error ~1e-12) check every parameter
// gradient and dF/dT of our Float backward. out_proj is small (no relu clipping, so no kinks within h).
// And 20 plain-SGD training steps against torch's loss sequence.
// Shape letters: B batch, K classes, D joint embedding dim, H heads.
import Foundation
import Kernels
import RAda
import Tensor
import XCTest

/// The reference head in Double, written from the formulas; returns (total loss, logits (B, K)).
func naiveRAda(params p: [Double], f: [Double], t: [Double], labels: [Int], batch: Int, classes: Int, dim: Int,
               heads: Int, s: Double, temperature: Double, alpha: Double, kind: MaskLossKind) -> (Double, [Double]) {
  let d = dim, k = classes, dh = dim / heads, stride = d * d + d
  func linear(_ layer: Int, _ x: [Double], rows: Int) -> [Double] {
    var out = [Double](repeating: 0, count: rows * d)
    for r in 0..<rows {
      for o in 0..<d {
        var sum = p[layer * stride + d * d + o]
        for i in 0..<d { sum += p[layer * stride + o * d + i] * x[r * d + i] }
        out[r * d + o] = sum
      }
    }
    return out
  }
  var x = [Double](repeating: 0, count: batch * k * d)
  for b in 0..<batch { for j in 0..<k { for e in 0..<d { x[(b * k + j) * d + e] = s * f[b * d + e] * t[j * d + e] } } }
  let q1 = linear(0, f.map { $0 * s.squareRoot() }, rows: batch), q2 = linear(1, t.map { $0 * s.squareRoot() }, rows: k)
  let q3 = linear(2, x, rows: batch * k), key = linear(3, x, rows: batch * k), value = linear(4, x, rows: batch * k)
  var attended = [Double](repeating: 0, count: batch * k * d)
  for b in 0..<batch {
    for h in 0..<heads {
      var mixed = [Double](repeating: 0, count: k * k)
      for m in 0..<3 {
        var logits = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
          for j in 0..<k {
            var dot = 0.0
            for e in 0..<dh {
              let c = h * dh + e
              let q = m == 0 ? q1[b * d + c] : (m == 1 ? q2[i * d + c] : q3[(b * k + i) * d + c])
              dot += q * key[(b * k + j) * d + c]
            }
            logits[i * k + j] = dot / Double(dh).squareRoot() / temperature
          }
        }
        let top = logits.max()!
        let total = logits.reduce(0) { $0 + exp($1 - top) }
        for i in 0..<(k * k) { mixed[i] += Double(k) * exp(logits[i] - top) / total / 3 }
      }
      for i in 0..<k {
        for e in 0..<dh {
          var sum = 0.0
          for j in 0..<k { sum += mixed[i * k + j] * value[(b * k + j) * d + h * dh + e] }
          attended[(b * k + i) * d + h * dh + e] = sum
        }
      }
    }
  }
  let mask = linear(5, attended, rows: batch * k).map { max(0, 1 + $0) }
  var logits = [Double](repeating: 0, count: batch * k), ce = 0.0
  for b in 0..<batch {
    for j in 0..<k {
      var sum = 0.0
      for e in 0..<d { sum += mask[(b * k + j) * d + e] * x[(b * k + j) * d + e] }
      logits[b * k + j] = sum
    }
    let row = Array(logits[(b * k)..<(b * k + k)]), top = row.max()!
    ce += top + log(row.reduce(0) { $0 + exp($1 - top) }) - row[labels[b]]
  }
  ce /= Double(batch)
  var aux = 0.0
  switch kind {
  case .linf:
    for b in 0..<batch { aux += mask[(b * k * d)..<((b + 1) * k * d)].map { abs($0 - 1) }.max()! }
    aux /= Double(batch)
  case .mse:
    aux = mask.reduce(0) { $0 + ($1 - 1) * ($1 - 1) } / Double(mask.count)
  }
  return (ce + alpha * aux, logits)
}

final class RAdaGradientCheckTests: XCTestCase {
  func checkFiniteDifferences(kind: MaskLossKind) throws {
    let batch = 2, k = 3, d = 16
    let config = RAdaConfig(dim: d, heads: 8, temperature: 0.7, alpha: 0.8, loss: kind)
    let head = try RAdaHead(config: config, seed: 11)
    var rng = SeededRNG(seed: 12)
    let outWeight = head.table["mha.out_proj.weight"]!
    for i in 0..<(outWeight.count + d) { head.parameters[outWeight.offset + i] = 0.1 * (2 * rng.uniformFloat() - 1) }
    func unitRows(_ rows: Int) -> [Float] {
      var v = (0..<(rows * d)).map { _ in Float(rng.normal()) }
      for r in 0..<rows {
        let norm = (0..<d).reduce(Float(0)) { $0 + v[r * d + $1] * v[r * d + $1] }.squareRoot()
        for e in 0..<d { v[r * d + e] /= norm }
      }
      return v
    }
    let f = unitRows(batch), t = unitRows(k), labels = [2, 0], logitScale: Float = log(30)
    let ws = try RAdaWorkspace(config: config, maxBatch: batch, classes: k, inputGradients: true)
    try head.forward(imageFeatures: f, textFeatures: t, batch: batch, classes: k, logitScale: logitScale, workspace: ws)
    let loss = try head.loss(labels: labels, workspace: ws)
    let dF = FloatBuffer(count: batch * d), dT = FloatBuffer(count: k * d)
    head.gradients.zero()
    try head.backward(workspace: ws, maskLossWeight: head.config.alpha, dImageFeatures: dF.pointer, dTextFeatures: dT.pointer)

    let s = Double(exp(Double(logitScale)).magnitude)
    let params = head.parameters.array.map(Double.init), fd = f.map(Double.init), td = t.map(Double.init)
    func total(_ p: [Double], _ f: [Double], _ t: [Double]) -> Double {
      naiveRAda(params: p, f: f, t: t, labels: labels, batch: batch, classes: k, dim: d, heads: 8, s: s,
                temperature: 0.7, alpha: 0.8, kind: kind).0
    }
    let (reference, logits) = naiveRAda(params: params, f: fd, t: td, labels: labels, batch: batch, classes: k, dim: d,
                                        heads: 8, s: s, temperature: 0.7, alpha: 0.8, kind: kind)
    XCTAssertEqual(Double(loss.total), reference, accuracy: 1e-4 * max(1, abs(reference)), "\(kind) loss vs naive")
    assertClose(Array(ws.logits.array.prefix(batch * k)), logits.map(Float.init), "\(kind) logits vs naive") {
      1e-4 * max(1, abs($0))
    }
    let h = 1e-6
    func numeric(_ values: [Double], _ evaluate: ([Double]) -> Double) -> [Float] {
      (0..<values.count).map { i in
        var plus = values, minus = values
        plus[i] += h; minus[i] -= h
        return Float((evaluate(plus) - evaluate(minus)) / (2 * h))
      }
    }
    let numericParams = numeric(params) { total($0, fd, td) }
    for entry in head.table.entries {
      let expected = Array(numericParams[entry.offset..<(entry.offset + entry.count)])
      let actual = Array(head.gradients.array[entry.offset..<(entry.offset + entry.count)])
      let scale = max(maxAbs(expected), 1e-6)
      assertClose(actual, expected, "\(kind) finite-difference \(entry.name)") { _ in 1e-3 * scale }
    }
    let numericImage = numeric(fd) { total(params, $0, td) }, numericText = numeric(td) { total(params, fd, $0) }
    let imageScale = maxAbs(numericImage), textScale = maxAbs(numericText)
    assertClose(dF.array, numericImage, "\(kind) finite-difference dImage") { _ in 1e-3 * imageScale }
    assertClose(dT.array, numericText, "\(kind) finite-difference dText") { _ in 1e-3 * textScale }
  }

  func testFiniteDifferencesLInf() throws { try checkFiniteDifferences(kind: .linf) }
  func testFiniteDifferencesMSE() throws { try checkFiniteDifferences(kind: .mse) }

  /// 20 steps of plain SGD (p -= lr·g, torch.optim.SGD without momentum) from the reference init (out_proj zero):
  /// the loss sequence within 1e-4 relative of torch's float64 run (float32 drift over 20 small steps is ~1e-6).
  func testTwentySGDStepsMatchTorchLosses() throws {
    let meta = try Fixture.json("train")
    let n = meta["samples"] as! Int, batch = meta["batch"] as! Int, k = meta["classes"] as! Int, d = meta["dim"] as! Int
    let lr = Float(meta["lr"] as! Double), expected = meta["losses"] as! [Double]
    let config = RAdaConfig(dim: d, heads: 8, temperature: Float(meta["temperature"] as! Double),
                            alpha: Float(meta["alpha"] as! Double), loss: .linf)
    let head = try RAdaHead(config: config, seed: 0)
    let initial = try Fixture.array("train_params").floats()
    head.parameters.pointer.update(from: initial, count: initial.count)
    let images = try Fixture.array("train_image").floats(), text = try Fixture.array("train_text").floats()
    let labels = try Fixture.array("train_labels").ints()
    let ws = try RAdaWorkspace(config: config, maxBatch: batch, classes: k)
    var batchImages = [Float](repeating: 0, count: batch * d)
    for step in 0..<(meta["steps"] as! Int) {
      let indices = (0..<batch).map { (batch * step + $0) % n }
      for (j, i) in indices.enumerated() { for e in 0..<d { batchImages[j * d + e] = images[i * d + e] } }
      try head.forward(imageFeatures: batchImages, textFeatures: text, batch: batch, classes: k,
                       logitScale: Float(meta["logit_scale"] as! Double), workspace: ws)
      let loss = try head.loss(labels: indices.map { labels[$0] }, workspace: ws)
      XCTAssertEqual(Double(loss.total), expected[step], accuracy: 1e-4 * abs(expected[step]), "training loss at step \(step)")
      head.gradients.zero()
      try head.backward(workspace: ws, maskLossWeight: head.config.alpha)
      for i in 0..<head.parameters.count { head.parameters[i] -= lr * head.gradients[i] }
    }
  }
}
