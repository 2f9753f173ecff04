// Softmax over the last axis of a (rows, cols) matrix, as torch.softmax(x, dim=-1).
// Shapes: x, out, probs (R, K) with R = rows, K = cols. The max is subtracted per row, so exp never
// overflows; out doubles as the probabilities saved for backward.
import Tensor

public enum Softmax {
  /// p = exp(x − max) / Σ exp(x − max) for one row of `cols` entries; x and out may alias.
  /// Explicit SIMD16: the scalar fastExp loop does not vectorise (its clamps), and exp dominates attention's
  /// element-wise time. Lanes equal the scalar fastExp, so the tail loop gives the same values.
  @inlinable
  public static func row(out: MutableFloats, x: Floats, cols: Int) {
    let m = rowMax(x, cols)
    var acc = SIMD16<Float>(repeating: 0)
    var j = 0
    while j + 16 <= cols {
      let e = fastExp(load16(x + j) - m)
      store16(e, out + j)
      acc += e
      j += 16
    }
    var sum = acc.sum()
    while j < cols { let e = fastExp(x[j] - m); out[j] = e; sum += e; j += 1 }
    let inverseSum = 1 / sum
    j = 0
    while j + 16 <= cols { store16(load16(out + j) * inverseSum, out + j); j += 16 }
    while j < cols { out[j] *= inverseSum; j += 1 }
  }

  /// out (R, K) = softmax of each row of x (R, K).
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
