// The global-batch sampler against its definition written as naive loops: (B·s + j) mod N without shuffle,
// one permutation per epoch with shuffle (each epoch's slots cover 0..<N exactly once), identical across
// instances, and contiguous shards whose concatenation is the global batch at every world size.
// Shape letters: N dataset size, B global batch.
import XCTest
@testable import Data

final class GlobalBatchSamplerTests: XCTestCase {
  func testSequentialWrapsAcrossEpochs() {
    let sampler = GlobalBatchSampler(datasetSize: 10, globalBatch: 4, shuffle: false, seed: 1)
    for step in 0..<8 {
      XCTAssertEqual(sampler.positions(step: step), (0..<4).map { (4 * step + $0) % 10 }, "step \(step)")
    }
    XCTAssertEqual(sampler.epoch(ofStep: 2), 0)  // slots 8..11 start in epoch 0
    XCTAssertEqual(sampler.epoch(ofStep: 3), 1)  // slots 12..15
    XCTAssertEqual(sampler.epoch(ofStep: 5), 2)  // slots 20..23
  }

  func testShuffledEpochsArePermutationsContinuedAcrossBoundaries() {
    let n = 10, b = 4
    let sampler = GlobalBatchSampler(datasetSize: n, globalBatch: b, shuffle: true, seed: 42)
    // 10 steps of 4 = 40 slots = 4 epochs; slot g reads permutation(g / N)[g % N].
    let stream = (0..<10).flatMap { sampler.positions(step: $0) }
    for epoch in 0..<4 {
      let slice = Array(stream[(epoch * n)..<((epoch + 1) * n)])
      XCTAssertEqual(slice.sorted(), Array(0..<n), "epoch \(epoch) covers every sample once")
      XCTAssertEqual(slice, sampler.permutation(epoch: epoch), "epoch \(epoch) follows its permutation")
    }
    XCTAssertNotEqual(sampler.permutation(epoch: 0), sampler.permutation(epoch: 1))
    XCTAssertNotEqual(sampler.permutation(epoch: 0), Array(0..<n))
    // Every rank builds its own sampler: same seed, same batches; another seed, another order.
    let twin = GlobalBatchSampler(datasetSize: n, globalBatch: b, shuffle: true, seed: 42)
    XCTAssertEqual((0..<10).flatMap { twin.positions(step: $0) }, stream)
    let other = GlobalBatchSampler(datasetSize: n, globalBatch: b, shuffle: true, seed: 43)
    XCTAssertNotEqual((0..<10).flatMap { other.positions(step: $0) }, stream)
    // Asking out of order (as after a resume) gives the same answer.
    XCTAssertEqual(twin.positions(step: 7), sampler.positions(step: 7))
  }

  func testBatchLargerThanDataset() {
    let sampler = GlobalBatchSampler(datasetSize: 3, globalBatch: 7, shuffle: true, seed: 9)
    let batch = sampler.positions(step: 1)  // slots 7..13: epochs 2, 3, 4
    XCTAssertEqual(batch, (7..<14).map { sampler.permutation(epoch: $0 / 3)[$0 % 3] })
  }

  func testDropLast() {
    let plain = GlobalBatchSampler(datasetSize: 10, globalBatch: 4, shuffle: false, seed: 0, dropLast: true)
    XCTAssertEqual(plain.stepsPerEpoch, 2)
    XCTAssertEqual((0..<4).map { plain.positions(step: $0) }, [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7]])
    XCTAssertEqual((0..<5).map { plain.epoch(ofStep: $0) }, [0, 0, 1, 1, 2])
    let shuffled = GlobalBatchSampler(datasetSize: 10, globalBatch: 4, shuffle: true, seed: 3, dropLast: true)
    XCTAssertEqual(shuffled.positions(step: 3), Array(shuffled.permutation(epoch: 1)[4..<8]))
    XCTAssertThrowsError(try GlobalBatchSampler.check(datasetSize: 3, globalBatch: 4, dropLast: true))
    XCTAssertThrowsError(try GlobalBatchSampler.check(datasetSize: 0, globalBatch: 4, dropLast: false))
    XCTAssertThrowsError(try GlobalBatchSampler.check(datasetSize: 5, globalBatch: 0, dropLast: false))
    XCTAssertNoThrow(try GlobalBatchSampler.check(datasetSize: 3, globalBatch: 4, dropLast: false))
  }

  func testShardsAreContiguousAndCoverTheBatch() {
    XCTAssertEqual((0..<3).map { GlobalBatchSampler.shard(Array(10..<20), rank: $0, size: 3) },
                   [[10, 11, 12, 13], [14, 15, 16], [17, 18, 19]])
    for batch in [1, 2, 7, 8, 64, 65] {
      for size in [1, 2, 3, 4, 8, 9] {
        let positions = (0..<batch).map { $0 * 7 % 101 }
        let shards = (0..<size).map { GlobalBatchSampler.shard(positions, rank: $0, size: size) }
        XCTAssertEqual(shards.flatMap { $0 }, positions, "B \(batch) size \(size): shards concatenate to the batch")
        // The first (B mod size) ranks hold one more.
        let expected = (0..<size).map { batch / size + ($0 < batch % size ? 1 : 0) }
        XCTAssertEqual(shards.map(\.count), expected, "B \(batch) size \(size)")
      }
    }
  }
}
