// GELU (erf form) and QuickGELU against Double closed forms, finite differences, and the threaded path.
// Forward tolerance 1e-6 + 2e-6·|ref|: fastErf is accurate to 1e-6 relative and the GELU product adds a few
// fp32 roundings; a tanh-approximate GELU would be off by up to 5e-4 and fail.
// Shape letters: none (element-wise over `count` values).
import Foundation
import Kernels
import Tensor
import XCTest

final class ActivationTests: XCTestCase {
  func geluReference(_ x: Double) -> Double { 0.5 * x * erfc(-x / 2.0.squareRoot()) }
  func quickGELUReference(_ x: Double) -> Double { x / (1 + exp(-1.702 * x)) }

  /// Points from −10 to 10 (deep negative tail included) plus random normals.
  func samplePoints() -> FloatBuffer {
    var values = (0...400).map { Float(-10 + 0.05 * Double($0)) }
    var rng = SeededRNG(seed: 42)
    for _ in 0..<200 { values.append(Float(rng.normal() * 2)) }
    return FloatBuffer(values)
  }

  func testGELUForwardMatchesErfForm() {
    let x = samplePoints(), out = FloatBuffer(count: x.count)
    GELU.forward(out: out.pointer, x: x.readOnly, count: x.count)
    assertClose(out, x.array.map { geluReference(Double($0)) }, atol: 1e-6, rtol: 2e-6, "GELU out")
  }

  func testQuickGELUForwardMatchesClosedForm() {
    let x = samplePoints(), out = FloatBuffer(count: x.count)
    QuickGELU.forward(out: out.pointer, x: x.readOnly, count: x.count)
    assertClose(out, x.array.map { quickGELUReference(Double($0)) }, atol: 1e-6, rtol: 2e-6, "QuickGELU out")
  }

  func testGELUBackwardMatchesFiniteDifferences() {
    let x = randomBuffer(40, seed: 1, scale: 2), r = randomBuffer(40, seed: 2), out = FloatBuffer(count: 40)
    let dX = FloatBuffer(count: 40)
    checkGradients("GELU", inputs: [GradientInput(name: "X", value: x, gradient: dX)],
                   objective: { GELU.forward(out: out.pointer, x: x.readOnly, count: 40); return dotDouble(r, out) },
                   backward: { GELU.backward(dX: dX.pointer, dOut: r.readOnly, x: x.readOnly, count: 40) })
  }

  func testQuickGELUBackwardMatchesFiniteDifferences() {
    let x = randomBuffer(40, seed: 3, scale: 2), r = randomBuffer(40, seed: 4), out = FloatBuffer(count: 40)
    let dX = FloatBuffer(count: 40)
    checkGradients("QuickGELU", inputs: [GradientInput(name: "X", value: x, gradient: dX)],
                   objective: { QuickGELU.forward(out: out.pointer, x: x.readOnly, count: 40); return dotDouble(r, out) },
                   backward: { QuickGELU.backward(dX: dX.pointer, dOut: r.readOnly, x: x.readOnly, count: 40) })
  }

  func testBackwardMatchesClosedFormDerivative() {
    // Exact derivatives in Double: GELU' = Φ + x·φ, QuickGELU' = s + 1.702·x·s·(1 − s).
    let x = samplePoints(), ones = FloatBuffer([Float](repeating: 1, count: x.count))
    let dGELU = FloatBuffer(count: x.count), dQuick = FloatBuffer(count: x.count)
    GELU.backward(dX: dGELU.pointer, dOut: ones.readOnly, x: x.readOnly, count: x.count)
    QuickGELU.backward(dX: dQuick.pointer, dOut: ones.readOnly, x: x.readOnly, count: x.count)
    let geluPrime = x.array.map { v -> Double in
      let x = Double(v)
      return 0.5 * erfc(-x / 2.0.squareRoot()) + x * exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
    }
    let quickPrime = x.array.map { v -> Double in
      let x = Double(v), s = 1 / (1 + exp(-1.702 * x))
      return s + 1.702 * x * s * (1 - s)
    }
    assertClose(dGELU, geluPrime, atol: 1e-6, rtol: 2e-6, "GELU dX closed form")
    assertClose(dQuick, quickPrime, atol: 1e-6, rtol: 2e-6, "QuickGELU dX closed form")
  }

  func testThreadedMatchesSerial() {
    let count = 200_003  // odd, above the threading threshold
    let x = randomBuffer(count, seed: 5, scale: 3), r = randomBuffer(count, seed: 6)
    func run(threads: Int) -> [[Float]] {
      let saved = Parallel.threads
      Parallel.threads = threads
      defer { Parallel.threads = saved }
      let out = FloatBuffer(count: count), dX = FloatBuffer(count: count)
      let outQ = FloatBuffer(count: count), dXQ = FloatBuffer(count: count)
      GELU.forward(out: out.pointer, x: x.readOnly, count: count)
      GELU.backward(dX: dX.pointer, dOut: r.readOnly, x: x.readOnly, count: count)
      QuickGELU.forward(out: outQ.pointer, x: x.readOnly, count: count)
      QuickGELU.backward(dX: dXQ.pointer, dOut: r.readOnly, x: x.readOnly, count: count)
      return [out.array, dX.array, outQ.array, dXQ.array]
    }
    let serial = run(threads: 1), threaded = run(threads: 2)
    for (name, (a, b)) in zip(["GELU out", "GELU dX", "QuickGELU out", "QuickGELU dX"], zip(threaded, serial)) {
      assertClose(a, b.map(Double.init), atol: 0, rtol: 0, "\(name) threaded vs serial")
    }
  }
}
