// The training configuration: Codable sections grouped by concern. Load order: in-code defaults, then a YAML
// file (--config), then command-line flags, then `--set a.b=value` overrides. Unknown keys are errors. The
// property names ARE the YAML keys and the --set paths. Defaults follow the RAda reference's train.py and its
// base-to-new config (Adam, lr 3.5e-3, weight decay 5e-4, cosine with one constant warm-up epoch at 1e-5,
// batch 4, 5 epochs, temperature 1, alpha 0 (its command-line default)).
import Data
import Foundation
import RAda
import Tensor
import Yams

public struct TrainConfig: Codable, Equatable {
  public struct Model: Codable, Equatable {
    /// HF folder, open_clip folder, or a bare .safetensors with OpenAI/open_clip names.
    public var path = ""
    /// Fixed logit scale s for the head (linear, e.g. 100); nil = exp of the model's own logit_scale.
    public var logitScale: Double?
  }
  public struct DataSection: Codable, Equatable {
    /// Dataset spec, e.g. imagefolder:PATH, manifest:FILE.csv, coop:ROOT:oxford_pets.
    public var train = ""
    public var eval: String?
    public var shots: Int?
    public var splitSeed = 1
    /// base | new | all (CoOp's subsample_classes).
    public var subsample = ClassSubset.all
    /// Random resized crop + flip for training images; off = center crop (and features can be cached).
    public var augment = true
    public var skipBadSamples = false
    /// EFT with augmentation: extract the frozen tower's features of every (epoch, sample) the run visits once,
    /// into the feature cache that later runs and sweep members reuse, then train the head only
    /// (AugmentedFeatureCache.swift). false: the tower runs on every augmented micro-batch.
    public var cacheAugmentedFeatures = true
    /// Bound on the feature cache directory: the least recently written entries go first (0: no bound).
    public var featureCacheMaxGB = 20.0
    public var loaderThreads = 1
    public var prefetchBatches = 2
  }
  public struct RAdaSection: Codable, Equatable {
    /// Weight of the mask regulariser α·mean_b max|mask−1|.
    public var alpha = 0.0
    /// Softmax temperature of the head's attention maps.
    public var temperature = 1.0
    /// linf (the paper's) or mse.
    public var maskLoss = MaskLossKind.linf
    public var templates = ["a photo of a {}."]
    /// A head checkpoint (.safetensors in the reference names) to start from; nil = zero-initialised out_proj.
    public var headInit: String?
  }
  public struct Optim: Codable, Equatable {
    /// sgd | adam | adamw
    public var name = OptimizerKind.adam
    public var lr = 3.5e-3
    public var momentum = 0.9
    public var nesterov = false
    public var weightDecay = 5e-4
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-8
    /// Global gradient-norm clipping (0 = off); FFT uses it.
    public var clipGradNorm = 0.0
    /// FFT and pretraining: lr, weight decay and freeze per head, image tower, text tower, logit scale
    /// (ParameterGroups.swift).
    public var groups = ParameterGroups()
  }
  public struct Schedule: Codable, Equatable {
    /// constant | cosine (per step, optional linear warm-up) | dassl_cosine (per epoch, as the reference:
    /// `warmupEpochs` at the constant `warmupLR`, then cosine over the epochs).
    public var name = ScheduleKind.cosine
    /// Linear warm-up steps from 0 (cosine; 0 = none).
    public var warmupSteps = 0
    /// Dassl's constant warm-up epochs (dassl_cosine).
    public var warmupEpochs = 1
    public var warmupLR = 1e-5
  }
  public struct FFT: Codable, Equatable {
    /// Weight of the FLYP contrastive loss between images and their class captions.
    public var contrastiveWeight = 1.0
    /// Gradient allreduce bucket size in MB (FFT). Small buckets start the first reduction early in backward:
    /// between two simulated nodes at 3 Gbit/s, 2 MB hid 81 % of the allreduce, 5 MB 77 %, 25 MB 46 %.
    public var bucketMB = 2.0
    /// Start each bucket's allreduce during backward: "auto" (only when the ranks span several nodes), "always",
    /// "never" (not on/off: YAML reads those as booleans).
    /// Across nodes the network moves the data while the cores compute (small step 0.55 s against 0.75 s with one
    /// allreduce after backward at 3 Gbit/s); on one node the allreduce is shared-memory copies done by the same
    /// busy cores, and overlapping measured no faster there (launch/bench/README.md).
    public var overlap = OverlapMode.auto
  }
  public struct Run: Codable, Equatable {
    public var dir = ""
    /// Global batch (all ranks, all accumulation micro-steps).
    public var batchSize = 4
    public var steps: Int?
    public var epochs: Int?
    /// Micro-batches per optimiser step (global batch = ranks x micro-batch x accumulation).
    public var accumulation = 1
    public var seed = 1
    public var shuffle = true
    public var evalEvery = 0
    public var checkpointEvery = 0
    public var keepCheckpoints = 3
    public var logEvery = 10
    /// auto | bar | lines | none. `auto` draws the live bar only when the job's output is a terminal (under mpirun:
    /// mpirun's own output, not the pseudo-terminal it hands the ranks), else prints one line every logEvery steps.
    public var progress = ProgressMode.auto
    /// Metric that selects the best checkpoint, and whether higher is better.
    public var bestMetric = "val/top1"
    public var bestMode = BestMode.max
    /// Seconds a collective may block before the watchdog ends the job (0 = off).
    public var collectiveTimeout = 600.0
    /// stop | skip: what a NaN/Inf loss or gradient does.
    public var nonFinite = NonFinitePolicy.stop
    /// Steps between cross-rank parameter checksums (0 = off).
    public var checksumEvery = 100
  }

