// Attention core against a naive Double loop over (batch, head, query, key) on the packed qkv layout, finite
// differences for dQKV (causal and not), the causal mask (exact zeros, no influence of later tokens) and the
// caller-provided scratch. Forward tolerance 1e-5 + 1e-5·|ref|: fp32 sgemm over Dh = 3 and T = 5 terms plus
// fastExp (2e-7); a wrong stride, head offset or scale gives O(0.1) errors.
// Shape letters: B batch, T tokens, C width, H heads, Dh head dim.
import Foundation
import Kernels
import Tensor
import XCTest

final class AttentionTests: XCTestCase {
  let batch = 2, tokens = 5, heads = 2, headDim = 3
  var width: Int { heads * headDim }

  /// out (B, T, C) and probs (B, H, T, T) in Double, read straight from the torch in_proj layout.
  func naive(_ qkv: FloatBuffer, causal: Bool) -> (out: [Double], probs: [Double]) {
    let packed = 3 * width, scale = 1 / Double(headDim).squareRoot()
    var out = [Double](repeating: 0, count: batch * tokens * width)
    var probs = [Double](repeating: 0, count: batch * heads * tokens * tokens)
    func at(_ b: Int, _ t: Int, _ part: Int, _ h: Int, _ d: Int) -> Double {
      Double(qkv[(b * tokens + t) * packed + part * width + h * headDim + d])
    }
    for b in 0..<batch {
      for h in 0..<heads {
        for i in 0..<tokens {
          let keys = causal ? i + 1 : tokens
          var scores = [Double](repeating: 0, count: keys)
          for j in 0..<keys {
            for d in 0..<headDim { scores[j] += at(b, i, 0, h, d) * at(b, j, 1, h, d) }
            scores[j] *= scale
          }
          let m = scores.max()!
          let e = scores.map { exp($0 - m) }, sum = e.reduce(0, +)
          for j in 0..<keys {
            let p = e[j] / sum
            probs[((b * heads + h) * tokens + i) * tokens + j] = p
            for d in 0..<headDim { out[(b * tokens + i) * width + h * headDim + d] += p * at(b, j, 2, h, d) }
          }
        }
      }
    }
    return (out, probs)
  }

  func runForward(_ qkv: FloatBuffer, causal: Bool) -> (out: FloatBuffer, probs: FloatBuffer) {
    let out = FloatBuffer(count: batch * tokens * width)
    let probs = randomBuffer(batch * heads * tokens * tokens, seed: 99)  // garbage: masked entries must be written
    Attention.forward(out: out.pointer, probs: probs.pointer, qkv: qkv.readOnly, batch: batch, tokens: tokens,
                      heads: heads, headDim: headDim, causal: causal)
    return (out, probs)
  }

  func testForwardMatchesNaiveLoop() {
    let qkv = randomBuffer(batch * tokens * 3 * width, seed: 1)
    for causal in [false, true] {
      let (out, probs) = runForward(qkv, causal: causal)
      let ref = naive(qkv, causal: causal)
      assertClose(out, ref.out, atol: 1e-5, rtol: 1e-5, "Attention out (causal \(causal))")
      assertClose(probs, ref.probs, atol: 1e-6, rtol: 1e-5, "Attention probs (causal \(causal))")
    }
  }

  func testCausalMaskIsExactAndHidesLaterTokens() {
    let qkv = randomBuffer(batch * tokens * 3 * width, seed: 2)
    let (out, probs) = runForward(qkv, causal: true)
    var nonzeroAbove = [String]()
    for bh in 0..<(batch * heads) {
      for i in 0..<tokens {
        for j in (i + 1)..<tokens where probs[(bh * tokens + i) * tokens + j] != 0 {
          nonzeroAbove.append("[bh \(bh), \(i), \(j)] = \(probs[(bh * tokens + i) * tokens + j])")
        }
      }
    }
    XCTAssert(nonzeroAbove.isEmpty, "Attention probs above the diagonal must be exactly 0; \(nonzeroAbove.count) "
              + "are not, first \(nonzeroAbove.first ?? "")")
    // Changing the last token's q, k, v must leave every earlier token's output bit-identical.
    let changed = FloatBuffer(count: qkv.count)
    changed.copy(from: qkv)
    for b in 0..<batch { for c in 0..<(3 * width) { changed[(b * tokens + tokens - 1) * 3 * width + c] += 5 } }
    let (outChanged, _) = runForward(changed, causal: true)
    var earlier = [Float](), earlierChanged = [Double]()
    for b in 0..<batch {
      for index in (b * tokens * width)..<((b * tokens + tokens - 1) * width) {
        earlier.append(out[index])
        earlierChanged.append(Double(outChanged[index]))
      }
    }
    assertClose(earlier, earlierChanged, atol: 0, rtol: 0, "Attention out of tokens before a changed last token")
  }

