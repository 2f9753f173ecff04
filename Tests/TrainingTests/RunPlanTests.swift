// RunPlan.positions is the one rule from a step to this rank's samples: for every world size and accumulation,
// the micro-batches of all ranks, rank by rank and micro by micro, are exactly the sampler's global batch in order
// (so R ranks x b train on the samples of one rank x B), and a step count that overflows is refused.
import Data
@testable import Training
import XCTest

final class RunPlanTests: XCTestCase {
  func testEveryRankAndMicroBatchTogetherAreTheGlobalBatch() throws {
    let sampler = GlobalBatchSampler(datasetSize: 37, globalBatch: 12, shuffle: true, seed: 5)
    for (ranks, accumulation) in [(1, 1), (1, 3), (2, 1), (2, 3), (3, 2), (4, 3), (6, 2), (12, 1)] {
      for step in [0, 1, 2, 7] {
        var together: [Int] = []
        for rank in 0..<ranks {
          let plan = RunPlan(sampler: sampler, accumulation: accumulation, rank: rank, ranks: ranks, totalSteps: 10)
          XCTAssertEqual(plan.microBatch, 12 / (ranks * accumulation))
          for micro in 0..<accumulation { together += plan.positions(step: step, micro: micro) }
        }
        XCTAssertEqual(together, sampler.positions(step: step), "\(ranks) rank(s) x \(accumulation), step \(step)")
      }
    }
  }

  func testStepsComeFromTheConfig() throws {
    var config = TrainConfig()
    config.run.batchSize = 8; config.run.accumulation = 2; config.run.epochs = 3; config.run.steps = nil
    let plan = try RunPlan(config: config, datasetSize: 20, rank: 1, ranks: 2)
    XCTAssertEqual(plan.stepsPerEpoch, 3)   // ⌈20 / 8⌉
    XCTAssertEqual(plan.totalSteps, 9)
    XCTAssertEqual(plan.microBatch, 2)
    config.run.epochs = Int.max / 2
    XCTAssertThrowsError(try RunPlan(config: config, datasetSize: 20, rank: 0, ranks: 1)) { error in
      XCTAssertTrue("\(error)".contains("run.epochs"), "\(error)")
    }
    XCTAssertThrowsError(try RunPlan(config: config, datasetSize: 0, rank: 0, ranks: 1))
  }
}