  /// eft | fft
  public var setting = TrainingSetting.eft
  public var model = Model()
  public var data = DataSection()
  public var rada = RAdaSection()
  public var optim = Optim()
  public var schedule = Schedule()
  public var fft = FFT()
  public var run = Run()

  public init() {}

  /// The in-code defaults of a setting. EFT's are the reference's (Adam, lr 3.5e-3, weight decay 5e-4); FFT's
  /// optimiser is FLYP's (AdamW, lr 1e-5, weight decay 0.1), because EFT's rate is far too large for updating the
  /// encoders. A YAML file, flags and --set then change only what they name.
  public static func defaults(for setting: TrainingSetting) -> TrainConfig {
    var c = TrainConfig()
    c.setting = setting
    if setting == .fft { c.optim.name = .adamw; c.optim.lr = 1e-5; c.optim.weightDecay = 0.1 }
    return c
  }
}

public enum ConfigError: Error, CustomStringConvertible {
  case unknownKey(String, valid: [String])
  case badValue(key: String, value: String, reason: String)
  case unreadable(path: String, reason: String)
  case invalid(String)

  public var description: String {
    switch self {
    case let .unknownKey(key, valid):
      let close = valid.filter { $0.hasSuffix("." + (key.split(separator: ".").last.map(String.init) ?? key)) || $0 == key }
      return "unknown config key '\(key)'" + (close.isEmpty ? "" : " (did you mean \(close.joined(separator: " or "))?)")
        + ". Valid keys: \(valid.joined(separator: ", "))."
    case let .badValue(key, value, reason): return "config key '\(key)' = '\(value)': \(reason)."
    case let .unreadable(path, reason): return "cannot read config \(path): \(reason)."
    case let .invalid(message): return message
    }
  }
}

extension TrainConfig {
  /// Every settable key path ("optim.lr", "run.steps", ...), including optional ones that are nil by default.
  public static var validKeys: [String] {
    var keys: [String] = []
    func walk(_ value: Any, prefix: String) {
      for child in Mirror(reflecting: value).children {
        guard let label = child.label else { continue }
        let path = prefix.isEmpty ? label : prefix + "." + label
        let mirror = Mirror(reflecting: child.value)
        if mirror.displayStyle == .struct { walk(child.value, prefix: path) } else { keys.append(path) }
      }
    }
    walk(TrainConfig(), prefix: "")
    return keys
  }

