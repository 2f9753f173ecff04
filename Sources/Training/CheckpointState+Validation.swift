// Range checks on a checkpoint's state.json before resume uses it (README "Input safety"): steps, epochs and
// world size are whole numbers in range, and the scalars resume turns into integers (optimizer_step,
// best_step) are finite whole numbers, so a hand-edited or damaged file is refused instead of trapping in Int(...).
import Foundation
import Tensor

extension CheckpointState {
  /// Largest step or epoch accepted (2^40: far beyond any run).
  static let maximumCount = 1 << 40
  /// Scalars that resume converts to Int.
  static let integerScalars = ["optimizer_step", "best_step"]

  /// What is out of range in this state, or nil when everything is usable.
  public var problem: String? {
    for (name, value, range) in [("step", step, 0...Self.maximumCount), ("epoch", epoch, 0...Self.maximumCount),
                                 ("worldSize", worldSize, 1...(1 << 24))] where !range.contains(value) {
      return "\(name) is \(value), outside \(range.lowerBound)...\(range.upperBound)"
    }
    for name in Self.integerScalars {
      if let value = scalars[name], Checked.integer(value, in: 0...Self.maximumCount) == nil {
        return "scalars.\(name) is \(value), not a whole number in 0...\(Self.maximumCount)"
      }
    }
    return nil
  }
}
