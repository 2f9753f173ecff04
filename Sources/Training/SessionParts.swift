// Helpers the sessions and the eval/features commands share: dataset options, the pixel loader (decode, then
// center preprocessing or seeded augmentation, with same-class replacement of unreadable images), RUN/bad_samples.txt,
// the logit scale, the feature cache's key and folder, and the RAda head (fresh or from a file).
// Shapes: pixels (3, imageSize, imageSize) per image; D the joint embedding dim.
import CLIP
import Data
import Distributed
import Foundation
import Imaging
import RAda
import Tensor

/// Shared pieces of the EFT, eval and TTT commands.
public enum SessionParts {
  public static func datasetOptions(_ config: TrainConfig, forTraining: Bool) throws -> DatasetOptions {
    DatasetOptions(shots: forTraining ? (config.data.shots ?? 0) : 0, splitSeed: config.data.splitSeed,
                   subsample: config.data.subsample)
  }

  /// Pixel loader for a dataset: decode, then center preprocess or (augment) torchvision-style random resized
  /// crop + flip seeded by (seed, epoch, position).
  ///
  /// With `badSamples` (--skip-bad-samples), an unreadable image is replaced by the next readable image of the
  /// SAME class (dataset order, cyclic), so its label stays true; the failure is recorded once. A class whose
  /// images are all unreadable is an error naming it. The choice depends only on which files are readable.
  public static func pixelLoader(dataset: Dataset, imageSize: Int, augment: Bool, seed: Int,
                                 badSamples: BadSampleLog? = nil) -> PixelLoader {
    let one = pixelLoaderOfOne(dataset: dataset, imageSize: imageSize, augment: augment, seed: seed)
    let rank = LaunchLayout.fromEnvironment().rank
    let load: PixelLoader = { position, epoch in
      if !StopSignal.loopStarted { PhaseFault.at("encode", rank: rank) }
      return try one(position, epoch)
    }
    guard let badSamples else { return load }
    var members: [Int: [Int]] = [:]  // label -> positions, in dataset order
    for (position, sample) in dataset.samples.enumerated() { members[sample.label, default: []].append(position) }
    return { position, epoch in
      let label = dataset.samples[position].label
      let sameClass = members[label] ?? [position]
      let start = sameClass.firstIndex(of: position) ?? 0
      for offset in 0..<sameClass.count {
        let candidate = sameClass[(start + offset) % sameClass.count]
        if badSamples.isBad(candidate) { continue }
        do { return try load(candidate, epoch) } catch { badSamples.note(candidate, reason: "\(error)") }
      }
      let name = label >= 0 && label < dataset.classNames.count ? dataset.classNames[label] : "(unlabelled)"
      throw SessionError.classUnreadable(className: name, images: sameClass.count, first: dataset.samples[sameClass[0]].path)
    }
  }

  static func pixelLoaderOfOne(dataset: Dataset, imageSize: Int, augment: Bool, seed: Int) -> PixelLoader {
    let preprocess = CLIPPreprocessor(size: imageSize)
    let augmentation = Augmentation(preprocessor: preprocess)
    return { position, epoch in
      let sample = dataset.samples[position]
      let image = try ImageDecoder.decode(path: sample.path)
      var pixels = [Float](repeating: 0, count: 3 * imageSize * imageSize)
      pixels.withUnsafeMutableBufferPointer { out in
        if augment {
          augmentation(image, seed: UInt64(seed), epoch: epoch, sampleIndex: position, into: out.baseAddress!)
        } else {
          preprocess(image, into: out.baseAddress!)
        }
      }
      return pixels
    }
  }

