// `rada bench allreduce | scaling`: the multi-rank workloads (run under mpirun; launch/bench/compare drives them).
//   allreduce: one in-place sum of a gradient-sized buffer (small config ~89 MB, ViT-B/16 ~598 MB) over all ranks;
//              items are megabytes of the buffer.
//   scaling:   the small-config fine-tuning step (production's FFTModel, see BenchStep.swift) with B images per
//              rank, features gathered over ranks, gradients averaged in buckets of --bucket-mb (fft.bucketMB's
//              default 2) whose allreduces start after backward; compare runs 1 rank x 1 thread B 16, 2 ranks x
//              1 thread B 16 each, 1 rank x 2 threads B 32. Items are images of the global batch (B x ranks).
//              With several ranks also finetune_step_overlap: the same step with the bucket allreduces started
//              during backward (FFT's overlap), reporting in `extra` the allreduce time
//              of the whole gradient alone (allreduce_s), the wait left after backward (exposed_wait_s, median over
//              steps, slowest rank) and hidden_fraction = 1 - exposed_wait_s / allreduce_s.
import ArgumentParser
import CLIP
import Foundation
import Tensor

struct BenchAllreduce: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "allreduce", abstract: "Gradient allreduce of the small config and ViT-B/16 (run under mpirun -np 2).")

  @OptionGroup var options: BenchOptions
  @Option(help: "Models, comma-separated.") var models = "small,vit-b-16"

  func run() throws {
    let runner = try BenchRunner(options: options)
    for name in models.split(separator: ",").map(String.init) {
      let count = CLIPModel.parameterTable(try benchConfig(name)).totalCount
      let megabytes = Double(count * 4) / 1e6
      try runner.measure("allreduce/gradients", "\(name) \(Int(megabytes.rounded())) MB", items: megabytes, flops: nil,
                         setup: { () -> FloatBuffer in
                           let buffer = FloatBuffer(count: count)
                           buffer.fill(1e-3)
                           return buffer
                         }, step: { buffer in try runner.world.allReduceSum(buffer.pointer, count: count) })
    }
  }
}

struct BenchScaling: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "scaling", abstract: "Small-config fine-tuning step, B per rank (for 1x1 / 2x1 / 1x2 comparisons).")

  @OptionGroup var options: BenchOptions
  @Option(help: "Images per rank.") var batch = 16
  @Option(help: "Model.") var model = "small"
  @Option(help: "Gradient bucket size in MB (fft.bucketMB) of both the blocking and the overlapped step.") var bucketMb = 2  // fft.bucketMB's default

  func validate() throws {
    try checkRange("--batch", batch, 1...4096)
    try checkRange("--bucket-mb", bucketMb, 1...4096)
  }

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    let ranks = runner.world.size, batch = self.batch
    // Production's fine-tuning step (BenchStep.swift) with TrainLoop's reducer at fft.bucketMB = --bucket-mb:
    // blocking = every bucket's allreduce starts after backward (fft.overlap: never, or auto on one node);
    // overlapped = buckets start as backward completes them (fft.overlap: always, or auto across nodes).
    let bucketFloats = bucketMb * (1 << 20) / MemoryLayout<Float>.size
    func step(overlap: Bool) throws -> BenchTrainStep {
      try BenchTrainStep(model: try benchFineTuneModel(config, microBatch: batch, world: runner.world, overlap: overlap),
                         positions: Array(0..<batch), world: runner.world, bucketFloats: bucketFloats, lr: 1e-5)
    }
    try runner.measure("scaling/finetune_step", "\(model) b\(batch)x\(ranks)r", items: Double(batch * ranks),
                       flops: Double(ranks) * BenchFLOPs.fineTuneStep(config, batch: batch),
                       setup: { try step(overlap: false) }, step: { try $0.run() })
    guard ranks > 1 else { return }
    let world = runner.world
    try runner.measure("scaling/finetune_step_overlap", "\(model) b\(batch)x\(ranks)r bucket\(bucketMb)mb",
                       items: Double(batch * ranks), flops: Double(ranks) * BenchFLOPs.fineTuneStep(config, batch: batch),
                       setup: { try step(overlap: true) },
                       step: { try $0.run() },
                       extra: { step in
                         // the whole gradient's allreduce on its own (median of 5), then the waits left per step
                         var alone: [Double] = []
                         for _ in 0..<5 {
                           try world.barrier()
                           alone.append(try elapsedSeconds {
                             try world.allReduceSum(step.model.gradients.pointer, count: step.model.gradients.count)
                           })
                         }
                         try world.allReduceMax(&alone)
                         var waits = Array(step.exposedWaits.suffix(self.options.repeats))
                         try world.allReduceMax(&waits)
                         let allreduce = benchMedian(alone), exposed = benchMedian(waits)
                         return ["allreduce_s": allreduce, "exposed_wait_s": exposed,
                                 "hidden_fraction": max(0, 1 - exposed / allreduce)]
                       })
  }
}
