// `rada eval`: accuracy of a trained head (or of zero-shot CLIP with the same prompts when no --head is given)
// on a labelled dataset: top-1, top-5 and mean per-class accuracy, and optionally every sample's logits (N, K)
// as float32 .npy in dataset order. Sharded over the ranks under mpirun (Training/Evaluation.swift).
import ArgumentParser
import CLIP
import Data
import Distributed
import Foundation
import Tensor
import Training

enum EvalCommandError: Error, CustomStringConvertible {
  case badClassFile(path: String, reason: String)
  case labelOutOfRange(index: Int, label: Int, classes: Int, spec: String)

  var description: String {
    switch self {
    case let .badClassFile(path, reason):
      return "\(path): \(reason). Give a text file with one class name per line."
    case let .labelOutOfRange(index, label, classes, spec):
      return "\(spec): sample \(index) has label \(label), outside the \(classes) classes. Evaluation needs a "
        + "labelled dataset whose labels index the class list (check --classes)."
    }
  }
}

/// Class names from a file, one per line (blank lines and surrounding spaces ignored).
func readClassNames(file path: String) throws -> [String] {
  guard let data = try? BoundedFile.read(path, limit: BoundedFile.configLimit, what: "a class list"),
        let text = String(data: data, encoding: .utf8) else {
    throw EvalCommandError.badClassFile(path: path, reason: "cannot be read as UTF-8 text of at most 16 MiB")
  }
  let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  guard !names.isEmpty else { throw EvalCommandError.badClassFile(path: path, reason: "holds no class names") }
  return names
}

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate a head (or zero-shot CLIP) on a labelled dataset; optionally write the logits (N, K).",
    discussion: """
      Example: rada eval --model clip/ --head runs/eft/head.safetensors --data imagefolder:data/test --out-logits logits.npy
      Prints 'top-1 P% (correct/N) | top-5 P% | mean per-class P%'. Without --head the scores are zero-shot CLIP's
      s·f·tᵀ with the same prompts. --classes FILE replaces the dataset's class names (labels index that list).
      """)

  @Option(help: "CLIP weights: HF folder, open_clip folder or .safetensors.") var model: String
  @Option(help: "Head (.safetensors, reference names); default: zero-shot CLIP.") var head: String?
  @Option(help: "Labelled data spec: imagefolder:PATH, manifest:FILE.csv, coop:ROOT:NAME[:SPLIT].") var data: String
  @Option(help: "Class names, one per line, replacing the dataset's (labels index this list).") var classes: String?
  @Option(name: .customLong("out-logits"), help: "Write the logits (N, K) as float32 .npy in dataset order.") var outLogits: String?
  @Option(name: .customLong("feature-cache"), help: "Feature cache folder (default ~/.cache/rada/features, or $RADA_CACHE_DIR).")
  var featureCache: String?
  @Option(name: .customLong("summary"), help: "Also write the result as JSON (top1, top5, mean_per_class, per-class accuracy, confusion counts).") var summary: String?
  @Option(name: .customLong("batch-size"), help: ArgumentHelp(
    "Images per tower forward and per head forward (default 32 and 64).",
    discussion: "Logits are bit-identical on any number of ranks for one value (and the same --threads)."))
  var batchSize: Int?
  @OptionGroup var scoring: HeadScoringOptions
  @OptionGroup var runtime: RuntimeOptions

  func validate() throws {
    if let batchSize { try checkRange("--batch-size", batchSize, 1...4096) }
  }

  func run() throws {
    var config = TrainConfig()
    config.model.path = model
    config.rada.headInit = head
    scoring.apply(to: &config)
    let classNames = try classes.map(readClassNames(file:))
    try Runtime.start(requestedThreads: runtime.threads)
    let world = try makeCollective(watchdogSeconds: config.run.collectiveTimeout)  // the default limit, as in train
    try runOnAllRanks(world) {
      let log: (String) -> Void = { if world.isCoordinator { print($0); fflush(stdout) } }
      let clip = try CLIPModel.load(path: model)
      let fingerprint = ModelFingerprint(model: clip)  // as loaded: keys the feature cache, agreed across ranks
      if world.size > 1 {
        try StartAgreement.check(world, entries: RunFingerprint.modelEntries(fingerprint, parameterCount: clip.parameters.count))
      }
      try world.broadcast(clip.parameters.pointer, count: clip.parameters.count, root: 0)
      var dataset = try DatasetSpec.load(data, options: try SessionParts.datasetOptions(config, forTraining: false))
      if let classNames { dataset.classNames = classNames }
      let k = dataset.classNames.count
      for (i, sample) in dataset.samples.enumerated() where sample.label < 0 || sample.label >= k {
        throw EvalCommandError.labelOutOfRange(index: i, label: sample.label, classes: k, spec: data)
      }
      let evaluation = try EvalSet(dataset: dataset, config: config, model: clip, modelFingerprint: fingerprint,
                                   tokenizer: try CLIPTokenizer(), world: world, cacheDirectory: featureCache,
                                   block: batchSize ?? 32, log: log)
      let trained = try head.map { _ in try SessionParts.makeHead(config: config, dim: clip.config.embedDim) }
      let (result, logits) = try evaluation.evaluate(
        head: trained, logitScale: SessionParts.logitScale(model: clip, config: config), world: world,
        chunk: batchSize ?? 64, gatherLogits: outLogits != nil)
      let correct = Int((result.top1 * Double(result.count)).rounded())
      log("eval (\(head == nil ? "zero-shot CLIP" : "head \(head!)")): \(result.count) images, \(k) classes, \(world.size) rank(s)")
      log(String(format: "top-1 %.2f%% (%d/%d) | top-5 %.2f%% | mean per-class %.2f%%", 100 * result.top1, correct,
                 result.count, 100 * result.top5, 100 * result.meanPerClassAccuracy))
      if world.isCoordinator, let summary {
        // per-class accuracy by class name, and confusion counts [true][predicted] (up to 100 classes)
        var json: [String: Any] = ["top1": result.top1, "top5": result.top5, "mean_per_class": result.meanPerClassAccuracy,
                                   "count": result.count, "classes": k, "head": head ?? NSNull(), "data": data,
                                   "class_names": dataset.classNames, "per_class": result.perClassAccuracy]
        if let confusion = result.confusion { json["confusion"] = confusion }
        try writeAtomically(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes]),
                            to: summary)
      }
      if world.isCoordinator, let outLogits, let logits {
        try NPYArray(shape: [dataset.count, k], floats: Array(UnsafeBufferPointer(start: logits.readOnly, count: dataset.count * k)))
          .write(path: outLogits)
        log("wrote logits (\(dataset.count), \(k)) to \(outLogits)")
      }
    }
  }
}
