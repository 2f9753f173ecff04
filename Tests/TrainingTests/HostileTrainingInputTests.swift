// Input safety in Training: config values out of range or whose products overflow are refused with the key
// named, a YAML alias bomb is refused by its expanded size, a state.json with absurd numbers is a damaged
// checkpoint (never a trap in Int(...)), and chart axes over ±1.7e308 or subnormal metrics stay finite.
import Foundation
import Tensor
import Reports
import Sweeps
import Training
import XCTest

final class HostileTrainingInputTests: XCTestCase {
  func validConfig() -> TrainConfig {
    var c = TrainConfig()
    c.model.path = "m.safetensors"; c.data.train = "imagefolder:/d"; c.run.dir = "/tmp/r"; c.run.steps = 10
    return c
  }

  func testOutOfRangeConfigValuesNameTheKey() throws {
    let cases: [(String, String)] = [
      ("run.seed=-1", "run.seed"), ("data.splitSeed=-7", "data.splitSeed"), ("optim.eps=-1e-8", "optim.eps"),
      ("optim.eps=.nan", "optim.eps"), ("schedule.warmupLR=-0.1", "schedule.warmupLR"),
      ("model.logitScale=0", "model.logitScale"), ("model.logitScale=-5", "model.logitScale"),
      ("optim.beta2=1", "optim.beta2"), ("fft.bucketMB=1e300", "fft.bucketMB"), ("rada.temperature=.inf", "rada.temperature"),
      ("run.accumulation=4611686018427387904", "run.accumulation"), ("run.batchSize=9223372036854775807", "run.batchSize"),
      ("run.steps=-3", "run.steps"), ("data.loaderThreads=100000", "data.loaderThreads"),
      ("run.collectiveTimeout=1e300", "run.collectiveTimeout"),
    ]
    for (override, key) in cases {
      var c = validConfig()
      // NaN and ±Inf are refused when set (JSON has no such numbers), the rest by validate.
      XCTAssertThrowsError(try { try c.apply(override: override); try c.validate(ranks: 2) }(), override) { error in
        XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
      }
    }
    // Epochs instead of steps: the epoch count is bounded so that epochs x steps per epoch cannot overflow.
    var c = validConfig(); c.run.steps = nil; c.run.epochs = Int.max
    XCTAssertThrowsError(try c.validate(ranks: 1)) { XCTAssertTrue("\($0)".contains("run.epochs"), "\($0)") }
    // ranks x accumulation overflowing Int is refused, not trapped.
    c = validConfig(); c.run.accumulation = 1 << 16
    XCTAssertThrowsError(try c.validate(ranks: Int.max / 2))
  }

  func testYAMLAliasBombIsRefusedByItsExpandedSize() throws {
    // Nine levels, each listing the previous one nine times: 9^9 (387 million) values once expanded.
    var yaml = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    var previous = "a"
    for level in ["b", "c", "d", "e", "f", "g", "h", "i"] {
      yaml += "\(level): &\(level) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
      previous = level
    }
    var c = TrainConfig()
    XCTAssertThrowsError(try c.merge(yaml: yaml, source: "bomb.yaml")) { error in
      XCTAssertTrue("\(error)".contains("bomb.yaml") && "\(error)".contains("100000"), "\(error)")
    }
    // Aliases that expand to little are fine.
    try c.merge(yaml: "rada:\n  templates: &t ['a {}.']\n", source: "ok.yaml")
    XCTAssertEqual(c.rada.templates, ["a {}."])
  }

