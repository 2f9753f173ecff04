// Sweeps: spec parsing and its error messages, grid expansion order (itertools.product), reproducible random
// search, deterministic run directory names, status read from fake run directories, results.csv/results.md
// (best run, CoOp base-to-new harmonic means computed by hand here), and the per-configuration lock.
import Foundation
import Sweeps
import Training
import XCTest

final class SweepTests: XCTestCase {
  var directory = ""

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "rada-sweep-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }
  override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

  let gridSpec = """
    args: [--setting, eft, --steps, "5"]
    grid:
      lr: [1e-3, 1e-2, 0.1]
      alpha: [0, 0.5]
    metric: val/top1
    """

  // MARK: expansion

  func testGridExpandsInFileOrderFirstKeySlowest() throws {
    let spec = try SweepSpec.parse(yaml: gridSpec)
    let configs = spec.configurations()
    // itertools.product(["1e-3","1e-2","0.1"], ["0","0.5"]) order, written out by hand.
    let expected = [("1e-3", "0"), ("1e-3", "0.5"), ("1e-2", "0"), ("1e-2", "0.5"), ("0.1", "0"), ("0.1", "0.5")]
    XCTAssertEqual(configs.count, expected.count)
    for (i, (lr, alpha)) in expected.enumerated() {
      XCTAssertEqual(configs[i].index, i)
      XCTAssertEqual(configs[i].values.map(\.key), ["lr", "alpha"], "config \(i)")
      XCTAssertEqual(configs[i].values.map(\.value.label), [lr, alpha], "config \(i)")
      XCTAssertEqual(configs[i].arguments, ["--setting", "eft", "--steps", "5", "--lr", lr, "--alpha", alpha], "config \(i)")
    }
    XCTAssertEqual(spec.sweptKeys, ["lr", "alpha"])
  }

  func testKeyOrderIsTheFileOrderNotAlphabetical() throws {
    let spec = try SweepSpec.parse(yaml: "grid:\n  zeta.x: [1]\n  alpha: [1, 2]\n".replacingOccurrences(of: "zeta.x", with: "optim.lr"))
    XCTAssertEqual(spec.sweptKeys, ["optim.lr", "alpha"])
    XCTAssertEqual(spec.configurations()[1].arguments, ["--set", "optim.lr=1", "--alpha", "2"])
  }

  func testSetPathsBooleanFlagsAndMappingValues() throws {
    let spec = try SweepSpec.parse(yaml: """
      args: "--setting eft  --steps 3"
      grid:
        no-augment: [true, false]
        dataset:
          - {name: pets, train: "coop:/d:oxford_pets", eval: "coop:/d:oxford_pets:test"}
          - {name: sat, train: "coop:/d:eurosat", eval: "coop:/d:eurosat:test"}
        optim.weightDecay: [0]
      """)
    let c = spec.configurations()
    XCTAssertEqual(c.count, 4)
    XCTAssertEqual(c[0].arguments, ["--setting", "eft", "--steps", "3", "--no-augment",
                                    "--train", "coop:/d:oxford_pets", "--eval", "coop:/d:oxford_pets:test",
                                    "--set", "optim.weightDecay=0"])
    XCTAssertEqual(c[2].arguments.contains("--no-augment"), false, "false drops the flag")
    XCTAssertEqual(c[3].readableKey, "no-augment=false,dataset=sat,optim.weightDecay=0")
    XCTAssertEqual(SweepResults.datasetName(c[1]), "sat")
  }

