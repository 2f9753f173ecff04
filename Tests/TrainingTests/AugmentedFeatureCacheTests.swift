// The augmented feature cache's pieces that need no model: the plan of (epoch, position) pairs a run visits (a
// naive replay of the sampler is the referee), the memory bound, and the in-memory source's lookups. The whole
// cache (extraction, reuse, repair, locks, sweeps, 2 ranks) is checked end to end in launch/tests/feature-cache.sh.
import Data
import Distributed
import Tensor
@testable import Training
import XCTest

final class AugmentedFeatureCacheTests: XCTestCase {
  func testPlanHoldsEveryPositionEachStepVisitsUnderItsStepsEpoch() {
    for (n, batch, shuffle) in [(10, 4, true), (10, 4, false), (7, 7, true), (5, 8, true)] {
      let sampler = GlobalBatchSampler(datasetSize: n, globalBatch: batch, shuffle: shuffle, seed: 3)
      let steps = 0..<(3 * sampler.stepsPerEpoch + 1)
      let plan = AugmentedFeatureCache.plan(sampler: sampler, steps: steps)
      var expected: [Int: Set<Int>] = [:]
      for step in steps { expected[sampler.epoch(ofStep: step), default: []].formUnion(sampler.positions(step: step)) }
      XCTAssertEqual(Set(plan.keys), Set(expected.keys), "N \(n) B \(batch)")
      for (epoch, positions) in plan {
        XCTAssertEqual(positions, expected[epoch]!.sorted(), "N \(n) B \(batch) epoch \(epoch): sorted, no repeats")
      }
    }
  }

  func testMemoryBoundRefusesWhatDoesNotFit() {
    let plan = [0: Array(0..<1000), 1: Array(0..<1000)]  // 2000 features x 512 x 4 bytes = 4.1 MB per rank
    let world = LocalCollective()
    let features = plan.values.reduce(0) { $0 + $1.count }
    XCTAssertNil(AugmentedFeatureCache.memoryProblem(features: features, dim: 512, world: world, physicalMemory: 16 << 30))
    let problem = AugmentedFeatureCache.memoryProblem(features: features, dim: 512, world: world, physicalMemory: 8_000_000)
    XCTAssertNotNil(problem, "4.1 MB does not fit in half of 8 MB")
    XCTAssertTrue(problem?.contains("2000 features of width 512") ?? false, problem ?? "")
    // A step count whose product with the batch overflows is passed as Int.max: refused, not trapped.
    XCTAssertNotNil(AugmentedFeatureCache.memoryProblem(features: Int.max, dim: 512, world: world))
  }

  func testEpochSourceReadsItsRowsAndRefusesWhatWasNotExtracted() throws {
    let source = EpochFeatureSource(count: 6, dim: 2)
    source.add(epoch: 1, positions: [1, 4], matrix: FloatBuffer([10, 11, 40, 41]))
    let out = FloatBuffer(count: 4)
    try source.features(positions: [4, 1], epoch: 1, into: out.pointer)
    XCTAssertEqual((0..<4).map { out[$0] }, [40, 41, 10, 11])
    XCTAssertThrowsError(try source.features(positions: [2], epoch: 1, into: out.pointer)) { error in
      XCTAssertTrue("\(error)".contains("sample 2 of epoch 1"), "\(error)")
    }
    XCTAssertThrowsError(try source.features(positions: [1], epoch: 0, into: out.pointer))
  }
}
