// The training loop shared by every setting (DESIGN.md "One training step, N ranks"). Per optimiser step:
// the run plan gives this rank's positions of each micro-batch (RunPlan.positions), the model runs
// forward/backward on each (gradients add up), gradients are averaged across ranks (GradientReducer), a non-finite
// loss or gradient stops the run naming the tensor (or skips the step), the optimiser updates identical
// replicas, and one allreduce carries the loss sums and the stop flag. The coordinator prints progress and
// appends metrics.jsonl; checkpoints and evaluation happen on every rank together. Every rank calls every
// collective in the same order; only file and console output is gated on the coordinator.
import Data
import Distributed
import Foundation
import Tensor

/// What one micro-batch contributes; means over that micro-batch's rows.
public struct StepLosses {
  public var total: Double
  public var ce: Double
  public var maskLoss: Double
  /// Further loss parts to log (e.g. "train/contrastive").
  public var extra: [String: Double] = [:]
  public init(total: Double, ce: Double, maskLoss: Double, extra: [String: Double] = [:]) {
    self.total = total; self.ce = ce; self.maskLoss = maskLoss; self.extra = extra
  }
}

/// A trainable model as the loop sees it: flat parameters and gradients in one table's layout.
public protocol StepModel: AnyObject {
  var table: ParameterTable { get }
  var parameters: FloatBuffer { get }
  var gradients: FloatBuffer { get }
  /// Forward and backward on `positions` (this rank's micro-batch); ADDS into `gradients`. May call
  /// `reducer.gradientsReady(from:)` as gradients complete, to overlap communication.
  func forwardBackward(positions: [Int], epoch: Int, reducer: GradientReducer) throws -> StepLosses
  /// Tensor files for a checkpoint besides the optimiser state ("head.safetensors", "model.safetensors").
  func checkpointFiles() -> [String: [SafetensorsWriter.Tensor]]
  /// Runs on every rank after the gradients are averaged across ranks and found finite, right before the
  /// optimiser step (FFT: global-norm clipping). Default: nothing.
  func gradientsAveraged() throws
  /// Runs on every rank after the optimiser step (FFT: clamp logit_scale). Default: nothing.
  func parametersUpdated()
}

extension StepModel {
  public func gradientsAveraged() throws {}
  public func parametersUpdated() {}
}

public enum TrainError: Error, CustomStringConvertible {
  case nonFinite(step: Int, what: String)
  case replicasDiverged(step: Int, detail: String)
  case stopped(step: Int, checkpoint: String?)
  /// A stop request before the first optimiser step: nothing to save, nothing lost.
  case stoppedBeforeFirstStep
  case datasetTooSmall(String)

  public var description: String {
    switch self {
    case let .nonFinite(step, what):
      return "step \(step): \(what) is NaN or Inf. Lower the learning rate, check the inputs, or set "
        + "--set run.nonFinite=skip to skip such steps."
    case let .replicasDiverged(step, detail):
      return "step \(step): parameters differ between ranks (\(detail)). This is a bug or a hardware fault; "
        + "resume from the last checkpoint with --resume auto."
    case let .stopped(step, checkpoint):
      return "stopped by a signal after step \(step)" + (checkpoint.map { "; checkpoint \($0)" } ?? "")
        + ". Continue with --resume auto."
    case let .datasetTooSmall(detail): return detail
    case .stoppedBeforeFirstStep:
      return "stopped by a signal before the first step; nothing to save and nothing lost. Continue with --resume auto."
    }
  }
}

/// A failure every rank learnt through a collective (a refused resume, a checkpoint or metrics write that failed
/// on the coordinator): all ranks throw it together and exit 1 without MPI_Abort.
public struct AgreedFailure: RankAgreedError, CustomStringConvertible {
  public let description: String
  public init(description: String) { self.description = description }
}

public struct LoopOptions {
  public var totalSteps: Int
  public var globalBatch: Int
  public var accumulation: Int
  public var logEvery: Int
  public var evalEvery: Int
  public var checkpointEvery: Int
  public var skipNonFinite: Bool
  /// Seconds without a completed step (or evaluation/checkpoint) before the watchdog ends the job (0 = off).
  public var watchdogSeconds: Double = 0
  public var checksumEvery: Int
  public var bestMetric: String
  public var bestIsMax: Bool
  public var seed: Int
  public var configYAML: String
  /// bar, lines or none (`auto` is resolved by the caller, see ProgressMode.resolved).
  public var progress: ProgressMode
  public var label: String
  /// The model the run starts from; recorded in checkpoints, and resume refuses a checkpoint of another model.
  public var modelFingerprint: ModelFingerprint?

