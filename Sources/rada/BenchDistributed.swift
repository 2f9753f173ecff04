// `rada bench allreduce | scaling`: the multi-rank workloads (run under mpirun; launch/bench/compare drives them).
//   allreduce: one in-place sum of a gradient-sized buffer (small config ~89 MB, ViT-B/16 ~598 MB) over all ranks;
//              items are megabytes of the buffer.
//   scaling:   the small-config fine-tuning step with B images per rank, gradients averaged by one allreduce;
//              compare runs 1 rank x 1 thread B 16, 2 ranks x 1 thread B 16 each, 1 rank x 2 threads B 32.
//              Items are images of the global batch (B x ranks).
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

  func run() throws {
    let runner = try BenchRunner(options: options)
    let config = try benchConfig(model)
    let ranks = runner.world.size, batch = self.batch
    try runner.measure("scaling/finetune_step", "\(model) b\(batch)x\(ranks)r", items: Double(batch * ranks),
                       flops: Double(ranks) * BenchFLOPs.fineTuneStep(config, batch: batch),
                       setup: { try FineTuneStep(config: config, batch: batch, world: runner.world) },
                       step: { try $0.run() })
  }
}
