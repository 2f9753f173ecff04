// `rada pretrain`: contrastive image-caption pretraining of a CLIP model (no head), data-parallel over MPI.
// Defaults (PretrainSession.defaultConfig) < flags < --set. Writes RUN/model.safetensors; --eval DATA reports
// zero-shot accuracy with "a photo of a {}." prompts.
import ArgumentParser
import Distributed
import Foundation
import Training

struct Pretrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Contrastive image-caption pretraining (CLIP loss, features gathered over ranks).",
    discussion: """
      DATA is a manifest with a path,caption header (rada synth writes pretrain/captions.csv).
      Example: rada create-model --preset demo --out demo-init.safetensors
               mpirun -np 2 rada pretrain --model demo-init.safetensors --data manifest:synth/pretrain/captions.csv \\
                 --eval imagefolder:synth/test --run-dir runs/pretrain --steps 300 --batch-size 64 --threads 1
      Exit codes: 0 done, 1 error, 75 stopped by a signal after writing a checkpoint (rerun with --resume auto).
      """)

  @Option(help: "Initial CLIP weights (e.g. from rada create-model).") var model: String
  @Option(help: "Image-caption data: manifest:FILE.csv with a path,caption header.") var data: String
  @Option(name: .customLong("run-dir"), help: "Run directory (refused if it holds a run, unless --resume auto).") var runDir: String
  @Option(help: "Optimiser steps.") var steps: Int
  @Option(name: .customLong("batch-size"), help: "Global batch size (all ranks); the contrastive loss sees all of it.") var batchSize: Int?
  @Option(help: "Learning rate (default 1e-3).") var lr: Double?
  @Option(help: "sgd, adam or adamw (default adamw).") var optim: OptimizerKind?
  @Option(name: .customLong("weight-decay"), help: "Weight decay (default 0.1).") var weightDecay: Double?
  @Option(name: .customLong("warmup-steps"), help: "Linear warm-up steps (default steps/10).") var warmupSteps: Int?
  @Option(help: "Seed.") var seed: Int?
  @Option(help: "Labelled data for zero-shot evaluation, e.g. imagefolder:synth/test.") var eval: String?
  @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (0: only at the end).") var evalEvery: Int?
  @Option(name: .customLong("log-every"), help: "Progress line every N steps.") var logEvery: Int?
  @Option(help: "auto, bar, lines or none (auto: a live bar only when the job's output is a terminal).")
  var progress: ProgressMode?
  @Flag(help: "Random resized crops and flips (off by default: captions may name positions).") var augment = false
  @Flag(name: .customLong("no-shuffle"), help: "Fixed order: step s uses positions (B·s+j) mod N.") var noShuffle = false
  @Option(name: .customLong("set"), help: "Override a config key: --set optim.clipGradNorm=1 (repeatable).") var overrides: [String] = []
  @Option(help: "Resume: 'auto' continues from the newest complete checkpoint in --run-dir.") var resume: String?
  @Option(name: .customLong("dump-gradients"), help: .hidden) var dumpGradients: String?
  @OptionGroup var runtime: RuntimeOptions

  func validate() throws {
    if let resume, resume != "auto" { throw ValidationError("--resume takes 'auto' (got '\(resume)').") }
    guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps)).") }
  }

  func resolvedConfig() throws -> TrainConfig {
    var c = PretrainSession.defaultConfig()
    c.model.path = model
    c.data.train = data
    c.data.eval = eval
    c.run.dir = runDir
    c.run.steps = steps
    c.schedule.warmupSteps = warmupSteps ?? steps / 10
    if let batchSize { c.run.batchSize = batchSize }
    if let lr { c.optim.lr = lr }
    if let optim { c.optim.name = optim }
    if let weightDecay { c.optim.weightDecay = weightDecay }
    if let seed { c.run.seed = seed }
    if let evalEvery { c.run.evalEvery = evalEvery }
    if let logEvery { c.run.logEvery = logEvery }
    if let progress { c.run.progress = progress }
    if augment { c.data.augment = true }
    if noShuffle { c.run.shuffle = false }
    for o in overrides { try c.apply(override: o) }
    return c
  }

  func run() throws {
    let (config, world) = try startTraining(resolvedConfig, threads: runtime.threads)
    try runOnAllRanks(world) {
      let options = SessionOptions(resume: resume == "auto")
      _ = try PretrainSession.run(config: config, world: world, options: options, gradientDumpPath: dumpGradients)
    }
  }
}