  public init(totalSteps: Int, globalBatch: Int, accumulation: Int = 1, logEvery: Int = 10, evalEvery: Int = 0,
              checkpointEvery: Int = 0, skipNonFinite: Bool = false, checksumEvery: Int = 100,
              bestMetric: String = "val/top1", bestIsMax: Bool = true, seed: Int = 1, configYAML: String = "",
              progress: ProgressMode = .lines, label: String = "train", watchdogSeconds: Double = 0) {
    self.totalSteps = totalSteps; self.globalBatch = globalBatch; self.accumulation = accumulation
    self.logEvery = logEvery; self.evalEvery = evalEvery; self.checkpointEvery = checkpointEvery
    self.skipNonFinite = skipNonFinite; self.checksumEvery = checksumEvery; self.bestMetric = bestMetric
    self.bestIsMax = bestIsMax; self.seed = seed; self.configYAML = configYAML; self.progress = progress
    self.label = label; self.watchdogSeconds = watchdogSeconds
  }
}

public final class TrainLoop {
  public let world: Collective
  public let model: StepModel
  public let optimizer: Optimizer
  /// Which samples each step and micro-batch of this rank trains on.
  public let plan: RunPlan
  public var sampler: GlobalBatchSampler { plan.sampler }
  public let options: LoopOptions
  public let learningRate: (Int) -> Double
  public let runDirectory: RunDirectory?
  public let checkpointer: Checkpointer?
  private let metrics: MetricsLog?
  private let reducer: GradientReducer
  /// How gradients are averaged across ranks: bucket count and whether a progress thread drives the reductions.
  public var gradientReduction: (buckets: Int, progressThread: Bool) { (reducer.buckets.count, reducer.usesProgressThread) }
  /// Called on every rank at evaluation points; returns metrics (the coordinator logs them).
  public var evaluate: ((Int) throws -> [String: Double])?
  /// FFT/pretraining parameter groups: each group's lr per step (optimizer.groups order, logged as lr/NAME) and
  /// the settings saved in every checkpoint and checked on resume. nil: every group steps at `learningRate`.
  public var parameterGroups: (settings: ResolvedParameterGroups, learningRates: (Int) -> [Float])?
  /// Console output (coordinator only); tests capture it.
  public var log: (String) -> Void = { print($0); fflush(stdout) }
  public private(set) var step = 0
  /// A live progress bar between the progress lines (ProgressMode.bar).
  private var liveBar: Bool { options.progress == .bar }
  public private(set) var lossHistory: [Double] = []
  private var best: (step: Int, value: Double)?

  public init(world: Collective, model: StepModel, optimizer: Optimizer, plan: RunPlan,
              options: LoopOptions, learningRate: @escaping (Int) -> Double, runDirectory: RunDirectory?,
              keepCheckpoints: Int = 3, bucketFloats: Int = 1 << 30) throws {
    precondition(plan.ranks == world.size && plan.rank == world.rank && plan.accumulation == options.accumulation
                   && plan.globalBatch == options.globalBatch, "TrainLoop: the plan is for another world or batch")
    self.world = world; self.model = model; self.optimizer = optimizer; self.plan = plan
    self.options = options; self.learningRate = learningRate; self.runDirectory = runDirectory
    checkpointer = runDirectory.map { Checkpointer(directory: $0.checkpointsPath, keepLast: keepCheckpoints) }
    metrics = try runDirectory.map { try MetricsLog(path: $0.metricsPath, enabled: world.isCoordinator) }
    let ranges = model.table.entries.filter(\.isTrainable).map { (offset: $0.offset, count: $0.count) }
    reducer = GradientReducer(gradients: model.gradients.pointer, ranges: ranges, bucketFloats: bucketFloats, world: world)
  }

  // MARK: Resume