  func testRandomSearchIsReproducibleWithItsSeedAndInRange() throws {
    let text = """
      random:
        count: 5
        seed: 7
        lr: {loguniform: [1e-4, 1e-2]}
        wd: {uniform: [0, 0.5]}
        alpha: [0, 0.1, 1]
      """
    let a = try SweepSpec.parse(yaml: text).configurations()
    let b = try SweepSpec.parse(yaml: text).configurations()
    let other = try SweepSpec.parse(yaml: text.replacingOccurrences(of: "seed: 7", with: "seed: 8")).configurations()
    XCTAssertEqual(a.count, 5)
    XCTAssertEqual(a.map(\.arguments), b.map(\.arguments), "same seed, same draws")
    XCTAssertNotEqual(a.map(\.arguments), other.map(\.arguments), "another seed, other draws")
    for c in a {
      let lr = Double(c.values[0].value.label)!, wd = Double(c.values[1].value.label)!
      XCTAssertTrue(lr >= 1e-4 * 0.9999 && lr <= 1e-2 * 1.0001, "lr \(lr) outside [1e-4, 1e-2]")
      XCTAssertTrue(wd >= 0 && wd <= 0.5, "wd \(wd) outside [0, 0.5]")
      XCTAssertTrue(["0", "0.1", "1"].contains(c.values[2].value.label))
    }
    // loguniform: the draws spread over decades (a uniform draw on [1e-4, 1e-2] would sit above 1e-3 99% of the time).
    let many = try SweepSpec.parse(yaml: text.replacingOccurrences(of: "count: 5", with: "count: 200")).configurations()
    let below = many.filter { Double($0.values[0].value.label)! < 1e-3 }.count
    XCTAssertTrue(below > 60 && below < 140, "\(below) of 200 loguniform draws below 1e-3 (expected about 100)")
  }

  func testGridTimesRandom() throws {
    let spec = try SweepSpec.parse(yaml: "grid: {alpha: [0, 1]}\nrandom: {count: 3, seed: 1, lr: {uniform: [0, 1]}}\n")
    let c = spec.configurations()
    XCTAssertEqual(c.count, 6)
    XCTAssertEqual(c.map { $0.values[0].value.label }, ["0", "0", "0", "1", "1", "1"])
    XCTAssertEqual(c[0].values[1].value.label, c[3].values[1].value.label, "every grid point gets the same draws")
  }

  func testRunNamesAreDeterministicDistinctAndPathSafe() throws {
    let a = try SweepSpec.parse(yaml: gridSpec).configurations()
    let b = try SweepSpec.parse(yaml: gridSpec).configurations()
    XCTAssertEqual(a.map(\.runName), b.map(\.runName))
    XCTAssertEqual(Set(a.map(\.runName)).count, a.count)
    XCTAssertTrue(a[0].runName.hasPrefix("lr=1e-3_alpha=0-"), a[0].runName)
    XCTAssertEqual(a[0].runName.count, "lr=1e-3_alpha=0-".count + 8)
    // The shared args are part of the hash: editing them must not reuse old run directories.
    let edited = try SweepSpec.parse(yaml: gridSpec.replacingOccurrences(of: "\"5\"", with: "\"6\"")).configurations()
    XCTAssertNotEqual(edited[0].runName, a[0].runName)
    let weird = try SweepSpec.parse(yaml: "grid: {template: [\"a photo/of a {}.\"]}").configurations()[0].runName
    XCTAssertFalse(weird.contains("/") || weird.contains(" ") || weird.contains("{"), weird)
  }

  // MARK: errors

