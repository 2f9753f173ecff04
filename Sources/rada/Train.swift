// `rada train`: builds the TrainConfig (defaults < --config YAML < flags < --set), refuses bad options before
// any work starts, and runs the setting on every rank. An error on any rank ends the whole job (MPI_Abort)
// with a message naming the rank; a signal ends it with a checkpoint and exit code 75 (resumable).
import ArgumentParser
import Data
import Distributed
import Foundation
import Training

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Fine-tune with RAda (eft: head only on frozen encoders; fft: encoders and head).",
    discussion: """
      DATA specs: imagefolder:PATH, manifest:FILE.csv, coop:ROOT:NAME[:SPLIT] (see README "Datasets").
      Example: rada train --setting eft --model clip/ --train imagefolder:data/train --eval imagefolder:data/val \\
               --run-dir runs/eft --steps 200 --batch-size 32
      Exit codes: 0 done, 1 error, 75 stopped by a signal after writing a checkpoint (rerun with --resume auto).
      """)

  @Option(help: "eft or fft.") var setting: TrainingSetting?
  @Option(help: "CLIP weights: HF folder, open_clip folder or .safetensors.") var model: String?
  @Option(help: "Training data spec.") var train: String?
  @Option(help: "Evaluation data spec (evaluated every --eval-every steps and at the end).") var eval: String?
  @Option(name: .customLong("run-dir"), help: "Run directory (refused if it holds a run, unless --resume auto).") var runDir: String?
  @Option(help: "YAML config file (keys as in config.resolved.yaml).") var config: String?
  @Option(name: .customLong("set"), help: "Override a config key: --set optim.lr=1e-3 (repeatable).") var overrides: [String] = []
  @Option(help: "Resume: 'auto' continues from the newest complete checkpoint in --run-dir.") var resume: String?

  @Option(help: "sgd, adam or adamw.") var optim: OptimizerKind?
  @Option(help: "Learning rate.") var lr: Double?
  @Option(help: "SGD momentum.") var momentum: Double?
  @Option(name: .customLong("weight-decay"), help: "Weight decay.") var weightDecay: Double?
  @Option(help: "constant, cosine or dassl_cosine.") var schedule: ScheduleKind?
  @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps (cosine).") var warmupSteps: Int?
  @Option(name: .customLong("batch-size"), help: "Global batch size (all ranks).") var batchSize: Int?
  @Option(help: "Micro-batches per step (gradient accumulation).") var accumulation: Int?
  @Option(help: "Optimiser steps.") var steps: Int?
  @Option(help: "Epochs (instead of --steps).") var epochs: Int?
  @Option(help: "Weight of the mask regulariser.") var alpha: Double?
  @Option(help: "Temperature of the head's attention maps.") var temperature: Double?
  @Option(name: .customLong("logit-scale"), help: "Fixed logit scale s (linear, e.g. 100); default: the model's.") var logitScale: Double?
  @Option(help: "Prompt template with {} for the class name (repeatable; averaged).") var template: [String] = []
  @Option(name: .customLong("head-init"), help: "Start from this head (.safetensors, reference names).") var headInit: String?
  @Option(help: "Few-shot: samples per class.") var shots: Int?
  @Option(name: .customLong("split-seed"), help: "Seed of the few-shot split.") var splitSeed: Int?
  @Option(help: "base, new or all classes (CoOp base-to-new).") var subsample: ClassSubset?
  @Flag(name: .customLong("no-augment"), help: "No random crops/flips (image features are cached).") var noAugment = false
  @Flag(name: .customLong("no-shuffle"), help: "Fixed order: step s uses positions (B·s+j) mod N.") var noShuffle = false
  @Flag(name: .customLong("skip-bad-samples"), help: "Skip unreadable images (listed in bad_samples.txt).") var skipBadSamples = false
  @Option(help: "Seed.") var seed: Int?
  @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (0: only at the end).") var evalEvery: Int?
  @Option(name: .customLong("checkpoint-every"), help: "Checkpoint every N steps (0: only at the end).") var checkpointEvery: Int?
  @Option(name: .customLong("log-every"), help: "Progress line every N steps.") var logEvery: Int?
  @Option(help: "auto, bar, lines or none (auto: a live bar only when the job's output is a terminal).")
  var progress: ProgressMode?
  @Option(name: .customLong("feature-cache"), help: "Feature cache folder (default ~/.cache/rada/features).") var featureCache: String?
  @Flag(name: .customLong("extract-features-only"), help: ArgumentHelp(
    "EFT with augmentation: put the image features this run needs into the feature cache, then exit.",
    discussion: "What `rada sweep` runs first for each configuration, with all cores; other settings exit at once."))
  var extractFeaturesOnly = false
  @Option(name: .customLong("feature-cache-max-gb"), help: "Bound on the feature cache folder in GB (oldest entries go first; 0: none).")
  var featureCacheMaxGB: Double?
  @OptionGroup var runtime: RuntimeOptions

  func validate() throws {
    if let resume, resume != "auto" { throw ValidationError("--resume takes 'auto' (got '\(resume)').") }
  }

  /// The setting's defaults < YAML < flags < --set. The setting itself comes from the same sources, so it is
  /// resolved first (on the plain defaults) and the sources are then applied to that setting's defaults.
  func resolvedConfig() throws -> TrainConfig {
    try applySources(to: TrainConfig.defaults(for: try applySources(to: TrainConfig()).setting))
  }

  /// YAML, then flags, then --set, on top of `base`.
  private func applySources(to base: TrainConfig) throws -> TrainConfig {
    var c = base
    if let config { try c.merge(file: config) }
    if let setting { c.setting = setting }
    if let model { c.model.path = model }
    if let train { c.data.train = train }
    if let eval { c.data.eval = eval }
    if let runDir { c.run.dir = runDir }
    if let optim { c.optim.name = optim }
    if let lr { c.optim.lr = lr }
    if let momentum { c.optim.momentum = momentum }
    if let weightDecay { c.optim.weightDecay = weightDecay }
    if let schedule { c.schedule.name = schedule }
    if let warmupSteps { c.schedule.warmupSteps = warmupSteps }
    if let batchSize { c.run.batchSize = batchSize }
    if let accumulation { c.run.accumulation = accumulation }
    if let steps { c.run.steps = steps; c.run.epochs = nil }
    if let epochs { c.run.epochs = epochs; if steps == nil { c.run.steps = nil } }
    if let alpha { c.rada.alpha = alpha }
    if let temperature { c.rada.temperature = temperature }
    if let logitScale { c.model.logitScale = logitScale }
    if !template.isEmpty { c.rada.templates = template }
    if let headInit { c.rada.headInit = headInit }
    if let shots { c.data.shots = shots }
    if let splitSeed { c.data.splitSeed = splitSeed }
    if let subsample { c.data.subsample = subsample }
    if noAugment { c.data.augment = false }
    if noShuffle { c.run.shuffle = false }
    if skipBadSamples { c.data.skipBadSamples = true }
    if let seed { c.run.seed = seed }
    if let evalEvery { c.run.evalEvery = evalEvery }
    if let checkpointEvery { c.run.checkpointEvery = checkpointEvery }
    if let logEvery { c.run.logEvery = logEvery }
    if let progress { c.run.progress = progress }
    if let featureCacheMaxGB { c.data.featureCacheMaxGB = featureCacheMaxGB }
    for o in overrides { try c.apply(override: o) }
    return c
  }

  func run() throws {
    let (config, world) = try startTraining(resolvedConfig, threads: runtime.threads)
    if extractFeaturesOnly && (config.setting != .eft || !config.data.augment || !config.data.cacheAugmentedFeatures) {
      if world.isCoordinator { print("rada train --extract-features-only: nothing to extract (not EFT with augmentation and the cache)") }
      return
    }
    try runOnAllRanks(world) {
      var options = SessionOptions(resume: resume == "auto", featureCacheDirectory: featureCache)
      options.extractFeaturesOnly = extractFeaturesOnly
      switch config.setting {
      case .fft: _ = try FFTSession.run(config: config, world: world, options: options)
      case .eft: _ = try EFTSession.run(config: config, world: world, options: options)
      }
    }
  }
}

