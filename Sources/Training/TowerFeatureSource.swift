// Image features computed by the frozen image tower: decode (+ augment) each image, run the tower forward
// (no saved activations), L2-normalise. `cached(...)` computes every sample once, sharded over the ranks and
// gathered, and keeps the matrix on disk keyed by model, dataset and transform, so runs without augmentation
// pay for the encoder once.
import CLIP
import Data
import Distributed
import Foundation
import Tensor

/// Loads the preprocessed pixels (3, imageSize, imageSize) of dataset position `position` for `epoch`.
public typealias PixelLoader = (_ position: Int, _ epoch: Int) throws -> [Float]

public final class TowerFeatureSource: ImageFeatureSource {
  public let model: CLIPModel
  public let count: Int
  public var dim: Int { model.config.embedDim }
  private let loadPixels: PixelLoader
  /// With `skipBadSamples`, an unreadable image is replaced by the next readable one of the same batch (so
  /// the batch keeps its size and the result does not depend on timing) and recorded here, never silently.
  public let skipBadSamples: Bool
  public private(set) var badSamples: [(position: Int, reason: String)] = []
  private var knownBad: Set<Int> = []
  /// Reused by every call (nothing allocated per step once the largest micro-batch was seen): the tower's
  /// activations for chunks of up to `chunk` images, and the micro-batch's pixels (b, 3, S, S).
  private var activations: VisionActivations?
  private var pixels = FloatBuffer(count: 0)
  /// Images per tower forward, as CLIPModel.encodeImages: a micro-batch of up to 32 goes through at once.
  private static let chunk = 32

  public init(model: CLIPModel, count: Int, skipBadSamples: Bool = false, loadPixels: @escaping PixelLoader) {
    self.model = model; self.count = count; self.skipBadSamples = skipBadSamples; self.loadPixels = loadPixels
  }

  // MARK: Background prefetch

  /// The micro-batches the trainer will ask for, in order: index i -> (this rank's positions, epoch).
  public typealias Plan = (Int) -> (positions: [Int], epoch: Int)
  private var loader: BatchLoader<[Float]>?
  private var plan: Plan?
  private var cursor = 0, submitted = 0, depth = 0, planLength = 0

  /// Decodes and augments the planned micro-batches on `workers` background threads, `depth` batches ahead,
  /// so the step does not wait for images. Calls that do not match the plan fall back to loading in place.
  public func prefetch(plan: @escaping Plan, from start: Int, count: Int, workers: Int, depth: Int, dataset: Dataset) {
    let loadPixels = self.loadPixels
    self.plan = plan
    cursor = start; submitted = start; planLength = count; self.depth = max(1, depth)
    loader = BatchLoader(workers: max(1, workers), prefetchDepth: self.depth, skipBadSamples: skipBadSamples,
                         pathOf: { dataset.samples[$0].path }) { request in
      try loadPixels(request.position, plan(request.step).epoch)
    }
    topUp()
  }

  public func stopPrefetch() { loader?.stop(); loader = nil }

  private func topUp() {
    guard let loader, let plan else { return }
    while submitted < planLength && submitted < cursor + depth {
      loader.submit(step: submitted, positions: plan(submitted).positions)
      submitted += 1
    }
  }

  /// Pixels of the planned batch in `pixels` when `positions` is the next one in the plan; false otherwise.
  private func prefetched(_ positions: [Int]) throws -> Bool {
    guard let loader, let plan, cursor < planLength, plan(cursor).positions == positions else { return false }
    guard let batch = try loader.next() else { return false }
    cursor += 1
    topUp()
    for slot in batch.replacedSlots where knownBad.insert(batch.positions[slot]).inserted {
      let bad = loader.badSamples.first { $0.position == batch.positions[slot] }
      badSamples.append((batch.positions[slot], bad?.reason ?? "unreadable"))
    }
    for (i, item) in batch.items.enumerated() { setPixels(slot: i, item) }
    return true
  }

  private var perImage: Int { 3 * model.config.vision.imageSize * model.config.vision.imageSize }

  private func setPixels(slot: Int, _ item: [Float]) {
    precondition(item.count == perImage, "pixel loader: \(item.count) floats for an image of \(perImage)")
    item.withUnsafeBufferPointer { (pixels.pointer + slot * perImage).update(from: $0.baseAddress!, count: perImage) }
  }

