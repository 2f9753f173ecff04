// Config loading: defaults < YAML < --set, unknown keys and bad values refused with the reason.
import Training
import Distributed
import XCTest

final class TrainConfigTests: XCTestCase {
  func validConfig() -> TrainConfig {
    var c = TrainConfig()
    c.model.path = "m.safetensors"; c.data.train = "imagefolder:/d"; c.run.dir = "/tmp/r"; c.run.steps = 10
    return c
  }

  func testYamlThenOverridesInOrder() throws {
    var c = TrainConfig()
    try c.merge(yaml: "optim:\n  lr: 0.01\n  name: sgd\nrada:\n  templates: ['a {}.', 'an image of {}']\n", source: "t")
    XCTAssertEqual(c.optim.lr, 0.01)
    XCTAssertEqual(c.optim.name, .sgd)
    XCTAssertEqual(c.rada.templates, ["a {}.", "an image of {}"])
    try c.apply(override: "optim.lr=2e-3")
    try c.apply(override: "run.steps=7")
    try c.apply(override: "run.shuffle=false")
    XCTAssertEqual(c.optim.lr, 2e-3)
    XCTAssertEqual(c.run.steps, 7)
    XCTAssertFalse(c.run.shuffle)
    XCTAssertEqual(c.data.splitSeed, 1, "untouched keys keep their defaults")
    // the resolved YAML reads back to the same config
    XCTAssertEqual(try TrainConfig.load(yaml: c.yaml()), c)
  }

  func testUnknownKeysAndWrongTypesAreRefused() {
    var c = TrainConfig()
    XCTAssertThrowsError(try c.apply(override: "optim.learning_rate=1")) { error in
      XCTAssertTrue("\(error)".contains("unknown config key 'optim.learning_rate'"), "\(error)")
    }
    XCTAssertThrowsError(try c.merge(yaml: "run:\n  stepz: 3\n", source: "x.yaml")) { error in
      XCTAssertTrue("\(error)".contains("run.stepz"), "\(error)")
    }
    XCTAssertThrowsError(try c.apply(override: "run.steps=many")) { error in
      XCTAssertTrue("\(error)".contains("run.steps"), "\(error)")
    }
    XCTAssertThrowsError(try c.apply(override: "nonsense"))
    XCTAssertTrue(TrainConfig.validKeys.contains("model.logitScale"), "optional keys are settable")
  }

  func testValidationNamesTheProblem() throws {
    XCTAssertNoThrow(try validConfig().validate(ranks: 2))
    var c = validConfig(); c.optim.lr = -1
    XCTAssertThrowsError(try c.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("optim.lr")) }
    c = validConfig(); c.run.batchSize = 6
    XCTAssertThrowsError(try c.validate(ranks: 4)) { XCTAssertTrue("\($0)".contains("divide over 4 rank(s)"), "\($0)") }
    c = validConfig(); c.rada.templates = ["a photo of a cat"]
    XCTAssertThrowsError(try c.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("{}")) }
    c = validConfig(); c.run.epochs = 2
    XCTAssertThrowsError(try c.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("not both")) }
    // Keys with a fixed set of choices are typed: a wrong value is refused where it is set, naming the key and
    // the choices, in YAML as in --set.
    for (key, choices) in [("fft.overlap", "auto, always, never"), ("optim.name", "sgd, adam, adamw"),
                           ("schedule.name", "constant, cosine, dassl_cosine"), ("rada.maskLoss", "linf, mse"),
                           ("run.nonFinite", "stop, skip"), ("run.bestMode", "max, min"), ("setting", "eft, fft"),
                           ("data.subsample", "all, base, new"), ("run.progress", "auto, bar, lines, none")] {
      c = validConfig()
      XCTAssertThrowsError(try c.apply(override: "\(key)=sometimes")) { error in
        XCTAssertTrue("\(error)".contains("'\(key)'") && "\(error)".contains("use " + choices), "\(error)")
      }
      let parts = key.split(separator: ".")
      let yaml = parts.count == 2 ? "\(parts[0]):\n  \(parts[1]): sometimes\n" : "\(key): sometimes\n"
      XCTAssertThrowsError(try c.merge(yaml: yaml, source: "x.yaml")) { XCTAssertTrue("\($0)".contains(key), "\($0)") }
    }
    c = validConfig()
    try c.apply(override: "schedule.name=dassl_cosine")
    XCTAssertEqual(c.schedule.name, .dasslCosine)
    XCTAssertEqual(try TrainConfig.load(yaml: c.yaml()).schedule.name, .dasslCosine, "written back as its name")
  }

  /// Setting-specific defaults come from the setting (FFT: FLYP's AdamW, lr 1e-5, wd 0.1); what a YAML file or
  /// --set names changes only that key.
  func testDefaultsComeFromTheSetting() throws {
    XCTAssertEqual(TrainConfig.defaults(for: .eft), TrainConfig())
    var fft = TrainConfig.defaults(for: .fft)
    XCTAssertEqual(fft.setting, .fft)
    XCTAssertEqual([fft.optim.lr, fft.optim.weightDecay], [1e-5, 0.1])
    XCTAssertEqual(fft.optim.name, .adamw)
    try fft.merge(yaml: "optim:\n  lr: 0.0001\n", source: "x.yaml")
    XCTAssertEqual(fft.optim.name, .adamw, "setting only the lr keeps FFT's optimiser and weight decay")
    XCTAssertEqual([fft.optim.lr, fft.optim.weightDecay], [1e-4, 0.1])
  }

  /// fft.overlap=auto reduces during backward only when the ranks span several nodes; always and never are obeyed.
  func testOverlapFollowsTheLayout() {
    let oneNode = LaunchLayout(rank: 1, size: 2, localRank: 1, localSize: 2, launcher: "mpirun")
    let twoNodes = LaunchLayout(rank: 1, size: 2, localRank: 0, localSize: 1, launcher: "mpirun")
    let alone = LaunchLayout(rank: 0, size: 1, localRank: 0, localSize: 1, launcher: "none")
    XCTAssertFalse(FFTSession.overlaps(.auto, layout: oneNode))
    XCTAssertTrue(FFTSession.overlaps(.auto, layout: twoNodes))
    XCTAssertFalse(FFTSession.overlaps(.auto, layout: alone))
    XCTAssertTrue(FFTSession.overlaps(.always, layout: oneNode))
    XCTAssertFalse(FFTSession.overlaps(.never, layout: twoNodes))
  }
}

final class ShippedConfigTests: XCTestCase {
  /// The YAML files in launch/configs for `rada train` load (no unknown keys) and validate once the paths are given.
  func testShippedTrainConfigsLoadAndValidate() throws {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("launch/configs")
    for name in ["eft-base2new.yaml", "fft-imagenet.yaml"] {
      var config = TrainConfig()
      try config.merge(file: folder.appendingPathComponent(name).path)
      config.model.path = "m"; config.data.train = "coop:/data:imagenet"; config.run.dir = "/tmp/x"
      XCTAssertNoThrow(try config.validate(ranks: 1), name)
      XCTAssertNotEqual(config, TrainConfig(), "\(name) changes the defaults")
    }
  }
}
