// The RAda mask head: forward, loss (CE + α·LInf or α·MSE) and backward, matching eft/trainers/rada.py
// (CustomCLIP.forward, SimpleMultiheadAttention, LInfLoss). Shape letters: B batch, K classes, D joint dim.
// With f (B, D), t (K, D) L2-normalised features and s = exp(logit_scale) a constant:
//   x = s·f⊙t (B·K, D)   q1 = q_proj1(√s·f) (B, D)   q2 = q_proj2(√s·t) (K, D)   q3, k, v = q_proj3/k_proj/v_proj(x)
//   mask = relu(1 + out_proj(attention)) (B·K, D)   logits = s·Σ_d mask·f⊙t (B, K)
// out_proj starts at zero, so before the first step mask ≡ 1 and logits are zero-shot CLIP's s·f·tᵀ.
import Foundation
import Kernels
import Tensor

public struct RAdaLoss: Equatable, Sendable {
  /// ce + α·maskLoss
  public var total: Float
  public var ce: Float
  /// The regulariser before α: LInf (mean_b max |mask - 1|) or MSE (mean (mask - 1)²).
  public var maskLoss: Float
}

public final class RAdaHead {
  public let config: RAdaConfig
  /// mha.{q_proj1, q_proj2, q_proj3, k_proj, v_proj, out_proj}.{weight (D, D), bias (D)}, torch layout and order.
  public let table: ParameterTable
  public let parameters: FloatBuffer
  /// Backward adds here; the caller zeroes once per step.
  public let gradients: FloatBuffer

  public static let projectionNames = ["q_proj1", "q_proj2", "q_proj3", "k_proj", "v_proj", "out_proj"]

  /// torch.nn.Linear's init (weight and bias uniform in ±1/√D) from `seed`; out_proj weight and bias zero.
  public init(config: RAdaConfig, seed: UInt64) throws {
    try config.validate()
    self.config = config
    let d = config.dim
    var table = ParameterTable()
    for name in Self.projectionNames {
      // Dassl's build_optimizer applies weight decay to every parameter of the head, biases included.
      table.add("mha.\(name).weight", [d, d], decays: true)
      table.add("mha.\(name).bias", [d], decays: true)
    }
    self.table = table
    parameters = FloatBuffer(count: table.totalCount)
    gradients = FloatBuffer(count: table.totalCount)
    var rng = SeededRNG(seed: seed)
    let bound = 1 / Float(d).squareRoot()
    for entry in table.entries where !entry.name.hasPrefix("mha.out_proj") {
      for i in 0..<entry.count { parameters[entry.offset + i] = (2 * rng.uniformFloat() - 1) * bound }
    }
  }

  func weight(_ index: Int) -> Floats { parameters.readOnly + table.entries[2 * index].offset }
  func bias(_ index: Int) -> Floats { parameters.readOnly + table.entries[2 * index + 1].offset }
  func dWeight(_ index: Int) -> MutableFloats { gradients.pointer + table.entries[2 * index].offset }
  func dBias(_ index: Int) -> MutableFloats { gradients.pointer + table.entries[2 * index + 1].offset }

  // MARK: Linear layers (torch layout: weight (out, in)), in = out = D here.