  /// The shapes this model's checkpoints hold: params.safetensors (every table tensor) and the optimiser moments.
  private var expectedShapes: [String: [String: [Int]]] {
    var moments: [String: [Int]] = [:]
    if optimizer.firstMoment.count > 0 { moments["first_moment"] = [optimizer.firstMoment.count] }
    if optimizer.secondMoment.count > 0 { moments["second_moment"] = [optimizer.secondMoment.count] }
    return ["params.safetensors": Dictionary(model.table.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a }),
            "optimizer.safetensors": moments]
  }

  /// Loads the newest valid checkpoint on the coordinator and broadcasts parameters, optimiser state and the
  /// step to every rank (no shared file system needed). Returns the step resumed from (0 when none). Refuses
  /// (every rank throws, nothing is copied or written) when every checkpoint is damaged or the checkpoint
  /// belongs to another model: each tensor's shape is checked before anything is read into memory.
  public func resume() throws -> Int {
    var found = ""
    var failure = ""
    var stateBytes: [UInt8] = []
    if world.isCoordinator, let checkpointer {
      do {
        if let newest = try checkpointer.resumePoint(warn: { FileHandle.standardError.write(("warning: " + $0 + "\n").data(using: .utf8)!) }) {
          try load(newest)
          found = newest.path
          stateBytes = Array(try JSONEncoder().encode(newest.state))
        }
      } catch { failure = "\(error)" }
    }
    failure = try world.broadcast(string: failure, root: 0)
    if !failure.isEmpty { throw AgreedFailure(description: failure) }
    found = try world.broadcast(string: found, root: 0)
    try broadcastState()
    guard !found.isEmpty else { return 0 }
    try world.broadcast(bytes: &stateBytes, root: 0)
    let state = try JSONDecoder().decode(CheckpointState.self, from: Data(stateBytes))
    try parameterGroups?.settings.checkResume(scalars: state.scalars, checkpoint: found)
    if let bestStep = state.scalars["best_step"].flatMap({ Int(exactly: $0) }), let bestValue = state.scalars["best_value"] {
      best = (bestStep, bestValue)
    }
    step = state.step
    if world.isCoordinator {
      log("resumed from \(found) (step \(state.step), written by \(state.worldSize) rank(s); now \(world.size))")
    }
    return state.step
  }

  /// Checks the checkpoint against this model (fingerprint, recorded shapes, then the files' own headers),
  /// and only then copies its tensors into the parameters and the optimiser.
  private func load(_ checkpoint: (path: String, state: CheckpointState)) throws {
    let expected = expectedShapes
    try Checkpointer.checkCompatible(checkpoint.state, path: checkpoint.path, model: options.modelFingerprint, expected: expected)
    let params = try SafetensorsFile(path: checkpoint.path + "/params.safetensors")
    let moments = try SafetensorsFile(path: checkpoint.path + "/optimizer.safetensors")
    for (file, tensors) in [(params, expected["params.safetensors"] ?? [:]), (moments, expected["optimizer.safetensors"] ?? [:])] {
      for (name, shape) in tensors.sorted(by: { $0.key < $1.key }) {
        guard let info = file[name] else {
          throw CheckpointError.foreign(path: checkpoint.path, reason: "\(file.path) has no tensor \(name)")
        }
        guard info.shape == shape else {
          throw CheckpointError.foreign(path: checkpoint.path, reason: "\(name) has shape \(info.shape), this model needs \(shape)")
        }
      }
    }
    guard let stepCount = Int(exactly: checkpoint.state.scalars["optimizer_step"] ?? 0), stepCount >= 0 else {
      throw CheckpointError.damaged(path: checkpoint.path, reason: "optimizer_step is not a whole number")
    }
    for entry in model.table.entries { try params.read(entry.name, into: model.parameters.pointer + entry.offset) }
    try optimizer.load(stepCount: stepCount,
                       firstMoment: moments["first_moment"] == nil ? [] : try moments.floats("first_moment"),
                       secondMoment: moments["second_moment"] == nil ? [] : try moments.floats("second_moment"))
  }

  /// Makes every rank's parameters and optimiser state equal to the coordinator's.
  public func broadcastState() throws {
    try world.broadcast(model.parameters.pointer, count: model.parameters.count, root: 0)
    for buffer in [optimizer.firstMoment, optimizer.secondMoment] {
      try world.broadcast(buffer.pointer, count: buffer.count, root: 0)
    }
    var count = [Double(optimizer.stepCount)]
    try world.allReduceMax(&count)  // identical everywhere after a resume on the coordinator
    guard let agreed = Int(exactly: count[0]), agreed >= 0 else {
      throw AgreedFailure(description: "the optimiser step count agreed across ranks is \(count[0]), not a whole number; "
        + "a rank sent garbage. Check that every rank runs the same rada build.")
    }
    if agreed != optimizer.stepCount {
      try optimizer.load(stepCount: agreed, firstMoment: optimizer.firstMoment.array,
                         secondMoment: optimizer.secondMoment.array)
    }
  }

  // MARK: The loop

  /// Runs from the current step to `options.totalSteps`. Returns normally when done; throws
  /// TrainError.stopped after a signal (a checkpoint was written), or another error.
  public func run() throws {
    // Each collective has its own watchdog (it names the missing rank); this one catches a rank stuck outside
    // MPI with no collective to time out (one process, or a deadlock before the next collective), so it waits
    // longer than the collective limit plus its roll call.
    let watchdog = Watchdog(seconds: options.watchdogSeconds > 0 ? 2 * options.watchdogSeconds + 10 : 0, rank: world.rank)
    defer { watchdog.stop() }
    var intervalStart = DispatchTime.now().uptimeNanoseconds
    var intervalSteps = 0
    let grads = model.gradients
    StopSignal.loopStarted = true
    while step < options.totalSteps {
      let s = step
      let epoch = plan.epoch(ofStep: s)
      grads.zero()
      var sums = StepLosses(total: 0, ce: 0, maskLoss: 0)
      for micro in 0..<options.accumulation {
        let part = try model.forwardBackward(positions: plan.positions(step: s, micro: micro), epoch: epoch, reducer: reducer)
        sums.total += part.total; sums.ce += part.ce; sums.maskLoss += part.maskLoss
        for (k, v) in part.extra { sums.extra[k, default: 0] += v }
      }
      if options.accumulation > 1 {
        let scale = 1 / Float(options.accumulation)
        for e in model.table.entries where e.isTrainable {
          let g = grads.pointer + e.offset
          for i in 0..<e.count { g[i] *= scale }
        }
      }
      try reducer.finish()

      // One collective for the loss sums and the stop flag (a signal on any rank stops all).
      let extraKeys = sums.extra.keys.sorted()
      var packet = [sums.total, sums.ce, sums.maskLoss] + extraKeys.map { sums.extra[$0]! }
        + [metricsFailure == nil ? 0 : 1, StopSignal.isRequested ? 1 : 0]
      try world.allReduceSum(&packet)
      if packet[packet.count - 2] > 0 { try stopIfMetricsFailed() }
      let denominator = Double(world.size * options.accumulation)
      let loss = packet[0] / denominator
      var stopRequested = packet[packet.count - 1] > 0

      // Non-finite loss or gradients: identical on every rank after the allreduce, so all decide alike.
      if let bad = nonFinite(loss: loss) {
        if options.skipNonFinite {
          if world.isCoordinator { log("step \(s + 1): \(bad) is not finite; step skipped (run.nonFinite=skip)") }
          record(["step": s + 1, "skipped": true, "reason": bad])
          step += 1
          continue
        }
        throw TrainError.nonFinite(step: s + 1, what: bad)
      }

      try model.gradientsAveraged()
      watchdog.beat()
      let lr = learningRate(s)
      let groupLRs = parameterGroups?.learningRates(s)
      if let groupLRs { optimizer.step(parameters: model.parameters, gradients: grads, lrs: groupLRs) }
      else { optimizer.step(parameters: model.parameters, gradients: grads, lr: Float(lr)) }
      model.parametersUpdated()
      step = s + 1
      lossHistory.append(loss)
      intervalSteps += 1

      // metrics.jsonl: values from this step's forward pass, before the update.
      let now = DispatchTime.now().uptimeNanoseconds
      let secondsPerStep = Double(now - intervalStart) * 1e-9 / Double(max(1, intervalSteps))
      var line: [String: Any] = ["step": step, "epoch": epoch, "train/loss": loss, "train/ce": packet[1] / denominator,
                                 "train/mask_loss": packet[2] / denominator, "lr": lr, "time": Date().timeIntervalSince1970,
                                 "img_per_s": Double(options.globalBatch) / max(secondsPerStep, 1e-9)]
      for (i, key) in extraKeys.enumerated() { line[key] = packet[3 + i] / denominator }
      for (group, groupLR) in zip(optimizer.groups, groupLRs ?? []) { line["lr/" + group.name] = Double(groupLR) }
      record(line)
      let progress = ProgressLine.format(step: step, totalSteps: options.totalSteps, loss: loss, lr: lr,
                                     secondsPerStep: secondsPerStep,
                                     imagesPerSecond: Double(options.globalBatch) / secondsPerStep)
      let printsProgress = world.isCoordinator && options.progress != .none
      if printsProgress
          && (step % max(1, options.logEvery) == 0 || step == options.totalSteps || step == 1) {
        if liveBar { print("\r\u{1B}[K", terminator: "") }
        log(progress)
        intervalStart = DispatchTime.now().uptimeNanoseconds
        intervalSteps = 0
      } else if printsProgress && liveBar {
        // On a terminal, a live bar between the logged lines (rewritten in place; logs and pipes never see it).
        print("\r\u{1B}[K" + ProgressLine.bar(step: step, totalSteps: options.totalSteps) + " " + progress, terminator: "")
        fflush(stdout)
      }

      if options.checksumEvery > 0 && step % options.checksumEvery == 0 { try checkReplicasAgree() }
      injectFaultIfAsked()
      if faultPending { throw TrainError.datasetTooSmall("injected error after step \(step) (RADA_FAULT=error)") }
      var evaluated: [String: Double] = [:]
      watchdog.beat()
      // A stop agreed in this step's allreduce checkpoints at once, without the evaluation.
      if !stopRequested && options.evalEvery > 0 && step % options.evalEvery == 0 && step < options.totalSteps,
         let evaluate {
        PhaseFault.at("eval", rank: world.rank)
        StopSignal.abandonsEvaluation = true; StopSignal.skippedWork = false
        defer { StopSignal.abandonsEvaluation = false }
        evaluated = try evaluate(step)
        // A signal that arrived during evaluation: agree on it now, so the checkpoint below is written at once
        // rather than after another step (the scheduler's grace period is short). If any rank skipped blocks
        // for it, the evaluation is incomplete and is not recorded.
        var flags = [StopSignal.isRequested ? 1.0 : 0, StopSignal.skippedWork ? 1 : 0]
        try world.allReduceSum(&flags)
        stopRequested = flags[0] > 0
        if flags[1] > 0 {
          if world.isCoordinator { log("step \(step): evaluation stopped by the signal; not recorded") }
          evaluated = [:]
        }
        logEvaluation(evaluated)
      }
      watchdog.beat()
      let improved = noteBest(evaluated)
      let periodic = options.checkpointEvery > 0 && step % options.checkpointEvery == 0
      if stopRequested || periodic || improved {
        let path = try saveCheckpoint()
        if stopRequested { throw TrainError.stopped(step: step, checkpoint: path) }
      }
    }
  }

  /// Test hook (launch/tests): RADA_FAULT_STEP=N makes rank RADA_FAULT_RANK (default 0) act after step N:
  /// RADA_FAULT=kill (SIGKILL, a lost process), term (SIGTERM, a preemption) or error (a thrown error).
  private func injectFaultIfAsked() {
    let env = ProcessInfo.processInfo.environment
    guard let at = env["RADA_FAULT_STEP"].flatMap(Int.init), at == step,
          world.rank == (env["RADA_FAULT_RANK"].flatMap(Int.init) ?? 0) else { return }
    switch env["RADA_FAULT"] ?? "kill" {
    case "term": kill(getpid(), SIGTERM)
    case "error": faultPending = true
    case "hang": fflush(stdout); kill(getpid(), SIGSTOP)  // alive but stuck: only a watchdog notices
    case "fill":  // another process fills the run directory's disk (launch/tests/cluster-faults.sh, on a small tmpfs)
      if let runDirectory, let filler = FileHandle(forWritingAtPath: { let p = runDirectory.file(".fill")
        _ = FileManager.default.createFile(atPath: p, contents: nil); return p }()) {
        let block = Data(count: 1 << 16)
        while (try? filler.write(contentsOf: block)) != nil {}
        try? filler.close()
      }
    default: fflush(stdout); kill(getpid(), SIGKILL)
    }
  }
  private var faultPending = false

  /// Final evaluation and final checkpoint (called after `run` returns).
  public func finish() throws -> [String: Double] {
    var evaluated: [String: Double] = [:]
    if let evaluate {
      evaluated = try evaluate(step)
      logEvaluation(evaluated)
      _ = noteBest(evaluated)
    }
    try stopIfMetricsFailed()
    try saveCheckpoint()
    return evaluated
  }

  /// The coordinator's first failed metrics.jsonl write (a full disk); every rank learns it at the next step's
  /// allreduce or at `finish`, and all stop together without writing a checkpoint onto that disk.
  private var metricsFailure: String?

  private func record(_ line: [String: Any]) {
    do { try metrics?.append(line) } catch { if metricsFailure == nil { metricsFailure = "\(error)" } }
  }

  /// Every rank calls this at the same point: throws on all ranks when the coordinator's metrics write failed.
  private func stopIfMetricsFailed() throws {
    let message = try world.broadcast(string: metricsFailure ?? "", root: 0)
    if !message.isEmpty { throw AgreedFailure(description: message) }
  }

  private func logEvaluation(_ values: [String: Double]) {
    guard !values.isEmpty else { return }
    var line: [String: Any] = ["step": step]
    for (k, v) in values { line[k] = v }
    record(line)
    if world.isCoordinator {
      log("eval step \(step): " + values.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }
        .joined(separator: " | "))
    }
  }

  private func noteBest(_ values: [String: Double]) -> Bool {
    guard let value = values[options.bestMetric] else { return false }
    if let best, options.bestIsMax ? value <= best.value : value >= best.value { return false }
    best = (step, value)
    return true
  }

  private func nonFinite(loss: Double) -> String? {
    if !loss.isFinite { return "the loss" }
    let g = model.gradients.readOnly
    for e in model.table.entries where e.isTrainable {
      for i in e.offset..<(e.offset + e.count) where !g[i].isFinite { return "the gradient of \(e.name)" }
    }
    return nil
  }

  /// Compares a checksum of the parameters across ranks (max and min must agree).
  public func checkReplicasAgree() throws {
    let p = model.parameters.readOnly
    var a = 0.0, b = 0.0
    for i in 0..<model.parameters.count { a += Double(p[i]); b += Double(p[i]) * Double(i % 97 + 1) }
    var packet = [a, b, -a, -b]
    try world.allReduceMax(&packet)
    if packet[0] != a || packet[1] != b || -packet[2] != a || -packet[3] != b {
      throw TrainError.replicasDiverged(step: step, detail: "checksum \(a) on rank \(world.rank), max \(packet[0]), min \(-packet[2])")
    }
  }

  /// Writes a checkpoint (coordinator) and waits for it on every rank. Returns its path on the coordinator.
  @discardableResult
  public func saveCheckpoint() throws -> String? {
    var path: String?
    var failure = ""
    if world.isCoordinator, let checkpointer {
      var files = model.checkpointFiles()
      files["params.safetensors"] = model.table.entries.map {
        SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: model.parameters.readOnly + $0.offset)
      }
      files["optimizer.safetensors"] = [("first_moment", optimizer.firstMoment), ("second_moment", optimizer.secondMoment)]
        .filter { $0.1.count > 0 }
        .map { SafetensorsWriter.Tensor(name: $0.0, shape: [$0.1.count], values: $0.1.readOnly) }
      var state = CheckpointState(step: step, epoch: sampler.epoch(ofStep: max(0, step - 1)), worldSize: world.size,
                                  seed: options.seed)
      state.scalars["optimizer_step"] = Double(optimizer.stepCount)
      for (key, value) in parameterGroups?.settings.checkpointScalars ?? [:] { state.scalars[key] = value }
      if let best { state.scalars["best_step"] = Double(best.step); state.scalars["best_value"] = best.value }
      state.config = options.configYAML
      state.model = options.modelFingerprint
      do {
        path = try checkpointer.save(step: step, files: files, state: state)
        checkpointer.prune(protectedSteps: best.map { [$0.step] } ?? [])
      } catch { failure = "\(error)" }
    }
    // Every rank learns whether the write worked, so a failed write stops all ranks alike.
    failure = try world.broadcast(string: failure, root: 0)
    if !failure.isEmpty { throw AgreedFailure(description: failure) }
    return path
  }
}