  func testDeepYAMLAndNonScalarKeysAreRefusedNotCrashed() throws {
    // The flow and dash documents overflowed the stack in Yams' recursive composer at these sizes, and so did a
    // block mapping 3000 deep (kept at 300 here: refused from 201, and fast); non-scalar keys hit a force unwrap.
    let documents = ["optim: " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000),
                     (0..<300).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1",
                     String(repeating: "- ", count: 20_000) + "x",
                     "optim: {[x]: 1}", "? [a, b]\n: 1\n"]
    for (index, yaml) in documents.enumerated() {
      var c = TrainConfig()
      XCTAssertThrowsError(try c.merge(yaml: yaml, source: "deep\(index).yaml"), "document \(index)") { error in
        XCTAssertTrue("\(error)".contains("deep\(index).yaml"), "\(index): \(error)")
      }
      XCTAssertThrowsError(try SweepSpec.parse(yaml: yaml), "spec \(index)")
      var o = TrainConfig()
      XCTAssertThrowsError(try o.apply(override: "rada.templates=" + yaml), "--set \(index)")
    }
    // Comments, quotes and plain scalars with braces do not count as nesting.
    var c = TrainConfig()
    try c.merge(yaml: "# [[[[ {{{{\nrada:\n  templates: ['a [{}.', \"b {}]]]\"]  # ]]]\n", source: "ok.yaml")
    XCTAssertEqual(c.rada.templates, ["a [{}.", "b {}]]]"])
  }

  func testSweepSpecAliasBombIsRefused() {
    var yaml = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    var previous = "a"
    for level in ["b", "c", "d", "e", "f", "g", "h", "i"] {
      yaml += "\(level): &\(level) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\n"
      previous = level
    }
    XCTAssertThrowsError(try SweepSpec.parse(yaml: yaml + "grid: {lr: *i}\n")) { error in
      XCTAssertTrue("\(error)".contains("100000"), "\(error)")
    }
  }

  func testStateWithAbsurdNumbersIsADamagedCheckpoint() throws {
    let directory = NSTemporaryDirectory() + "rada-hostile-state-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let checkpointer = Checkpointer(directory: directory, keepLast: 3)
    let values = FloatBuffer([1, 2, 3])
    let path = try checkpointer.save(step: 5, files: ["head.safetensors": [.init(name: "w", shape: [3], values: values.readOnly)]],
                                     state: CheckpointState(step: 5, epoch: 0, worldSize: 1, seed: 1))
    XCTAssertEqual(try checkpointer.verify(path).step, 5)
    let original = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/state.json")))
                                   as? [String: Any])
    let edits: [(String, Any, String)] = [("step", -5, "step is -5"), ("worldSize", 0, "worldSize is 0"),
                                          ("scalars", ["optimizer_step": 1e300], "optimizer_step"),
                                          ("scalars", ["best_step": -1], "best_step"), ("step", 1e300, "state.json"),
                                          ("epoch", 1 << 50, "epoch")]
    for (key, value, fragment) in edits {
      let edit = "\(key) = \(value)"
      var object = original
      object[key] = value
      let edited = try JSONSerialization.data(withJSONObject: object)
      try edited.write(to: URL(fileURLWithPath: path + "/state.json"))
      // DONE covers state.json (issue 15): record the edited file's checksum, so the numbers themselves are checked.
      try Data("state.json \(checksum(edited))\n".utf8).write(to: URL(fileURLWithPath: path + "/DONE"))
      XCTAssertThrowsError(try checkpointer.verify(path), edit) { error in
        XCTAssertTrue("\(error)".contains(fragment) && "\(error)".contains(path), "\(edit): \(error)")
      }
      XCTAssertNil(checkpointer.newestValid { _ in }, edit)
    }
  }

  func testChartAxesStayFiniteAtTheEndsOfDouble() {
    // Subnormals built from bit patterns (a literal like 4e-320 is exact only up to the compiler's warning).
    let tiny = Double.leastNonzeroMagnitude, sub1 = Double(bitPattern: 8096), sub2 = Double(bitPattern: 10120)
    for values in [[1.7e308, -1.7e308], [tiny], [sub1, sub2], [1e300, 1e300], [-1.7e308], [0, 1.7e308],
                   [Double.nan, .infinity], [1, 1 + 1e-15]] {
      for integral in [false, true] {
        let axis = ChartAxis(covering: values, integral: integral)
        XCTAssertTrue(axis.lo.isFinite && axis.hi.isFinite && axis.lo < axis.hi, "\(values): \(axis)")
        XCTAssertTrue(axis.step > 0 && axis.step.isFinite, "\(values): \(axis)")
        XCTAssertTrue((1...101).contains(axis.ticks.count), "\(values): \(axis.ticks.count) ticks")
        for tick in axis.ticks { XCTAssertFalse(axis.label(tick).isEmpty) }
      }
    }
    let chart = LineChart(title: "t", xLabel: "step", yLabel: "loss",
                          series: [ChartSeries(name: "loss", points: [(1, 1.7e308), (2, -1.7e308), (3, Double(bitPattern: 8096))], color: "#000")])
    XCTAssertTrue(chart.svg().contains("<polyline"))
  }
}

final class HostileSweepSpecTests: XCTestCase {
  func expectRefused(_ yaml: String, _ fragments: [String], line: UInt = #line) {
    XCTAssertThrowsError(try SweepSpec.parse(yaml: yaml), yaml, line: line) { error in
      for f in fragments { XCTAssertTrue("\(error)".contains(f), "'\(f)' missing in \(error)", line: line) }
    }
  }

  func testHugeGridsAndRandomCountsAreRefusedWithTheCount() {
    let values = "[" + (1...100).map(String.init).joined(separator: ", ") + "]"
    expectRefused("grid: {lr: \(values), alpha: \(values), shots: \(values)}", ["grid", "1000000 configurations"])
    expectRefused("random: {count: 1000000000, lr: {uniform: [0, 1]}}", ["random.count", "at most 100000"])
    expectRefused("grid: {lr: \(values), alpha: \(values)}\nrandom: {count: 50, wd: {uniform: [0, 1]}}",
                  ["random.count", "500000 configurations"])
    XCTAssertNoThrow(try SweepSpec.parse(yaml: "grid: {lr: \(values), alpha: \(values)}"))
  }

  func testRunsCannotBeMovedOutsideOut() {
    for args in ["--set run.dir=/etc", "--set=run.dir=/etc", "--run-dir=/etc", "['--set', 'run.dir = /tmp/x']", "--resume auto"] {
      expectRefused("args: \(args)\ngrid: {lr: [1, 2]}", ["args"])
    }
    expectRefused("grid: {data: [{train: 'imagefolder:/d', run-dir: /etc}]}", ["grid.data", "--run-dir"])
    expectRefused("grid: {set: ['run.dir=/etc']}", ["grid.set", "run.dir"])
    expectRefused("random: {count: 2, set: ['optim.lr=1', 'run.dir=/tmp/elsewhere']}", ["random.set", "run.dir"])
    XCTAssertNoThrow(try SweepSpec.parse(yaml: "args: --set run.dirty=1\ngrid: {lr: [1, 2]}").args)
  }

  func testNamesThatCouldBreakTheSlurmScriptAreRefused() {
    expectRefused("name: \"x\\nrm -rf /\"\ngrid: {lr: [1, 2]}", ["'name'"])
    expectRefused("name: \"a b\"\ngrid: {lr: [1, 2]}", ["'name'"])
    XCTAssertEqual(try SweepSpec.parse(yaml: "name: lr-sweep_2.b\ngrid: {lr: [1, 2]}").name, "lr-sweep_2.b")
  }
}
