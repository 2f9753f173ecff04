// Fully connected layer, torch.nn.Linear: out = x · weightᵀ + bias, weights in torch layout (out, in).
// Shapes: x (N, in), weight (out, in), bias (out), out (N, out); in and out are the feature counts.
// Both directions are sgemm calls through `gemm`; only the bias is a Swift loop.
// Shape letters: N rows (tokens of all images/texts).
import Tensor

public enum Linear {
  /// out (N, out) = [residual +] x (N, in) · weightᵀ + bias. bias nil means no bias; residual (N, out), when
  /// given, is added (the transformer's skip connection, folded into the pass that seeds out). out is overwritten
  /// either way and must not alias x (it may alias residual).
  public static func forward(out: MutableFloats, x: Floats, weight: Floats, bias: Floats?, residual: Floats? = nil,
                             rows: Int, inFeatures: Int, outFeatures: Int) {
    var beta: Float = 0
    if bias != nil || residual != nil {
      // Seed every row with residual + bias and let sgemm accumulate onto it (beta 1): one pass over out.
      Parallel.forChunks(rows, minimumWork: max(1, (1 << 15) / max(1, outFeatures))) { start, end in
        for row in start..<end {
          let o = out + row * outFeatures
          if let residual {
            let r = residual + row * outFeatures
            if let bias {
              for j in 0..<outFeatures { o[j] = r[j] + bias[j] }
            } else if r != Floats(o) {
              o.update(from: r, count: outFeatures)
            }
          } else if let bias {
            o.update(from: bias, count: outFeatures)
          }
        }
      }
      beta = 1
    }
    // out (N, out) = x (N, in) · weightᵀ (in, out) + beta · out
    gemm(.noTranspose, .transpose, m: rows, n: outFeatures, k: inFeatures,
         a: x, b: weight, beta: beta, c: out)
  }

  /// Adds into dX (N, in) (writes it with `overwrite`: saves zeroing a fresh buffer first), dWeight (out, in) and
  /// dBias (out); any of them nil is skipped.
  /// forward was out = x · Wᵀ + b, so dx = dOut · W, dW = dOutᵀ · x, db = Σ_rows dOut.
  public static func backward(dX: MutableFloats?, dWeight: MutableFloats?, dBias: MutableFloats?,
                              dOut: Floats, x: Floats, weight: Floats,
                              rows: Int, inFeatures: Int, outFeatures: Int, overwrite: Bool = false) {
    if let dX {
      // dX (N, in) (+)= dOut (N, out) · weight (out, in)
      gemm(.noTranspose, .noTranspose, m: rows, n: inFeatures, k: outFeatures,
           a: dOut, b: weight, beta: overwrite ? 0 : 1, c: dX)
    }
    if let dWeight {
      // dWeight (out, in) += dOutᵀ (out, N) · x (N, in)
      gemm(.transpose, .noTranspose, m: outFeatures, n: inFeatures, k: rows,
           a: dOut, b: x, beta: 1, c: dWeight)
    }
    if let dBias {
      // dBias (out) += Σ_rows dOut (N, out); row-by-row adds vectorise along out; threads own column ranges.
      Parallel.forChunks(outFeatures, minimumWork: max(1, (1 << 15) / max(1, rows))) { start, end in
        for row in 0..<rows {
          let g = dOut + row * outFeatures
          for j in start..<end { dBias[j] += g[j] }
        }
      }
    }
  }
}