extension StopSignal {
  /// Set when this process's TrainLoop starts its first step. Before that there is no progress to lose.
  nonisolated(unsafe) public internal(set) static var loopStarted = false

  /// Before the first optimiser step (loading, feature encoding) a stop request ends this rank at once: nothing
  /// is lost, and the other ranks got the same signal from the launcher (or are ended by it). Later requests are
  /// agreed on through the step's allreduce and end with a checkpoint.
  public static func stopIfBeforeFirstStep() throws {
    if isRequested && !loopStarted { throw TrainError.stoppedBeforeFirstStep }
  }

  /// Set by the loop while it evaluates in the middle of training: a stop request then makes sharded work
  /// (`BlockShard.computeLocal`) skip its remaining blocks, and the loop discards that evaluation and checkpoints,
  /// instead of finishing an evaluation that may outlast the scheduler's grace period. Every collective still runs.
  nonisolated(unsafe) static var abandonsEvaluation = false
  /// Set when a block was skipped that way (this rank's evaluation is incomplete).
  nonisolated(unsafe) static var skippedWork = false

  /// In a block loop: true when the remaining blocks are to be skipped (see `abandonsEvaluation`).
  static func skipsRemainingWork() -> Bool {
    guard abandonsEvaluation && isRequested else { return false }
    skippedWork = true
    return true
  }
}

