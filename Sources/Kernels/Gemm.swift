// The one BLAS entry point. Row-major single-precision matrix product through OpenBLAS cblas_sgemm:
//   C (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · C
// op(X) is X or Xᵀ. Leading dimensions default to the dense row-major ones. Every call site carries a
// comment with the product it computes (see STYLE.md §4).
// Shape letters: none of the legend; m, n, k and the matrices A, B, C are BLAS's own names (this C is no width).
import COpenBLAS
import Tensor

public enum Transpose {
  case noTranspose, transpose
  var cblas: CBLAS_TRANSPOSE { self == .noTranspose ? CblasNoTrans : CblasTrans }
}

/// C (m, n) = alpha · op(A) · op(B) + beta · C, all row-major.
/// A is (m, k) when not transposed and (k, m) when transposed; B is (k, n) or (n, k).
public func gemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: Floats, lda: Int? = nil, b: Floats, ldb: Int? = nil,
                 beta: Float = 0, c: MutableFloats, ldc: Int? = nil) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    // Nothing to multiply: C = beta · C (BLAS would also do this, but some builds read A/B anyway).
    let ldC = ldc ?? n
    for i in 0..<m { for j in 0..<n { c[i * ldC + j] = beta == 0 ? 0 : beta * c[i * ldC + j] } }
    return
  }
  let ldA = lda ?? (transA == .noTranspose ? k : m)
  let ldB = ldb ?? (transB == .noTranspose ? n : k)
  cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, Int32(m), Int32(n), Int32(k),
              alpha, a, Int32(ldA), b, Int32(ldB), beta, c, Int32(ldc ?? n))
}

/// Reference product in Double, used by tests and by the start-up self-check.
public func naiveGemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                      alpha: Float = 1, a: Floats, b: Floats, beta: Float = 0, c: MutableFloats) {
  for i in 0..<m {
    for j in 0..<n {
      var sum = 0.0
      for p in 0..<k {
        let av = transA == .noTranspose ? a[i * k + p] : a[p * m + i]
        let bv = transB == .noTranspose ? b[p * n + j] : b[j * k + p]
        sum += Double(av) * Double(bv)
      }
      c[i * n + j] = Float(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c[i * n + j])))
    }
  }
}