  func assertSpecError(_ yaml: String, mentions needles: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try SweepSpec.parse(yaml: yaml), file: file, line: line) { error in
      let text = "\(error)"
      for needle in needles { XCTAssertTrue(text.contains(needle), "'\(text)' lacks '\(needle)'", file: file, line: line) }
    }
  }

  func testSpecErrorsNameTheKeyAndSayWhatToDo() {
    assertSpecError("args: [--lr, 1]\n", mentions: ["grid", "nothing to sweep"])
    assertSpecError("grid: {lr: []}\n", mentions: ["grid.lr", "non-empty list"])
    assertSpecError("grid: {lr: 0.1}\n", mentions: ["grid.lr", "list"])
    assertSpecError("grid: {--lr: [1]}\n", mentions: ["without dashes"])
    assertSpecError("grid: {optim.lrr: [1]}\n", mentions: ["optim.lrr", "optim.lr"])
    assertSpecError("grid: {lr: [1]}\nmode: maximum\n", mentions: ["mode", "max or min"])
    assertSpecError("grid: {lr: [1]}\nranks: 0\n", mentions: ["ranks", ">= 1"])
    assertSpecError("grid: {lr: [1]}\ngird: {}\n", mentions: ["gird", "unknown key", "valid keys"])
    assertSpecError("grid: {lr: [1, 1]}\n", mentions: ["grid.lr", "repeat"])
    assertSpecError("random: {seed: 1, lr: {uniform: [0, 1]}}\n", mentions: ["random.count", "missing"])
    assertSpecError("random: {count: 2, lr: {loguniform: [0, 1]}}\n", mentions: ["random.lr", "low > 0"])
    assertSpecError("random: {count: 2, lr: {uniform: [1, 0]}}\n", mentions: ["random.lr", "low <= high"])
    assertSpecError("random: {count: 2, lr: {normal: [0, 1]}}\n", mentions: ["random.lr", "uniform or loguniform"])
    assertSpecError("grid: {lr: [1]}\nrandom: {count: 1, lr: [2]}\n", mentions: ["lr", "both grid and random"])
    assertSpecError("args: [--run-dir, x]\ngrid: {lr: [1]}\n", mentions: ["--run-dir", "set by the sweep"])
    assertSpecError("grid: {run-dir: [a]}\n", mentions: ["run-dir", "cannot be swept"])
    assertSpecError("grid: [lr]\n", mentions: ["grid", "mapping"])
    XCTAssertThrowsError(try SweepSpec.load(path: directory + "/missing.yaml")) { error in
      XCTAssertTrue("\(error)".contains("missing.yaml") && "\(error)".contains("no such file"), "\(error)")
    }
  }

  // MARK: state and results from fake run directories

  func write(_ text: String, _ path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// 4 runs of lr x alpha: two done, one failed, one interrupted (metrics only), none pending... plus one pending.
  func fakeSweep() throws -> (SweepSpec, [SweepConfiguration]) {
    let spec = try SweepSpec.parse(yaml: "grid:\n  lr: [1e-3, 1e-2]\n  alpha: [0, 0.5, 1]\nmetric: val/top1\n", name: "lrsweep")
    let c = spec.configurations()
    func dir(_ i: Int) -> String { SweepState.runDirectory(out: directory, configuration: c[i]) }
    try write("{\"steps\": 5, \"val/top1\": 0.5, \"val/top5\": 1}\n", dir(0) + "/COMPLETE")
    try write("{\"steps\": 5, \"val/top1\": 0.75, \"val/top5\": 1}\n", dir(1) + "/COMPLETE")
    try write("exit 1: error: out of memory\nlog: x\n", dir(2) + "/FAILED")
    try write("{\"step\": 1, \"train/loss\": 2.5}\n{\"step\": 2, \"train/loss\": 2.0}\n", dir(3) + "/metrics.jsonl")
    try write("{\"steps\": 5, \"val/top1\": 0.625, \"val/top5\": 1}\n", dir(4) + "/COMPLETE")
    return (spec, c)
  }

  func testStatusFromRunDirectories() throws {
    let (spec, _) = try fakeSweep()
    let records = SweepState.records(out: directory, spec: spec)
    XCTAssertEqual(records.map(\.status), [.done, .done, .failed, .interrupted, .done, .pending])
    XCTAssertEqual(records[1].metrics["val/top1"], 0.75)
    XCTAssertEqual(records[2].detail, "exit 1: error: out of memory")
    XCTAssertEqual(records[3].metrics["step"], 2, "an interrupted run shows its newest step")
    XCTAssertEqual(records[3].metrics["train/loss"], 2.0)
    XCTAssertEqual(SweepResults.best(records, spec: spec)?.configuration.index, 1)
    var minSpec = spec
    minSpec.mode = "min"
    XCTAssertEqual(SweepResults.best(records, spec: minSpec)?.configuration.index, 0)
  }

  func testResultsCSVAndMarkdown() throws {
    let (spec, c) = try fakeSweep()
    let records = SweepState.records(out: directory, spec: spec)
    try SweepResults.write(records, spec: spec, specPath: "/x/lrsweep.yaml", out: directory)
    let csv = try String(contentsOfFile: directory + "/results.csv", encoding: .utf8).split(separator: "\n").map(String.init)
    XCTAssertEqual(csv[0], "lr,alpha,status,val/top1,steps,val/top5,run")
    XCTAssertEqual(csv[1], "1e-3,0,done,0.5,5,1,\(c[0].runName)")
    XCTAssertEqual(csv[2], "1e-3,0.5,done,0.75,5,1,\(c[1].runName)")
    XCTAssertEqual(csv[3], "1e-3,1,failed,,,,\(c[2].runName)")
    XCTAssertEqual(csv[6], "1e-2,1,pending,,,,\(c[5].runName)")
    XCTAssertEqual(csv.count, 7)
    let md = try String(contentsOfFile: directory + "/results.md", encoding: .utf8)
    XCTAssertTrue(md.contains("# Sweep lrsweep"), md)
    XCTAssertTrue(md.contains("| lr | alpha | status | val/top1 | steps | val/top5 | run |"), md)
    XCTAssertTrue(md.contains("| **1e-3** | **0.5** | **done** | **0.75** |"), "best row in bold: \(md)")
    XCTAssertTrue(md.contains("Best: lr=1e-3,alpha=0.5 with val/top1 = 0.75"), md)
    XCTAssertTrue(md.contains("6 configuration(s): 3 done, 0 running, 1 failed, 1 interrupted, 1 pending"), md)
    XCTAssertTrue(md.contains("lr=1e-3,alpha=1: exit 1: error: out of memory"), md)
    XCTAssertFalse(md.contains("Base-to-new"), "no base/new runs, no base-to-new table")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/sweep.json"))) as! [String: Any]
    XCTAssertEqual(json["best"] as? String, c[1].runName)
    let runs = json["runs"] as! [[String: Any]]
    XCTAssertEqual(runs.count, 6)
    XCTAssertEqual(runs[1]["dir"] as? String, directory + "/runs/" + c[1].runName)
    XCTAssertEqual((runs[1]["config"] as? [String: String])?["alpha"], "0.5")
    XCTAssertEqual((runs[1]["metrics"] as? [String: Double])?["val/top1"], 0.75)
  }

  func testBaseToNewHarmonicMeansAndCoOpAverage() throws {
    // Grid over datasets x subsample; base and new accuracies chosen so the numbers are easy to check by hand.
    let spec = try SweepSpec.parse(yaml: """
      args: [--steps, "5"]
      grid:
        train: ["coop:/data:oxford_pets", "coop:/data:eurosat"]
        subsample: [base, new]
      """)
    let c = spec.configurations()
    let acc = [0.9, 0.6, 0.8, 0.4]  // pets base, pets new, eurosat base, eurosat new
    for (i, a) in acc.enumerated() {
      try write("{\"val/top1\": \(a)}\n", SweepState.runDirectory(out: directory, configuration: c[i]) + "/COMPLETE")
    }
    let records = SweepState.records(out: directory, spec: spec)
    let groups = SweepResults.baseToNew(records, spec: spec)
    XCTAssertEqual(groups.count, 1)
    XCTAssertEqual(groups[0].rows.map(\.dataset), ["oxford_pets", "eurosat"])
    // H(0.9, 0.6) = 1.08 / 1.5 = 0.72; H(0.8, 0.4) = 0.64 / 1.2 = 0.5333...
    XCTAssertEqual(groups[0].rows[0].harmonic, 0.72, accuracy: 1e-12)
    XCTAssertEqual(groups[0].rows[1].harmonic, 0.64 / 1.2, accuracy: 1e-12)
    // Average row: mean base 0.85, mean new 0.5, H of the means = 0.85 / 1.35 (not the mean of the H values).
    let average = SweepResults.average(groups[0].rows)
    XCTAssertEqual(average.base, 0.85, accuracy: 1e-12)
    XCTAssertEqual(average.new, 0.5, accuracy: 1e-12)
    XCTAssertEqual(average.harmonic, 0.85 / 1.35, accuracy: 1e-12)
    let md = SweepResults.markdown(records, spec: spec)
    XCTAssertTrue(md.contains("| oxford_pets | 90.00 | 60.00 | 72.00 |"), md)
    XCTAssertTrue(md.contains("| **average** | 85.00 | 50.00 | 62.96 |"), md)
  }

  func testBaseToNewFromPrefixedMetricsOfOneRun() throws {
    let spec = try SweepSpec.parse(yaml: "args: [--train, \"imagefolder:/d/flowers\"]\ngrid: {lr: [1, 2]}\n")
    let c = spec.configurations()
    try write("{\"base/top1\": 0.5, \"new/top1\": 0.25}\n", SweepState.runDirectory(out: directory, configuration: c[1]) + "/COMPLETE")
    let groups = SweepResults.baseToNew(SweepState.records(out: directory, spec: spec), spec: spec)
    XCTAssertEqual(groups.count, 1)
    XCTAssertEqual(groups[0].group, "lr=2")
    XCTAssertEqual(groups[0].rows, [SweepResults.BaseNewRow(dataset: "flowers", base: 0.5, new: 0.25)])
    XCTAssertEqual(groups[0].rows[0].harmonic, 2 * 0.5 * 0.25 / 0.75, accuracy: 1e-12)
  }

  // MARK: lock

  func testLockIsExclusiveAndReleased() throws {
    let run = directory + "/runs/a"
    XCTAssertNil(try SweepLock.acquire(directory: run), "a free lock is taken")
    let holder = try SweepLock.acquire(directory: run)
    XCTAssertEqual(holder?.pid, getpid(), "a held lock names its holder")
    XCTAssertEqual(SweepLock.liveHolder(directory: run)?.host, SweepLock.hostName())
    SweepLock.release(directory: run)
    XCTAssertNil(SweepLock.liveHolder(directory: run))
    XCTAssertNil(try SweepLock.acquire(directory: run), "free again after release")
    SweepLock.release(directory: run)
  }

  func testStaleLockOfADeadProcessIsBroken() throws {
    let run = directory + "/runs/b"
    try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
    // A process that has exited: its PID no longer exists (or belongs to another process with another start time).
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/bin/true")
    try child.run()
    child.waitUntilExit()
    let dead = SweepLockHolder(pid: child.processIdentifier, child: nil, host: SweepLock.hostName(), startTicks: 1,
                               childStartTicks: nil, started: 0)
    try JSONEncoder().encode(dead).write(to: URL(fileURLWithPath: run + "/" + SweepLock.fileName))
    XCTAssertNil(SweepLock.liveHolder(directory: run), "dead holder: the lock is stale")
    XCTAssertNil(try SweepLock.acquire(directory: run), "a stale lock is broken and taken")
    XCTAssertEqual(SweepLock.holder(directory: run)?.pid, getpid())
    SweepLock.release(directory: run)

    // A live process on this host (ourselves, with our real start time) is never stale...
    var live = dead
    live.pid = getpid()
    live.startTicks = SweepLock.startTicks(of: getpid())
    try JSONEncoder().encode(live).write(to: URL(fileURLWithPath: run + "/" + SweepLock.fileName))
    XCTAssertNotNil(SweepLock.liveHolder(directory: run))
    // ...and a lock from another host is kept (its processes cannot be seen from here).
    var remote = dead
    remote.host = "some-other-node"
    try JSONEncoder().encode(remote).write(to: URL(fileURLWithPath: run + "/" + SweepLock.fileName))
    XCTAssertEqual(try SweepLock.acquire(directory: run)?.host, "some-other-node")
    // A running run shows as running in the status.
    let spec = try SweepSpec.parse(yaml: "grid: {lr: [1]}\n")
    let config = spec.configurations()[0]
    let dir = SweepState.runDirectory(out: directory, configuration: config)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try JSONEncoder().encode(live).write(to: URL(fileURLWithPath: dir + "/" + SweepLock.fileName))
    XCTAssertEqual(SweepState.record(out: directory, configuration: config).status, .running)
    // ...and says where its feature extraction is while that runs.
    try "augmented features: epoch 2 of 5, 96 of 480 images ready\n".write(
      toFile: dir + "/" + SweepState.extractionFile, atomically: true, encoding: .utf8)
    let record = SweepState.record(out: directory, configuration: config)
    XCTAssertTrue(record.detail.hasSuffix("; augmented features: epoch 2 of 5, 96 of 480 images ready"), record.detail)
  }

  func testLockAcrossProcessesOnlyOneWins() throws {
    // Eight threads race for one lock; exactly one gets it (the guard flock plus O_EXCL).
    let run = directory + "/runs/c"
    let winners = ManagedCounter()
    DispatchQueue.concurrentPerform(iterations: 8) { _ in
      if (try? SweepLock.acquire(directory: run)) == .some(nil) { winners.increment() }
    }
    XCTAssertEqual(winners.value, 1)
  }

  // MARK: runner planning

  func testCoreCheckRefusesTooManyCores() throws {
    var spec = try SweepSpec.parse(yaml: "grid: {lr: [1, 2, 3, 4]}\nranks: 2\nthreads: 1\n")
    var options = SweepRunOptions(out: directory, specPath: "s.yaml", rada: "/bin/rada")
    options.cores = 4
    XCTAssertEqual(try SweepRunner(spec: spec, options: options).parallelism(toRun: 4), 2, "4 cores / (2 ranks x 1 thread)")
    options.maxParallel = 3
    XCTAssertThrowsError(try SweepRunner(spec: spec, options: options).parallelism(toRun: 4)) { error in
      XCTAssertTrue("\(error)".contains("needs 6 cores") && "\(error)".contains("--max-parallel 2"), "\(error)")
    }
    XCTAssertEqual(try SweepRunner(spec: spec, options: options).parallelism(toRun: 1), 1, "only one run left")
    options.oversubscribe = true
    XCTAssertEqual(try SweepRunner(spec: spec, options: options).parallelism(toRun: 4), 3)
    spec.threads = 3
    options.oversubscribe = false
    options.maxParallel = nil
    XCTAssertThrowsError(try SweepRunner(spec: spec, options: options).parallelism(toRun: 4)) { error in
      XCTAssertTrue("\(error)".contains("2 rank(s) x 3 thread(s)"), "\(error)")
    }
  }

  func testCommandLines() throws {
    var spec = try SweepSpec.parse(yaml: "args: [--steps, \"2\"]\ngrid: {lr: [1]}\nthreads: 2\n")
    var options = SweepRunOptions(out: "/o", specPath: "s.yaml", rada: "/bin/rada")
    let config = spec.configurations()[0]
    let dir = "/o/runs/" + config.runName
    XCTAssertEqual(SweepRunner(spec: spec, options: options).command(for: config),
                   ["/bin/rada", "train", "--steps", "2", "--lr", "1", "--run-dir", dir, "--resume", "auto", "--threads", "2"])
    spec.ranks = 2
    options.launcher = .mpirun
    let mpi = SweepRunner(spec: spec, options: options).command(for: config)
    XCTAssertEqual(Array(mpi.prefix(5)), ["mpirun", "-np", "2", "--bind-to", "none"])
    XCTAssertEqual(Array(mpi.suffix(12)), ["/bin/rada", "train", "--steps", "2", "--lr", "1", "--run-dir", dir, "--resume", "auto", "--threads", "2"])
    options.launcher = .srun
    XCTAssertEqual(Array(SweepRunner(spec: spec, options: options).command(for: config).prefix(3)), ["srun", "--mpi=pmix", "--kill-on-bad-exit=1"])
    // The extraction phase: the same arguments with every core (8 cores / 2 ranks = 4 threads), a scratch run
    // directory, and --extract-features-only.
    options.launcher = .mpirun
    options.cores = 8
    let extraction = SweepRunner(spec: spec, options: options).extractionCommand(for: config)
    XCTAssertEqual(Array(extraction.prefix(5)), ["mpirun", "-np", "2", "--bind-to", "none"])
    XCTAssertEqual(Array(extraction.suffix(11)), ["/bin/rada", "train", "--steps", "2", "--lr", "1", "--run-dir",
                                                  "/o/.extraction/" + config.runName, "--extract-features-only",
                                                  "--threads", "4"])
  }
}

/// A thread-safe counter for the lock race.
final class ManagedCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func increment() { lock.lock(); count += 1; lock.unlock() }
  var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
