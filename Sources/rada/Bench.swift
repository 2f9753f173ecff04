// `rada bench`: timed workloads that launch/bench/torch_bench.py repeats in PyTorch with the same shapes, so
// launch/bench/compare can print rada/PyTorch ratios measured side by side (issue 8). One JSON object per
// measurement with --json (fields below); a readable line otherwise. Random weights and inputs, nothing read.
// Workloads live in BenchWorkloads.swift (CLIP towers, RAda head, TTT), BenchData.swift (decode + augment) and
// BenchDistributed.swift (allreduce, scaling). FLOP counts are matmul FLOPs only (BenchFLOPs below).
// Benchmarks are never run as timed tests in CI.
import ArgumentParser
import CLIP
import Distributed
import Foundation
import Kernels
import Training

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time rada's workloads (compare with launch/bench/torch_bench.py via launch/bench/compare).",
    discussion: """
      Examples: rada bench clip --only vit-b-16 --repeats 3 --json
                rada bench rada --threads 2
                mpirun -np 2 rada bench allreduce --threads 1
      Each measurement: median/min/max seconds over --repeats after --warmup runs, items/s, matmul GFLOP/s and
      the fraction of the sgemm ceiling measured in the same process at the same thread count, and peak RSS.
      """,
    subcommands: [BenchCLIP.self, BenchRAda.self, BenchTTT.self, BenchData.self, BenchAllreduce.self,
                  BenchScaling.self, BenchKernels.self, BenchSweep.self])
}

/// Options every bench subcommand shares.
struct BenchOptions: ParsableArguments {
  @Option(help: "Timed runs per measurement (the median is reported).") var repeats = 5
  @Option(help: "Untimed runs before timing.") var warmup = 1
  @Option(help: "Compute threads per rank (default: cores / ranks on this node).") var threads: Int?
  @Flag(help: "One JSON object per measurement on stdout.") var json = false
  @Option(help: "Run only measurements whose names contain all these words, e.g. head_step+k100 (repeatable: any).")
  var only: [String] = []

  func validate() throws {
    try checkRange("--repeats", repeats, 1...100_000)
    try checkRange("--warmup", warmup, 0...100_000)
    if let threads { try checkRange("--threads", threads, 1...4096) }
  }

  /// Words of a measurement: "rada/head_step" + "b32 d512 k100" -> rada, head_step, b32, d512, k100.
  func wants(_ workload: String, _ config: String) -> Bool {
    let words = Set((workload.split(separator: "/") + config.split(separator: " ")).map(String.init))
    return only.isEmpty || only.contains { $0.split(whereSeparator: { $0 == " " || $0 == "+" }).allSatisfy { words.contains(String($0)) } }
  }
}

/// One measurement, the JSON object torch_bench.py also writes (snake_case keys).
struct BenchResult: Codable {
  var tool = "rada"
  var workload: String
  var config: String
  var threads: Int
  var ranks: Int
  var repeats: Int
  var medianS: Double
  var minS: Double
  var maxS: Double
  /// items (images, texts, steps, samples, bytes) per step / median
  var items: Double
  var itemsPerS: Double
  var gflops: Double?
  var sgemmCeilingGflops: Double
  var fractionOfCeiling: Double?
  var peakRssMb: Double
  /// Workload-specific numbers (e.g. the allreduce time hidden behind backward), snake_case keys.
  var extra: [String: Double]?
}

/// Runs workloads and reports them; one per process (holds the world, the thread count and the ceiling).
final class BenchRunner {
  let options: BenchOptions
  let world: Collective
  let threads: Int
  /// sgemm GFLOP/s of this process at `threads` (best of three; summed over ranks).
  let ceiling: Double

