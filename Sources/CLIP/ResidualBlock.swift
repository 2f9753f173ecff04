// One pre-LN transformer block of CLIP, open_clip `ResidualAttentionBlock` / OpenAI `ResidualAttentionBlock`:
//   mid = x + out_proj(attention(in_proj(ln_1(x))))      y = mid + c_proj(act(c_fc(ln_2(mid))))
// with act QuickGELU or GELU, attention causal in the text tower. Weights in torch layout, names as
// `<prefix>.resblocks.<layer>.{ln_1, attn.in_proj_weight, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`.
// Shape letters: B batch, T tokens (P in the vision tower), C width, H heads, Dh = C / H, M MLP width, L layers;
// N = B·T rows (`rows`).
import Kernels
import Tensor

/// Offsets of one block's tensors in the flat parameter (and gradient) buffer.
struct BlockOffsets {
  let ln1Weight, ln1Bias, inProjWeight, inProjBias, outProjWeight, outProjBias: Int
  let ln2Weight, ln2Bias, fcWeight, fcBias, projWeight, projBias: Int

  /// prefix: e.g. "visual.transformer.resblocks.3."
  init(table: ParameterTable, prefix: String) {
    func offset(_ name: String) -> Int {
      guard let entry = table[prefix + name] else { preconditionFailure("parameter table lacks \(prefix + name)") }
      return entry.offset
    }
    ln1Weight = offset("ln_1.weight"); ln1Bias = offset("ln_1.bias")
    inProjWeight = offset("attn.in_proj_weight"); inProjBias = offset("attn.in_proj_bias")
    outProjWeight = offset("attn.out_proj.weight"); outProjBias = offset("attn.out_proj.bias")
    ln2Weight = offset("ln_2.weight"); ln2Bias = offset("ln_2.bias")
    fcWeight = offset("mlp.c_fc.weight"); fcBias = offset("mlp.c_fc.bias")
    projWeight = offset("mlp.c_proj.weight"); projBias = offset("mlp.c_proj.bias")
  }
}

/// Sizes shared by every block of a tower.
struct BlockShape {
  let batch, tokens, width, heads, mlpWidth: Int
  let causal: Bool
  let activation: CLIPActivation
  let eps: Float
  var rows: Int { batch * tokens }
  var headDim: Int { width / heads }
}

/// Activations of all blocks of one tower for a batch capacity: one slot per layer when training (saved for
/// backward), a single reused slot when running forward only. Plus backward scratch shared by all layers.
final class BlockActivations {
  let slots: Int
  let isSaving: Bool
  let rows, width, mlpWidth, probsPerSlot: Int
  /// (L+1, rows, C) residual stream when saving; two ping-pong slots otherwise.
  let residual: FloatBuffer
  let ln1, ln1Mean, ln1Rstd, qkv, probs, attention, mid, ln2, ln2Mean, ln2Rstd, fc, act: FloatBuffer
  /// Backward scratch (rows, ·), allocated only when saving.
  let dResidual, dNormed, dQKV, dAttention, dFc, dAct, attentionScratch: FloatBuffer

  init(layers: Int, batch: Int, tokens: Int, width: Int, heads: Int, mlpWidth: Int, saving: Bool) {
    slots = saving ? layers : 1
    isSaving = saving
    rows = batch * tokens
    self.width = width; self.mlpWidth = mlpWidth
    probsPerSlot = batch * heads * tokens * tokens
    residual = FloatBuffer(count: (saving ? layers + 1 : 2) * rows * width)
    ln1 = FloatBuffer(count: slots * rows * width); ln2 = FloatBuffer(count: slots * rows * width)
    ln1Mean = FloatBuffer(count: slots * rows); ln1Rstd = FloatBuffer(count: slots * rows)
    ln2Mean = FloatBuffer(count: slots * rows); ln2Rstd = FloatBuffer(count: slots * rows)
    qkv = FloatBuffer(count: slots * rows * 3 * width)
    probs = FloatBuffer(count: slots * probsPerSlot)
    attention = FloatBuffer(count: slots * rows * width)
    mid = FloatBuffer(count: slots * rows * width)
    fc = FloatBuffer(count: slots * rows * mlpWidth); act = FloatBuffer(count: slots * rows * mlpWidth)
    let scratchRows = saving ? rows : 0
    dResidual = FloatBuffer(count: scratchRows * width); dNormed = FloatBuffer(count: scratchRows * width)
    dQKV = FloatBuffer(count: scratchRows * 3 * width); dAttention = FloatBuffer(count: scratchRows * width)
    dFc = FloatBuffer(count: scratchRows * mlpWidth); dAct = FloatBuffer(count: scratchRows * mlpWidth)
    attentionScratch = FloatBuffer(count: saving ? Attention.scratchCount(tokens: tokens) : 0)
  }

