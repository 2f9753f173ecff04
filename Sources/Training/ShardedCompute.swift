// "Shard, compute, gather" for per-sample work whose result must not depend on the number of ranks: image
// features for EFT and evaluation, evaluation logits, test-time training outcomes. Rank r computes its whole
// blocks of the dataset (BlockShard: fixed global blocks aligned to position 0) and one all-gather puts every
// rank's rows back in dataset order on every rank. With the same threads per rank, the result is bit-identical
// on 1, 2 or 3 ranks: each block sees the same rows and shapes whatever the world size.
// Letters: N dataset size, W values per position.
import Data
import Distributed
import Tensor

extension BlockShard {
  /// The shard of `count` positions over `world`'s ranks.
  init(count: Int, blockSize: Int, world: Collective) {
    self.init(count: count, blockSize: blockSize, ranks: world.size)
  }

  /// Runs `compute` on each of this rank's blocks in order. It writes the block's rows (block.count, W) at `out`,
  /// which points into local (mine.count, W), returned.
  func computeLocal(rank: Int, width: Int,
                    _ compute: (_ block: Range<Int>, _ out: MutableFloats) throws -> Void) rethrows -> FloatBuffer {
    let mine = positions(rank: rank)
    let local = FloatBuffer(count: Swift.max(1, mine.count * width))
    for block in blocks(rank: rank) {
      // A stop during a mid-run evaluation: the remaining rows stay zero and the loop discards the result.
      if StopSignal.skipsRemainingWork() { break }
      try compute(block, local.pointer + (block.lowerBound - mine.lowerBound) * width)
    }
    return local
  }

  /// Every rank's local rows (mine.count, W) gathered into (N, W) in dataset order, on every rank.
  func gather(_ local: FloatBuffer, width: Int, world: Collective) throws -> FloatBuffer {
    let all = FloatBuffer(count: Swift.max(1, count * width))
    try world.allGatherV(local.readOnly, counts: counts(width: width), into: all.pointer)
    return all
  }
}

/// (N, W) for positions 0..<count, computed in fixed global blocks of `blockSize` over the ranks and gathered in
/// dataset order on every rank (see the file header for why blocks).
func computeInBlocks(count: Int, width: Int, blockSize: Int, world: Collective,
                     _ compute: (_ block: Range<Int>, _ out: MutableFloats) throws -> Void) throws -> FloatBuffer {
  let shard = BlockShard(count: count, blockSize: blockSize, world: world)
  let local = try shard.computeLocal(rank: world.rank, width: width, compute)
  return try shard.gather(local, width: width, world: world)
}
