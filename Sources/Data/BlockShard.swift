// Fixed global blocks for work whose result must not depend on the number of ranks: evaluation, feature
// extraction and test-time training. Block b covers dataset positions [b·blockSize, min((b+1)·blockSize, N)),
// aligned to position 0 whatever the world size; each rank takes a contiguous run of whole blocks, so every block
// is computed with the same rows and shapes on 1, 2 or 3 ranks and a BLAS kernel whose rounding depends on the
// product's shape (OpenBLAS's Zen kernel does) still gives bit-identical results, given the same threads per rank.
// Shape letters: N dataset size.

/// Ranks can get unequal work (at most one block more); results stay in dataset order.
public struct BlockShard: Equatable, Sendable {
  /// N: positions 0..<count.
  public let count: Int
  /// Positions per block (the last block may be shorter).
  public let blockSize: Int
  /// World size.
  public let ranks: Int

  public init(count: Int, blockSize: Int, ranks: Int) {
    precondition(count >= 0 && blockSize >= 1 && ranks >= 1, "BlockShard: count \(count), block \(blockSize), ranks \(ranks)")
    self.count = count; self.blockSize = blockSize; self.ranks = ranks
  }

  /// ⌈N / blockSize⌉.
  public var blockCount: Int { count / blockSize + (count % blockSize == 0 ? 0 : 1) }

  /// The dataset positions of `rank`: its blocks, back to back (empty when there are more ranks than blocks).
  public func positions(rank: Int) -> Range<Int> {
    let blocks = GlobalBatchSampler.shardRange(count: blockCount, rank: rank, size: ranks)
    return Swift.min(count, blocks.lowerBound * blockSize)..<Swift.min(count, blocks.upperBound * blockSize)
  }

  /// `rank`'s blocks in order, each a range of dataset positions.
  public func blocks(rank: Int) -> [Range<Int>] {
    let mine = positions(rank: rank)
    return stride(from: mine.lowerBound, to: mine.upperBound, by: blockSize).map {
      $0..<Swift.min($0 + blockSize, mine.upperBound)
    }
  }

  /// Values each rank contributes when every position has `width` of them (the counts of an all-gather-v).
  public func counts(width: Int) -> [Int] { (0..<ranks).map { positions(rank: $0).count * width } }
}
