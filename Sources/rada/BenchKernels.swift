// `rada bench kernels`: the hand-written (non-BLAS) kernels alone, at ViT-B/16 shapes (B 32, P 197, C 768,
// M 3072, H 12), to compare build flags (default x86-64 vs -target-cpu haswell vs native). Items are elements;
// ns per element = 1e9 / items_per_s. rada only (PyTorch runs these inside its own ops).
import ArgumentParser
import Foundation
import Kernels
import Tensor
import Training

struct BenchKernels: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kernels", abstract: "LayerNorm, (Quick)GELU, softmax, attention and AdamW at ViT-B/16 shapes.")

  @OptionGroup var options: BenchOptions

  func run() throws {
    let runner = try BenchRunner(options: options)
    let rows = 32 * 197, c = 768, m = 3072, heads = 12, tokens = 197
    func random(_ n: Int, seed: UInt64) -> FloatBuffer {
      var rng = SeededRNG(seed: seed)
      let x = FloatBuffer(count: n)
      for i in 0..<n { x[i] = Float(rng.normal()) }
      return x
    }
    // LayerNorm (rows, C) forward and backward
    try runner.measure("kernels/layernorm_fwd", "6304x768", items: Double(rows * c), flops: nil, setup: {
      (random(rows * c, seed: 1), FloatBuffer(count: rows * c), FloatBuffer(count: rows), FloatBuffer(count: rows),
       random(c, seed: 2), random(c, seed: 3))
    }, step: { x, out, mean, rstd, w, b in
      LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly, weight: w.readOnly,
                        bias: b.readOnly, rows: rows, channels: c)
    })
    try runner.measure("kernels/layernorm_bwd", "6304x768", items: Double(rows * c), flops: nil, setup: { () -> [FloatBuffer] in
      let x = random(rows * c, seed: 1), w = random(c, seed: 2), b = random(c, seed: 3)
      let out = FloatBuffer(count: rows * c), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
      LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly, weight: w.readOnly,
                        bias: b.readOnly, rows: rows, channels: c)
      return [x, w, mean, rstd, random(rows * c, seed: 4), FloatBuffer(count: rows * c), FloatBuffer(count: c),
              FloatBuffer(count: c)]
    }, step: { s in
      LayerNorm.backward(dX: s[5].pointer, dWeight: s[6].pointer, dBias: s[7].pointer, dOut: s[4].readOnly,
                         x: s[0].readOnly, weight: s[1].readOnly, mean: s[2].readOnly, rstd: s[3].readOnly,
                         rows: rows, channels: c)
    })
    // Activations on the MLP hidden (rows, M)
    let hidden = rows * m
    try runner.measure("kernels/quickgelu_fwd", "6304x3072", items: Double(hidden), flops: nil,
                       setup: { (random(hidden, seed: 5), FloatBuffer(count: hidden)) },
                       step: { x, out in QuickGELU.forward(out: out.pointer, x: x.readOnly, count: hidden) })
    try runner.measure("kernels/quickgelu_bwd", "6304x3072", items: Double(hidden), flops: nil,
                       setup: { (random(hidden, seed: 5), random(hidden, seed: 6), FloatBuffer(count: hidden)) },
                       step: { x, d, out in QuickGELU.backward(dX: out.pointer, dOut: d.readOnly, x: x.readOnly, count: hidden) })
    try runner.measure("kernels/gelu_fwd", "6304x3072", items: Double(hidden), flops: nil,
                       setup: { (random(hidden, seed: 5), FloatBuffer(count: hidden)) },
                       step: { x, out in GELU.forward(out: out.pointer, x: x.readOnly, count: hidden) })
    // Softmax over attention rows (B·H·P rows of P)
    let softRows = 32 * heads * tokens
    try runner.measure("kernels/softmax", "75648x197", items: Double(softRows * tokens), flops: nil,
                       setup: { (random(softRows * tokens, seed: 7), FloatBuffer(count: softRows * tokens)) },
                       step: { x, out in Softmax.forward(out: out.pointer, x: x.readOnly, rows: softRows, cols: tokens) })
    // Attention core (B, P, 3C) -> (B, P, C): BLAS plus the softmax
    try runner.measure("kernels/attention_fwd", "b32 p197 h12", items: Double(32 * tokens * c),
                       flops: 4.0 * 32 * Double(tokens * tokens * c), setup: {
      (random(rows * 3 * c, seed: 8), FloatBuffer(count: rows * c), FloatBuffer(count: softRows * tokens))
    }, step: { qkv, out, probs in
      Attention.forward(out: out.pointer, probs: probs.pointer, qkv: qkv.readOnly, batch: 32, tokens: tokens,
                        heads: heads, headDim: c / heads, causal: false)
    })
    // AdamW over 10M parameters (one tensor)
    let n = 10_000_000
    try runner.measure("kernels/adamw", "10M", items: Double(n), flops: nil, setup: { () -> (Optimizer, FloatBuffer, FloatBuffer) in
      var table = ParameterTable()
      table.add("w", [n / 1000, 1000])
      return (try benchAdamW(table), random(n, seed: 9), random(n, seed: 10))
    }, step: { optimizer, p, g in optimizer.step(parameters: p, gradients: g, lr: 1e-5) })
  }
}
