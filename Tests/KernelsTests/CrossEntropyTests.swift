// CrossEntropy: loss and probs against a Double log-sum-exp loop, finite differences of the returned loss,
// and the dLoss scaling. Loss tolerance 1e-5 relative: Double accumulation over fp32 log-sum-exp terms.
// Shape letters: N rows, K classes.
import Foundation
import Kernels
import Tensor
import XCTest

final class CrossEntropyTests: XCTestCase {
  let rows = 4, classes = 9
  let labelValues: [Int32] = [0, 8, 3, 3]

  func testForwardMatchesDoubleLogSumExp() {
    let logits = randomBuffer(rows * classes, seed: 1, scale: 3)
    for j in 0..<classes { logits[2 * classes + j] -= 200 }  // a shifted row: the log-sum-exp must be stable
    let probs = FloatBuffer(count: rows * classes)
    let loss = labelValues.withUnsafeBufferPointer {
      CrossEntropy.forward(probs: probs.pointer, logits: logits.readOnly, labels: $0.baseAddress!,
                           rows: rows, classes: classes)
    }
    var expectedLoss = 0.0, expectedProbs = [Double]()
    for r in 0..<rows {
      let row = (0..<classes).map { Double(logits[r * classes + $0]) }
      let m = row.max()!, lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
      expectedLoss += lse - row[Int(labelValues[r])]
      expectedProbs += row.map { exp($0 - lse) }
    }
    expectedLoss /= Double(rows)
    XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-5 * max(1, expectedLoss), "CrossEntropy loss")
    assertClose(probs, expectedProbs, atol: 1e-6, rtol: 1e-5, "CrossEntropy probs")
  }

  func testBackwardMatchesFiniteDifferences() {
    let logits = randomBuffer(rows * classes, seed: 2, scale: 2)
    let probs = FloatBuffer(count: rows * classes), dLogits = FloatBuffer(count: rows * classes)
    let dLoss: Float = 1.7  // not 1, so a dropped dLoss factor fails
    labelValues.withUnsafeBufferPointer { labels in
      checkGradients("CrossEntropy", inputs: [GradientInput(name: "Logits", value: logits, gradient: dLogits)],
                     objective: {
                       Double(dLoss) * Double(CrossEntropy.forward(probs: probs.pointer, logits: logits.readOnly,
                                                                   labels: labels.baseAddress!,
                                                                   rows: rows, classes: classes))
                     },
                     backward: {
                       CrossEntropy.backward(dLogits: dLogits.pointer, probs: probs.readOnly,
                                             labels: labels.baseAddress!, rows: rows, classes: classes, dLoss: dLoss)
                     })
    }
  }
}
