// Fully connected layer, torch.nn.Linear: out = x · weightᵀ + bias, weights in torch layout (out, in).
// Shapes: x (N, in), weight (out, in), bias (out), out (N, out); N = rows (tokens of all images/texts).
// Both directions are sgemm calls through `gemm`; only the bias is a Swift loop.
import Tensor

public enum Linear {
  /// out (N, out) = x (N, in) · weightᵀ + bias. bias nil means no bias (out is overwritten either way).
  public static func forward(out: MutableFloats, x: Floats, weight: Floats, bias: Floats?,
                             rows: Int, inFeatures: Int, outFeatures: Int) {
    var beta: Float = 0
    if let bias {
      // Start every row at the bias and let sgemm accumulate onto it (beta 1): one pass over out.
      for row in 0..<rows { (out + row * outFeatures).update(from: bias, count: outFeatures) }
      beta = 1
    }
    // out (N, out) = x (N, in) · weightᵀ (in, out) + beta · out
    gemm(.noTranspose, .transpose, m: rows, n: outFeatures, k: inFeatures,
         a: x, b: weight, beta: beta, c: out)
  }

  /// Adds into dX (N, in), dWeight (out, in), dBias (out); any of them nil is skipped.
  /// forward was out = x · Wᵀ + b, so dx = dOut · W, dW = dOutᵀ · x, db = Σ_rows dOut.
  public static func backward(dX: MutableFloats?, dWeight: MutableFloats?, dBias: MutableFloats?,
                              dOut: Floats, x: Floats, weight: Floats,
                              rows: Int, inFeatures: Int, outFeatures: Int) {
    if let dX {
      // dX (N, in) += dOut (N, out) · weight (out, in)
      gemm(.noTranspose, .noTranspose, m: rows, n: inFeatures, k: outFeatures,
           a: dOut, b: weight, beta: 1, c: dX)
    }
    if let dWeight {
      // dWeight (out, in) += dOutᵀ (out, N) · x (N, in)
      gemm(.transpose, .noTranspose, m: outFeatures, n: inFeatures, k: rows,
           a: dOut, b: x, beta: 1, c: dWeight)
    }
    if let dBias {
      // dBias (out) += Σ_rows dOut (N, out); row-by-row adds vectorise along out.
      for row in 0..<rows {
        let g = dOut + row * outFeatures
        for j in 0..<outFeatures { dBias[j] += g[j] }
      }
    }
  }
}
