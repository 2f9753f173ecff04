// `rada bench allreduce | scaling`: the multi-rank workloads (run under mpirun; launch/bench/compare drives them).
//   allreduce: one in-place sum of a gradient-sized buffer (small config ~89 MB, ViT-B/16 ~598 MB) over all ranks;
//              items are megabytes of the buffer.
//   scaling:   the small-config fine-tuning step with B images per rank, gradients averaged by one allreduce;
//              compare runs 1 rank x 1 thread B 16, 2 ranks x 1 thread B 16 each, 1 rank x 2 threads B 32.
//              Items are images of the global batch (B x ranks).
//              With several ranks also finetune_step_overlap: the same step with FFT's bucketed allreduces started
//              during backward (--bucket-mb, fft.bucketMB's default 2), reporting in `extra` the allreduce time
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
  @Option(help: "Bucket size in MB of the overlapped variant (several ranks only).") var bucketMb = 2  // fft.bucketMB's default

  func validate() throws {
    try checkRange("--batch", batch, 1...4096)
    try checkRange("--bucket-mb", bucketMb, 1...4096)
  }

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    let ranks = runner.world.size, batch = self.batch
    try runner.measure("scaling/finetune_step", "\(model) b\(batch)x\(ranks)r", items: Double(batch * ranks),
                       flops: Double(ranks) * BenchFLOPs.fineTuneStep(config, batch: batch),
                       setup: { try FineTuneStep(config: config, batch: batch, world: runner.world) },
                       step: { try $0.run() })
    guard ranks > 1 else { return }
    let world = runner.world, bucketMb = self.bucketMb
    try runner.measure("scaling/finetune_step_overlap", "\(model) b\(batch)x\(ranks)r bucket\(bucketMb)mb",
                       items: Double(batch * ranks), flops: Double(ranks) * BenchFLOPs.fineTuneStep(config, batch: batch),
                       setup: { try FineTuneStep(config: config, batch: batch, world: world, overlapBucketMB: bucketMb) },
                       step: { try $0.run() },
                       extra: { step in
                         // the whole gradient's allreduce on its own (median of 5), then the waits left per step
                         var alone: [Double] = []
                         for _ in 0..<5 {
                           try world.barrier()
                           alone.append(try elapsedSeconds {
                             try world.allReduceSum(step.gradients.pointer, count: step.gradients.count)
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
