// The one backward convention: every kernel backward ADDS into its gradient outputs; the kernels that offer
// writing instead (Linear's dX, GELU/QuickGELU's dX, Attention's dQKV) call it `overwrite` and default to false.
// Each check runs backward twice: once with `overwrite` into a buffer full of garbage, once adding into a buffer
// holding a known offset; the added result minus the offset must equal the written one.
// Shape letters: N rows, B batch, T tokens, C width, H heads, Dh head dim.
import Kernels
import Tensor
import XCTest

// Tolerance atol 1e-6 + rtol 1e-6: written and added values are the same products (sgemm with beta 0 vs beta 1
// over the same blocks); subtracting an O(1) offset back out costs one rounding of the sum (~6e-8 relative);
// a missing write (garbage left in) or a missing add (offset lost) gives O(1) errors.

final class BackwardConventionTests: XCTestCase {
  /// Runs `backward(dX, overwrite)` twice as described above and compares.
  func checkConvention(_ name: String, count: Int,
                       backward: (_ dX: MutableFloats, _ overwrite: Bool) -> Void,
                       file: StaticString = #filePath, line: UInt = #line) {
    let written = randomBuffer(count, seed: 901, scale: 100)  // garbage: must be overwritten
    backward(written.pointer, true)
    let offset = randomBuffer(count, seed: 902)
    let added = FloatBuffer(offset.array)
    backward(added.pointer, false)
    let addedMinusOffset = (0..<count).map { Double(added[$0]) - Double(offset[$0]) }
    assertClose(written, addedMinusOffset, atol: 1e-6, rtol: 1e-6,
                "\(name): overwrite writes what the default adds", file: file, line: line)
  }

  func testLinearDXOverwriteAndAdd() {
    let rows = 5, inFeatures = 7, outFeatures = 3
    let x = randomBuffer(rows * inFeatures, seed: 1), weight = randomBuffer(outFeatures * inFeatures, seed: 2)
    let dOut = randomBuffer(rows * outFeatures, seed: 3)
    // dX (N, in) only; dWeight/dBias are always added (covered by LinearTests' finite differences).
    checkConvention("Linear dX", count: rows * inFeatures) { dX, overwrite in
      Linear.backward(dX: dX, dWeight: nil, dBias: nil, dOut: dOut.readOnly, x: x.readOnly, weight: weight.readOnly,
                      rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, overwrite: overwrite)
    }
  }

  func testActivationsOverwriteAndAdd() {
    let count = 37
    let x = randomBuffer(count, seed: 4, scale: 2), dOut = randomBuffer(count, seed: 5)
    checkConvention("GELU dX", count: count) { dX, overwrite in
      GELU.backward(dX: dX, dOut: dOut.readOnly, x: x.readOnly, count: count, overwrite: overwrite)
    }
    checkConvention("QuickGELU dX", count: count) { dX, overwrite in
      QuickGELU.backward(dX: dX, dOut: dOut.readOnly, x: x.readOnly, count: count, overwrite: overwrite)
    }
  }

  func testAttentionOverwriteAndAdd() {
    let batch = 2, tokens = 5, heads = 2, headDim = 3, width = heads * headDim
    let qkv = randomBuffer(batch * tokens * 3 * width, seed: 6)
    let out = FloatBuffer(count: batch * tokens * width), probs = FloatBuffer(count: batch * heads * tokens * tokens)
    let dOut = randomBuffer(batch * tokens * width, seed: 7)
    for causal in [false, true] {
      // probs (B, H, T, T) from forward; dQKV (B, T, 3C) is the output under test
      Attention.forward(out: out.pointer, probs: probs.pointer, qkv: qkv.readOnly, batch: batch, tokens: tokens,
                        heads: heads, headDim: headDim, causal: causal)
      checkConvention("Attention dQKV (causal \(causal))", count: batch * tokens * 3 * width) { dQKV, overwrite in
        Attention.backward(dQKV: dQKV, dOut: dOut.readOnly, qkv: qkv.readOnly, probs: probs.readOnly, batch: batch,
                           tokens: tokens, heads: heads, headDim: headDim, causal: causal, overwrite: overwrite)
      }
    }
  }
}
