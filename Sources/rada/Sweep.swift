// `rada sweep`: runs a grid / random search of `rada train` configurations from a YAML spec, each in its own run
// directory under --out, skipping finished ones and resuming interrupted ones; `status` shows where a sweep stands;
// `run-one` runs a single configuration (one Slurm array task). Exit codes: 0 all done, 1 a run failed or an
// error, 75 stopped by a signal (rerun the same command to continue).
import ArgumentParser
import Foundation
import Sweeps
import Training

struct Sweep: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a hyperparameter sweep of `rada train` (grid and/or random search).",
    discussion: """
      SPEC.yaml:  args: [--setting, eft, --model, m.safetensors, --train, imagefolder:d/train, --steps, 100]
                  grid: {lr: [1e-3, 1e-2], alpha: [0, 0.5]}      (option names without dashes, or --set paths: optim.lr)
                  random: {count: 8, seed: 1, lr: {loguniform: [1e-4, 1e-2]}, alpha: [0, 0.5]}
                  ranks: 1   threads: 1   metric: val/top1   mode: max
      Results: OUT/results.csv, OUT/results.md, OUT/sweep.json; runs in OUT/runs/<key>-<hash>/.
      Examples: rada sweep spec.yaml --out sweeps/lr --max-parallel 2
                rada sweep status spec.yaml --out sweeps/lr
                rada sweep spec.yaml --out sweeps/lr --emit-slurm lr.sbatch   (then: sbatch lr.sbatch)
      """,
    subcommands: [RunAll.self, Status.self, RunOne.self],
    defaultSubcommand: RunAll.self)

  struct Common: ParsableArguments {
    @Argument(help: "The sweep spec (YAML).") var spec: String
    @Option(help: "Output directory (default: sweeps/<spec name>).") var out: String?
    @Option(help: "rada executable for the runs (default: this one).") var rada: String?
    @Option(help: "auto, direct, mpirun or srun (auto: direct for 1 rank, srun inside Slurm, else mpirun).")
    var launcher: String = "auto"

    func validate() throws {
      guard SweepLauncher(rawValue: launcher) != nil else {
        throw ValidationError("--launcher takes auto, direct, mpirun or srun (got '\(launcher)').")
      }
    }

    func load() throws -> (SweepSpec, SweepRunOptions) {
      let spec: SweepSpec
      do { spec = try SweepSpec.load(path: spec_path) } catch { throw ValidationError("\(error)") }
      let directory = out ?? "sweeps/" + spec.name
      var options = SweepRunOptions(out: absolute(directory), specPath: absolute(spec_path), rada: rada.map(absolute) ?? selfPath())
      options.launcher = SweepLauncher(rawValue: launcher) ?? .auto
      return (spec, options)
    }
    private var spec_path: String { spec }
  }

  struct RunAll: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run every configuration not done yet (default).")
    @OptionGroup var common: Common
    @Option(name: .customLong("max-parallel"), help: "Runs at once (default: as many as fit in the cores).") var maxParallel: Int?
    @Option(name: .customLong("emit-slurm"), help: "Write a Slurm job-array script for this sweep to FILE and exit.") var emitSlurm: String?
    @Option(name: .customLong("slurm-concurrency"), help: "With --emit-slurm: array tasks at once (the %N cap).") var slurmConcurrency = 4
    @Flag(name: .customLong("retry-failed"), help: "Rerun configurations that failed before.") var retryFailed = false
    @Flag(help: "Allow ranks x threads x parallel above the core count.") var oversubscribe = false

    func validate() throws {
      if let maxParallel, maxParallel < 1 { throw ValidationError("--max-parallel must be at least 1 (got \(maxParallel)).") }
      if slurmConcurrency < 1 { throw ValidationError("--slurm-concurrency must be at least 1.") }
    }

    func run() throws {
      var (spec, options) = try common.load()
      options.maxParallel = maxParallel
      options.retryFailed = retryFailed
      options.oversubscribe = oversubscribe
      if let emitSlurm {
        let script = try SlurmArrayScript.make(spec: spec, options: options, concurrency: slurmConcurrency)
        do { try script.write(toFile: emitSlurm, atomically: true, encoding: .utf8) } catch {
          throw ValidationError("cannot write \(emitSlurm): \(error.localizedDescription)")
        }
        chmod(emitSlurm, 0o755)
        print("wrote \(emitSlurm): \(spec.configurations().count) array task(s), at most \(slurmConcurrency) at once. Submit with: sbatch \(emitSlurm)")
        return
      }
      StopSignal.install()
      let result: (records: [SweepRunRecord], stopped: Bool)
      do { result = try SweepRunner(spec: spec, options: options).runAll() } catch let error as SweepError {
        FileHandle.standardError.write(("error: \(error)\n").data(using: .utf8)!)
        throw ExitCode(1)
      }
      if result.stopped { throw ExitCode(75) }
      if result.records.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
    }
  }

  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each configuration: done, running, failed, interrupted or pending, with the metric.")
    @OptionGroup var common: Common

    func run() throws {
      let (spec, options) = try common.load()
      let records = SweepState.records(out: options.out, spec: spec)
      if FileManager.default.fileExists(atPath: options.out) {
        try? SweepResults.write(records, spec: spec, specPath: options.specPath, out: options.out)
      }
      print(SweepStatusTable.format(records, spec: spec))
      if let phase = FileManager.default.contents(atPath: options.out + "/" + SweepState.extractionFile) {
        print("extracting " + String(decoding: phase.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
      }
    }
  }

  struct RunOne: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-one", abstract: "Run configuration INDEX only (a Slurm array task).")
    @OptionGroup var common: Common
    @Argument(help: "Configuration index (0-based, the order of `rada sweep status`).") var index: Int

    func run() throws {
      let (spec, options) = try common.load()
      StopSignal.install()
      let status: SweepRunStatus
      do { status = try SweepRunner(spec: spec, options: options).runOne(index: index) } catch let error as SweepError {
        FileHandle.standardError.write(("error: \(error)\n").data(using: .utf8)!)
        throw ExitCode(1)
      }
      switch status {
      case .done: return
      case .interrupted: throw ExitCode(75)
      default: throw ExitCode(1)
      }
    }
  }
}

