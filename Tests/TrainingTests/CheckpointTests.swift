// Checkpoints: atomic layout with DONE and checksums, newest-valid selection with fallback past a damaged
// checkpoint, pruning that keeps the last N plus the best; run directories that refuse to be overwritten.
import Foundation
import Tensor
import Training
import XCTest

final class CheckpointTests: XCTestCase {
  var directory = ""

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "rada-ckpt-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }
  override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

  func save(_ checkpointer: Checkpointer, step: Int, value: Float) throws -> String {
    let values = FloatBuffer([value, value + 1, value + 2])
    var state = CheckpointState(step: step, epoch: step / 10, worldSize: 2, seed: 1)
    state.scalars["best"] = Double(value)
    return try checkpointer.save(step: step, files: ["head.safetensors": [.init(name: "w", shape: [3], values: values.readOnly)]],
                                 state: state)
  }

  func testSaveVerifyAndReadBack() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 3)
    let path = try save(checkpointer, step: 20, value: 1.5)
    XCTAssertTrue(FileManager.default.fileExists(atPath: path + "/DONE"))
    let state = try checkpointer.verify(path)
    XCTAssertEqual(state.step, 20)
    XCTAssertEqual(state.epoch, 2)
    XCTAssertNotNil(state.checksums["head.safetensors"])
    let file = try SafetensorsFile(path: path + "/head.safetensors")
    XCTAssertEqual(try file.floats("w"), [1.5, 2.5, 3.5])
  }

  func testDamagedNewestFallsBackToPrevious() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 5)
    _ = try save(checkpointer, step: 10, value: 1)
    let newest = try save(checkpointer, step: 20, value: 2)
    // flip one byte in the newest tensor file
    let file = newest + "/head.safetensors"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
    bytes[bytes.count - 1] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: file))
    var warnings: [String] = []
    let chosen = checkpointer.newestValid { warnings.append($0) }
    XCTAssertEqual(chosen?.state.step, 10)
    XCTAssertEqual(warnings.count, 1)
    XCTAssertTrue(warnings[0].contains("checksum"), warnings[0])
    // an incomplete checkpoint (no DONE) is never a candidate
    try FileManager.default.removeItem(atPath: directory + "/" + Checkpointer.name(step: 10) + "/DONE")
    XCTAssertNil(checkpointer.newestValid { _ in })
  }

  func testStateJSONIsCoveredByTheChecksumInDONE() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 5)
    let path = try save(checkpointer, step: 10, value: 1)
    let statePath = path + "/state.json"
    let text = try String(contentsOfFile: statePath, encoding: .utf8)
    // a plausible edit that still parses: another step number
    try text.replacingOccurrences(of: "\"step\" : 10", with: "\"step\" : 11").write(toFile: statePath, atomically: true, encoding: .utf8)
    XCTAssertNotEqual(try String(contentsOfFile: statePath, encoding: .utf8), text, "the edit must change the file")
    XCTAssertThrowsError(try checkpointer.verify(path)) { XCTAssertTrue("\($0)".contains("state.json checksum"), "\($0)") }
  }

  func testEveryCheckpointDamagedRefusesAndDeletesNothing() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 5)
    XCTAssertNil(try checkpointer.resumePoint { _ in }, "no checkpoint at all is a fresh start")
    let paths = [try save(checkpointer, step: 10, value: 1), try save(checkpointer, step: 20, value: 2)]
    for path in paths { try Data("{".utf8).write(to: URL(fileURLWithPath: path + "/state.json")) }
    XCTAssertThrowsError(try checkpointer.resumePoint { _ in }) { error in
      guard case CheckpointError.allDamaged(_, let reasons) = error else { return XCTFail("\(error)") }
      XCTAssertEqual(reasons.count, 2)
      XCTAssertTrue("\(error)".contains("nothing was changed or deleted"))
    }
    XCTAssertEqual(checkpointer.complete().map(\.step), [20, 10])
  }

  func testForeignCheckpointIsRefusedByFingerprintAndShape() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 5)
    var state = CheckpointState(step: 1, epoch: 0, worldSize: 1, seed: 1)
    state.model = ModelFingerprint(shapes: "s1", weights: "w1")
    let path = try checkpointer.save(step: 1, files: ["params.safetensors": [
      .init(name: "head.w", shape: [2, 32], values: FloatBuffer(count: 64).readOnly)]], state: state)
    let saved = try checkpointer.verify(path)
    XCTAssertEqual(saved.shapes["params.safetensors"]?["head.w"], [2, 32], "every tensor's shape is recorded")
    let mine = ModelFingerprint(shapes: "s1", weights: "w1")
    XCTAssertNoThrow(try Checkpointer.checkCompatible(saved, path: path, model: mine,
                                                      expected: ["params.safetensors": ["head.w": [2, 32]]]))
    XCTAssertThrowsError(try Checkpointer.checkCompatible(saved, path: path, model: ModelFingerprint(shapes: "s2", weights: "w1"),
                                                          expected: [:])) { XCTAssertTrue("\($0)".contains("other tensor shapes")) }
    XCTAssertThrowsError(try Checkpointer.checkCompatible(saved, path: path, model: ModelFingerprint(shapes: "s1", weights: "w2"),
                                                          expected: [:])) { XCTAssertTrue("\($0)".contains("other weights")) }
    // a 32-wide head must never be copied into a 64-wide one
    XCTAssertThrowsError(try Checkpointer.checkCompatible(saved, path: path, model: mine,
                                                          expected: ["params.safetensors": ["head.w": [2, 64]]])) {
      XCTAssertTrue("\($0)".contains("head.w has shape [2, 32], this model needs [2, 64]"), "\($0)")
    }
  }

  func testPruneKeepsLastAndBest() throws {
    let checkpointer = Checkpointer(directory: directory, keepLast: 2)
    for step in [10, 20, 30, 40, 50] { _ = try save(checkpointer, step: step, value: Float(step)) }
    try FileManager.default.createDirectory(atPath: directory + "/.tmp-step_00000060-1", withIntermediateDirectories: true)
    checkpointer.prune(protectedSteps: [20])
    XCTAssertEqual(checkpointer.complete().map(\.step), [50, 40, 20])
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/.tmp-step_00000060-1"))
  }

  func testRunDirectoryRefusesExistingRunUnlessResuming() throws {
    let run = RunDirectory(path: directory + "/run")
    try run.prepare(resuming: false)
    try run.writeAtomically("config.resolved.yaml", "setting: eft\n")
    XCTAssertThrowsError(try run.prepare(resuming: false)) { XCTAssertTrue("\($0)".contains("--resume auto")) }
    XCTAssertNoThrow(try run.prepare(resuming: true))
  }

  func testMetricsLogEndsACutOffLineBeforeAppending() throws {
    let path = directory + "/metrics.jsonl"
    try Data("{\"step\": 1}\n{\"step\": 2, \"train/lo".utf8).write(to: URL(fileURLWithPath: path))  // a full disk cut it
    try MetricsLog(path: path, enabled: true).append(["step": 3])
    XCTAssertEqual(MetricsLog.read(path: path).compactMap { $0["step"] as? Int }, [1, 3])
  }

  func testMetricsLogAppendsLinesAndNullsNonFinite() throws {
    let path = directory + "/metrics.jsonl"
    do {
      let log = try MetricsLog(path: path, enabled: true)
      try log.append(["step": 1, "train/loss": 2.5])
      try log.append(["step": 2, "train/loss": Double.nan])
    }
    let silent = try MetricsLog(path: directory + "/other.jsonl", enabled: false)
    try silent.append(["step": 1])
    XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/other.jsonl"))
    let lines = MetricsLog.read(path: path)
    XCTAssertEqual(lines.count, 2)
    XCTAssertEqual(lines[0]["train/loss"] as? Double, 2.5)
    XCTAssertTrue(lines[1]["train/loss"] is NSNull)
  }

  func testProgressLineFormat() {
    let line = ProgressLine.format(step: 1200, totalSteps: 5000, loss: 2.3141, lr: 3e-4, secondsPerStep: 0.0658,
                                   imagesPerSecond: 118.2)
    XCTAssertEqual(line, "step 1200/5000 | loss 2.314 | lr 3.0e-4 | 66 ms/step | 118 img/s | eta 4m10s")
    // A clock that did not advance gives infinite rates: the line says "?" instead of trapping in Int(...).
    let stalled = ProgressLine.format(step: 1, totalSteps: 5, loss: 1, lr: 1e-3, secondsPerStep: .infinity,
                                      imagesPerSecond: .infinity)
    XCTAssertEqual(stalled, "step 1/5 | loss 1.000 | lr 1.0e-3 | ? ms/step | ? img/s | eta ?")
  }
}
