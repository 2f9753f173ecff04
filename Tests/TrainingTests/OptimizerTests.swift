// Optimisers and schedules against torch 2.15 (fixtures written by Tests/RAdaTests/Fixtures/
// generate_rada_fixtures.py: optim.json, optim_initial.npy, optim_grads.npy, schedules.json).
// Optimiser case: w (3, 4) decays, b (4) does not (a torch param group with weight_decay 0), plus a frozen
// tensor that must not move; 5 steps with given gradients, torch float32 single-tensor path. Tolerance 2e-6
// relative to max(1, |p|): a few float32 roundings per step; any wrong term (bias correction, eps placement,
// decay kind, momentum first step) moves the values by >1e-4.
import Foundation
import Tensor
import Training
import XCTest

final class OptimizerTests: XCTestCase {
  /// TrainingTests has no resource bundle; the fixtures live beside the RAda ones in the source tree.
  static var fixtures: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("RAdaTests/Fixtures")
  }

  func json(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
  }

  func testOptimizersMatchTorch() throws {
    let initial = try NPYArray.read(path: Self.fixtures.appendingPathComponent("optim_initial.npy").path).floats()
    let grads = try NPYArray.read(path: Self.fixtures.appendingPathComponent("optim_grads.npy").path)
    let gradValues = grads.floats(), stepCount = grads.shape[0], n = grads.shape[1]
    XCTAssertEqual(n, 16)
    let cases = try json("optim.json")
    XCTAssertEqual(Set(cases.keys), ["sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw"])
    for (name, value) in cases.sorted(by: { $0.key < $1.key }) {
      let entry = value as! [String: Any], hyper = entry["hyper"] as! [String: Any]
      let history = (entry["params"] as! [[Double]]).map { $0.map(Float.init) }
      let kind: OptimizerKind = name.hasPrefix("sgd") ? .sgd : (name == "adam" ? .adam : .adamw)
      let betas = (hyper["betas"] as? [Double]) ?? [0.9, 0.999]
      let config = OptimizerConfig(kind: kind, momentum: Float(hyper["momentum"] as? Double ?? 0),
                                   nesterov: hyper["nesterov"] as? Bool ?? false,
                                   weightDecay: Float(hyper["weight_decay"] as! Double),
                                   beta1: Float(betas[0]), beta2: Float(betas[1]),
                                   epsilon: Float(hyper["eps"] as? Double ?? 1e-8))
      var table = ParameterTable()
      table.add("w", [3, 4])                   // decays (matrix)
      table.add("frozen", [2], trainable: false)
      table.add("b", [4])                      // no decay (vector)
      let optimizer = try Optimizer(config: config, table: table)
      let parameters = FloatBuffer(count: table.totalCount), gradients = FloatBuffer(count: table.totalCount)
      // Our layout: w (12), frozen (2), b (4); the fixture's: w (12), b (4).
      for i in 0..<12 { parameters[i] = initial[i] }
      parameters[12] = 5; parameters[13] = -5
      for i in 0..<4 { parameters[14 + i] = initial[12 + i] }
      let lr = Float(hyper["lr"] as! Double)
      for step in 0..<stepCount {
        for i in 0..<12 { gradients[i] = gradValues[step * n + i] }
        gradients[12] = 1; gradients[13] = 1
        for i in 0..<4 { gradients[14 + i] = gradValues[step * n + 12 + i] }
        optimizer.step(parameters: parameters, gradients: gradients, lr: lr)
        let ours = Array(parameters.array[0..<12]) + Array(parameters.array[14..<18])
        var worst: Float = 0, bad = -1
        for i in 0..<n {
          let diff = abs(ours[i] - history[step][i])
          worst = max(worst, diff)
          if diff > 2e-6 * max(1, abs(history[step][i])) && bad < 0 { bad = i }
        }
        XCTAssertEqual(bad, -1, "\(name) step \(step + 1): max abs diff \(worst), first bad index \(bad)")
        XCTAssertEqual(Array(parameters.array[12..<14]), [5, -5], "\(name): frozen entry moved")
      }
      XCTAssertEqual(optimizer.stepCount, stepCount)
    }
  }

  func testStateRoundTripContinuesIdentically() throws {
    var table = ParameterTable()
    table.add("w", [8, 8])
    let config = OptimizerConfig(kind: .adamw, weightDecay: 0.05)
    let a = try Optimizer(config: config, table: table)
    let pa = FloatBuffer(count: 64), g = FloatBuffer(count: 64)
    var rng = SeededRNG(seed: 4)
    for i in 0..<64 { pa[i] = Float(rng.normal()); g[i] = Float(rng.normal()) }
    for _ in 0..<3 { a.step(parameters: pa, gradients: g, lr: 1e-2) }
    let b = try Optimizer(config: config, table: table)
    try b.load(stepCount: a.stepCount, firstMoment: a.firstMoment.array, secondMoment: a.secondMoment.array)
    let pb = FloatBuffer(count: 64)
    pb.copy(from: pa)
    a.step(parameters: pa, gradients: g, lr: 1e-2)
    b.step(parameters: pb, gradients: g, lr: 1e-2)
    XCTAssertEqual(pa.array, pb.array, "a restored optimizer must continue bit-identically")
    XCTAssertThrowsError(try b.load(stepCount: 1, firstMoment: [1], secondMoment: [])) { error in
      XCTAssertTrue("\(error)".contains("firstMoment"), "\(error)")
    }
    XCTAssertThrowsError(try Optimizer(config: OptimizerConfig(kind: .adam, nesterov: true), table: table))
  }

  func testSchedulesMatchTorchAndDassl() throws {
    let cases = try json("schedules.json")
    func check(_ name: String, _ schedule: LearningRateSchedule, stepsPerValue: Int = 1) {
      let expected = (cases[name] as! [String: Any])["lrs"] as! [Double]
      for (i, lr) in expected.enumerated() {
        for inner in 0..<stepsPerValue {
          let step = i * stepsPerValue + inner
          // torch's recursive cosine accumulates float64 rounding: 1e-12 relative.
          XCTAssertEqual(schedule.lr(step: step), lr, accuracy: 1e-12 + 1e-9 * abs(lr), "\(name) step \(step)")
        }
      }
    }
    check("cosine", .cosine(baseLR: 0.1, warmupSteps: 0, totalSteps: 20, minLR: 1e-5))
    check("warmup_cosine", .cosine(baseLR: 0.1, warmupSteps: 5, totalSteps: 20, minLR: 0))
    // Dassl changes the lr per epoch: every step of epoch e uses the e-th value.
    check("dassl", .dasslCosine(baseLR: 1e-4, maxEpochs: 5, warmupEpochs: 1, warmupLR: 1e-5, stepsPerEpoch: 3),
          stepsPerValue: 3)
    XCTAssertEqual(LearningRateSchedule.constant(lr: 3e-4).lr(step: 12345), 3e-4)
  }
}
