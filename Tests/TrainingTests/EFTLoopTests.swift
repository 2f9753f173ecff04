// The EFT trainer path end to end on fixed features: TrainLoop + EFTModel + Optimizer(SGD) + the fixed-order
// sampler reproduce PyTorch's 20-step loss sequence (fixture from Tests/RAdaTests/Fixtures/generate_rada_fixtures.py:
// the reference head trained with torch.optim.SGD, positions (B·s+j) mod N). Tolerance 1e-4 relative: float32 vs
// torch's float64 drifts by ~1e-6 over 20 steps. Also: gradient accumulation equals the full batch.
import Data
import Distributed
import Foundation
import RAda
import Tensor
import Training
import XCTest

final class EFTLoopTests: XCTestCase {
  var fixtures: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("RAdaTests/Fixtures")
  }
  func array(_ name: String) throws -> NPYArray { try NPYArray.read(path: fixtures.appendingPathComponent(name + ".npy").path) }

  struct Setup {
    let meta: [String: Any]
    let loop: TrainLoop
    let head: RAdaHead
  }

  func makeLoop(accumulation: Int = 1, steps: Int? = nil) throws -> Setup {
    let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("train.json"))) as! [String: Any]
    let n = meta["samples"] as! Int, batch = meta["batch"] as! Int, k = meta["classes"] as! Int, d = meta["dim"] as! Int
    let config = RAdaConfig(dim: d, heads: 8, temperature: Float(meta["temperature"] as! Double),
                            alpha: Float(meta["alpha"] as! Double), loss: .linf)
    let head = try RAdaHead(config: config, seed: 99)
    let initial = try array("train_params").floats()
    head.parameters.pointer.update(from: initial, count: initial.count)
    let source = MatrixFeatureSource(matrix: FloatBuffer(try array("train_image").floats()), count: n, dim: d)
    let model = try EFTModel(head: head, source: source, labels: try array("train_labels").ints(),
                             classFeatures: FloatBuffer(try array("train_text").floats()), classes: k,
                             logitScale: Float(meta["logit_scale"] as! Double), microBatch: batch / accumulation)
    let optimizer = try Optimizer(config: OptimizerConfig(kind: .sgd), table: head.table)
    let sampler = GlobalBatchSampler(datasetSize: n, globalBatch: batch, shuffle: false, seed: 0)
    let lr = meta["lr"] as! Double
    let totalSteps = steps ?? (meta["steps"] as! Int)
    let plan = RunPlan(sampler: sampler, accumulation: accumulation, rank: 0, ranks: 1, totalSteps: totalSteps)
    let loop = try TrainLoop(world: LocalCollective(), model: model, optimizer: optimizer, plan: plan,
                             options: LoopOptions(totalSteps: totalSteps, globalBatch: batch,
                                                  accumulation: accumulation, progress: .none),
                             learningRate: { _ in lr }, runDirectory: nil)
    return Setup(meta: meta, loop: loop, head: head)
  }

  func testTwentyStepsThroughTheTrainerMatchTorch() throws {
    let setup = try makeLoop()
    try setup.loop.run()
    let expected = setup.meta["losses"] as! [Double]
    XCTAssertEqual(setup.loop.lossHistory.count, expected.count)
    for (step, (got, want)) in zip(setup.loop.lossHistory, expected).enumerated() {
      XCTAssertEqual(got, want, accuracy: 1e-4 * abs(want), "loss at step \(step)")
    }
  }

  func testAccumulationEqualsTheFullBatch() throws {
    let full = try makeLoop(steps: 5), accumulated = try makeLoop(accumulation: 2, steps: 5)
    try full.loop.run()
    try accumulated.loop.run()
    for (a, b) in zip(full.loop.lossHistory, accumulated.loop.lossHistory) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
    let p = full.head.parameters.array, q = accumulated.head.parameters.array
    let scale = p.map(abs).max() ?? 1
    for i in p.indices { XCTAssertEqual(p[i], q[i], accuracy: 1e-5 * scale, "parameter \(i)") }
  }

  func testNonFiniteLossStopsNamingIt() throws {
    let setup = try makeLoop(steps: 3)
    setup.head.parameters[setup.head.table["mha.v_proj.bias"]!.offset] = .nan
    XCTAssertThrowsError(try setup.loop.run()) { error in
      XCTAssertTrue("\(error)".contains("NaN or Inf"), "\(error)")
    }
  }
}