  /// Input of layer l (rows, C); the output of layer l is `residualIn(l + 1)`.
  func residualIn(_ layer: Int) -> MutableFloats {
    residual.pointer + (isSaving ? layer : layer % 2) * rows * width
  }

  /// Pointers of layer l's saved activations (slot 0 when not saving).
  func layer(_ l: Int) -> LayerActivations {
    let s = isSaving ? l : 0
    let rc = rows * width, rm = rows * mlpWidth
    return LayerActivations(
      x: residualIn(l), y: residualIn(l + 1),
      ln1: ln1.pointer + s * rc, ln1Mean: ln1Mean.pointer + s * rows, ln1Rstd: ln1Rstd.pointer + s * rows,
      qkv: qkv.pointer + s * 3 * rc, probs: probs.pointer + s * probsPerSlot, attention: attention.pointer + s * rc,
      mid: mid.pointer + s * rc, ln2: ln2.pointer + s * rc, ln2Mean: ln2Mean.pointer + s * rows,
      ln2Rstd: ln2Rstd.pointer + s * rows, fc: fc.pointer + s * rm, act: act.pointer + s * rm)
  }
}

struct LayerActivations {
  /// x (rows, C) block input, y (rows, C) block output
  let x, y: MutableFloats
  let ln1, ln1Mean, ln1Rstd, qkv, probs, attention, mid, ln2, ln2Mean, ln2Rstd, fc, act: MutableFloats
}

enum ResidualBlock {
  /// y = block(x) for all B·T rows; writes every activation in `a`.
  static func forward(_ a: LayerActivations, parameters p: Floats, offsets o: BlockOffsets, shape s: BlockShape) {
    let rows = s.rows, c = s.width, m = s.mlpWidth
    // ln1 (rows, C) = LayerNorm(x)
    LayerNorm.forward(out: a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, x: a.x, weight: p + o.ln1Weight,
                      bias: p + o.ln1Bias, rows: rows, channels: c, eps: s.eps)
    // qkv (rows, 3C) = ln1 · in_proj_weightᵀ + in_proj_bias
    Linear.forward(out: a.qkv, x: a.ln1, weight: p + o.inProjWeight, bias: p + o.inProjBias,
                   rows: rows, inFeatures: c, outFeatures: 3 * c)
    // attention (rows, C), probs (B, H, T, T)
    Attention.forward(out: a.attention, probs: a.probs, qkv: a.qkv, batch: s.batch, tokens: s.tokens,
                      heads: s.heads, headDim: s.headDim, causal: s.causal)
    // mid (rows, C) = x + attention · out_projᵀ + bias
    Linear.forward(out: a.mid, x: a.attention, weight: p + o.outProjWeight, bias: p + o.outProjBias,
                   residual: a.x, rows: rows, inFeatures: c, outFeatures: c)
    // ln2 (rows, C) = LayerNorm(mid);  fc (rows, M) = ln2 · c_fcᵀ + b;  act = activation(fc)
    LayerNorm.forward(out: a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, x: a.mid, weight: p + o.ln2Weight,
                      bias: p + o.ln2Bias, rows: rows, channels: c, eps: s.eps)
    Linear.forward(out: a.fc, x: a.ln2, weight: p + o.fcWeight, bias: p + o.fcBias,
                   rows: rows, inFeatures: c, outFeatures: m)
    switch s.activation {
    case .quickGELU: QuickGELU.forward(out: a.act, x: a.fc, count: rows * m)
    case .gelu: GELU.forward(out: a.act, x: a.fc, count: rows * m)
    }
    // y (rows, C) = mid + act · c_projᵀ + b
    Linear.forward(out: a.y, x: a.act, weight: p + o.projWeight, bias: p + o.projBias,
                   residual: a.mid, rows: rows, inFeatures: m, outFeatures: c)
  }

