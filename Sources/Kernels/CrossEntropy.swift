// Mean cross-entropy over rows, torch.nn.functional.cross_entropy(logits, labels) with reduction "mean".
// Shapes: logits, probs (N, K); labels (N) Int32 with 0 ≤ label < K. probs = softmax(logits) is saved for
// backward. The loss uses log-sum-exp (never log of a probability that may underflow) summed in Double.
// Shape letters: N rows, K classes (in the contrastive loss the classes are the gathered rows).
import Foundation
import Tensor

public enum CrossEntropy {
  /// Writes probs (N, K) and returns mean_n [logsumexp(logits_n) − logits_n[label_n]].
  public static func forward(probs: MutableFloats, logits: Floats, labels: UnsafePointer<Int32>,
                             rows: Int, classes: Int) -> Float {
    var total = 0.0
    for r in 0..<rows {
      let x = logits + r * classes, p = probs + r * classes
      let label = Int(labels[r])
      precondition(label >= 0 && label < classes,
                   "CrossEntropy: label \(label) of row \(r) is outside 0..<\(classes)")
      let m = rowMax(x, classes)
      for j in 0..<classes { p[j] = fastExp(x[j] - m) }
      let sum = rowSum(p, classes)
      let inverseSum = 1 / sum
      for j in 0..<classes { p[j] *= inverseSum }
      total += log(Double(sum)) - Double(x[label] - m)
    }
    return rows > 0 ? Float(total / Double(rows)) : 0
  }

  /// Adds into dLogits (N, K): d(mean loss)/d logits = (probs − onehot(label)) / N, times dLoss.
  public static func backward(dLogits: MutableFloats, probs: Floats, labels: UnsafePointer<Int32>,
                              rows: Int, classes: Int, dLoss: Float) {
    let scale = dLoss / Float(rows)
    for r in 0..<rows {
      let p = probs + r * classes, d = dLogits + r * classes
      for j in 0..<classes { d[j] += scale * p[j] }
      d[Int(labels[r])] -= scale
    }
  }
}