  /// Largest number of YAML values a config may expand to (its aliases resolved): a real config has ~60; an
  /// alias bomb (each level listing the previous one 9 times) has billions.
  public static let maximumYAMLNodes = 100_000

  /// Loads a YAML file on top of `self`; unknown keys are errors.
  public mutating func merge(yaml text: String, source: String) throws {
    guard let loaded = try Self.parseYAML(text, source: source) else { return }
    guard let tree = loaded as? [String: Any] else {
      throw ConfigError.unreadable(path: source, reason: "the top level must be a mapping of sections")
    }
    for (key, value) in flatten(tree, prefix: "") { try set(key, yamlValue: value) }
  }

  /// YAML text as Foundation values, refusing (before Yams recurses into it) nesting deeper than
  /// `YAMLSafety.maximumDepth`, aliases that expand beyond `maximumYAMLNodes`, and non-scalar mapping keys.
  static func parseYAML(_ text: String, source: String) throws -> Any? {
    do { try checkYAMLDepth(text) } catch { throw ConfigError.unreadable(path: source, reason: yamlErrorSummary(error)) }
    try checkExpandedSize(yaml: text, source: source)
    do { return try loadYAML(text) } catch let error as YAMLKeyError {
      throw ConfigError.unreadable(path: source, reason: yamlErrorSummary(error))
    }
  }

  /// Refuses YAML whose aliases expand to more than `maximumYAMLNodes` values, counting with a budget (an
  /// explicit stack, stopped at the limit) before anything is expanded.
  static func checkExpandedSize(yaml text: String, source: String) throws {
    guard text.contains("*") else { return }  // no alias: the expanded size is the text's own
    guard let root = try Yams.compose(yaml: text) else { return }
    guard yamlNodeCountIsWithin(root, limit: maximumYAMLNodes) else {
      throw ConfigError.unreadable(path: source, reason: "it expands to more than \(maximumYAMLNodes) values "
                                     + "(YAML aliases repeating each other?); write the config out without aliases")
    }
  }

  public mutating func merge(file path: String) throws {
    let data: Data
    do { data = try BoundedFile.read(path, limit: BoundedFile.configLimit, what: "a config") } catch {
      throw ConfigError.unreadable(path: path, reason: "\(error)")
    }
    do { try merge(yaml: String(decoding: data, as: UTF8.self), source: path) } catch let error as ConfigError {
      throw error
    } catch {
      throw ConfigError.unreadable(path: path, reason: yamlErrorSummary(error))
    }
  }

  /// Applies one `key=value` override; the value is parsed as a YAML scalar or list.
  public mutating func apply(override: String) throws {
    guard let eq = override.firstIndex(of: "=") else {
      throw ConfigError.badValue(key: override, value: "", reason: "expected key=value, e.g. --set optim.lr=1e-3")
    }
    let key = String(override[..<eq]).trimmingCharacters(in: .whitespaces)
    let text = String(override[override.index(after: eq)...])
    // A value YAML cannot read (or an empty one) is taken as the text itself.
    let parsed: Any? = (try? Self.parseYAML(text, source: "--set \(key)")) ?? nil
    try set(key, yamlValue: parsed ?? text)
  }

  private func flatten(_ tree: [String: Any], prefix: String) -> [(String, Any)] {
    tree.sorted { $0.key < $1.key }.flatMap { key, value -> [(String, Any)] in
      let path = prefix.isEmpty ? key : prefix + "." + key
      if let sub = value as? [String: Any] { return flatten(sub, prefix: path) }
      return [(path, value)]
    }
  }