/// Test hook (launch/tests/cluster-faults.sh): RADA_FAULT_PHASE=mpi-init|start|encode|eval makes rank RADA_FAULT_RANK
/// (default 0) act once when it reaches that phase: RADA_FAULT=hang (SIGSTOP itself) or term (SIGTERM itself).
public enum PhaseFault {
  nonisolated(unsafe) private static var fired = false
  private static let lock = NSLock()

  public static func at(_ phase: String, rank: Int) {
    let env = ProcessInfo.processInfo.environment
    guard env["RADA_FAULT_PHASE"] == phase, rank == (env["RADA_FAULT_RANK"].flatMap(Int.init) ?? 0) else { return }
    lock.lock(); let first = !fired; fired = true; lock.unlock()
    guard first else { return }
    fflush(stdout)
    FileHandle.standardError.write("rank \(rank): RADA_FAULT=\(env["RADA_FAULT"] ?? "hang") at phase \(phase) (pid \(getpid()))\n".data(using: .utf8)!)
    kill(getpid(), env["RADA_FAULT"] == "term" ? SIGTERM : SIGSTOP)
  }
}

/// Ends the job when this rank makes no progress for `seconds`: a rank that hangs (alive, so MPI notices nothing)
/// or a collective that never completes would otherwise block every rank forever. It prints which rank gave up
/// and exits non-zero, which makes mpirun (or srun --kill-on-bad-exit) end the other ranks.
final class Watchdog {
  private let seconds: Double
  private let rank: Int
  private let lock = NSLock()
  private var last = DispatchTime.now().uptimeNanoseconds
  private var running = true

  init(seconds: Double, rank: Int) {
    self.seconds = seconds
    self.rank = rank
    guard seconds > 0 else { running = false; return }
    let thread = Thread { [weak self] in self?.watch() }
    thread.name = "rada-watchdog"
    thread.start()
  }

  func beat() { lock.lock(); last = DispatchTime.now().uptimeNanoseconds; lock.unlock() }
  func stop() { lock.lock(); running = false; lock.unlock() }

  private func watch() {
    while true {
      Thread.sleep(forTimeInterval: min(1, seconds / 4))
      lock.lock()
      let idle = Double(DispatchTime.now().uptimeNanoseconds - last) * 1e-9, alive = running
      lock.unlock()
      if !alive { return }
      if idle > seconds {
        let message = "rank \(rank): watchdog: no training progress for \(Int(idle)) s (limit 2 x run.collectiveTimeout + 10 = "
          + "\(Int(seconds)) s); this rank is stuck outside a collective. Ending the job; resume with --resume auto.\n"
        FileHandle.standardError.write(message.data(using: .utf8)!)
        _exit(124)
      }
    }
  }
}
