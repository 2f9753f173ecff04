// Attention, LayerNorm and GELU against PyTorch (TorchReferenceData.swift, made by make_torch_reference.py).
// The attention reference runs torch's own F.multi_head_attention_forward with identity projections, so it
// pins our packed [q | k | v] order, head split and −inf causal mask to torch's. References are computed in
// float64 from the same (fp32-representable) inputs; tolerances 1e-5 + 1e-5·|ref| cover fp32 arithmetic on
// these O(1) values and reject any convention mismatch (O(0.1) errors).
// Shape letters: B batch, T tokens, C width, H heads, Dh head dim, N rows.
import Kernels
import Tensor
import XCTest

final class TorchReferenceTests: XCTestCase {
  typealias R = TorchReference

  func testAttentionMatchesTorchMultiheadAttention() {
    let qkv = FloatBuffer(R.qkv), dOut = FloatBuffer(R.attentionDOut)
    let width = R.heads * R.headDim
    for causal in [false, true] {
      let out = FloatBuffer(count: R.batch * R.tokens * width)
      let probs = FloatBuffer(count: R.batch * R.heads * R.tokens * R.tokens), dQKV = FloatBuffer(count: qkv.count)
      Attention.forward(out: out.pointer, probs: probs.pointer, qkv: qkv.readOnly, batch: R.batch, tokens: R.tokens,
                        heads: R.heads, headDim: R.headDim, causal: causal)
      Attention.backward(dQKV: dQKV.pointer, dOut: dOut.readOnly, qkv: qkv.readOnly, probs: probs.readOnly,
                         batch: R.batch, tokens: R.tokens, heads: R.heads, headDim: R.headDim, causal: causal)
      let tag = causal ? " (causal)" : ""
      assertClose(out, (causal ? R.attentionOutCausal : R.attentionOut).map(Double.init), atol: 1e-5, rtol: 1e-5,
                  "Attention out vs torch\(tag)")
      assertClose(probs, (causal ? R.attentionProbsCausal : R.attentionProbs).map(Double.init), atol: 1e-6,
                  rtol: 1e-5, "Attention probs vs torch\(tag)")
      assertClose(dQKV, (causal ? R.attentionDQKVCausal : R.attentionDQKV).map(Double.init), atol: 1e-5,
                  rtol: 1e-5, "Attention dQKV vs torch\(tag)")
    }
  }

  func testLayerNormMatchesTorch() {
    let rows = R.layerNormRows, channels = R.layerNormChannels
    let x = FloatBuffer(R.layerNormX), weight = FloatBuffer(R.layerNormWeight), bias = FloatBuffer(R.layerNormBias)
    let dOut = FloatBuffer(R.layerNormDOut)
    let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
    let dX = FloatBuffer(count: x.count), dWeight = FloatBuffer(count: channels), dBias = FloatBuffer(count: channels)
    LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly,
                      weight: weight.readOnly, bias: bias.readOnly, rows: rows, channels: channels)
    LayerNorm.backward(dX: dX.pointer, dWeight: dWeight.pointer, dBias: dBias.pointer, dOut: dOut.readOnly,
                       x: x.readOnly, weight: weight.readOnly, mean: mean.readOnly, rstd: rstd.readOnly,
                       rows: rows, channels: channels)
    assertClose(out, R.layerNormOut.map(Double.init), atol: 1e-5, rtol: 1e-5, "LayerNorm out vs torch")
    assertClose(dX, R.layerNormDX.map(Double.init), atol: 1e-5, rtol: 1e-5, "LayerNorm dX vs torch")
    assertClose(dWeight, R.layerNormDWeight.map(Double.init), atol: 1e-5, rtol: 1e-5, "LayerNorm dWeight vs torch")
    assertClose(dBias, R.layerNormDBias.map(Double.init), atol: 1e-5, rtol: 1e-5, "LayerNorm dBias vs torch")
  }

  func testGELUMatchesTorch() {
    let x = FloatBuffer(R.geluX), out = FloatBuffer(count: x.count), dX = FloatBuffer(count: x.count)
    let ones = FloatBuffer([Float](repeating: 1, count: x.count))
    GELU.forward(out: out.pointer, x: x.readOnly, count: x.count)
    GELU.backward(dX: dX.pointer, dOut: ones.readOnly, x: x.readOnly, count: x.count)
    assertClose(out, R.geluOut.map(Double.init), atol: 1e-6, rtol: 2e-6, "GELU out vs torch")
    assertClose(dX, R.geluDX.map(Double.init), atol: 1e-6, rtol: 2e-6, "GELU dX vs torch")
  }
}