  /// Sets one key from a parsed YAML value by round-tripping the config through a JSON object.
  public mutating func set(_ key: String, yamlValue: Any) throws {
    let valid = TrainConfig.validKeys
    if let renamed = ["fft.lockImageTower": "optim.groups.image.frozen", "fft.lockTextTower": "optim.groups.text.frozen"][key] {
      throw ConfigError.badValue(key: key, value: "\(yamlValue)", reason: "this key is now \(renamed); use that instead")
    }
    guard valid.contains(key) else { throw ConfigError.unknownKey(key, valid: valid) }
    let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as! [String: Any]
    var tree = encoded
    let parts = key.split(separator: ".").map(String.init)
    func assign(_ node: inout [String: Any], _ path: ArraySlice<String>) {
      if path.count == 1 { node[path.first!] = yamlValue is NSNull ? nil : jsonCompatible(yamlValue); return }
      var child = node[path.first!] as? [String: Any] ?? [:]
      assign(&child, path.dropFirst())
      node[path.first!] = child
    }
    assign(&tree, parts[...])
    do {
      self = try JSONDecoder().decode(TrainConfig.self, from: JSONSerialization.data(withJSONObject: tree))
    } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
      // An enum's own message lists its values ("use auto, bar, lines, none").
      throw ConfigError.badValue(key: key, value: "\(yamlValue)", reason: context.debugDescription)
    } catch {
      throw ConfigError.badValue(key: key, value: "\(yamlValue)", reason: "wrong type for this key (\(typeName(of: key)))")
    }
  }

  private func typeName(of key: String) -> String {
    var value: Any = self
    for part in key.split(separator: ".") {
      guard let child = Mirror(reflecting: value).children.first(where: { $0.label == String(part) }) else { return "?" }
      value = child.value
    }
    return "\(type(of: value))".replacingOccurrences(of: "Optional<", with: "").replacingOccurrences(of: ">", with: "?")
  }

  /// The resolved config as YAML (saved as config.resolved.yaml in the run directory).
  public func yaml() throws -> String { try YAMLEncoder().encode(self) }

  public static func load(yaml text: String) throws -> TrainConfig {
    var config = TrainConfig()
    try config.merge(yaml: text, source: "<string>")
    return config
  }
}

/// YAML scalars arrive as Int/Double/Bool/String (or lists); JSONSerialization needs Foundation types.
private func jsonCompatible(_ value: Any) -> Any {
  switch value {
  case let list as [Any]: return list.map(jsonCompatible)
  case let map as [String: Any]: return map.mapValues(jsonCompatible)
  case let v as Int: return NSNumber(value: v)
  case let v as Double: return NSNumber(value: v)
  case let v as Bool: return NSNumber(value: v)
  case let v as String: return v
  default: return "\(value)"
  }
}

