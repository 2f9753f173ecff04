// Runs a sweep's configurations as child processes: `rada train ... --run-dir DIR/runs/NAME --resume auto
// --threads T`, directly for one rank or under `mpirun -np R --bind-to none` (or `srun --mpi=pmix` inside a Slurm
// allocation), at most --max-parallel at once, never more cores than the machine has (ranks x threads x
// parallel). Finished runs are skipped, interrupted ones resumed, failed ones reported (retried with
// retryFailed). A signal to the sweep is passed on (SIGUSR1 to mpirun, which forwards it to the ranks; SIGTERM
// to a single rada), so every run checkpoints and exits 75; the sweep then exits 75 as well.
import Foundation
import Training

public enum SweepLauncher: String, CaseIterable {
  /// direct for one rank, srun inside a Slurm allocation, mpirun otherwise
  case auto, direct, mpirun, srun
}

public struct SweepRunOptions {
  public var out: String
  public var specPath: String
  /// nil: as many as fit in the cores.
  public var maxParallel: Int?
  /// The rada executable the runs use.
  public var rada: String
  public var launcher: SweepLauncher = .auto
  public var retryFailed = false
  /// Allow ranks x threads x parallel above the core count (and pass --oversubscribe to mpirun).
  public var oversubscribe = false
  public var cores = ProcessInfo.processInfo.activeProcessorCount
  public var log: (String) -> Void = { print($0); fflush(stdout) }

  public init(out: String, specPath: String, rada: String) {
    self.out = out; self.specPath = specPath; self.rada = rada
  }
}

public final class SweepRunner {
  public let spec: SweepSpec
  public let options: SweepRunOptions
  public let configurations: [SweepConfiguration]

  public init(spec: SweepSpec, options: SweepRunOptions) {
    self.spec = spec
    self.options = options
    self.configurations = spec.configurations()
  }

  func launcher(environment: [String: String] = ProcessInfo.processInfo.environment) -> SweepLauncher {
    guard options.launcher == .auto else { return options.launcher }
    if spec.ranks == 1 { return .direct }
    return environment["SLURM_JOB_ID"] != nil ? .srun : .mpirun
  }

  /// The full command for one configuration.
  public func command(for configuration: SweepConfiguration) -> [String] {
    let directory = SweepState.runDirectory(out: options.out, configuration: configuration)
    return launched([options.rada, "train"] + configuration.arguments
      + ["--run-dir", directory, "--resume", "auto", "--threads", String(spec.threads)])
  }

  /// The extraction-phase command for one configuration: the same training arguments with every core
  /// (threads = cores / ranks) and --extract-features-only, in a scratch run directory.
  public func extractionCommand(for configuration: SweepConfiguration) -> [String] {
    let threads = max(1, options.cores / max(1, spec.ranks))
    return launched([options.rada, "train"] + configuration.arguments
      + ["--run-dir", extractionDirectory + "/" + configuration.runName, "--extract-features-only",
         "--threads", String(threads)])
  }

  /// OUT/.extraction: scratch run directories and logs of the extraction phase.
  var extractionDirectory: String { options.out + "/.extraction" }

  private func launched(_ train: [String]) -> [String] {
    switch launcher() {
    case .direct, .auto: return train
    case .srun:
      return ["srun", "--mpi=pmix", "--kill-on-bad-exit=1", "--ntasks", String(spec.ranks),
              "--cpus-per-task", String(spec.threads)] + train
    case .mpirun:
      // --bind-to none: several mpiruns side by side would all bind their rank 0 to core 0.
      var mpirun = ["mpirun", "-np", String(spec.ranks), "--bind-to", "none"]
      if getuid() == 0 { mpirun.append("--allow-run-as-root") }
      if options.oversubscribe { mpirun += ["--oversubscribe", "--mca", "mpi_yield_when_idle", "1"] }
      return mpirun + train
    }
  }

  /// How many runs may go at once; refuses a plan that needs more cores than there are.
  public func parallelism(toRun: Int) throws -> Int {
    let perRun = spec.ranks * spec.threads
    let fitting = max(1, options.cores / perRun)
    let parallel = max(1, min(options.maxParallel ?? fitting, max(1, toRun)))
    let needed = perRun * parallel
    if needed > options.cores && !options.oversubscribe {
      let hint = perRun > options.cores
        ? "Each run needs \(spec.ranks) rank(s) x \(spec.threads) thread(s); lower ranks:/threads: in the spec, or pass --oversubscribe."
        : "Use --max-parallel \(fitting) (or fewer threads:), or pass --oversubscribe to share cores."
      throw SweepError.tooManyCores(needed: needed, cores: options.cores, hint: hint)
    }
    return parallel
  }

  private struct Active {
    var configuration: SweepConfiguration
    var pid: pid_t
    var started: Date
    var signalled = false
  }

