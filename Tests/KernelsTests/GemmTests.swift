// The sgemm wrapper against a naive Double loop: all transpose combinations, odd sizes, alpha/beta,
// and the degenerate k = 0 case. Tolerance: fp32 accumulation of k products of unit normals gives
// errors of order 1e-6·sqrt(k); 1e-4 relative to max(1, |ref|) leaves room and still catches any
// wrong layout or transpose (those give O(1) errors).
// Shape letters: none (BLAS's m, n, k).
import Kernels
import Tensor
import XCTest

final class GemmTests: XCTestCase {
  func randomBuffer(_ count: Int, seed: UInt64) -> FloatBuffer {
    var rng = SeededRNG(seed: seed)
    return FloatBuffer((0..<count).map { _ in Float(rng.normal()) })
  }

  func testAllTransposeCombinationsAndOddSizes() {
    for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 65, 63), (129, 31, 2)] {
      let a = randomBuffer(m * k, seed: 1), b = randomBuffer(k * n, seed: 2)
      for ta in [Transpose.noTranspose, .transpose] {
        for tb in [Transpose.noTranspose, .transpose] {
          for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
            let c = randomBuffer(m * n, seed: 3), ref = FloatBuffer(count: m * n)
            ref.copy(from: c)
            gemm(ta, tb, m: m, n: n, k: k, alpha: alpha, a: a.readOnly, b: b.readOnly, beta: beta, c: c.pointer)
            naiveGemm(ta, tb, m: m, n: n, k: k, alpha: alpha, a: a.readOnly, b: b.readOnly, beta: beta, c: ref.pointer)
            for i in 0..<(m * n) {
              XCTAssertEqual(c[i], ref[i], accuracy: 1e-4 * max(1, abs(ref[i])),
                             "gemm \(ta) \(tb) m\(m) n\(n) k\(k) alpha \(alpha) beta \(beta) index \(i)")
            }
          }
        }
      }
    }
  }

  func testLeadingDimensionsSelectSubmatrix() {
    // C (2, 2) = A[:, 1:3] (2, 2) · B (2, 2) with A stored as (2, 4)
    let a = FloatBuffer([9, 1, 2, 9, 9, 3, 4, 9]), b = FloatBuffer([1, 0, 0, 1]), c = FloatBuffer(count: 4)
    gemm(.noTranspose, .noTranspose, m: 2, n: 2, k: 2, a: a.readOnly + 1, lda: 4, b: b.readOnly, c: c.pointer)
    XCTAssertEqual(c.array, [1, 2, 3, 4])
  }

  func testZeroInnerDimensionScalesC() {
    let c = FloatBuffer([1, 2, 3, 4])
    gemm(.noTranspose, .noTranspose, m: 2, n: 2, k: 0, a: c.readOnly, b: c.readOnly, beta: 0.5, c: c.pointer)
    XCTAssertEqual(c.array, [0.5, 1, 1.5, 2])
  }

  func testStartupSelfCheckPassesAndKernelIsNotGeneric() {
    XCTAssertLessThan(BLASRuntime.selfCheck(), 1e-4)
    let status = BLASRuntime.status()
    if status.userSetCoreType { return }  // the user chose a kernel; we respect it
    XCTAssertFalse(status.isGenericFallback, "OpenBLAS runs the generic \(status.coreName) kernel")
  }
}
