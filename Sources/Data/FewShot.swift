// Few-shot selection and base/new class subsampling, the two ways CoOp-style benchmarks shrink a split.
// `select` takes `shots` samples per class with our seeded RNG (Dassl's generate_fewshot_dataset draws with
// Python's `random`, so our draws differ; read Dassl's pickle to reproduce a published split exactly).
// `subsample` is CoOp's OxfordPets.subsample_classes: sorted unique train labels, the first ceil(K/2) are "base",
// the rest "new", relabelled from 0. Shape letters: K classes, N samples.
import Foundation
import Tensor

/// Which classes to keep (`--subsample base|new|all`).
public enum ClassSubset: String, CaseIterable, Sendable {  // Codable from Training (ConfigChoice)
  case all, base, new

  /// From a flag or config value: "all", "base" or "new".
  public static func parse(_ text: String) throws -> ClassSubset {
    guard let subset = ClassSubset(rawValue: text.lowercased()) else {
      throw DataError.badSpec(spec: "subsample '\(text)'", reason: "expected base, new or all")
    }
    return subset
  }
}

public enum FewShot {
  /// Up to `shots` samples of every label (all of them when a class has fewer), labels ascending, each class's
  /// picks in their original order. The draw for a label depends only on (seed, stream, label).
  public static func select(_ samples: [Sample], shots: Int, seed: UInt64, stream: UInt64 = 0) -> [Sample] {
    precondition(shots >= 1, "FewShot.select: shots must be >= 1")
    var byLabel: [Int: [Int]] = [:]
    for (index, sample) in samples.enumerated() { byLabel[sample.label, default: []].append(index) }
    var picked: [Sample] = []
    for label in byLabel.keys.sorted() {
      var indices = byLabel[label]!
      if indices.count > shots {
        // Partial Fisher-Yates: the first `shots` slots become a uniform sample without replacement.
        var rng = SeededRNG(seed: derivedSeed(seed, stream, UInt64(bitPattern: Int64(label))))
        for i in 0..<shots {
          let j = i + rng.int(below: indices.count - i)
          indices.swapAt(i, j)
        }
        indices = Array(indices[..<shots]).sorted()
      }
      picked += indices.map { samples[$0] }
    }
    return picked
  }

  /// The labels `subset` keeps, decided from the training split's labels as CoOp does.
  public static func keptLabels(trainLabels: [Int], subset: ClassSubset) -> [Int] {
    let labels = Array(Set(trainLabels)).sorted()
    let baseCount = (labels.count + 1) / 2  // ceil(n / 2)
    switch subset {
    case .all: return labels
    case .base: return Array(labels[..<baseCount])
    case .new: return Array(labels[baseCount...])
    }
  }

  /// Keeps the samples whose label is in `kept` and relabels them by their index in `kept`; class names follow
  /// the new order. With `.all` nothing changes (CoOp returns the splits untouched).
  public static func subsample(_ samples: [Sample], classNames: [String], trainLabels: [Int],
                               subset: ClassSubset) -> (samples: [Sample], classNames: [String]) {
    if subset == .all { return (samples, classNames) }
    let kept = keptLabels(trainLabels: trainLabels, subset: subset)
    let newLabel = Dictionary(uniqueKeysWithValues: kept.enumerated().map { ($1, $0) })
    let relabelled = samples.compactMap { sample -> Sample? in
      guard let label = newLabel[sample.label] else { return nil }
      return Sample(path: sample.path, label: label, caption: sample.caption)
    }
    return (relabelled, kept.map { $0 < classNames.count ? classNames[$0] : String($0) })
  }
}