  /// Runs every configuration that is not done (and not running elsewhere). Returns the final records and
  /// whether a signal stopped the sweep.
  public func runAll() throws -> (records: [SweepRunRecord], stopped: Bool) {
    let initial = SweepState.records(out: options.out, spec: spec)
    var queue = initial.filter { r in
      r.status == .pending || r.status == .interrupted || (r.status == .failed && options.retryFailed)
    }.map(\.configuration)
    let parallel = try parallelism(toRun: queue.count)
    let total = configurations.count
    options.log("sweep \(spec.name): \(total) configuration(s): \(SweepResults.counts(initial)); "
                + "running \(queue.count), \(parallel) at a time, \(spec.ranks) rank(s) x \(spec.threads) thread(s) each")
    for r in initial where r.status == .failed && !options.retryFailed {
      options.log("  failed before, not retried (pass --retry-failed): \(r.configuration.readableKey): \(r.detail)")
    }
    try writeResults()
    // Runs that leave cores idle (several at once, or fewer threads than cores) extract faster first, all together.
    if !queue.isEmpty && spec.ranks * spec.threads < options.cores && !StopSignal.isRequested { extractFeatures(queue) }

    var active: [Active] = []
    var stopped = false
    while !queue.isEmpty || !active.isEmpty {
      if StopSignal.isRequested && !stopped {
        stopped = true
        options.log("sweep: stop requested; asking \(active.count) run(s) to checkpoint and exit")
        queue.removeAll()
        for i in active.indices { stopChild(active[i].pid); active[i].signalled = true }
      }
      while !stopped && active.count < parallel, !queue.isEmpty {
        let configuration = queue.removeFirst()
        if let pid = try start(configuration, position: "[\(configuration.index + 1)/\(total)]") {
          active.append(Active(configuration: configuration, pid: pid, started: Date()))
        }
      }
      var finishedAny = false
      for (i, run) in active.enumerated().reversed() {
        var status: Int32 = 0
        let r = waitpid(run.pid, &status, WNOHANG)
        guard r == run.pid || (r < 0 && errno != EINTR) else { continue }
        let code = r < 0 ? 1 : exitCode(status)
        finish(run.configuration, code: code, seconds: Date().timeIntervalSince(run.started),
               position: "[\(run.configuration.index + 1)/\(total)]")
        active.remove(at: i)
        finishedAny = true
      }
      if finishedAny { try writeResults() } else { usleep(200_000) }
    }
    let records = try writeResults()
    options.log("sweep \(spec.name): \(SweepResults.counts(records)); results in \(options.out)/results.md")
    return (records, stopped)
  }

  /// Runs one configuration in the foreground (a Slurm array task). Returns its status afterwards.
  public func runOne(index: Int) throws -> SweepRunStatus {
    guard configurations.indices.contains(index) else {
      throw SweepError.indexOutOfRange(index: index, count: configurations.count)
    }
    let configuration = configurations[index]
    let before = SweepState.record(out: options.out, configuration: configuration)
    if before.status == .done {
      options.log("\(configuration.readableKey): already complete (runs/\(configuration.runName))")
      return .done
    }
    if before.status == .failed && !options.retryFailed {
      options.log("\(configuration.readableKey): failed before (\(before.detail)); rerunning it")
    }
    guard let pid = try start(configuration, position: "[\(index)]") else {
      throw SweepError.locked(run: configuration.runName, holder: SweepLock.liveHolder(
        directory: SweepState.runDirectory(out: options.out, configuration: configuration))?.summary ?? "another process")
    }
    let started = Date()
    let code = waitForChild(pid)
    let after = finish(configuration, code: code, seconds: Date().timeIntervalSince(started), position: "[\(index)]")
    try writeResults()
    return after
  }

  @discardableResult
  public func writeResults() throws -> [SweepRunRecord] {
    let records = SweepState.records(out: options.out, spec: spec)
    try SweepResults.write(records, spec: spec, specPath: options.specPath, out: options.out)
    return records
  }

  // MARK: the extraction phase

  /// EFT with augmentation: before the runs, each queued configuration's augmented image features go into the
  /// feature cache, one configuration at a time with every core, so the runs that follow (in parallel) train the
  /// head only. Configurations that share a cache entry (they differ in lr, α, temperature, weight decay...) find
  /// it complete and end at once; other settings end at once too. A failure here is only reported: the run then
  /// extracts (or fails) itself. OUT/extraction.txt says where the phase is (`rada sweep status`).
  func extractFeatures(_ queue: [SweepConfiguration]) {
    let statusPath = options.out + "/" + SweepState.extractionFile
    defer { unlink(statusPath); try? FileManager.default.removeItem(atPath: extractionDirectory) }
    try? FileManager.default.createDirectory(atPath: extractionDirectory, withIntermediateDirectories: true)
    options.log("sweep \(spec.name): extracting image features for \(queue.count) configuration(s) first, "
                + "one at a time on all \(options.cores) core(s)")
    let started = Date()
    for (i, configuration) in queue.enumerated() where !StopSignal.isRequested {
      try? Data("features for \(configuration.readableKey) (\(i + 1) of \(queue.count))\n".utf8)
        .write(to: URL(fileURLWithPath: statusPath))
      let log = extractionDirectory + "/" + configuration.runName + ".log"
      let code = (try? waitForChild(spawn(extractionCommand(for: configuration), logPath: log))) ?? 1
      if code != 0 && !StopSignal.isRequested {
        options.log("  feature extraction for \(configuration.readableKey) failed (\(lastError(logPath: log))); "
                    + "its run extracts what it needs itself")
      }
    }
    options.log(String(format: "sweep %@: feature extraction done in %.0f s", spec.name, Date().timeIntervalSince(started)))
  }

