// Where a step's image features come from. EFT trains the head on L2-normalised image features f (b, D), b the
// micro-batch and D the joint embedding dim: either computed per step by the frozen image tower on augmented
// images (`TowerFeatureSource`, built by EFTSetting in Training/EFTSession.swift), or read from a precomputed
// matrix (the on-disk feature cache when augmentation is off, and tests). Positions are dataset indices; the
// epoch seeds augmentation.
import Tensor

public protocol ImageFeatureSource: AnyObject {
  /// Feature width D.
  var dim: Int { get }
  /// Samples available (positions are 0..<count).
  var count: Int { get }
  /// Writes L2-normalised features (positions.count, D) into `out`.
  func features(positions: [Int], epoch: Int, into out: MutableFloats) throws
}

/// Features held in memory: row i belongs to dataset position i.
public final class MatrixFeatureSource: ImageFeatureSource {
  public let dim: Int
  public let count: Int
  public let matrix: FloatBuffer

  /// matrix (count, D), rows already L2-normalised.
  public init(matrix: FloatBuffer, count: Int, dim: Int) {
    precondition(matrix.count == count * dim, "MatrixFeatureSource: \(matrix.count) floats for (\(count), \(dim))")
    self.matrix = matrix; self.count = count; self.dim = dim
  }

  public func features(positions: [Int], epoch: Int, into out: MutableFloats) throws {
    for (row, position) in positions.enumerated() {
      (out + row * dim).update(from: matrix.readOnly + position * dim, count: dim)
    }
  }
}

/// Rows of x (rows, dim) scaled to unit L2 norm in place (zero rows stay zero).
public func normalizeRows(_ x: MutableFloats, rows: Int, dim: Int) {
  for r in 0..<rows {
    let row = x + r * dim
    var sum: Float = 0
    for i in 0..<dim { sum += row[i] * row[i] }
    let inv = sum > 0 ? 1 / sum.squareRoot() : 0
    for i in 0..<dim { row[i] *= inv }
  }
}
