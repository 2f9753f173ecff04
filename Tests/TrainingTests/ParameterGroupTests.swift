// FFT parameter groups (ParameterGroups.swift): AdamW and SGD with two groups of different lr and weight decay
// under a warm-up + cosine schedule against torch.optim + LambdaLR (fixture optim_groups.json, written by
// Tests/RAdaTests/Fixtures/generate_group_fixtures.py); the config keys (YAML, --set, validation, the renamed lock
// keys); and the resume check on the group settings saved in a checkpoint.
// Tolerance as OptimizerTests: 2e-6 relative to max(1, |p|), a few float32 roundings per step; swapping the two
// groups' lr or decay, or decaying a vector, moves the values by more than 1e-4.
import Foundation
import Tensor
import Training
import XCTest

final class ParameterGroupTests: XCTestCase {
  func fixture() throws -> [String: Any] {
    let url = OptimizerTests.fixtures.appendingPathComponent("optim_groups.json")
    return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
  }

  func testTwoGroupsMatchTorchLambdaLR() throws {
    let json = try fixture()
    let initial = try XCTUnwrap(json["initial"] as? [Double]).map(Float.init)
    let grads = try XCTUnwrap(json["grads"] as? [[Double]]).map { $0.map(Float.init) }
    let warmup = try XCTUnwrap(json["warmup"] as? Int), steps = try XCTUnwrap(json["steps"] as? Int)
    // The fixture's group "a" (a.w (3, 4), a.b (4); lr 1e-3, wd 0.1) is our image tower, "b" (b.w (2, 3), b.b (3);
    // lr 2e-2, wd 0.01) our head: tensors named so that ResolvedParameterGroups sorts them.
    var table = ParameterTable()
    table.add("visual.proj", [3, 4]); table.add("visual.ln_post.bias", [4])
    table.add("mha.q_proj1.weight", [2, 3]); table.add("mha.q_proj1.bias", [3])
    XCTAssertEqual(table.totalCount, initial.count)
    for name in ["adamw", "sgd_momentum"] {
      let entry = try XCTUnwrap(json[name] as? [String: Any]), hyper = try XCTUnwrap(entry["hyper"] as? [String: Any])
      let history = try XCTUnwrap(entry["params"] as? [[Double]]), torchLRs = try XCTUnwrap(entry["lrs"] as? [[Double]])
      var config = TrainConfig()
      config.setting = .fft
      config.optim.name = name == "adamw" ? .adamw : .sgd
      config.optim.lr = 0.5; config.optim.weightDecay = 0.7  // must not be used: both groups set their own
      config.optim.groups.image = .init(lr: 1e-3, weightDecay: 0.1)
      config.optim.groups.head = .init(lr: 2e-2, weightDecay: 0.01)
      config.schedule.name = .cosine; config.schedule.warmupSteps = warmup
      let betas = hyper["betas"] as? [Double] ?? [0.9, 0.999]
      let optimizerConfig = OptimizerConfig(kind: name == "adamw" ? .adamw : .sgd, momentum: Float(hyper["momentum"] as? Double ?? 0),
                                            beta1: Float(betas[0]), beta2: Float(betas[1]),
                                            epsilon: Float(hyper["eps"] as? Double ?? 1e-8))
      let groups = ResolvedParameterGroups(config)
      let optimizer = try Optimizer(config: optimizerConfig, table: table, groups: groups.optimizerGroups(table: table))
      XCTAssertEqual(optimizer.groups.map(\.name), ["head", "image", "text", "logitScale"])
      XCTAssertEqual(optimizer.groups.map(\.entries), [[2, 3], [0, 1], [], []])
      let learningRates = groups.learningRates(config, totalSteps: steps, stepsPerEpoch: 1)
      let parameters = FloatBuffer(count: table.totalCount), gradients = FloatBuffer(count: table.totalCount)
      for i in 0..<initial.count { parameters[i] = initial[i] }
      for step in 0..<steps {
        let lrs = learningRates(step)
        // LambdaLR multiplies each group's base lr: (image, head) = torch's (a, b), float64 there, float32 here.
        XCTAssertEqual(Double(lrs[1]), torchLRs[step][0], accuracy: 1e-7 * torchLRs[step][0] + 1e-12, "\(name) step \(step) lr a")
        XCTAssertEqual(Double(lrs[0]), torchLRs[step][1], accuracy: 1e-7 * torchLRs[step][1] + 1e-12, "\(name) step \(step) lr b")
        for i in 0..<initial.count { gradients[i] = grads[step][i] }
        optimizer.step(parameters: parameters, gradients: gradients, lrs: lrs)
        var worst: Float = 0, bad = -1
        for i in 0..<initial.count {
          let expected = Float(history[step][i]), diff = abs(parameters[i] - expected)
          worst = max(worst, diff)
          if diff > 2e-6 * max(1, abs(expected)) && bad < 0 { bad = i }
        }
        XCTAssertEqual(bad, -1, "\(name) step \(step + 1): max abs diff \(worst), first bad index \(bad)")
      }
    }
  }

