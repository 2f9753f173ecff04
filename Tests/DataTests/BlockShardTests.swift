// BlockShard: fixed global blocks aligned to position 0, whole blocks per rank. Checked against a naive
// enumeration: every position exactly once, in dataset order, every block the same on any number of ranks.
// Shape letters: N dataset size.
import Data
import XCTest

final class BlockShardTests: XCTestCase {
  func testBlocksAreTheSameOnAnyNumberOfRanks() {
    for count in [0, 1, 4, 5, 16, 17, 64, 100] {
      for blockSize in [1, 3, 5, 32, 64] {
        // The blocks of one rank: [0, b), [b, 2b), ... with the last one cut at count.
        let reference = stride(from: 0, to: count, by: blockSize).map { $0..<min($0 + blockSize, count) }
        for ranks in 1...5 {
          let shard = BlockShard(count: count, blockSize: blockSize, ranks: ranks)
          XCTAssertEqual(shard.blockCount, reference.count, "N \(count) block \(blockSize)")
          let blocks = (0..<ranks).flatMap { shard.blocks(rank: $0) }
          XCTAssertEqual(blocks, reference, "N \(count) block \(blockSize) ranks \(ranks): blocks differ from 1 rank's")
          var next = 0
          for rank in 0..<ranks {
            let mine = shard.positions(rank: rank)
            XCTAssertEqual(mine.lowerBound, next, "rank \(rank) does not continue where rank \(rank - 1) stopped")
            XCTAssertTrue(mine.isEmpty || mine.lowerBound % blockSize == 0, "rank \(rank) starts inside a block")
            XCTAssertEqual(shard.blocks(rank: rank).reduce(0) { $0 + $1.count }, mine.count)
            next = mine.upperBound
          }
          XCTAssertEqual(next, count, "N \(count) block \(blockSize) ranks \(ranks): positions not all covered")
          XCTAssertEqual(shard.counts(width: 3), (0..<ranks).map { 3 * shard.positions(rank: $0).count })
        }
      }
    }
  }

  func testWorkIsBalancedByWholeBlocks() {
    // 16 positions in blocks of 5 (5, 5, 5, 1): 2 ranks take 2 blocks each, 3 ranks 2 + 1 + 1.
    XCTAssertEqual((0..<2).map { BlockShard(count: 16, blockSize: 5, ranks: 2).positions(rank: $0) }, [0..<10, 10..<16])
    XCTAssertEqual((0..<3).map { BlockShard(count: 16, blockSize: 5, ranks: 3).positions(rank: $0) },
                   [0..<10, 10..<15, 15..<16])
    // More ranks than blocks: the last ranks get nothing.
    XCTAssertEqual((0..<3).map { BlockShard(count: 4, blockSize: 64, ranks: 3).positions(rank: $0) }, [0..<4, 4..<4, 4..<4])
  }
}
