// Softmax over the last axis of a (rows, cols) matrix, as torch.softmax(x, dim=-1).
// Shapes: x, out, probs (N, cols). The max is subtracted per row, so exp never overflows; out doubles as the
// probabilities saved for backward.
// Shape letters: N rows (cols is K for class logits, T for attention rows).
import Tensor

public enum Softmax {
  /// p = exp(x − max) / Σ exp(x − max) for one row of `cols` entries; x and out may alias.
  /// The exponentials go through `expShifted` (explicit SIMD16: exp dominates attention's element-wise time).
  @inlinable
  public static func row(out: MutableFloats, x: Floats, cols: Int) {
    expShifted(out: out, x: x, count: cols, shift: rowMax(x, cols))
    let inverseSum = 1 / rowSum(out, cols)
    for j in 0..<cols { out[j] *= inverseSum }
  }

  /// out (N, cols) = softmax of each row of x (N, cols).
  public static func forward(out: MutableFloats, x: Floats, rows: Int, cols: Int) {
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 14) / max(1, cols))) { start, end in
      for r in start..<end { row(out: out + r * cols, x: x + r * cols, cols: cols) }
    }
  }

  /// Adds into dX. For p = softmax(x): dx_j = p_j · (dOut_j − Σ_k dOut_k · p_k).
  public static func backward(dX: MutableFloats, dOut: Floats, probs: Floats, rows: Int, cols: Int) {
    Parallel.forChunks(rows, minimumWork: max(1, (1 << 14) / max(1, cols))) { start, end in
      for r in start..<end {
        let p = probs + r * cols, g = dOut + r * cols, d = dX + r * cols
        let dotGP = rowDot(g, p, cols)
        for j in 0..<cols { d[j] += p[j] * (g[j] - dotGP) }
      }
    }
  }
}