  func testConfigKeysAndValidation() throws {
    XCTAssertTrue(TrainConfig.validKeys.contains("optim.groups.head.lr"))
    XCTAssertTrue(TrainConfig.validKeys.contains("optim.groups.logitScale.frozen"))
    XCTAssertFalse(TrainConfig.validKeys.contains("optim.groups.logitScale.weightDecay"), "the logit scale never decays")
    var config = try TrainConfig.load(yaml: "setting: fft\noptim:\n  lr: 1e-5\n  groups:\n    image:\n      frozen: true\n"
                                      + "    head:\n      lr: 3e-3\n      weightDecay: 0\n")
    try config.apply(override: "optim.groups.text.lr=2e-5")
    XCTAssertEqual(config.optim.groups.image.frozen, true)
    XCTAssertEqual(config.optim.groups.head.lr, 3e-3)
    let resolved = ResolvedParameterGroups(config)
    XCTAssertEqual(resolved[.head].weightDecay, 0)
    XCTAssertEqual(resolved[.text].lr, 2e-5)
    XCTAssertEqual(resolved[.image].lr, 1e-5, "an unset group lr is optim.lr")
    XCTAssertEqual(resolved[.logitScale].weightDecay, 0)
    // the resolved config (saved in the run directory and every checkpoint) reads back the same
    XCTAssertEqual(try TrainConfig.load(yaml: config.yaml()), config)

    XCTAssertThrowsError(try config.apply(override: "fft.lockImageTower=true")) { error in
      XCTAssertTrue("\(error)".contains("optim.groups.image.frozen"), "\(error)")
    }
    var complete = config
    complete.model.path = "m"; complete.data.train = "t"; complete.run.dir = "r"; complete.run.steps = 1
    XCTAssertNoThrow(try complete.validate(ranks: 1))
    var negative = complete
    negative.optim.groups.text.lr = -1
    XCTAssertThrowsError(try negative.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("optim.groups.text.lr"), "\($0)") }
    var eft = complete
    eft.setting = .eft
    XCTAssertThrowsError(try eft.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("optim.lr"), "\($0)") }
    eft.optim.groups = TrainConfig.ParameterGroups()
    XCTAssertNoThrow(try eft.validate(ranks: 1), "EFT with the default groups")
  }

  func testResumeRefusesOtherGroupSettings() throws {
    var config = TrainConfig()
    config.setting = .fft
    let saved = ResolvedParameterGroups(config).checkpointScalars
    XCTAssertEqual(saved["group/head/lr"], 2e-3)
    XCTAssertNoThrow(try ResolvedParameterGroups(config).checkResume(scalars: saved, checkpoint: "c"))
    XCTAssertNoThrow(try ResolvedParameterGroups(config).checkResume(scalars: ["optimizer_step": 3], checkpoint: "c"),
                     "a checkpoint from before parameter groups")
    config.optim.groups.text.frozen = true
    XCTAssertThrowsError(try ResolvedParameterGroups(config).checkResume(scalars: saved, checkpoint: "c")) { error in
      XCTAssertTrue("\(error)".contains("group/text/frozen"), "\(error)")
    }
  }
}
