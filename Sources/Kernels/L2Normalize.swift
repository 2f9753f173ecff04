// Row-wise L2 normalisation, torch's x / x.norm(dim=-1, keepdim=True) (no epsilon, as open_clip's
// F.normalize would add; a zero row is the caller's bug). Shapes: x, out (N, D); norms (N) saved.
// Shape letters: N rows (usually B images or texts), D joint embedding dim.
import Tensor

public enum L2Normalize {
  /// out (N, D) = x / ‖x‖ per row; norms (N) = ‖x‖.
  public static func forward(out: MutableFloats, norms: MutableFloats, x: Floats, rows: Int, dim: Int) {
    for r in 0..<rows {
      let xRow = x + r * dim, outRow = out + r * dim
      let norm = rowDot(xRow, xRow, dim).squareRoot()
      norms[r] = norm
      let inverse = 1 / norm
      for j in 0..<dim { outRow[j] = xRow[j] * inverse }
    }
  }

  /// Adds into dX. With y = x / ‖x‖: dx = (dy − y · (y·dy)) / ‖x‖.
  public static func backward(dX: MutableFloats, dOut: Floats, out: Floats, norms: Floats, rows: Int, dim: Int) {
    for r in 0..<rows {
      let y = out + r * dim, g = dOut + r * dim, d = dX + r * dim
      let dotYG = rowDot(y, g, dim)
      let inverse = 1 / norms[r]
      for j in 0..<dim { d[j] += (g[j] - y[j] * dotYG) * inverse }
    }
  }
}
