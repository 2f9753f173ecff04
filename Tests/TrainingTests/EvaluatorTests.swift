// Sharded evaluation on known logits: zero-shot scores s·f·tᵀ computed by a naive loop give the expected top-1,
// top-5, per-class accuracy and confusion counts; gathered logits come back in dataset order.
import Distributed
import Foundation
import Tensor
import Training
import XCTest

final class EvaluatorTests: XCTestCase {
  func testCountsMatchANaiveLoop() throws {
    let n = 23, k = 7, d = 5
    var rng = SeededRNG(seed: 11)
    let features = FloatBuffer((0..<(n * d)).map { _ in Float(rng.normal()) })
    normalizeRows(features.pointer, rows: n, dim: d)
    let text = FloatBuffer((0..<(k * d)).map { _ in Float(rng.normal()) })
    normalizeRows(text.pointer, rows: k, dim: d)
    let labels = (0..<n).map { $0 % k }
    let logitScale = Float(log(10.0))
    let (result, logits) = try Evaluator(chunk: 4).run(
      source: MatrixFeatureSource(matrix: features, count: n, dim: d), labels: labels, classFeatures: text, classes: k,
      head: nil, logitScale: logitScale, world: LocalCollective(), gatherLogits: true)

    var top1 = 0, top5 = 0
    var correct = [Int](repeating: 0, count: k), total = [Int](repeating: 0, count: k)
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
    for i in 0..<n {
      let scores = (0..<k).map { j in 10 * (0..<d).reduce(0.0) { $0 + Double(features[i * d + $1]) * Double(text[j * d + $1]) } }
      for j in 0..<k { XCTAssertEqual(Double(logits![i * k + j]), scores[j], accuracy: 1e-4, "logit (\(i), \(j))") }
      let order = (0..<k).sorted { scores[$0] > scores[$1] }
      if order[0] == labels[i] { top1 += 1; correct[labels[i]] += 1 }
      if order.prefix(5).contains(labels[i]) { top5 += 1 }
      total[labels[i]] += 1
      confusion[labels[i]][order[0]] += 1
    }
    XCTAssertEqual(result.count, n)
    XCTAssertEqual(result.top1, Double(top1) / Double(n), accuracy: 1e-12)
    XCTAssertEqual(result.top5, Double(top5) / Double(n), accuracy: 1e-12)
    XCTAssertEqual(result.perClassAccuracy, (0..<k).map { Double(correct[$0]) / Double(total[$0]) })
    XCTAssertEqual(result.confusion, confusion)
    XCTAssertEqual(harmonicMean(0.8, 0.6), 2 * 0.8 * 0.6 / 1.4, accuracy: 1e-12)
  }
}
