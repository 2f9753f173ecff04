// The backward convention inside the RAda head (README "Shape letters"; Kernels' BackwardConventionTests for
// the kernels): linearBackward adds into dX and writes it with `overwrite`; RelationAttention.backward adds into
// a sample's dQuery1, dQuery3, dKey, dValue (writes them with `overwrite`) and always adds into dQuery2.
// Shape letters: N rows, K classes, D joint embedding dim, H heads, Dh = D / H.
import Kernels
import Tensor
import XCTest
@testable import RAda

// Each check runs backward twice: once with `overwrite` into buffers full of garbage, once adding into buffers
// holding a known offset; the added result minus the offset must equal the written one. Tolerance 1e-6 + 1e-6·|ref|:
// the same products either way (sgemm beta 0 vs beta 1), plus one rounding when the O(1) offset is taken back out;
// a missing write or a lost offset gives O(1) errors.

final class RAdaBackwardConventionTests: XCTestCase {
  func buffer(_ count: Int, seed: UInt64, scale: Float = 1) -> FloatBuffer {
    var rng = SeededRNG(seed: seed)
    return FloatBuffer((0..<count).map { _ in Float(rng.normal()) * scale })
  }

  func assertWrittenEqualsAddedMinusOffset(_ written: FloatBuffer, _ added: FloatBuffer, _ offset: FloatBuffer,
                                           _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    let addedMinusOffset = zip(added.array, offset.array).map { $0 - $1 }
    assertClose(written.array, addedMinusOffset, what, tolerance: { 1e-6 + 1e-6 * abs($0) }, file: file, line: line)
  }

  func testLinearBackwardDXOverwriteAndAdd() {
    let rows = 6, dim = 8
    let x = buffer(rows * dim, seed: 1), weight = buffer(dim * dim, seed: 2), dOut = buffer(rows * dim, seed: 3)
    let dWeight = FloatBuffer(count: dim * dim), dBias = FloatBuffer(count: dim)  // scratch here: dX is under test
    let written = buffer(rows * dim, seed: 5, scale: 100)  // garbage: must be overwritten
    let offset = buffer(rows * dim, seed: 4), added = FloatBuffer(offset.array)
    for (dX, overwrite) in [(written, true), (added, false)] {
      // dX (N, D) (+)= dOut (N, D) · weight (D, D)
      RAdaHead.linearBackward(dX: dX.pointer, dWeight: dWeight.pointer, dBias: dBias.pointer, dOut: dOut.readOnly,
                              x: x.readOnly, weight: weight.readOnly, rows: rows, dim: dim, overwrite: overwrite)
    }
    assertWrittenEqualsAddedMinusOffset(written, added, offset, "linearBackward dX")
  }

  func testRelationAttentionBackwardOverwriteAndAdd() {
    let k = 5, d = 8, heads = 2
    let sizes = AttentionSizes(classes: k, dim: d, heads: heads, logitScale: 0.7)
    let query1 = buffer(d, seed: 11), query2 = buffer(k * d, seed: 12), query3 = buffer(k * d, seed: 13)
    let key = buffer(k * d, seed: 14), value = buffer(k * d, seed: 15), dAttended = buffer(k * d, seed: 16)
    let attended = FloatBuffer(count: k * d), lse2 = FloatBuffer(count: heads), lse3 = FloatBuffer(count: heads)
    let rowSoftmax1 = FloatBuffer(count: heads * k), scratch = FloatBuffer(count: 3 * k * k + 2 * k)
    // attended (K, D); logSumExp2/3 (H) and rowSoftmax1 (H, K) saved for backward
    RelationAttention.forward(attended: attended.pointer, logSumExp2: lse2.pointer, logSumExp3: lse3.pointer,
                              rowSoftmax1: rowSoftmax1.pointer, query1: query1.readOnly, query2: query2.readOnly,
                              query3: query3.readOnly, key: key.readOnly, value: value.readOnly,
                              scratch: scratch.pointer, sizes: sizes)
    // dQuery1 (D), dQuery2 (K, D), dQuery3 (K, D), dKey (K, D), dValue (K, D)
    let names = ["dQuery1", "dQuery2", "dQuery3", "dKey", "dValue"], counts = [d, k * d, k * d, k * d, k * d]
    func run(_ out: [FloatBuffer], overwrite: Bool) {
      RelationAttention.backward(dQuery1: out[0].pointer, dQuery2: out[1].pointer, dQuery3: out[2].pointer,
                                 dKey: out[3].pointer, dValue: out[4].pointer, dAttended: dAttended.readOnly,
                                 query1: query1.readOnly, query2: query2.readOnly, query3: query3.readOnly,
                                 key: key.readOnly, value: value.readOnly, logSumExp2: lse2.readOnly,
                                 logSumExp3: lse3.readOnly, rowSoftmax1: rowSoftmax1.readOnly,
                                 scratch: scratch.pointer, sizes: sizes, overwrite: overwrite)
    }
    // dQuery2 is the calling thread's accumulator, added into in both runs: it starts at zero in the written one.
    let written = counts.indices.map { i in
      i == 1 ? FloatBuffer(count: counts[i]) : buffer(counts[i], seed: 20 + UInt64(i), scale: 100)
    }
    run(written, overwrite: true)
    let offsets = counts.indices.map { buffer(counts[$0], seed: 30 + UInt64($0)) }
    let added = offsets.map { FloatBuffer($0.array) }
    run(added, overwrite: false)
    for i in names.indices {
      assertWrittenEqualsAddedMinusOffset(written[i], added[i], offsets[i], "RelationAttention \(names[i])")
    }
  }
}
