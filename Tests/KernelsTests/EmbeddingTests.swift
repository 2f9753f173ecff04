// Embedding: forward is an exact row copy; backward scatters rows and repeated ids accumulate; the
// finite-difference check covers the same through the shared harness (it is linear, so FD is exact up to fp32).
// Shape letters: N rows, V vocab, C width.
import Kernels
import Tensor
import XCTest

final class EmbeddingTests: XCTestCase {
  let vocab = 6, channels = 5
  let idValues: [Int32] = [2, 0, 5, 2, 2]  // id 2 three times

  func testForwardCopiesRows() {
    let table = randomBuffer(vocab * channels, seed: 1), out = FloatBuffer(count: idValues.count * channels)
    idValues.withUnsafeBufferPointer {
      Embedding.forward(out: out.pointer, ids: $0.baseAddress!, table: table.readOnly, count: idValues.count,
                        channels: channels)
    }
    var expected = [Double]()
    for id in idValues { for c in 0..<channels { expected.append(Double(table[Int(id) * channels + c])) } }
    assertClose(out, expected, atol: 0, rtol: 0, "Embedding out")
  }

  func testBackwardMatchesFiniteDifferencesAndAccumulatesRepeats() {
    let table = randomBuffer(vocab * channels, seed: 2), r = randomBuffer(idValues.count * channels, seed: 3)
    let out = FloatBuffer(count: idValues.count * channels), dTable = FloatBuffer(count: table.count)
    idValues.withUnsafeBufferPointer { ids in
      checkGradients("Embedding", inputs: [GradientInput(name: "Table", value: table, gradient: dTable)],
                     objective: {
                       Embedding.forward(out: out.pointer, ids: ids.baseAddress!, table: table.readOnly,
                                         count: idValues.count, channels: channels)
                       return dotDouble(r, out)
                     },
                     backward: {
                       Embedding.backward(dTable: dTable.pointer, dOut: r.readOnly, ids: ids.baseAddress!,
                                          count: idValues.count, channels: channels)
                     })
    }
    // Closed form after one call: row 2 = r[0] + r[3] + r[4], rows 1, 3, 4 untouched.
    dTable.zero()
    idValues.withUnsafeBufferPointer {
      Embedding.backward(dTable: dTable.pointer, dOut: r.readOnly, ids: $0.baseAddress!, count: idValues.count,
                         channels: channels)
    }
    var expected = [Double](repeating: 0, count: table.count)
    for (n, id) in idValues.enumerated() {
      for c in 0..<channels { expected[Int(id) * channels + c] += Double(r[n * channels + c]) }
    }
    assertClose(dTable, expected, atol: 1e-6, rtol: 1e-6, "Embedding dTable closed form")
  }
}