  /// Adds into `g` every weight gradient; dResidual (N, C) holds dY on entry and dX on return (the residual adds
  /// make dMid = dY + (MLP branch) and dX = dMid + (attention branch), both added in place). Exact reverse of
  /// `forward`.
  static func backward(dResidual: MutableFloats, _ a: LayerActivations, scratch: BlockActivations,
                       parameters p: Floats, gradients g: MutableFloats, offsets o: BlockOffsets, shape s: BlockShape) {
    let rows = s.rows, c = s.width, m = s.mlpWidth
    let dAct = scratch.dAct.pointer, dFc = scratch.dFc.pointer, dNormed = scratch.dNormed.pointer
    let dAttention = scratch.dAttention.pointer, dQKV = scratch.dQKV.pointer
    // The branch buffers (dAct, dFc, dNormed, dAttention, dQKV) are written, not accumulated: no zeroing passes.
    // y = mid + c_proj(act)
    Linear.backward(dX: dAct, dWeight: g + o.projWeight, dBias: g + o.projBias, dOut: dResidual, x: a.act,
                    weight: p + o.projWeight, rows: rows, inFeatures: m, outFeatures: c, overwrite: true)
    switch s.activation {
    case .quickGELU: QuickGELU.backward(dX: dFc, dOut: dAct, x: a.fc, count: rows * m, overwrite: true)
    case .gelu: GELU.backward(dX: dFc, dOut: dAct, x: a.fc, count: rows * m, overwrite: true)
    }
    Linear.backward(dX: dNormed, dWeight: g + o.fcWeight, dBias: g + o.fcBias, dOut: dFc, x: a.ln2,
                    weight: p + o.fcWeight, rows: rows, inFeatures: c, outFeatures: m, overwrite: true)
    // dResidual becomes dMid = dY + LayerNorm₂ᵀ(dNormed)
    LayerNorm.backward(dX: dResidual, dWeight: g + o.ln2Weight, dBias: g + o.ln2Bias, dOut: dNormed, x: a.mid,
                       weight: p + o.ln2Weight, mean: a.ln2Mean, rstd: a.ln2Rstd, rows: rows, channels: c)
    // mid = x + out_proj(attention(in_proj(ln_1(x))))
    Linear.backward(dX: dAttention, dWeight: g + o.outProjWeight, dBias: g + o.outProjBias, dOut: dResidual,
                    x: a.attention, weight: p + o.outProjWeight, rows: rows, inFeatures: c, outFeatures: c,
                    overwrite: true)
    Attention.backward(dQKV: dQKV, dOut: dAttention, qkv: a.qkv, probs: a.probs, batch: s.batch, tokens: s.tokens,
                       heads: s.heads, headDim: s.headDim, causal: s.causal,
                       scratch: UnsafeMutableBufferPointer(start: scratch.attentionScratch.pointer, count: scratch.attentionScratch.count),
                       overwrite: true)
    Linear.backward(dX: dNormed, dWeight: g + o.inProjWeight, dBias: g + o.inProjBias, dOut: dQKV, x: a.ln1,
                    weight: p + o.inProjWeight, rows: rows, inFeatures: c, outFeatures: 3 * c, overwrite: true)
    // dResidual becomes dX = dMid + LayerNorm₁ᵀ(dNormed)
    LayerNorm.backward(dX: dResidual, dWeight: g + o.ln1Weight, dBias: g + o.ln1Bias, dOut: dNormed, x: a.x,
                       weight: p + o.ln1Weight, mean: a.ln1Mean, rstd: a.ln1Rstd, rows: rows, channels: c)
  }
}

/// y += x over `count` floats.
@inline(__always)
func addInPlace(_ y: MutableFloats, _ x: Floats, _ count: Int) {
  for i in 0..<count { y[i] += x[i] }
}

/// y += x over `count` floats (mutable source).
@inline(__always)
func addInPlace(_ y: MutableFloats, _ x: MutableFloats, _ count: Int) { addInPlace(y, Floats(x), count) }