  /// out (N, D) = x (N, D) · Wᵀ + b
  static func linearForward(out: MutableFloats, x: Floats, weight: Floats, bias: Floats, rows: Int, dim: Int) {
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 16) / dim)) { start, end in
      for r in start..<end { (out + r * dim).update(from: bias, count: dim) }
    }
    // out (N, D) += x (N, D) · weight (D, D)ᵀ
    gemm(.noTranspose, .transpose, m: rows, n: dim, k: dim, a: x, b: weight, beta: 1, c: out)
  }

  /// Adds into dX (N, D) += dOut·W (writes it with `overwrite`; nil skips it), dWeight (D, D) += dOutᵀ·x and
  /// dBias (D) += Σ_rows dOut.
  static func linearBackward(dX: MutableFloats?, dWeight: MutableFloats, dBias: MutableFloats, dOut: Floats,
                             x: Floats, weight: Floats, rows: Int, dim: Int, overwrite: Bool = false) {
    // dWeight (D, D) += dOut (N, D)ᵀ · x (N, D)
    gemm(.transpose, .noTranspose, m: dim, n: dim, k: rows, a: dOut, b: x, beta: 1, c: dWeight)
    for r in 0..<rows {
      let row = dOut + r * dim
      for e in 0..<dim { dBias[e] += row[e] }
    }
    if let dX {
      // dX (N, D) (+)= dOut (N, D) · weight (D, D)
      gemm(.noTranspose, .noTranspose, m: rows, n: dim, k: dim, a: dOut, b: weight, beta: overwrite ? 0 : 1, c: dX)
    }
  }

  // MARK: Forward

  /// Computes mask and logits for `batch` samples into the workspace and returns the logits (B, K).
  /// imageFeatures f (B, D), textFeatures t (K, D): L2-normalised rows (copied; the caller may reuse them).
  /// logitScale is CLIP's logit_scale before exp (s = exp(logitScale), 100 for CLIP).
  @discardableResult
  public func forward(imageFeatures: Floats, textFeatures: Floats, batch: Int, classes: Int, logitScale: Float,
                      workspace ws: RAdaWorkspace) throws -> Floats {
    guard batch >= 1, batch <= ws.maxBatch else {
      throw RAdaError.workspaceMismatch(what: "batch", asked: batch, planned: ws.maxBatch)
    }
    guard classes == ws.classes else { throw RAdaError.workspaceMismatch(what: "classes", asked: classes, planned: ws.classes) }
    guard ws.config.dim == config.dim, ws.config.heads == config.heads else {
      throw RAdaError.workspaceMismatch(what: "dim", asked: config.dim, planned: ws.config.dim)
    }
    let d = config.dim, k = classes, rows = batch * k
    let s = Float(exp(Double(logitScale))), rootS = s.squareRoot()
    ws.batch = batch
    ws.logitScale = s
    ws.hasMaskLossState = false
    let f = ws.image.pointer, t = ws.text.pointer
    f.update(from: imageFeatures, count: batch * d)
    t.update(from: textFeatures, count: k * d)
    let sf = ws.scaledImage.pointer, st = ws.scaledText.pointer, x = ws.relation.pointer
    for i in 0..<(batch * d) { sf[i] = rootS * f[i] }
    for i in 0..<(k * d) { st[i] = rootS * t[i] }
    // x[b, k, :] = s · f[b, :] ⊙ t[k, :]
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 15) / d)) { start, end in
      for r in start..<end {
        let fb = f + (r / k) * d, tk = t + (r % k) * d, out = x + r * d
        for e in 0..<d { out[e] = s * fb[e] * tk[e] }
      }
    }
    Self.linearForward(out: ws.query1.pointer, x: sf, weight: weight(0), bias: bias(0), rows: batch, dim: d)
    Self.linearForward(out: ws.query2.pointer, x: st, weight: weight(1), bias: bias(1), rows: k, dim: d)
    Self.linearForward(out: ws.query3.pointer, x: x, weight: weight(2), bias: bias(2), rows: rows, dim: d)
    Self.linearForward(out: ws.key.pointer, x: x, weight: weight(3), bias: bias(3), rows: rows, dim: d)
    Self.linearForward(out: ws.value.pointer, x: x, weight: weight(4), bias: bias(4), rows: rows, dim: d)

    let sizes = AttentionSizes(classes: k, dim: d, heads: config.heads,
                               logitScale: 1 / (Float(config.headDim).squareRoot() * config.temperature))
    let attended = ws.attended.pointer, lse2 = ws.logSumExp2.pointer, lse3 = ws.logSumExp3.pointer
    let p1 = ws.rowSoftmax1.pointer, q1 = ws.query1.readOnly, q2 = ws.query2.readOnly
    let q3 = ws.query3.readOnly, key = ws.key.readOnly, value = ws.value.readOnly
    let scratch = ws.scratch.pointer, stride = ws.scratchStride, h = config.heads
    Parallel.forEachItem(batch, workers: ws.workers) { b, worker in
      let o = b * k * d
      RelationAttention.forward(attended: attended + o, logSumExp2: lse2 + b * h, logSumExp3: lse3 + b * h,
                                rowSoftmax1: p1 + b * h * k, query1: q1 + b * d, query2: q2, query3: q3 + o,
                                key: key + o, value: value + o, scratch: scratch + worker * stride, sizes: sizes)
    }

    // mask = relu(1 + out_proj(attended)); logits[b, k] = Σ_d mask · x  (x already carries s)
    let mask = ws.mask.pointer, logits = ws.logits.pointer
    Self.linearForward(out: mask, x: ws.attended.readOnly, weight: weight(5), bias: bias(5), rows: rows, dim: d)
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 15) / d)) { start, end in
      for r in start..<end {
        let m = mask + r * d, xr = x + r * d
        var sum: Float = 0
        for e in 0..<d {
          let value = 1 + m[e]
          let gated: Float = value > 0 ? value : 0
          m[e] = gated
          sum += gated * xr[e]
        }
        logits[r] = sum
      }
    }
    return ws.logits.readOnly
  }

  // MARK: Loss

  /// CE(logits, labels) (mean over B) + α·mask loss. Writes dLogits and sets the regulariser for backward.
  public func loss(labels: [Int], workspace ws: RAdaWorkspace) throws -> RAdaLoss {
    let batch = ws.batch, k = ws.classes, d = config.dim
    guard labels.count == batch else { throw RAdaError.workspaceMismatch(what: "labels", asked: labels.count, planned: batch) }
    for (i, label) in labels.enumerated() where label < 0 || label >= k {
      throw RAdaError.labelOutOfRange(index: i, label: label, classes: k)
    }
    let logits = ws.logits.readOnly, dLogits = ws.dLogits.pointer
    var ce = 0.0
    for b in 0..<batch {
      let row = logits + b * k, dRow = dLogits + b * k
      var best = row[0]
      for j in 1..<max(k, 1) where row[j] > best { best = row[j] }
      var sum = 0.0
      for j in 0..<k { sum += exp(Double(row[j] - best)) }
      let logSum = Double(best) + log(sum)
      ce += logSum - Double(row[labels[b]])
      // d CE / d logits = (softmax - onehot) / B
      for j in 0..<k { dRow[j] = Float(exp(Double(row[j]) - logSum) / Double(batch)) }
      dRow[labels[b]] -= 1 / Float(batch)
    }
    ce /= Double(batch)
    let mask = ws.mask.readOnly
    var maskLoss = 0.0
    switch config.loss {
    case .linf:
      // per sample: the FIRST maximal |mask - 1| (torch.max(dim) returns and backpropagates to it)
      for b in 0..<batch {
        let m = mask + b * k * d
        var best: Float = -1, index = 0
        for i in 0..<(k * d) { let a = abs(m[i] - 1); if a > best { best = a; index = i } }
        ws.maxIndex[b] = index
        maskLoss += Double(best)
      }
      maskLoss /= Double(batch)
    case .mse:
      for i in 0..<(batch * k * d) { let e = Double(mask[i] - 1); maskLoss += e * e }
      maskLoss /= Double(batch * k * d)
    }
    ws.hasMaskLossState = true
    return RAdaLoss(total: Float(ce + Double(config.alpha) * maskLoss), ce: Float(ce), maskLoss: Float(maskLoss))
  }

  // MARK: Backward

  /// Adds d loss / d parameters into `gradients`, reading dLogits (B, K) of the objective and adding the mask
  /// loss's own gradient with weight `maskLossWeight`: `config.alpha` (rada.alpha) after `loss` (CE + α·mask
  /// loss), 0 when the caller wrote dLogits for an objective without the mask loss (test-time entropy).
  /// If given, ADDS d loss / d f into dImageFeatures (B, D) and d loss / d t into dTextFeatures (K, D)
  /// (gradients with respect to the normalised features; needs a workspace planned with inputGradients).
  public func backward(workspace ws: RAdaWorkspace, maskLossWeight alpha: Float, dImageFeatures: MutableFloats? = nil,
                       dTextFeatures: MutableFloats? = nil) throws {
    guard ws.isTraining else {
      throw RAdaError.workspaceMismatch(what: "training buffers (1 = asked; planned with training: false)",
                                        asked: 1, planned: 0)
    }
    let wantsInputs = dImageFeatures != nil || dTextFeatures != nil
    if wantsInputs && !ws.hasInputGradients {
      throw RAdaError.workspaceMismatch(what: "input gradients (1 = asked)", asked: 1, planned: 0)
    }
    let batch = ws.batch, k = ws.classes, d = config.dim, rows = batch * k, s = ws.logitScale
    let mask = ws.mask.readOnly, x = ws.relation.readOnly, dLogits = ws.dLogits.readOnly, dOut = ws.dOut.pointer

    let isMSE = config.loss == .mse
    if alpha != 0 && !isMSE && !ws.hasMaskLossState {
      throw RAdaError.workspaceMismatch(what: "mask loss state (call loss(labels:workspace:) after forward; 1 = asked)",
                                        asked: 1, planned: 0)
    }
    // logits = Σ_d mask·x, so dMask = dLogits·x (+ regulariser); relu: dOut = dMask where mask > 0 (torch: 0 at 0).
    let mseFactor = alpha * 2 / Float(rows * d)
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 15) / d)) { start, end in
      for r in start..<end {
        let m = mask + r * d, xr = x + r * d, g = dOut + r * d, dl = dLogits[r]
        for e in 0..<d {
          var grad = dl * xr[e]
          if isMSE { grad += mseFactor * (m[e] - 1) }
          g[e] = m[e] > 0 ? grad : 0
        }
      }
    }
    if alpha != 0 && !isMSE {
      // LInf: d/dmask of α·mean_b |mask - 1| at the selected index = α/B·sign(mask - 1) (sign(0) = 0)
      for b in 0..<batch {
        let i = b * k * d + ws.maxIndex[b]
        let diff = mask[i] - 1
        let sign: Float = diff > 0 ? 1 : (diff < 0 ? -1 : 0)
        if mask[i] > 0 { dOut[i] += alpha / Float(batch) * sign }
      }
    }
    // out_proj
    Self.linearBackward(dX: ws.dAttended.pointer, dWeight: dWeight(5), dBias: dBias(5), dOut: ws.dOut.readOnly,
                        x: ws.attended.readOnly, weight: weight(5), rows: rows, dim: d, overwrite: true)

    // attention, per sample; dQuery2 is shared by all samples: one accumulator per worker, summed after.
    let sizes = AttentionSizes(classes: k, dim: d, heads: config.heads,
                               logitScale: 1 / (Float(config.headDim).squareRoot() * config.temperature))
    let workers = ws.workers
    ws.dQuery2PerWorker.zero()
    let dq1 = ws.dQuery1.pointer, dq2All = ws.dQuery2PerWorker.pointer, dq3 = ws.dQuery3.pointer
    let dKey = ws.dKey.pointer, dValue = ws.dValue.pointer, dAttended = ws.dAttended.readOnly
    let q1 = ws.query1.readOnly, q2 = ws.query2.readOnly, q3 = ws.query3.readOnly
    let key = ws.key.readOnly, value = ws.value.readOnly
    let lse2 = ws.logSumExp2.readOnly, lse3 = ws.logSumExp3.readOnly, p1 = ws.rowSoftmax1.readOnly
    let scratch = ws.scratch.pointer, stride = ws.scratchStride, h = config.heads
    Parallel.forEachItem(batch, workers: workers) { b, worker in
      let o = b * k * d
      RelationAttention.backward(dQuery1: dq1 + b * d, dQuery2: dq2All + worker * k * d, dQuery3: dq3 + o,
                                 dKey: dKey + o, dValue: dValue + o, dAttended: dAttended + o, query1: q1 + b * d,
                                 query2: q2, query3: q3 + o, key: key + o, value: value + o,
                                 logSumExp2: lse2 + b * h, logSumExp3: lse3 + b * h, rowSoftmax1: p1 + b * h * k,
                                 scratch: scratch + worker * stride, sizes: sizes, overwrite: true)
    }
    let dq2 = ws.dQuery2.pointer
    dq2.update(from: dq2All, count: k * d)
    for w in 1..<max(workers, 1) {
      let part = dq2All + w * k * d
      for i in 0..<(k * d) { dq2[i] += part[i] }
    }

    // projections, reverse order of forward
    // dRelation (B·K, D) is written by v_proj's backward, then k_proj's and q_proj3's add into it.
    let dx: MutableFloats? = wantsInputs ? ws.dRelation.pointer : nil
    Self.linearBackward(dX: dx, dWeight: dWeight(4), dBias: dBias(4), dOut: ws.dValue.readOnly, x: x,
                        weight: weight(4), rows: rows, dim: d, overwrite: true)
    Self.linearBackward(dX: dx, dWeight: dWeight(3), dBias: dBias(3), dOut: ws.dKey.readOnly, x: x,
                        weight: weight(3), rows: rows, dim: d)
    Self.linearBackward(dX: dx, dWeight: dWeight(2), dBias: dBias(2), dOut: ws.dQuery3.readOnly, x: x,
                        weight: weight(2), rows: rows, dim: d)
    Self.linearBackward(dX: wantsInputs ? ws.dScaledText.pointer : nil, dWeight: dWeight(1), dBias: dBias(1),
                        dOut: ws.dQuery2.readOnly, x: ws.scaledText.readOnly, weight: weight(1), rows: k, dim: d,
                        overwrite: true)
    Self.linearBackward(dX: wantsInputs ? ws.dScaledImage.pointer : nil, dWeight: dWeight(0), dBias: dBias(0),
                        dOut: ws.dQuery1.readOnly, x: ws.scaledImage.readOnly, weight: weight(0), rows: batch, dim: d,
                        overwrite: true)
    guard wantsInputs else { return }

    // x = s·f⊙t and logits = Σ mask·x: dX_total = dX + dLogits·mask, then
    // dF[b] = s·Σ_k dX_total[b, k]⊙t[k] + √s·dScaledImage[b];  dT[k] = s·Σ_b dX_total[b, k]⊙f[b] + √s·dScaledText[k]
    let f = ws.image.readOnly, t = ws.text.readOnly, dRel = ws.dRelation.pointer, rootS = s.squareRoot()
    for r in 0..<rows {
      let g = dRel + r * d, m = mask + r * d, dl = dLogits[r]
      for e in 0..<d { g[e] += dl * m[e] }
    }
    if let dF = dImageFeatures {
      let dsf = ws.dScaledImage.readOnly
      for b in 0..<batch {
        let out = dF + b * d
        for e in 0..<d { out[e] += rootS * dsf[b * d + e] }
        for j in 0..<k {
          let g = dRel + (b * k + j) * d, tj = t + j * d
          for e in 0..<d { out[e] += s * g[e] * tj[e] }
        }
      }
    }
    if let dT = dTextFeatures {
      let dst = ws.dScaledText.readOnly
      for j in 0..<k {
        let out = dT + j * d
        for e in 0..<d { out[e] += rootS * dst[j * d + e] }
      }
      for b in 0..<batch {
        let fb = f + b * d
        for j in 0..<k {
          let g = dRel + (b * k + j) * d, out = dT + j * d
          for e in 0..<d { out[e] += s * g[e] * fb[e] }
        }
      }
    }
  }
}