/// The start shared by the training commands: the config is resolved (defaults < YAML < flags < --set) and
/// validated against the world size before any work starts, threads and BLAS are set up, and SIGTERM/SIGINT/
/// SIGUSR1 become a stop that all ranks agree on.
func startTraining(_ resolve: () throws -> TrainConfig, threads: Int?) throws -> (TrainConfig, Collective) {
  let config: TrainConfig
  do { config = try resolve() } catch { throw ValidationError("\(error)") }
  try Runtime.start(requestedThreads: threads)
  // The watchdog covers MPI start-up, every collective and teardown (issue 15).
  PhaseFault.at("mpi-init", rank: LaunchLayout.fromEnvironment().rank)
  let world = try makeCollective(watchdogSeconds: config.run.collectiveTimeout)
  do { try config.validate(ranks: world.size) } catch { throw ValidationError("\(error)") }
  StopSignal.install()
  return (config, world)
}

/// Runs `body`; on error prints it (naming the rank when there are several) and ends the whole job:
/// MPI_Abort on multi-rank jobs so no rank waits forever in a collective. Signals exit with 75.
func runOnAllRanks(_ world: Collective, _ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as TrainError {
    if case .stopped = error {
      if world.isCoordinator { print(error.description) }
      fflush(stdout)
      throw ExitCode(75)
    }
    if case .stoppedBeforeFirstStep = error {
      // Not agreed through a collective (this rank stopped where it was): end the job with 75 at once rather
      // than wait in MPI_Finalize for ranks that may still be in a collective.
      print(error.description)
      fflush(stdout)
      if world.size > 1 { world.abort(code: 75, message: error.description) }
      throw ExitCode(75)
    }
    fail(world, error)
  } catch let error as RankAgreedError {
    // Every rank threw this together after a collective: print once, and all ranks exit 1 (no MPI_Abort).
    fflush(stdout)
    if world.isCoordinator { FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!) }
    throw ExitCode(1)
  } catch {
    fail(world, error)
  }
}

func fail(_ world: Collective, _ error: Error) -> Never {
  fflush(stdout)
  let prefix = world.size > 1 ? "rank \(world.rank): " : ""
  if world.size > 1 { world.abort(code: 1, message: "error: \(error)") }
  FileHandle.standardError.write(("\(prefix)error: \(error)\n").data(using: .utf8)!)
  exit(1)
}

// Typed config choices are flags too: a wrong value is refused by the parser, naming the choices.
extension ProgressMode: ExpressibleByArgument {}
extension TrainingSetting: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension ClassSubset: ExpressibleByArgument {}
