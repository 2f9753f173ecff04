// Element-wise activations of the CLIP MLPs: exact GELU (torch.nn.GELU(), erf form, used by open_clip
// ViT-B/16 "timm-like" and HF models) and QuickGELU x·σ(1.702x) (OpenAI CLIP checkpoints).
// Shapes: any; `count` elements (N·M in a transformer block's MLP). Polynomial erf/exp from FastMath keep the
// loops vectorised; large tensors are split over Parallel.threads.
// Shape letters (README "Shape letters"): N rows, M MLP width.
import Tensor

public enum GELU {
  /// out = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).
  public static func forward(out: MutableFloats, x: Floats, count: Int) {
    Parallel.forChunks(count) { start, end in
      for i in start..<end {
        let v = x[i]
        out[i] = 0.5 * v * fastOnePlusErf(v * 0.707_106_781_186_547_5)
      }
    }
  }

  /// Adds into dX (writes it with `overwrite`). d/dx [x·Φ(x)] = Φ(x) + x·φ(x), φ(x) = exp(−x²/2) / √(2π).
  public static func backward(dX: MutableFloats, dOut: Floats, x: Floats, count: Int, overwrite: Bool = false) {
    applyDerivative(dX: dX, dOut: dOut, x: x, count: count, overwrite: overwrite, derivative)
  }

  @inline(__always)
  static func derivative(_ v: Float) -> Float {
    let cdf = 0.5 * fastOnePlusErf(v * 0.707_106_781_186_547_5)
    let pdf = 0.398_942_280_401_432_7 * fastExp(-0.5 * v * v)
    return cdf + v * pdf
  }
}

public enum QuickGELU {
  /// out = x · σ(1.702 · x).
  public static func forward(out: MutableFloats, x: Floats, count: Int) {
    Parallel.forChunks(count) { start, end in
      for i in start..<end {
        let v = x[i]
        out[i] = v * fastSigmoid(1.702 * v)
      }
    }
  }

  /// Adds into dX (writes it with `overwrite`). With s = σ(1.702x): d/dx [x·s] = s + 1.702 · x · s · (1 − s).
  public static func backward(dX: MutableFloats, dOut: Floats, x: Floats, count: Int, overwrite: Bool = false) {
    applyDerivative(dX: dX, dOut: dOut, x: x, count: count, overwrite: overwrite, derivative)
  }

  @inline(__always)
  static func derivative(_ v: Float) -> Float {
    let s = fastSigmoid(1.702 * v)
    return s + 1.702 * v * s * (1 - s)
  }
}

/// dX = dOut ⊙ f'(x) with `overwrite`, else dX += dOut ⊙ f'(x), split over Parallel.threads. Two loops rather than
/// a select per element: without AVX2 blends the select kept the loop scalar in the x86-64 build.
@inline(__always)
private func applyDerivative(dX: MutableFloats, dOut: Floats, x: Floats, count: Int, overwrite: Bool,
                     _ derivative: (Float) -> Float) {
  Parallel.forChunks(count) { start, end in
    if overwrite {
      for i in start..<end { dX[i] = dOut[i] * derivative(x[i]) }
    } else {
      for i in start..<end { dX[i] += dOut[i] * derivative(x[i]) }
    }
  }
}
