// The session skeleton (Session.run) with a recording setting: the stages run in their order, a refused run
// directory stops before anything is built, an early end at build or resume skips the later stages and COMPLETE,
// and COMPLETE holds the setting's summary with sorted keys. The batch layout is refused where the plan is built
// (RunPlan.Layout) with the same reasons TrainConfig.validate gives.
import CLIP
import Distributed
import Foundation
@testable import Training
import XCTest

final class SessionTests: XCTestCase {
  /// Records every stage it is asked for; `claimFails`, `stopAtBuild`, `completeAtResume` end the session early.
  final class RecordingSetting: SessionSetting {
    let config: TrainConfig
    var stages: [String] = []
    var claimFails = false, stopAtBuild = false, completeAtResume = false

    init(config: TrainConfig) { self.config = config }

    func validate(ranks: Int) throws { stages.append("validate") }
    func prepare() throws -> SessionInputs {
      stages.append("prepare")
      let clip = CLIPModel.random(config: CLIPConfig(embedDim: 8, vision: CLIPVisionConfig(width: 8, layers: 1, heads: 2,
                                                                                          patchSize: 8, imageSize: 16),
                                                     text: CLIPTextConfig(width: 8, layers: 1, heads: 2, contextLength: 8)),
                                  seed: 1)
      return SessionInputs(model: clip, fingerprint: ModelFingerprint(model: clip), datasets: [])
    }
    func claimRunDirectory(_ runDirectory: RunDirectory, inputs: SessionInputs, resume: Bool) throws {
      stages.append("claim")
      if claimFails { throw RunDirectoryError.alreadyHoldsRun(runDirectory.path) }
      try FileManager.default.createDirectory(atPath: runDirectory.path, withIntermediateDirectories: true)
    }
    func build(_ session: SessionContext) throws -> Bool { stages.append("build"); return !stopAtBuild }
    func resume(_ session: SessionContext) throws -> Bool { stages.append("resume"); return completeAtResume }
    func run(_ session: SessionContext) throws { stages.append("run") }
    func evaluate(_ session: SessionContext) throws -> [String: Double] { stages.append("evaluate"); return ["val/top1": 0.5] }
    func finish(_ session: SessionContext, metrics: [String: Double]) throws -> (complete: [String: Any], done: String) {
      stages.append("finish")
      return (["steps": 3, "b": metrics["val/top1"] ?? -1, "a": "x"], "done line")
    }
    func outcome() -> [String] { stages }
  }

  func runDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rada-session-\(UUID().uuidString)").path
  }

  func testStagesRunInOrderAndCompleteIsWrittenLastWithSortedKeys() throws {
    var config = TrainConfig()
    config.run.dir = runDirectory()
    defer { try? FileManager.default.removeItem(atPath: config.run.dir) }
    var lines: [String] = []
    var options = SessionOptions(resume: true)
    options.log = { lines.append($0) }
    let stages = try Session.run(RecordingSetting(config: config), world: LocalCollective(), options: options)
    XCTAssertEqual(stages, ["validate", "prepare", "claim", "build", "resume", "run", "evaluate", "finish"])
    let complete = try String(contentsOfFile: config.run.dir + "/COMPLETE", encoding: .utf8)
    XCTAssertEqual(complete, "{\"a\":\"x\",\"b\":0.5,\"steps\":3}\n")
    XCTAssertTrue(FileManager.default.fileExists(atPath: config.run.dir + "/world.json"))
    XCTAssertEqual(lines.last, "done line")
  }

  func testEarlyEndsSkipTheLaterStagesAndComplete() throws {
    for (name, expected) in [("claim", ["validate", "prepare", "claim"]),
                             ("build", ["validate", "prepare", "claim", "build"]),
                             ("resume", ["validate", "prepare", "claim", "build", "resume"])] {
      var config = TrainConfig()
      config.run.dir = runDirectory()
      defer { try? FileManager.default.removeItem(atPath: config.run.dir) }
      let setting = RecordingSetting(config: config)
      setting.claimFails = name == "claim"; setting.stopAtBuild = name == "build"; setting.completeAtResume = name == "resume"
      var options = SessionOptions(resume: true)
      options.log = { _ in }
      if name == "claim" {
        XCTAssertThrowsError(try Session.run(setting, world: LocalCollective(), options: options)) { error in
          XCTAssertTrue("\(error)".contains("already holds a run"), "\(error)")
        }
      } else {
        XCTAssertNoThrow(try Session.run(setting, world: LocalCollective(), options: options))
      }
      XCTAssertEqual(setting.stages, expected, name)
      XCTAssertFalse(FileManager.default.fileExists(atPath: config.run.dir + "/COMPLETE"), name)
    }
  }

  func testTheBatchLayoutIsRefusedWhereThePlanIsBuiltWithValidatesReasons() throws {
    func config(_ change: (inout TrainConfig) -> Void) -> TrainConfig {
      var c = TrainConfig()
      c.model.path = "m.safetensors"; c.data.train = "imagefolder:/d"; c.run.dir = "/tmp/r"; c.run.steps = 10
      c.run.batchSize = 12
      change(&c)
      return c
    }
    let cases: [(TrainConfig, Int, String)] = [
      (config { $0.run.accumulation = 5 }, 1, "divide over 1 rank(s) x 5"),
      (config { _ in }, 5, "divide over 5 rank(s) x 1"),
      (config { $0.run.accumulation = 0 }, 1, "run.accumulation"),
      (config { $0.run.batchSize = 0 }, 1, "run.batchSize"),
      (config { $0.run.steps = nil }, 1, "give --steps N or --epochs N"),
      (config { $0.run.epochs = 2 }, 1, "not both"),
    ]
    for (c, ranks, reason) in cases {
      var fromPlan = "", fromValidate = ""
      XCTAssertThrowsError(try RunPlan(config: c, datasetSize: 24, rank: 0, ranks: ranks)) { fromPlan = "\($0)" }
      XCTAssertThrowsError(try c.validate(ranks: ranks)) { fromValidate = "\($0)" }
      XCTAssertTrue(fromPlan.contains(reason), "\(reason): \(fromPlan)")
      XCTAssertEqual(fromPlan, fromValidate, reason)
    }
    XCTAssertEqual(try RunPlan(config: config { $0.run.accumulation = 2 }, datasetSize: 24, rank: 1, ranks: 3).microBatch, 2)
  }
}