  init(options: BenchOptions) throws {
    self.options = options
    let report = try Runtime.start(requestedThreads: options.threads)
    world = try makeCollective()
    threads = report.threads
    // Diagnostics for thread-layout experiments: BLAS and element-wise kernel threads set apart.
    let env = ProcessInfo.processInfo.environment
    if let blas = env["RADA_BENCH_BLAS_THREADS"].flatMap(Int.init) { BLASRuntime.setThreads(blas) }
    if let kernels = env["RADA_BENCH_KERNEL_THREADS"].flatMap(Int.init) { Parallel.threads = max(1, kernels) }
    // The ceiling is what the machine can do: the best of three medians (other jobs on a shared node only lower it).
    let own = (0..<3).map { _ in BLASRuntime.measureGFLOPS(size: 1024, repeats: 3) }.max()!
    ceiling = world.size > 1 ? try world.allReduceSum(own) : own
  }

  /// Times `step` (warm-up, then `repeats` timed runs; with several ranks each run starts at a barrier and
  /// counts the slowest rank) and prints the result. `setup` builds the state outside the timing; peak RSS is
  /// measured from just before setup. `items` per step; `flops` matmul FLOPs per step (nil: not meaningful).
  /// `threads` overrides the reported thread count (the data loader's workers). `extra`, run on every rank after
  /// the timing (it may use collectives), adds workload-specific numbers to the result.
  func measure<State>(_ workload: String, _ config: String, items: Double, flops: Double?, threads: Int? = nil,
                      setup: () throws -> State, step: (State) throws -> Void,
                      extra: ((State) throws -> [String: Double])? = nil) throws {
    guard options.wants(workload, config) else { return }
    PeakMemory.reset()
    let state = try setup()
    for _ in 0..<options.warmup { try step(state) }
    var times: [Double] = []
    for _ in 0..<options.repeats {
      try world.barrier()
      times.append(try elapsedSeconds { try step(state) })
    }
    if world.size > 1 { try world.allReduceMax(&times) }
    var peak = [PeakMemory.peakMB()]
    if world.size > 1 { try world.allReduceMax(&peak) }
    let extraValues = try extra?(state)
    withExtendedLifetime(state) {}
    let sorted = times.sorted(), median = benchMedian(times)
    let gflops = flops.map { $0 / median / 1e9 }
    let result = BenchResult(workload: workload, config: config, threads: threads ?? self.threads, ranks: world.size,
                             repeats: times.count, medianS: median, minS: sorted.first!, maxS: sorted.last!,
                             items: items, itemsPerS: items / median, gflops: gflops, sgemmCeilingGflops: ceiling,
                             fractionOfCeiling: gflops.map { $0 / ceiling }, peakRssMb: peak[0], extra: extraValues)
    report(result)
  }

  /// Prints one result on the coordinator: a JSON line with --json, else a readable line.
  func report(_ result: BenchResult) {
    guard world.isCoordinator else { return }
    if options.json {
      let encoder = JSONEncoder()
      encoder.keyEncodingStrategy = .convertToSnakeCase
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      print(String(decoding: (try? encoder.encode(result)) ?? Data("{}".utf8), as: UTF8.self))
    } else {
      var line = pad(result.workload, 22) + pad(result.config, 30)
        + String(format: "%8.4f s (min %.4f, max %.4f)  %10.2f items/s", result.medianS, result.minS, result.maxS,
                 result.itemsPerS)
      if let gflops = result.gflops {
        line += String(format: "  %7.1f GFLOP/s (%4.1f%% of %.0f)", gflops, 100 * gflops / ceiling, ceiling)
      }
      line += String(format: "  peak %.0f MB", result.peakRssMb)
      for (key, value) in (result.extra ?? [:]).sorted(by: { $0.key < $1.key }) {
        line += "  \(key) \(String(format: "%.4g", value))"
      }
      print(line)
    }
    fflush(stdout)
  }
}

/// A count given on the command line must lie in `range` (sizes beyond it would only allocate until the process
/// is killed, or overflow).
func checkRange(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
  guard range.contains(value) else {
    throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound) (got \(value)).")
  }
}

/// Wall-clock seconds of `body`.
func elapsedSeconds(_ body: () throws -> Void) rethrows -> Double {
  let start = DispatchTime.now().uptimeNanoseconds
  try body()
  return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
}