extension TrainConfig {
  /// Refuses bad values before any work starts; `ranks` is the world size.
  public func validate(ranks: Int) throws {
    func bad(_ key: String, _ value: Any, _ reason: String) -> ConfigError {
      .badValue(key: key, value: "\(value)", reason: reason)
    }
    guard !model.path.isEmpty else { throw bad("model.path", "", "give --model PATH (HF folder, open_clip folder or .safetensors)") }
    guard !data.train.isEmpty else { throw bad("data.train", "", "give --train DATA, e.g. imagefolder:PATH") }
    guard optim.lr >= 0, optim.lr.isFinite else { throw bad("optim.lr", optim.lr, "the learning rate must be a finite number >= 0") }
    // Every other number: finite, and in the range where the optimiser, schedule and loss mean something.
    let numbers: [(String, Double, ClosedRange<Double>)] = [
      ("optim.eps", optim.eps, 1e-30...1), ("optim.beta1", optim.beta1, 0...0.999_999_999),
      ("optim.beta2", optim.beta2, 0...0.999_999_999), ("optim.clipGradNorm", optim.clipGradNorm, 0...1e30),
      ("optim.weightDecay", optim.weightDecay, 0...1e30), ("schedule.warmupLR", schedule.warmupLR, 0...1e30),
      ("rada.alpha", rada.alpha, 0...1e30), ("rada.temperature", rada.temperature, 1e-30...1e30),
      ("fft.contrastiveWeight", fft.contrastiveWeight, 0...1e30), ("fft.bucketMB", fft.bucketMB, 1e-6...1024),
      ("run.collectiveTimeout", run.collectiveTimeout, 0...1e9)]
    for (key, value, range) in numbers
    where !(value.isFinite && range.contains(value)) {
      throw bad(key, value, "must be a finite number in \(range.lowerBound)...\(range.upperBound)")
    }
    if let scale = model.logitScale, !(scale.isFinite && scale > 0 && scale <= 1e6) {
      throw bad("model.logitScale", scale, "the head's logit scale must be in (0, 1e6] (CLIP's is 100)")
    }
    // Counts: bounded so that products of them (epochs x steps per epoch, ranks x accumulation) cannot overflow.
    let big = 1 << 40, int32 = Int(Int32.max)
    var counts: [(String, Int, ClosedRange<Int>)] = []
    counts.append(("run.seed", run.seed, 0...int32))
    counts.append(("data.splitSeed", data.splitSeed, 0...int32))
    counts.append(("run.evalEvery", run.evalEvery, 0...big))
    counts.append(("run.checkpointEvery", run.checkpointEvery, 0...big))
    counts.append(("run.logEvery", run.logEvery, 0...big))
    counts.append(("run.checksumEvery", run.checksumEvery, 0...big))
    counts.append(("run.keepCheckpoints", run.keepCheckpoints, 1...(1 << 20)))
    counts.append(("schedule.warmupSteps", schedule.warmupSteps, 0...big))
    counts.append(("schedule.warmupEpochs", schedule.warmupEpochs, 0...(1 << 20)))
    counts.append(("data.shots", data.shots ?? 1, 1...(1 << 24)))
    counts.append(("data.loaderThreads", data.loaderThreads, 1...1024))
    counts.append(("data.prefetchBatches", data.prefetchBatches, 1...1024))
    for (key, value, range) in counts
    where !range.contains(value) {
      throw bad(key, value, "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
    }
    // The batch layout (batch, accumulation, ranks, --steps or --epochs): checked where the run plan is built.
    _ = try RunPlan.Layout(config: self, ranks: ranks)
    guard optim.weightDecay >= 0 else { throw bad("optim.weightDecay", optim.weightDecay, "must be >= 0") }
    guard optim.momentum >= 0 && optim.momentum < 1 else { throw bad("optim.momentum", optim.momentum, "must be in [0, 1)") }
    guard schedule.warmupSteps >= 0, schedule.warmupEpochs >= 0 else {
      throw bad("schedule.warmupSteps", schedule.warmupSteps, "must be >= 0")
    }
    guard rada.temperature > 0 else { throw bad("rada.temperature", rada.temperature, "must be > 0") }
    guard rada.alpha >= 0 else { throw bad("rada.alpha", rada.alpha, "must be >= 0") }
    guard !rada.templates.isEmpty else { throw bad("rada.templates", "[]", "give at least one template") }
    for t in rada.templates where !t.contains("{}") {
      throw bad("rada.templates", t, "a template needs {} where the class name goes, e.g. \"a photo of a {}.\"")
    }
    if let shots = data.shots, shots < 1 { throw bad("data.shots", shots, "must be >= 1") }
    guard !run.dir.isEmpty else { throw bad("run.dir", "", "give --run-dir DIR") }
    guard data.loaderThreads >= 1, data.prefetchBatches >= 1 else {
      throw bad("data.loaderThreads", data.loaderThreads, "loader threads and prefetch batches must be >= 1")
    }
    try validateGroups()
    if fft.bucketMB <= 0 { throw bad("fft.bucketMB", fft.bucketMB, "must be > 0") }
    guard data.featureCacheMaxGB >= 0, data.featureCacheMaxGB.isFinite else {
      throw bad("data.featureCacheMaxGB", data.featureCacheMaxGB, "must be a finite number of GB >= 0 (0: no bound)")
    }
  }
}