  /// RUN/bad_samples.txt: every image skipped by --skip-bad-samples on any rank (path and reason), and a count
  /// on the console. Nothing is written when no image failed.
  public static func writeBadSamples(_ badSamples: BadSampleLog?, dataset: Dataset, world: Collective,
                                     runDirectory: RunDirectory, log: (String) -> Void) throws {
    let mine = (badSamples?.entries ?? []).map { "\(dataset.samples[$0.position].path)\t\($0.reason)" }.joined(separator: "\n")
    let all = try world.allGather(string: mine).filter { !$0.isEmpty }
    guard world.isCoordinator, !all.isEmpty else { return }
    let lines = Array(Set(all.joined(separator: "\n").split(separator: "\n").map(String.init))).sorted()
    try runDirectory.writeAtomically("bad_samples.txt", lines.joined(separator: "\n") + "\n")
    log("skipped \(lines.count) unreadable image(s) (--skip-bad-samples); list in \(runDirectory.file("bad_samples.txt"))")
  }

  /// The logit scale in log space: the model's own unless `--logit-scale` (linear) is given.
  public static func logitScale(model: CLIPModel, config: TrainConfig) -> Float {
    if let s = config.model.logitScale { return Float(log(s)) }
    return model.parameters[model.table["logit_scale"]!.offset]
  }

  /// Keyed on the weights' content (not the model path or its folder's metadata: replacing model.safetensors
  /// inside an HF or open_clip folder must not reuse stale features), the dataset samples and the transform.
  public static func featureCache(dataset: Dataset, model: ModelFingerprint, directory: String?) -> (path: String?, key: String) {
    let samples = dataset.samples.map { "\($0.path)|\($0.label)" }.joined(separator: "\n")
    let key = cacheKey([model.shapes, model.weights, dataset.name, samples, "center-crop-v1"])
    return (featureCacheRoot(directory) + "/" + key + ".safetensors", key)
  }

  /// The feature cache folder: `directory` (--feature-cache), else $RADA_CACHE_DIR, else
  /// $XDG_CACHE_HOME/rada/features or $HOME/.cache/rada/features. $HOME as the process sees it (not the password
  /// database's home): on a cluster each node's HOME may be a different, node-local disk, and the cache follows it.
  public static func featureCacheRoot(_ directory: String?,
                                      environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let cacheHome = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? ((env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.cache")
    return directory ?? env["RADA_CACHE_DIR"] ?? (cacheHome + "/rada/features")
  }

  /// A head from a safetensors file in the reference names (mha.q_proj1.weight, ...), or a fresh one.
  public static func makeHead(config: TrainConfig, dim: Int) throws -> RAdaHead {
    let radaConfig = RAdaConfig(dim: dim, heads: 8, temperature: Float(config.rada.temperature),
                                alpha: Float(config.rada.alpha), loss: config.rada.maskLoss)
    let head = try RAdaHead(config: radaConfig, seed: derivedSeed(UInt64(config.run.seed), 0x4EAD))
    if let path = config.rada.headInit { try loadHead(head, path: path) }
    return head
  }

  public static func loadHead(_ head: RAdaHead, path: String) throws {
    let file = try SafetensorsFile(path: path)
    for entry in head.table.entries {
      guard let info = file[entry.name] else {
        throw SafetensorsError.missingTensor(path: path, tensor: entry.name)
      }
      guard info.shape == entry.shape else {
        throw SessionError.featureWidth(model: entry.shape[0], head: info.shape.first ?? 0, path: path)
      }
      try file.read(entry.name, into: head.parameters.pointer + entry.offset, count: entry.count)
    }
  }
}

/// Unreadable images met with --skip-bad-samples (position -> first error), shared by the loader threads.
public final class BadSampleLog: @unchecked Sendable {
  private let lock = NSLock()
  private var reasons: [Int: String] = [:]
  public init() {}

  public func note(_ position: Int, reason: String) {
    lock.lock(); if reasons[position] == nil { reasons[position] = reason }; lock.unlock()
  }
  public func isBad(_ position: Int) -> Bool { lock.lock(); defer { lock.unlock() }; return reasons[position] != nil }
  /// Every recorded failure, by position.
  public var entries: [(position: Int, reason: String)] {
    lock.lock(); defer { lock.unlock() }
    return reasons.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }
}
