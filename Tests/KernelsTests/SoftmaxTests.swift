// Softmax against a Double loop (including rows with huge logits that would overflow a naive exp) and
// finite differences. Forward tolerance 1e-6 absolute + 1e-5 relative: fastExp errs 2e-7 relative and the
// normalising sum a few fp32 ulps more.
// Shape letters: N rows.
import Foundation
import Kernels
import Tensor
import XCTest

final class SoftmaxTests: XCTestCase {
  func naive(_ x: FloatBuffer, rows: Int, cols: Int) -> [Double] {
    var out = [Double](repeating: 0, count: rows * cols)
    for r in 0..<rows {
      var m = -Double.infinity
      for j in 0..<cols { m = max(m, Double(x[r * cols + j])) }
      var sum = 0.0
      for j in 0..<cols { sum += exp(Double(x[r * cols + j]) - m) }
      for j in 0..<cols { out[r * cols + j] = exp(Double(x[r * cols + j]) - m) / sum }
    }
    return out
  }

  func testForwardMatchesDoubleLoop() {
    let rows = 5, cols = 37
    let x = randomBuffer(rows * cols, seed: 1, scale: 3)
    for j in 0..<cols { x[4 * cols + j] += 500 }  // exp(500) overflows fp32: the max must be subtracted
    let out = FloatBuffer(count: rows * cols)
    Softmax.forward(out: out.pointer, x: x.readOnly, rows: rows, cols: cols)
    assertClose(out, naive(x, rows: rows, cols: cols), atol: 1e-6, rtol: 1e-5, "Softmax out")
  }

  func testBackwardMatchesFiniteDifferences() {
    let rows = 3, cols = 11
    let x = randomBuffer(rows * cols, seed: 2), r = randomBuffer(rows * cols, seed: 3)
    let out = FloatBuffer(count: rows * cols), dX = FloatBuffer(count: rows * cols)
    checkGradients("Softmax", inputs: [GradientInput(name: "X", value: x, gradient: dX)],
                   objective: {
                     Softmax.forward(out: out.pointer, x: x.readOnly, rows: rows, cols: cols)
                     return dotDouble(r, out)
                   },
                   backward: {
                     Softmax.backward(dX: dX.pointer, dOut: r.readOnly, probs: out.readOnly, rows: rows, cols: cols)
                   })
  }
}
