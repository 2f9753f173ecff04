// Linear against a naive Double loop (forward, with and without bias) and finite differences (backward).
// Forward tolerance: fp32 sgemm over k = 13 unit-normal products errs ~1e-6; 1e-5 + 1e-5·|ref| leaves room and
// still catches a wrong transpose or a missing bias (O(1) errors).
// Shape letters: N rows (in and out are feature counts).
import Kernels
import Tensor
import XCTest

final class LinearTests: XCTestCase {
  let rows = 5, inFeatures = 13, outFeatures = 7

  func naiveForward(x: FloatBuffer, weight: FloatBuffer, bias: FloatBuffer?) -> [Double] {
    var out = [Double](repeating: 0, count: rows * outFeatures)
    for n in 0..<rows {
      for o in 0..<outFeatures {
        var sum = bias.map { Double($0[o]) } ?? 0
        for i in 0..<inFeatures { sum += Double(x[n * inFeatures + i]) * Double(weight[o * inFeatures + i]) }
        out[n * outFeatures + o] = sum
      }
    }
    return out
  }

  func testForwardMatchesNaiveLoop() {
    let x = randomBuffer(rows * inFeatures, seed: 1), weight = randomBuffer(outFeatures * inFeatures, seed: 2)
    let bias = randomBuffer(outFeatures, seed: 3)
    let out = randomBuffer(rows * outFeatures, seed: 4)  // garbage: forward must overwrite
    Linear.forward(out: out.pointer, x: x.readOnly, weight: weight.readOnly, bias: bias.readOnly,
                   rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    assertClose(out, naiveForward(x: x, weight: weight, bias: bias), atol: 1e-5, rtol: 1e-5, "Linear out (bias)")
    Linear.forward(out: out.pointer, x: x.readOnly, weight: weight.readOnly, bias: nil,
                   rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    assertClose(out, naiveForward(x: x, weight: weight, bias: nil), atol: 1e-5, rtol: 1e-5, "Linear out (no bias)")
  }

  /// The skip connection folded into the seeding pass: out = residual + x·Wᵀ (+ bias), also with out == residual.
  func testForwardAddsTheResidual() {
    let x = randomBuffer(rows * inFeatures, seed: 11), weight = randomBuffer(outFeatures * inFeatures, seed: 12)
    let bias = randomBuffer(outFeatures, seed: 13), residual = randomBuffer(rows * outFeatures, seed: 14)
    for withBias in [true, false] {
      let expected = zip(naiveForward(x: x, weight: weight, bias: withBias ? bias : nil), residual.array).map { $0 + Double($1) }
      let out = randomBuffer(rows * outFeatures, seed: 15)
      Linear.forward(out: out.pointer, x: x.readOnly, weight: weight.readOnly, bias: withBias ? bias.readOnly : nil,
                     residual: residual.readOnly, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
      assertClose(out, expected, atol: 1e-5, rtol: 1e-5, "Linear out + residual (bias \(withBias))")
      let inPlace = FloatBuffer(residual.array)
      Linear.forward(out: inPlace.pointer, x: x.readOnly, weight: weight.readOnly, bias: withBias ? bias.readOnly : nil,
                     residual: inPlace.readOnly, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
      assertClose(inPlace, expected, atol: 1e-5, rtol: 1e-5, "Linear out += residual in place (bias \(withBias))")
    }
  }

  func testBackwardMatchesFiniteDifferences() {
    let x = randomBuffer(rows * inFeatures, seed: 5), weight = randomBuffer(outFeatures * inFeatures, seed: 6)
    let bias = randomBuffer(outFeatures, seed: 7), out = FloatBuffer(count: rows * outFeatures)
    let r = randomBuffer(rows * outFeatures, seed: 8)
    let dX = FloatBuffer(count: x.count), dWeight = FloatBuffer(count: weight.count), dBias = FloatBuffer(count: bias.count)
    checkGradients("Linear", inputs: [GradientInput(name: "X", value: x, gradient: dX),
                                      GradientInput(name: "Weight", value: weight, gradient: dWeight),
                                      GradientInput(name: "Bias", value: bias, gradient: dBias)],
                   objective: {
                     Linear.forward(out: out.pointer, x: x.readOnly, weight: weight.readOnly, bias: bias.readOnly,
                                    rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
                     return dotDouble(r, out)
                   },
                   backward: {
                     Linear.backward(dX: dX.pointer, dWeight: dWeight.pointer, dBias: dBias.pointer, dOut: r.readOnly,
                                     x: x.readOnly, weight: weight.readOnly,
                                     rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
                   })
  }

  func testNilGradientsAreSkipped() {
    let x = randomBuffer(rows * inFeatures, seed: 9), weight = randomBuffer(outFeatures * inFeatures, seed: 10)
    let r = randomBuffer(rows * outFeatures, seed: 11), dWeight = FloatBuffer(count: weight.count)
    Linear.backward(dX: nil, dWeight: dWeight.pointer, dBias: nil, dOut: r.readOnly, x: x.readOnly,
                    weight: weight.readOnly, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
    // dWeight = rᵀ·x by a naive loop.
    var expected = [Double](repeating: 0, count: weight.count)
    for o in 0..<outFeatures { for i in 0..<inFeatures { for n in 0..<rows {
      expected[o * inFeatures + i] += Double(r[n * outFeatures + o]) * Double(x[n * inFeatures + i])
    } } }
    assertClose(dWeight, expected, atol: 1e-5, rtol: 1e-5, "Linear dWeight alone")
  }
}
