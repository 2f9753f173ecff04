// `rada bench sweep`: a hyper-parameter sweep of EFT with augmentation (lr x α, default 3 x 3) run twice through
// the production session (EFTSession): uncached (the frozen tower on every augmented micro-batch, as the reference
// trains) and through the augmented feature cache (the tower once per (epoch, sample), then head-only runs). Reports
// each sweep's wall time, peak memory and cache size; the cached line's extra fields carry `speedup` (uncached /
// cached wall time) and `max_rel_loss_diff` (the largest relative difference of any step's loss between the two).
// Random weights of a preset and synthetic images written to a temporary folder (or kept in --keep-data DIR for
// launch/bench/torch_bench.py's `sweep`, the reference loop on the same images); nothing of the user's is read.
import ArgumentParser
import CLIP
import Data
import Distributed
import Foundation
import Training

struct BenchSweep: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sweep", abstract: "EFT sweep (lr x alpha) with augmentation: uncached against the feature cache.")

  @OptionGroup var options: BenchOptions
  @Option(help: "Model preset (random weights): tiny, demo, small, vit-b-32, vit-b-16.") var preset = "small"
  @Option(help: "Training images per class (16 synthetic classes).") var shots = 16
  @Option(help: "Epochs per run.") var epochs = 5
  @Option(name: .customLong("batch-size"), help: "Global batch.") var batchSize = 32
  @Option(parsing: .upToNextOption, help: "Learning rates of the sweep.") var lrs: [Double] = [1e-3, 2e-3, 4e-3]
  @Option(parsing: .upToNextOption, help: "Alphas of the sweep.") var alphas: [Double] = [0, 0.5, 1]
  @Option(help: ArgumentHelp("Write the synthetic images into this new folder (DIR/train/CLASS/*.png) and keep them.",
                             discussion: "torch_bench.py sweep --data DIR runs the PyTorch reference loop on them."))
  var keepData: String?

  func validate() throws {
    try checkRange("--shots", shots, 1...10_000)
    try checkRange("--epochs", epochs, 1...1000)
    try checkRange("--batch-size", batchSize, 1...65_536)
    guard !lrs.isEmpty, !alphas.isEmpty, lrs.count * alphas.count <= 1000,
          lrs.allSatisfy({ $0.isFinite && $0 >= 0 }), alphas.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
      throw ValidationError("--lrs and --alphas take 1 to 1000 combinations of finite values >= 0.")
    }
    if let keepData, let entries = try? FileManager.default.contentsOfDirectory(atPath: keepData), !entries.isEmpty {
      throw ValidationError("--keep-data \(keepData) exists and is not empty; give a new folder (the images are written there).")
    }
  }

  func run() throws {
    let config = try benchConfig(preset)
    let runner = try BenchRunner(options: options)
    let world = runner.world
    let work = FileManager.default.temporaryDirectory.path + "/rada-bench-sweep-\(getpid())"
    defer { if world.isCoordinator { try? FileManager.default.removeItem(atPath: work) } }
    let modelPath = work + "/model.safetensors"
    let data = keepData ?? work + "/data"
    if world.isCoordinator {
      try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
      try CLIPModel.random(config: config, seed: 1).save(path: modelPath)
      var spec = SyntheticSpec()
      spec.size = config.vision.imageSize
      spec.pretrainPerClass = 0; spec.trainPerClass = shots; spec.testPerClass = 0; spec.shiftedPerClass = 0
      _ = try Synthetic.generate(spec, into: data)
    }
    try world.barrier()

    // One sweep: every (lr, α) as an EFT run; wall time of the whole sweep, every run's losses.
    func sweep(cached: Bool) throws -> (seconds: Double, losses: [[Double]], peakMB: Double) {
      PeakMemory.reset()
      var losses: [[Double]] = []
      let seconds = try elapsedSeconds {
        for (i, lr) in lrs.enumerated() {
          for (j, alpha) in alphas.enumerated() {
            var c = TrainConfig()
            c.setting = .eft; c.model.path = modelPath; c.data.train = "imagefolder:\(data)/train"
            c.run.dir = "\(work)/\(cached ? "cached" : "plain")/lr\(i)-a\(j)"; c.run.epochs = epochs
            c.run.batchSize = batchSize; c.run.progress = .none; c.optim.lr = lr; c.rada.alpha = alpha
            c.data.cacheAugmentedFeatures = cached; c.data.loaderThreads = runner.threads
            var session = SessionOptions(resume: false, featureCacheDirectory: work + "/cache")
            session.log = { _ in }
            losses.append(try EFTSession.run(config: c, world: world, options: session).lossHistory)
          }
        }
      }
      var peak = [PeakMemory.peakMB()]
      if world.size > 1 { try world.allReduceMax(&peak) }
      return (seconds, losses, peak[0])
    }
    let plain = try sweep(cached: false)
    let cached = try sweep(cached: true)
    var worst = 0.0
    for (a, b) in zip(plain.losses, cached.losses) {
      for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(abs(x), 1e-12)) }
    }
    let cacheMB = Double(FeatureCacheListing.entries(root: work + "/cache").reduce(Int64(0)) { $0 + $1.bytes }) / 1e6
    let runs = Double(lrs.count * alphas.count)
    let label = "\(preset) \(Int(runs)) runs \(16 * shots) img \(epochs) ep b\(batchSize)"
    for (name, result, extra) in [
      ("sweep/eft_uncached", plain, ["runs": runs]),
      ("sweep/eft_cached", cached, ["runs": runs, "speedup": plain.seconds / cached.seconds,
                                    "max_rel_loss_diff": worst, "cache_mb": cacheMB]),
    ] {
      let item = BenchResult(workload: name, config: label, threads: runner.threads, ranks: world.size, repeats: 1,
                             medianS: result.seconds, minS: result.seconds, maxS: result.seconds, items: runs,
                             itemsPerS: runs / result.seconds, gflops: nil, sgemmCeilingGflops: runner.ceiling,
                             fractionOfCeiling: nil, peakRssMb: result.peakMB, extra: extra)
      runner.report(item)
    }
  }
}
