// The session skeleton every setting runs through, written once (issue 19): validate -> prepare (load the model
// and datasets) -> agree across ranks -> claim the run directory -> broadcast the coordinator's parameters ->
// build -> resume -> run -> evaluate -> finish (final files) -> COMPLETE. `Session.run` owns the order, the
// collectives between the stages and COMPLETE (the JSON summary with sorted keys, written only here); a
// `SessionSetting` provides what differs: EFTSetting, TowerSetting (FFT and pretraining) and TTTSetting. The
// three training settings share their loop stages (Session+Training.swift) and give only a step model, an
// evaluation, their final files and a start-up line; TTT's per-image adaptation is its "run" stage.
// Letters as in RunPlan: N dataset size, B global batch, R ranks.
import CLIP
import Data
import Distributed
import Foundation
import Kernels

public struct SessionOptions {
  public var resume = false
  public var featureCacheDirectory: String?
  /// EFT with augmentation: stop once the augmented features are in the cache (`rada sweep`'s extraction phase).
  public var extractFeaturesOnly = false
  public var log: (String) -> Void = { print($0); fflush(stdout) }
  public init(resume: Bool = false, featureCacheDirectory: String? = nil) {
    self.resume = resume; self.featureCacheDirectory = featureCacheDirectory
  }
}

public struct TrainSummary {
  public var steps: Int
  public var finalMetrics: [String: Double]
  public var lossHistory: [Double]
}

public enum SessionError: Error, CustomStringConvertible {
  case featureWidth(model: Int, head: Int, path: String)
  case classUnreadable(className: String, images: Int, first: String)
  public var description: String {
    switch self {
    case let .featureWidth(model, head, path):
      return "the head in \(path) has width \(head) but the model's embedding width is \(model); "
        + "use a head trained for this model."
    case let .classUnreadable(className, images, first):
      return "--skip-bad-samples: every image of class '\(className)' is unreadable (\(images) image(s), first \(first)); "
        + "a replacement must come from the same class. Fix or remove those files, or drop the class from the dataset."
    }
  }
}

/// What a setting loads in the prepare stage: the model and the datasets every rank must agree on.
struct SessionInputs {
  let model: CLIPModel
  /// Of the weights as loaded, before the broadcast, so every rank computes the same.
  let fingerprint: ModelFingerprint
  /// (dataset, role) with role "train" or "eval", as RunFingerprint names them.
  let datasets: [(Dataset, String)]
}

/// What the stages after the run directory work with.
struct SessionContext {
  let world: Collective
  let runDirectory: RunDirectory
  let inputs: SessionInputs
  let options: SessionOptions
  /// One console line, printed by the coordinator only.
  let log: (String) -> Void
}

/// What differs between settings. `Session.run` calls these in order on every rank; collectives inside a stage
/// are the setting's business, but every rank must make the same ones.
protocol SessionSetting: AnyObject {
  associatedtype Outcome
  var config: TrainConfig { get }
  /// validate: the config and options alone, before anything is loaded.
  func validate(ranks: Int) throws
  /// prepare: every rank loads the model and the datasets (deterministic, no collective) and checks what it can.
  func prepare() throws -> SessionInputs
  /// The coordinator claims the run directory: refuses what must not be overwritten, writes the start files.
  func claimRunDirectory(_ runDirectory: RunDirectory, inputs: SessionInputs, resume: Bool) throws
  /// build: after the parameters are broadcast, what runs (the step model and its loop, or TTT's adapter), and
  /// the start-up log line. False when nothing is left to do (features extracted only).
  func build(_ session: SessionContext) throws -> Bool
  /// resume (with --resume): true when the run is already complete at the requested length.
  func resume(_ session: SessionContext) throws -> Bool
  /// run: the training steps, or TTT's adaptation of every test image.
  func run(_ session: SessionContext) throws
  /// evaluate: the final metrics, on every rank.
  func evaluate(_ session: SessionContext) throws -> [String: Double]
  /// finish: the final files (written by the coordinator; collectives allowed). Returns COMPLETE's content and
  /// the last console line.
  func finish(_ session: SessionContext, metrics: [String: Double]) throws -> (complete: [String: Any], done: String)
  /// What the public entry point returns, also after an early end (build or resume said so).
  func outcome() -> Outcome
}

enum Session {
  static func run<Setting: SessionSetting>(_ setting: Setting, world: Collective,
                                          options: SessionOptions) throws -> Setting.Outcome {
    let log: (String) -> Void = { if world.isCoordinator { options.log($0) } }
    // 1. validate
    try setting.validate(ranks: world.size)
    PhaseFault.at("start", rank: world.rank)
    // 2. prepare: every rank loads what it was given.
    let inputs = try setting.prepare()
    // 3. agree on config, model, datasets and binary before anything is broadcast or decided from local files
    //    (a different model on one rank would otherwise meet rank 0's buffer in the broadcast; issue 15).
    try RunFingerprint.agree(world: world, config: setting.config, model: inputs.model, fingerprint: inputs.fingerprint,
                             datasets: inputs.datasets)
    // 4. the run directory: the coordinator claims it and every rank learns the outcome, so all fail alike.
    let runDirectory = RunDirectory(path: setting.config.run.dir)
    var failure = ""
    if world.isCoordinator {
      do { try setting.claimRunDirectory(runDirectory, inputs: inputs, resume: options.resume) } catch { failure = "\(error)" }
    }
    failure = try world.broadcast(string: failure, root: 0)
    if !failure.isEmpty { throw AgreedFailure(description: failure) }
    try writeWorld(world: world, runDirectory: runDirectory)
    try StopSignal.stopIfBeforeFirstStep()
    // 5. the coordinator's parameters everywhere, then build what runs.
    try world.broadcast(inputs.model.parameters.pointer, count: inputs.model.parameters.count, root: 0)
    let session = SessionContext(world: world, runDirectory: runDirectory, inputs: inputs, options: options, log: log)
    guard try setting.build(session) else { return setting.outcome() }
    // 6. resume; 7. run; 8. evaluate; 9. finish
    if options.resume, try setting.resume(session) { return setting.outcome() }
    try setting.run(session)
    let metrics = try setting.evaluate(session)
    let (complete, done) = try setting.finish(session, metrics: metrics)
    // 10. COMPLETE, written last: the run is finished.
    if world.isCoordinator {
      let json = try JSONSerialization.data(withJSONObject: complete, options: [.sortedKeys, .withoutEscapingSlashes])
      try runDirectory.writeAtomically("COMPLETE", String(decoding: json, as: UTF8.self) + "\n")
      log(done)
    }
    return setting.outcome()
  }

  /// RUN/world.json: ranks, hosts, threads and BLAS core of every rank.
  static func writeWorld(world: Collective, runDirectory: RunDirectory) throws {
    let status = BLASRuntime.status()
    let rows = try world.allGather(string: "{\"rank\": \(world.rank), \"host\": \"\(world.hostName)\", \"localRank\": \(world.localRank), "
                                   + "\"threads\": \(status.threads), \"blasCore\": \"\(status.coreName)\"}")
    if world.isCoordinator {
      try runDirectory.writeAtomically("world.json", "{\"size\": \(world.size), \"mpi\": \"\(world.libraryVersion)\", \"ranks\": [\n  "
                                       + rows.joined(separator: ",\n  ") + "\n]}\n")
    }
  }
}
