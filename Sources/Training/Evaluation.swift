// Sharded evaluation: each rank scores its whole blocks of the evaluation set (BlockShard, so the logits are
// the same on any number of ranks), counts are summed with one allreduce, the coordinator logs. Scores are the
// RAda head's logits, or zero-shot CLIP's s·f·tᵀ when no head is given (the baseline with the same prompts).
// Reports top-1/top-5, per-class accuracy and, for up to `confusionLimit` classes, the confusion counts; logits can
// be gathered in dataset order for `rada eval`.
import Data
import Foundation
import Distributed
import Kernels
import RAda
import Tensor

public struct EvalResult: Codable, Equatable {
  public var count: Int
  public var top1: Double
  public var top5: Double
  public var perClassAccuracy: [Double]
  public var meanPerClassAccuracy: Double
  /// confusion[true][predicted], only for small class counts.
  public var confusion: [[Int]]?

  /// Metric lines for metrics.jsonl with a prefix ("val", "base", "new").
  public func metrics(prefix: String) -> [String: Any] {
    ["\(prefix)/top1": top1, "\(prefix)/top5": top5, "\(prefix)/mean_per_class": meanPerClassAccuracy,
     "\(prefix)/count": count]
  }
}

/// Zero-shot CLIP's scores: logits (N, K) = s · f (N, D) · t (K, D)ᵀ, with s the linear logit scale and f, t
/// L2-normalised image and class features.
public func zeroShotLogits(features: Floats, count: Int, classFeatures: Floats, classes: Int, dim: Int, scale: Float,
                           into logits: MutableFloats) {
  gemm(.noTranspose, .transpose, m: count, n: classes, k: dim, alpha: scale, a: features, b: classFeatures, c: logits)
}

/// Harmonic mean of base and new accuracy, as CoOp/CoCoOp report it.
public func harmonicMean(_ a: Double, _ b: Double) -> Double { a + b > 0 ? 2 * a * b / (a + b) : 0 }

public struct Evaluator {
  public var chunk = 64
  public var confusionLimit = 100

  public init(chunk: Int = 64) { self.chunk = chunk }

  /// Evaluates `labels.count` samples. `head` nil = zero-shot. `classFeatures` t (K, D) normalised.
  /// When `gatherLogits` is set, returns every sample's logits (N, K) in dataset order on every rank.
  public func run(source: ImageFeatureSource, labels: [Int], classFeatures: FloatBuffer, classes: Int,
                  head: RAdaHead?, logitScale: Float, world: Collective,
                  gatherLogits: Bool = false) throws -> (result: EvalResult, logits: FloatBuffer?) {
    let dim = source.dim, total = labels.count
    // Fixed global blocks of `chunk` samples (BlockShard): the logits do not depend on the number of ranks.
    let shard = BlockShard(count: total, blockSize: chunk, world: world)
    let mine = shard.positions(rank: world.rank)
    let features = FloatBuffer(count: chunk * dim)
    let workspace = try head.map { try RAdaWorkspace(config: $0.config, maxBatch: chunk, classes: classes, training: false) }
    let scale = Float(exp(Double(logitScale)))
    let localLogits = try shard.computeLocal(rank: world.rank, width: classes) { block, out in
      let n = block.count
      try source.features(positions: Array(block), epoch: 0, into: features.pointer)
      if let head, let workspace {
        let logits = try head.forward(imageFeatures: features.readOnly, textFeatures: classFeatures.readOnly,
                                      batch: n, classes: classes, logitScale: logitScale, workspace: workspace)
        out.update(from: logits, count: n * classes)
      } else {
        zeroShotLogits(features: features.readOnly, count: n, classFeatures: classFeatures.readOnly, classes: classes,
                       dim: dim, scale: scale, into: out)
      }
    }

    // counts: [top1, top5, per-class correct (K), per-class total (K), confusion (K·K if small)]
    let withConfusion = classes <= confusionLimit
    var counts = [Double](repeating: 0, count: 2 + 2 * classes + (withConfusion ? classes * classes : 0))
    for (row, position) in mine.enumerated() {
      let logits = localLogits.readOnly + row * classes
      let label = labels[position]
      let value = logits[label]
      var rank = 0, argmax = 0
      for j in 0..<classes {
        if logits[j] > value || (logits[j] == value && j < label) { rank += 1 }
        if logits[j] > logits[argmax] { argmax = j }
      }
      if rank == 0 { counts[0] += 1 }
      if rank < 5 { counts[1] += 1 }
      counts[2 + label] += rank == 0 ? 1 : 0
      counts[2 + classes + label] += 1
      if withConfusion { counts[2 + 2 * classes + label * classes + argmax] += 1 }
    }
    try world.allReduceSum(&counts)
    // Summed over the ranks: each is a whole count of at most N samples, or another rank sent damaged data
    // (every rank holds the same sums, so all refuse alike).
    guard counts.allSatisfy({ Checked.integer($0, in: 0...total) != nil }) else {
      throw AgreedFailure(description: "evaluation: the counts summed over the ranks are not whole numbers of at most "
        + "\(total) samples (damaged data from a rank). Rerun; if it repeats, check that every rank runs the same rada.")
    }
    let perClass = (0..<classes).map { k in counts[2 + classes + k] > 0 ? counts[2 + k] / counts[2 + classes + k] : 0 }
    let present = (0..<classes).filter { counts[2 + classes + $0] > 0 }
    let result = EvalResult(
      count: total, top1: total > 0 ? counts[0] / Double(total) : 0, top5: total > 0 ? counts[1] / Double(total) : 0,
      perClassAccuracy: perClass,
      meanPerClassAccuracy: present.isEmpty ? 0 : present.map { perClass[$0] }.reduce(0, +) / Double(present.count),
      confusion: withConfusion ? (0..<classes).map { t in (0..<classes).map { p in Int(counts[2 + 2 * classes + t * classes + p]) } } : nil)

    guard gatherLogits else { return (result, nil) }
    return (result, try shard.gather(localLogits, width: classes, world: world))
  }
}
