// Shared helpers for the kernel tests: seeded random buffers, an elementwise closeness assertion that names
// the tensor, the max abs diff and the first bad index, and a finite-difference gradient check that also
// checks the backward convention (a second call must add into the gradients, not overwrite them).
// Shape letters: none (buffers are flat `count` floats).
import Kernels
import Tensor
import XCTest

// Finite differences run on the Float kernels themselves (not on a Double re-implementation), so they check
// exactly the code that trains. The objective is a random linear functional L = Σ r·out summed in Double.
// Central differences with eps = 1e-2 have truncation error eps²/6·|L'''| ≈ 2e-5·|L'''| and Float rounding
// noise ≈ 1e-7·Σ|r·out| / (2·eps) ≈ 5e-6·(a few) for our tiny cases; atol 1e-3 + rtol 1e-2 sits far above both
// and far below the O(0.1–1) errors a wrong formula, index or transpose produces.

func randomBuffer(_ count: Int, seed: UInt64, scale: Double = 1) -> FloatBuffer {
  var rng = SeededRNG(seed: seed)
  return FloatBuffer((0..<count).map { _ in Float(rng.normal() * scale) })
}

/// Σ a·b in Double.
func dotDouble(_ a: FloatBuffer, _ b: FloatBuffer) -> Double {
  precondition(a.count == b.count)
  var sum = 0.0
  for i in 0..<a.count { sum += Double(a[i]) * Double(b[i]) }
  return sum
}

/// Asserts |actual − expected| ≤ atol + rtol·|expected| for every element; one failure message per tensor
/// naming the max abs diff and the first bad index.
func assertClose(_ actual: [Float], _ expected: [Double], atol: Double, rtol: Double, _ name: String,
                 file: StaticString = #filePath, line: UInt = #line) {
  guard actual.count == expected.count else {
    XCTFail("\(name): \(actual.count) values, expected \(expected.count)", file: file, line: line)
    return
  }
  var maxDiff = 0.0, firstBad: Int? = nil
  for i in 0..<actual.count {
    let diff = abs(Double(actual[i]) - expected[i])
    if !(diff <= atol + rtol * abs(expected[i])) && firstBad == nil { firstBad = i }
    if diff > maxDiff || diff.isNaN { maxDiff = diff }
  }
  if let bad = firstBad {
    XCTFail("\(name): max abs diff \(maxDiff), first bad index \(bad) (got \(actual[bad]), expected "
            + "\(expected[bad]); atol \(atol), rtol \(rtol))", file: file, line: line)
  }
}

func assertClose(_ actual: FloatBuffer, _ expected: [Double], atol: Double, rtol: Double, _ name: String,
                 file: StaticString = #filePath, line: UInt = #line) {
  assertClose(actual.array, expected, atol: atol, rtol: rtol, name, file: file, line: line)
}

/// A tensor the objective depends on, with the gradient buffer its kernel backward adds into.
struct GradientInput {
  let name: String
  let value: FloatBuffer
  let gradient: FloatBuffer
}

/// 1. runs `objective` once (forward at the base point, so saved activations are current);
/// 2. zeroes the gradients, runs `backward` twice, and checks the second call doubled them (backward adds);
/// 3. compares the single-call gradient with central differences of `objective` for every input element.
func checkGradients(_ kernel: String, inputs: [GradientInput], objective: () -> Double, backward: () -> Void,
                    eps: Float = 1e-2, atol: Double = 1e-3, rtol: Double = 1e-2,
                    file: StaticString = #filePath, line: UInt = #line) {
  _ = objective()
  for input in inputs { input.gradient.zero() }
  backward()
  let once = inputs.map { $0.gradient.array }
  backward()
  for (input, first) in zip(inputs, once) {
    // Twice the same addition: equal to 2·first up to one rounding of the sum.
    assertClose(input.gradient, first.map { 2 * Double($0) }, atol: 1e-6, rtol: 1e-5,
                "\(kernel) d\(input.name) after two backward calls (must add, not overwrite)", file: file, line: line)
  }
  for (input, analytic) in zip(inputs, once) {
    var numeric = [Double](repeating: 0, count: input.value.count)
    for i in 0..<input.value.count {
      let saved = input.value[i]
      let plus = saved + eps, minus = saved - eps
      input.value[i] = plus
      let up = objective()
      input.value[i] = minus
      let down = objective()
      input.value[i] = saved
      numeric[i] = (up - down) / (Double(plus) - Double(minus))
    }
    assertClose(analytic, numeric, atol: atol, rtol: rtol, "\(kernel) d\(input.name) vs finite differences",
                file: file, line: line)
  }
  _ = objective()  // leave saved activations consistent with the unperturbed inputs
}
