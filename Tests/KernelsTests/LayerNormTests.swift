// LayerNorm against a Double loop (forward, mean, rstd) and finite differences (dX, dWeight, dBias).
// Forward tolerance 1e-5 + 1e-5·|ref|: normalised outputs are O(1) and fp32 sums over 20 channels err ~1e-6.
// A row with a large mean (x ≈ 1000 + noise) checks the two-pass variance (one-pass E[x²]−E[x]² would be O(1) off).
// Shape letters: N rows, C width (channels).
import Kernels
import Tensor
import XCTest

final class LayerNormTests: XCTestCase {
  func naive(x: FloatBuffer, weight: FloatBuffer, bias: FloatBuffer, rows: Int, channels: Int, eps: Double)
    -> (out: [Double], mean: [Double], rstd: [Double]) {
    var out = [Double](repeating: 0, count: rows * channels), mean = [Double](), rstd = [Double]()
    for r in 0..<rows {
      var mu = 0.0
      for c in 0..<channels { mu += Double(x[r * channels + c]) }
      mu /= Double(channels)
      var variance = 0.0
      for c in 0..<channels { let d = Double(x[r * channels + c]) - mu; variance += d * d }
      let s = 1 / (variance / Double(channels) + eps).squareRoot()
      for c in 0..<channels {
        out[r * channels + c] = (Double(x[r * channels + c]) - mu) * s * Double(weight[c]) + Double(bias[c])
      }
      mean.append(mu)
      rstd.append(s)
    }
    return (out, mean, rstd)
  }

  func testForwardMatchesDoubleLoop() {
    let rows = 4, channels = 37  // 37: SIMD16 body plus a scalar tail
    let x = randomBuffer(rows * channels, seed: 1)
    for c in 0..<channels { x[3 * channels + c] += 1000 }  // large-mean row
    let weight = randomBuffer(channels, seed: 2), bias = randomBuffer(channels, seed: 3)
    let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
    LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly,
                      weight: weight.readOnly, bias: bias.readOnly, rows: rows, channels: channels)
    let ref = naive(x: x, weight: weight, bias: bias, rows: rows, channels: channels, eps: 1e-5)
    let normalRows = 3 * channels
    assertClose(Array(out.array[..<normalRows]), Array(ref.out[..<normalRows]), atol: 1e-5, rtol: 1e-5,
                "LayerNorm out (rows 0-2)")
    // The large-mean row: fp32 values near 1000 have ulp 6e-5, so the fp32 mean and x − mean carry ~1e-4 error,
    // times |weight| ≤ 3. 2e-3 allows that; a one-pass E[x²] − E[x]² variance (ulp of 1e6 is 0.06) fails it.
    assertClose(Array(out.array[normalRows...]), Array(ref.out[normalRows...]), atol: 2e-3, rtol: 0,
                "LayerNorm out (large-mean row 3)")
    assertClose(mean, ref.mean, atol: 1e-5, rtol: 1e-6, "LayerNorm mean")
    assertClose(rstd, ref.rstd, atol: 1e-6, rtol: 1e-5, "LayerNorm rstd")
  }

  func testBackwardMatchesFiniteDifferences() {
    let rows = 3, channels = 19
    let x = randomBuffer(rows * channels, seed: 4), weight = randomBuffer(channels, seed: 5)
    let bias = randomBuffer(channels, seed: 6), r = randomBuffer(rows * channels, seed: 7)
    let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
    let dX = FloatBuffer(count: x.count), dWeight = FloatBuffer(count: channels), dBias = FloatBuffer(count: channels)
    checkGradients("LayerNorm", inputs: [GradientInput(name: "X", value: x, gradient: dX),
                                         GradientInput(name: "Weight", value: weight, gradient: dWeight),
                                         GradientInput(name: "Bias", value: bias, gradient: dBias)],
                   objective: {
                     LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly,
                                       weight: weight.readOnly, bias: bias.readOnly, rows: rows, channels: channels)
                     return dotDouble(r, out)
                   },
                   backward: {
                     LayerNorm.backward(dX: dX.pointer, dWeight: dWeight.pointer, dBias: dBias.pointer,
                                        dOut: r.readOnly, x: x.readOnly, weight: weight.readOnly,
                                        mean: mean.readOnly, rstd: rstd.readOnly, rows: rows, channels: channels)
                   })
  }

  func testThreadedMatchesSerial() {
    // Big enough that Parallel.forChunks splits rows (forward, dX) and channels (dWeight, dBias).
    let rows = 300, channels = 768
    let x = randomBuffer(rows * channels, seed: 8), weight = randomBuffer(channels, seed: 9)
    let bias = randomBuffer(channels, seed: 10), r = randomBuffer(rows * channels, seed: 11)
    func run(threads: Int) -> [[Float]] {
      let saved = Parallel.threads
      Parallel.threads = threads
      defer { Parallel.threads = saved }
      let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
      let dX = FloatBuffer(count: x.count), dW = FloatBuffer(count: channels), dB = FloatBuffer(count: channels)
      LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, x: x.readOnly,
                        weight: weight.readOnly, bias: bias.readOnly, rows: rows, channels: channels)
      LayerNorm.backward(dX: dX.pointer, dWeight: dW.pointer, dBias: dB.pointer, dOut: r.readOnly, x: x.readOnly,
                         weight: weight.readOnly, mean: mean.readOnly, rstd: rstd.readOnly, rows: rows, channels: channels)
      return [out.array, dX.array, dW.array, dB.array]
    }
    let serial = run(threads: 1), threaded = run(threads: 2)
    for (name, (a, b)) in zip(["out", "dX", "dWeight", "dBias"], zip(threaded, serial)) {
      // Same arithmetic in the same order per element: must be bit-identical.
      assertClose(a, b.map(Double.init), atol: 0, rtol: 0, "LayerNorm \(name) threaded vs serial")
    }
  }
}