/// Median of a non-empty list (the mean of the middle two for an even count).
func benchMedian(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Peak resident memory of this process since the last `reset` (Linux VmHWM; reset via clear_refs 5).
enum PeakMemory {
  static func reset() {
    // Frees of the previous workload's buffers return to the OS (large mallocs are mmaps), so the
    // high-water mark after this starts from what is live now.
    if let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
      handle.write("5".data(using: .utf8)!)
      try? handle.close()
    }
  }

  static func peakMB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
      for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Double($0) }
        if let kb = digits.first { return kb / 1024 }
      }
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
  }
}

/// Matmul FLOP counts (2·m·n·k per product; a backward pass counts as 2x its forward). Elementwise work,
/// softmax and LayerNorm are not counted, so the GFLOP/s figures are a lower bound of the work done.
enum BenchFLOPs {
  /// L pre-LN blocks on N = B·T rows of width C, MLP width M, H heads:
  ///   per block 2N·3C·C (qkv) + 2N·C·C (out_proj) + 2N·C·M + 2N·M·C (MLP) + 2·2·B·T²·C (q·kᵀ and P·v over heads)
  static func blocks(batch: Int, tokens: Int, width: Int, mlpWidth: Int, layers: Int) -> Double {
    let n = Double(batch * tokens), c = Double(width), m = Double(mlpWidth), t = Double(tokens)
    return Double(layers) * (2 * n * (4 * c * c + 2 * c * m) + 4 * Double(batch) * t * t * c)
  }

  /// Vision forward: blocks + conv1 as im2col 2·B·G²·3p²·C + proj 2·B·C·E.
  static func visionForward(_ config: CLIPConfig, batch: Int) -> Double {
    let v = config.vision, b = Double(batch)
    return blocks(batch: batch, tokens: v.tokens, width: v.width, mlpWidth: v.mlpWidth, layers: v.layers)
      + 2 * b * Double(v.grid * v.grid * 3 * v.patchSize * v.patchSize * v.width)
      + 2 * b * Double(v.width * config.embedDim)
  }

  /// Text forward: blocks over all T tokens (as open_clip computes them) + projection 2·B·C·E.
  static func textForward(_ config: CLIPConfig, batch: Int) -> Double {
    let t = config.text
    return blocks(batch: batch, tokens: t.contextLength, width: t.width, mlpWidth: t.mlpWidth, layers: t.layers)
      + 2 * Double(batch * t.width * config.embedDim)
  }

  /// Fine-tuning step: 3x (forward + backward) of both towers + the contrastive logits 2·(2·B·B·E) times 3.
  static func fineTuneStep(_ config: CLIPConfig, batch: Int) -> Double {
    3 * (visionForward(config, batch: batch) + textForward(config, batch: batch)
         + 4 * Double(batch * batch * config.embedDim))
  }

  /// RAda head forward for B samples, K classes, width D, as the reference computes it (eft/trainers/rada.py
  /// repeats f and t to (B, K, D) before q_proj1/q_proj2):
  ///   six D×D projections on B·K rows 12·B·K·D², per sample three K×K maps Q_m·Kᵀ (3·2·K²·D over the heads)
  ///   and mix·V (2·K²·D): 12·B·K·D² + 8·B·K²·D.
  /// rada does less for the same result (q_proj1 on B rows, q_proj2 on K rows, map 1 as one row per head:
  /// 2·D²·(B + K + 4·B·K) + 6·B·K²·D); the reference count is used for both tools so GFLOP/s compare as time.
  static func headForward(batch: Int, classes: Int, dim: Int) -> Double {
    let b = Double(batch), k = Double(classes), d = Double(dim)
    return 12 * b * k * d * d + 8 * b * k * k * d
  }

  /// Head forward + backward (2x).
  static func headStep(batch: Int, classes: Int, dim: Int) -> Double { 3 * headForward(batch: batch, classes: classes, dim: dim) }
}
