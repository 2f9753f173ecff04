// A stop during a mid-run evaluation: BlockShard.computeLocal skips the remaining blocks (rows stay zero) and says
// so, but only while the loop marks an evaluation as abandonable; otherwise (feature extraction, TTT, the final
// evaluation) every block is computed. launch/tests/cluster-faults.sh checks the whole path on 2 ranks.
// Shape letters: N positions, 1 value per position here.
@testable import Training
import Data
import Distributed
import XCTest

final class StopDuringEvaluationTests: XCTestCase {
  override func tearDown() {
    StopSignal.reset(); StopSignal.abandonsEvaluation = false; StopSignal.skippedWork = false
  }

  /// Computes 10 positions in blocks of 3; each computed row holds position + 1; the stop arrives in block 2.
  private func run(abandonable: Bool) -> (rows: [Float], blocks: Int) {
    StopSignal.reset(); StopSignal.abandonsEvaluation = abandonable; StopSignal.skippedWork = false
    var computed = 0
    let shard = BlockShard(count: 10, blockSize: 3, world: LocalCollective())
    let local = shard.computeLocal(rank: 0, width: 1) { block, out in
      computed += 1
      for (i, position) in block.enumerated() { out[i] = Float(position + 1) }
      if computed == 2 { StopSignal.request() }
    }
    return (local.array, computed)
  }

  func testAStopSkipsTheRemainingBlocksOfAnAbandonableEvaluation() {
    let (rows, blocks) = run(abandonable: true)
    XCTAssertEqual(blocks, 2)
    XCTAssertEqual(rows, [1, 2, 3, 4, 5, 6, 0, 0, 0, 0])
    XCTAssertTrue(StopSignal.skippedWork, "the loop must learn that this evaluation is incomplete")
  }

  func testOtherShardedWorkIgnoresTheStop() {
    let (rows, blocks) = run(abandonable: false)
    XCTAssertEqual(blocks, 4)
    XCTAssertEqual(rows, (1...10).map(Float.init))
    XCTAssertFalse(StopSignal.skippedWork)
  }
}