  public func features(positions: [Int], epoch: Int, into out: MutableFloats) throws {
    let count = positions.count
    if pixels.count < count * perImage { pixels = FloatBuffer(count: count * perImage) }
    let chunk = Swift.min(Swift.max(count, 1), Self.chunk)
    let activations = self.activations.flatMap { $0.batch >= chunk ? $0 : nil }
      ?? VisionActivations(config: model.config, batch: chunk, saving: false)
    self.activations = activations
    if try !prefetched(positions) { try loadInPlace(positions: positions, epoch: epoch) }
    // At most 32 images per forward whatever the buffer's size, so results equal CLIPModel.encodeImages'.
    model.encodeImages(pixels: pixels.readOnly, count: count, normalize: true, into: out, activations: activations)
  }

  /// Decodes the micro-batch on this thread (nothing was prefetched for it) into `pixels`.
  private func loadInPlace(positions: [Int], epoch: Int) throws {
    var loaded: [[Float]?] = []
    for p in positions {
      do { loaded.append(try loadPixels(p, epoch)) } catch {
        guard skipBadSamples else { throw error }
        if knownBad.insert(p).inserted { badSamples.append((p, "\(error)")) }
        loaded.append(nil)
      }
    }
    guard let firstGood = loaded.firstIndex(where: { $0 != nil }) else {
      throw TrainError.datasetTooSmall("every image of a batch failed to load (positions \(positions)); "
        + "first error: \(badSamples.last?.reason ?? "?")")
    }
    for i in loaded.indices {
      // a failed slot takes the next good image of the batch, wrapping round
      setPixels(slot: i, loaded[i] ?? (loaded[(i + 1)...].first(where: { $0 != nil }) ?? loaded[firstGood])!)
    }
  }

  /// Every sample's features (N, D), computed once across the ranks and cached at `cachePath` (nil: no disk
  /// cache). Only the coordinator writes the cache; every rank reads it when present. `key` must change whenever
  /// the model, the dataset or the transform changes. `block` images go through the tower at once; blocks are
  /// fixed global ranges (BlockShard), so the features are bit-identical on any number of ranks for one `block`
  /// (and the same threads per rank).
  public func cached(world: Collective, cachePath: String?, key: String, block: Int = 32,
                     log: (String) -> Void) throws -> MatrixFeatureSource {
    let e = dim
    let hit = cachePath.flatMap { try? SafetensorsFile(path: $0) }.flatMap {
      $0.metadata["key"] == key && $0["features"]?.shape == [count, e] ? $0 : nil
    }
    // Node-local caches: one rank may hit while another misses. Encode unless every rank hit, so all ranks make
    // the same collectives (issue 15).
    let everyRankHit = try world.allReduceMax(hit == nil ? 1 : 0) == 0
    if everyRankHit, let cachePath, let file = hit {
      let matrix = FloatBuffer(count: max(1, count * e))
      try file.read("features", into: matrix.pointer)
      if world.isCoordinator { log("image features: read \(count) from cache \(cachePath)") }
      return MatrixFeatureSource(matrix: matrix, count: count, dim: e)
    }
    let matrix = try computeInBlocks(count: count, width: e, blockSize: Swift.max(1, block), world: world) { positions, out in
      try StopSignal.stopIfBeforeFirstStep()  // a stop during encoding ends at once (issue 15)
      try features(positions: Array(positions), epoch: 0, into: out)
    }
    if world.isCoordinator, let cachePath {
      try? FileManager.default.createDirectory(atPath: (cachePath as NSString).deletingLastPathComponent,
                                               withIntermediateDirectories: true)
      do {
        try SafetensorsWriter.write([.init(name: "features", shape: [count, e], values: matrix.readOnly)],
                                    metadata: ["key": key], to: cachePath)
        log("image features: encoded \(count) on \(world.size) rank(s), cached at \(cachePath)")
      } catch {
        log("warning: could not write the feature cache \(cachePath): \(error)")
      }
    }
    return MatrixFeatureSource(matrix: matrix, count: count, dim: e)
  }
}

/// A stable hex key for a feature cache: the checkpoint checksum over the parts joined by a unit separator.
public func cacheKey(_ parts: [String]) -> String {
  checksum(Data(parts.joined(separator: "\u{1F}").utf8))
}
