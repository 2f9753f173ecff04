// L2Normalize against a Double loop and finite differences. Forward tolerance 1e-6 + 1e-5·|ref|: unit-norm
// outputs, fp32 dot over 21 entries.
// Shape letters: N rows, D joint embedding dim.
import Kernels
import Tensor
import XCTest

final class L2NormalizeTests: XCTestCase {
  let rows = 3, dim = 21

  func testForwardMatchesDoubleLoop() {
    let x = randomBuffer(rows * dim, seed: 1)
    let out = FloatBuffer(count: rows * dim), norms = FloatBuffer(count: rows)
    L2Normalize.forward(out: out.pointer, norms: norms.pointer, x: x.readOnly, rows: rows, dim: dim)
    var expectedOut = [Double](), expectedNorms = [Double]()
    for r in 0..<rows {
      let row = (0..<dim).map { Double(x[r * dim + $0]) }
      let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
      expectedNorms.append(norm)
      expectedOut += row.map { $0 / norm }
    }
    assertClose(out, expectedOut, atol: 1e-6, rtol: 1e-5, "L2Normalize out")
    assertClose(norms, expectedNorms, atol: 1e-6, rtol: 1e-5, "L2Normalize norms")
  }

  func testBackwardMatchesFiniteDifferences() {
    let x = randomBuffer(rows * dim, seed: 2), r = randomBuffer(rows * dim, seed: 3)
    let out = FloatBuffer(count: rows * dim), norms = FloatBuffer(count: rows), dX = FloatBuffer(count: rows * dim)
    checkGradients("L2Normalize", inputs: [GradientInput(name: "X", value: x, gradient: dX)],
                   objective: {
                     L2Normalize.forward(out: out.pointer, norms: norms.pointer, x: x.readOnly, rows: rows, dim: dim)
                     return dotDouble(r, out)
                   },
                   backward: {
                     L2Normalize.backward(dX: dX.pointer, dOut: r.readOnly, out: out.readOnly, norms: norms.readOnly,
                                          rows: rows, dim: dim)
                   })
  }
}