  func testBackwardMatchesFiniteDifferences() {
    for causal in [false, true] {
      let qkv = randomBuffer(batch * tokens * 3 * width, seed: causal ? 3 : 4)
      let r = randomBuffer(batch * tokens * width, seed: 5)
      let out = FloatBuffer(count: batch * tokens * width), probs = FloatBuffer(count: batch * heads * tokens * tokens)
      let dQKV = FloatBuffer(count: qkv.count)
      checkGradients("Attention (causal \(causal))", inputs: [GradientInput(name: "QKV", value: qkv, gradient: dQKV)],
                     objective: {
                       Attention.forward(out: out.pointer, probs: probs.pointer, qkv: qkv.readOnly, batch: batch,
                                         tokens: tokens, heads: heads, headDim: headDim, causal: causal)
                       return dotDouble(r, out)
                     },
                     backward: {
                       Attention.backward(dQKV: dQKV.pointer, dOut: r.readOnly, qkv: qkv.readOnly,
                                          probs: probs.readOnly, batch: batch, tokens: tokens, heads: heads,
                                          headDim: headDim, causal: causal)
                     })
    }
  }

  func testCallerScratchGivesTheSameGradient() {
    let qkv = randomBuffer(batch * tokens * 3 * width, seed: 6), r = randomBuffer(batch * tokens * width, seed: 7)
    let (_, probs) = runForward(qkv, causal: true)
    let shared = FloatBuffer(count: qkv.count), own = FloatBuffer(count: qkv.count)
    let scratch = randomBuffer(Attention.scratchCount(tokens: tokens), seed: 8)  // garbage in: must be overwritten
    Attention.backward(dQKV: shared.pointer, dOut: r.readOnly, qkv: qkv.readOnly, probs: probs.readOnly,
                       batch: batch, tokens: tokens, heads: heads, headDim: headDim, causal: true)
    Attention.backward(dQKV: own.pointer, dOut: r.readOnly, qkv: qkv.readOnly, probs: probs.readOnly,
                       batch: batch, tokens: tokens, heads: heads, headDim: headDim, causal: true,
                       scratch: UnsafeMutableBufferPointer(start: scratch.pointer, count: scratch.count))
    assertClose(own, shared.array.map(Double.init), atol: 0, rtol: 0, "Attention dQKV with caller scratch")
  }

  /// (batch, head) items run on worker threads with single-threaded BLAS: the result must not depend on the
  /// worker count, and a scratch of one (T, T) matrix must still work (one worker).
  func testWorkerThreadsGiveTheSameResult() {
    let qkv = randomBuffer(batch * tokens * 3 * width, seed: 9), r = randomBuffer(batch * tokens * width, seed: 10)
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    var results: [(out: [Float], dQKV: [Float])] = []
    for (threads, scratchMatrices) in [(1, 1), (2, 2), (3, 3), (2, 1)] {
      Parallel.threads = threads
      let (out, probs) = runForward(qkv, causal: false)
      let dQKV = FloatBuffer(count: qkv.count)
      let scratch = FloatBuffer(count: scratchMatrices * tokens * tokens)
      Attention.backward(dQKV: dQKV.pointer, dOut: r.readOnly, qkv: qkv.readOnly, probs: probs.readOnly,
                         batch: batch, tokens: tokens, heads: heads, headDim: headDim, causal: false,
                         scratch: UnsafeMutableBufferPointer(start: scratch.pointer, count: scratch.count))
      results.append((out.array, dQKV.array))
    }
    for result in results.dropFirst() {
      assertClose(FloatBuffer(result.out), results[0].out.map(Double.init), atol: 1e-6, rtol: 1e-6, "out")
      assertClose(FloatBuffer(result.dQKV), results[0].dQKV.map(Double.init), atol: 1e-6, rtol: 1e-6, "dQKV")
    }
  }
}