  // MARK: one child

  /// Takes the configuration's lock and starts its run; nil when another process holds the lock.
  private func start(_ configuration: SweepConfiguration, position: String) throws -> pid_t? {
    let directory = SweepState.runDirectory(out: options.out, configuration: configuration)
    if let holder = try SweepLock.acquire(directory: directory) {
      options.log("\(position) \(configuration.readableKey): running elsewhere (\(holder.summary)); skipped")
      return nil
    }
    // A done run can appear between reading the state and taking the lock (another sweep just finished it).
    if FileManager.default.fileExists(atPath: directory + "/COMPLETE") {
      SweepLock.release(directory: directory)
      return nil
    }
    unlink(directory + "/" + SweepState.failedFile)
    let argv = command(for: configuration)
    let resumed = FileManager.default.fileExists(atPath: directory + "/metrics.jsonl")
    options.log("\(position) \(resumed ? "resume" : "start") \(configuration.readableKey) -> runs/\(configuration.runName)")
    do {
      let pid = try spawn(argv, logPath: directory + "/sweep.log")
      SweepLock.noteChild(directory: directory, child: pid)
      return pid
    } catch {
      try? Data("could not start: \(error)\n".utf8).write(to: URL(fileURLWithPath: directory + "/" + SweepState.failedFile))
      SweepLock.release(directory: directory)
      throw error
    }
  }

  @discardableResult
  private func finish(_ configuration: SweepConfiguration, code: Int32, seconds: Double, position: String) -> SweepRunStatus {
    let directory = SweepState.runDirectory(out: options.out, configuration: configuration)
    defer { SweepLock.release(directory: directory) }
    let took = String(format: "%.0f s", seconds)
    if code == 0, FileManager.default.fileExists(atPath: directory + "/COMPLETE") {
      let record = SweepState.record(out: options.out, configuration: configuration)
      let value = record.metrics[spec.metric].map { " | \(spec.metric) \(SweepResults.formatNumber($0))" } ?? ""
      options.log("\(position) done \(configuration.readableKey)\(value) (\(took))")
      return .done
    }
    if code == 75 {
      options.log("\(position) interrupted \(configuration.readableKey) after a checkpoint (\(took)); the next sweep resumes it")
      return .interrupted
    }
    let reason = "exit \(code)" + (code == 0 ? " without COMPLETE" : "") + ": " + lastError(logPath: directory + "/sweep.log")
    try? Data((reason + "\nlog: \(directory)/sweep.log\n").utf8).write(to: URL(fileURLWithPath: directory + "/" + SweepState.failedFile))
    options.log("\(position) FAILED \(configuration.readableKey): \(reason) (log: \(directory)/sweep.log)")
    return .failed
  }

  /// The last line of a log that mentions an error (else its last line).
  func lastError(logPath: String) -> String {
    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    return lines.last(where: { $0.lowercased().contains("error") }) ?? lines.last ?? "no output"
  }

  /// Waits for a child in the foreground, passing a stop request on to it once; its exit code (128 + signal).
  private func waitForChild(_ pid: pid_t) -> Int32 {
    var signalled = false
    var status: Int32 = 0
    while true {
      if StopSignal.isRequested && !signalled { stopChild(pid); signalled = true }
      let r = waitpid(pid, &status, WNOHANG)
      if r == pid { return exitCode(status) }
      if r < 0 && errno != EINTR { return 1 }
      usleep(100_000)
    }
  }

  private func stopChild(_ pid: pid_t) {
    // mpirun forwards SIGUSR1 to its ranks (rada treats it as a stop request); SIGTERM would make mpirun kill them.
    kill(pid, launcher() == .mpirun ? SIGUSR1 : SIGTERM)
  }

  private func exitCode(_ status: Int32) -> Int32 {
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
  }

  /// posix_spawnp with stdout and stderr appended to `logPath` and stdin from /dev/null.
  func spawn(_ argv: [String], logPath: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
    guard rc == 0 else {
      throw SweepError.cannotStart(command: argv[0], reason: String(cString: strerror(rc)))
    }
    return pid
  }
}