/// `rada sweep status` output: one line per configuration.
enum SweepStatusTable {
  static func format(_ records: [SweepRunRecord], spec: SweepSpec) -> String {
    let best = SweepResults.best(records, spec: spec)?.name
    var rows = [["#", "config", "status", spec.metric, "step", "run"]]
    for r in records {
      let value = r.metrics[spec.metric].map { String(format: "%.4f", $0) } ?? "-"
      let step = r.metrics["step"].map { String(Int($0)) } ?? r.metrics["steps"].map { String(Int($0)) } ?? "-"
      rows.append([String(r.configuration.index), r.configuration.readableKey,
                   r.status.rawValue + (r.name == best ? " (best)" : ""), value, step, "runs/" + r.name])
    }
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    var text = rows.map { row in
      row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }.joined(separator: "\n")
    let counts = SweepRunStatus.allCases.map { s in "\(records.filter { $0.status == s }.count) \(s.rawValue)" }
    text += "\n" + counts.joined(separator: ", ")
    for r in records where r.status == .failed { text += "\nfailed \(r.configuration.readableKey): \(r.detail)" }
    for r in records where r.status == .running { text += "\nrunning \(r.configuration.readableKey): \(r.detail)" }
    return text
  }
}

/// `--emit-slurm`: an sbatch job-array script, one task per configuration, each running `rada sweep run-one`.
enum SlurmArrayScript {
  /// Every value the script holds is either checked to be plain (names, numbers, the paths in #SBATCH lines,
  /// which Slurm does not unquote) or shell-quoted; a newline or quote in the spec can never become a command.
  static func make(spec: SweepSpec, options: SweepRunOptions, concurrency: Int) throws -> String {
    let count = spec.configurations().count
    let plain = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+-,@=~")
    for (what, value) in [("--out", options.out), ("the spec path", options.specPath), ("the sweep name", spec.name)]
    where value.isEmpty || !value.unicodeScalars.allSatisfy(plain.contains) {
      throw ValidationError("--emit-slurm: \(what) '\(value.prefix(80).debugDescription.dropFirst().dropLast())' holds spaces, quotes or "
                            + "control characters, which Slurm's #SBATCH lines cannot carry; use a plain path or name.")
    }
    return """
      #!/usr/bin/env bash
      # What: Slurm job array for sweep '\(spec.name)' (\(count) configurations), written by `rada sweep --emit-slurm`.
      #       Each task runs one configuration with `rada sweep run-one`; finished ones are skipped, interrupted ones
      #       resumed. A preempted task (TERM 120 s before the limit) checkpoints, exits 75 and is requeued.
      # Example: sbatch \(URL(fileURLWithPath: options.specPath).deletingPathExtension().lastPathComponent).sbatch
      # Expected: \(options.out)/results.md fills in as tasks finish; `rada sweep status SPEC --out OUT` shows progress.
      # change these
      #SBATCH --job-name=sweep-\(spec.name)
      #SBATCH --array=0-\(count - 1)%\(concurrency)
      #SBATCH --ntasks=\(spec.ranks)
      #SBATCH --cpus-per-task=\(spec.threads)
      #SBATCH --time=04:00:00
      #SBATCH --signal=B:TERM@120
      #SBATCH --requeue
      #SBATCH --output=\(options.out)/slurm-%A_%a.out
      set -uo pipefail
      rada=\(shellQuote(options.rada))
      spec=\(shellQuote(options.specPath))
      out=\(shellQuote(options.out))
      export OMPI_MCA_mpi_yield_when_idle=1
      "$rada" sweep run-one "$spec" "$SLURM_ARRAY_TASK_ID" --out "$out" --launcher \(spec.ranks > 1 ? "srun" : "direct") &
      child=$!
      trap 'kill -TERM $child 2>/dev/null' TERM
      wait $child; rc=$?
      while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done   # wait returns early when the trap runs
      if [ $rc -eq 75 ]; then
        echo "task $SLURM_ARRAY_TASK_ID checkpointed; requeueing"
        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
      fi
      exit $rc

      """
  }

  static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

func absolute(_ path: String) -> String {
  path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// This executable's path (/proc/self/exe on Linux), so runs use the same build as the sweep.
func selfPath() -> String {
  if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
  return absolute(CommandLine.arguments[0])
}
