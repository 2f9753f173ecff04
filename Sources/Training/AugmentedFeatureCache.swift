// EFT with augmentation, head-only: the frozen image tower's features of every (epoch, sample) pair a run visits,
// computed once and kept in a content-addressed cache that runs, sweeps and ranks share. Every random choice of
// rada's augmentation comes from (seed, epoch, sample index), so the feature of sample i at epoch e is a fixed
// function of (model weights, image file, transform, seed, e, i). A run that reads it from the cache is the
// uncached run (the tower on each augmented micro-batch) up to the tower's rounding for another batch shape:
// losses within 1e-6 relative (launch/tests/feature-cache.sh).
//
// Layout: DIR/aug-KEY/epoch_00003.safetensors per epoch: `positions` (M) and `features` (M, D), rows in position
// order, metadata {key, epoch, checksum of the features}. KEY = model fingerprint (shapes, weights) + dataset listing (path,
// label, size, mtime of every file, after shots/subsample) + transform version + image size + seed. An epoch file
// grows: a later run that visits more positions of that epoch adds them. A lock file per epoch (flock) keeps two
// jobs (sweep runs in parallel, Slurm array tasks on a shared cache) from extracting the same epoch twice; a killed
// extraction keeps the epochs it finished. Only the coordinator reads and writes the cache and broadcasts what it
// holds, so ranks on nodes with node-local caches agree by construction. Extraction is sharded in fixed global
// blocks (BlockShard), so the features do not depend on the number of ranks.
// Letters: N dataset size, M positions stored for an epoch, D joint embedding dim.
import CLIP
import Data
import Distributed
import Foundation
import Tensor

/// Features of (epoch, position) pairs held in memory: what the EFT step reads when its features were extracted.
public final class EpochFeatureSource: ImageFeatureSource {
  public let dim: Int
  public let count: Int
  /// epoch -> (row of each position or -1 (N), rows (M, D))
  private var epochs: [Int: (rows: [Int32], matrix: FloatBuffer)] = [:]

  init(count: Int, dim: Int) { self.count = count; self.dim = dim }

  func add(epoch: Int, positions: [Int], matrix: FloatBuffer) {
    var rows = [Int32](repeating: -1, count: count)
    for (row, position) in positions.enumerated() { rows[position] = Int32(row) }
    epochs[epoch] = (rows, matrix)
  }

  public func features(positions: [Int], epoch: Int, into out: MutableFloats) throws {
    guard let stored = epochs[epoch] else { throw FeatureCacheError.notExtracted(epoch: epoch, position: positions.first ?? 0) }
    for (row, position) in positions.enumerated() {
      guard position >= 0, position < count, stored.rows[position] >= 0 else {
        throw FeatureCacheError.notExtracted(epoch: epoch, position: position)
      }
      (out + row * dim).update(from: stored.matrix.readOnly + Int(stored.rows[position]) * dim, count: dim)
    }
  }
}

public enum FeatureCacheError: Error, CustomStringConvertible {
  case notExtracted(epoch: Int, position: Int)
  case tooLarge(samples: Int)

  public var description: String {
    switch self {
    case let .notExtracted(epoch, position):
      return "the extracted features lack sample \(position) of epoch \(epoch): the run visits a sample the plan did "
        + "not (a bug). Rerun with --set data.cacheAugmentedFeatures=false and report it."
    case let .tooLarge(samples):
      return "\(samples) samples: the augmented feature cache stores positions as float32 and takes at most 2^24 "
        + "samples. Train with --set data.cacheAugmentedFeatures=false."
    }
  }
}

public struct AugmentedFeatureCache {
  /// Bump when the augmentation's random draws or the preprocessing change: old entries then never match.
  static let transformVersion = "rrc-flip-v1"
  /// DIR/aug-KEY
  public let directory: String
  public let key: String
  /// N, E
  public let count: Int
  public let dim: Int
  /// The cache directory (the parent of every entry), for the size bound.
  public let root: String
  public let maxBytes: Double

  /// `root`: the feature cache folder (SessionParts.featureCacheRoot); `fingerprint`: the model's weights as loaded.
  public init(root base: String, model: CLIPModel, fingerprint: ModelFingerprint, dataset: Dataset, seed: Int, maxGB: Double) {
    let listing = dataset.samples.map { sample -> String in
      let attributes = try? FileManager.default.attributesOfItem(atPath: sample.path)
      let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
      let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
      return "\(sample.path)|\(sample.label)|\(size)|\(modified)"
    }.joined(separator: "\n")
    key = cacheKey([fingerprint.shapes, fingerprint.weights, listing, Self.transformVersion, "\(model.config.vision.imageSize)", "seed \(seed)"])
    self.root = base
    directory = base + "/aug-" + key
    count = dataset.count
    dim = model.config.embedDim
    maxBytes = maxGB * 1e9
  }

  func epochPath(_ epoch: Int) -> String { directory + "/" + String(format: "epoch_%05d.safetensors", epoch) }

  /// The positions the run's steps visit, by the epoch the loop passes with them (TrainLoop: the step's epoch).
  public static func plan(sampler: GlobalBatchSampler, steps: Range<Int>) -> [Int: [Int]] {
    var visited: [Int: Set<Int>] = [:]
    for step in steps { visited[sampler.epoch(ofStep: step), default: []].formUnion(sampler.positions(step: step)) }
    return visited.mapValues { $0.sorted() }
  }

  /// Why the run cannot hold `features` features of width `dim` in memory (nil: it can). Every rank holds them
  /// all, so the ranks on a node together may use at most half of its memory.
  public static func memoryProblem(features: Int, dim: Int, world: Collective,
                                   physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> String? {
    let bytes = Double(features) * Double(dim) * 4
    let allowed = Double(physicalMemory) / 2 / Double(Swift.max(1, world.localSize))
    guard bytes > allowed else { return nil }
    return "\(features) features of width \(dim) take " + String(format: "%.1f GB per rank, more than the %.1f GB",
      bytes / 1e9, allowed / 1e9) + " each of the \(world.localSize) rank(s) on this node may use (half the memory)"
  }

  /// Every rank ends with the features of `plan` in memory: read from the coordinator's cache where present,
  /// extracted by all ranks (fixed global blocks of `block` images, decoded on `workers` threads) where not.
  /// `progress` (coordinator) hears where the extraction is, at most every 2 s: the run directory keeps it for
  /// `rada sweep status` (RunDirectory.extractionFile); the console hears it every 10 s.
  public func prepare(plan: [Int: [Int]], tower: TowerFeatureSource, dataset: Dataset, world: Collective,
                      block: Int = 32, workers: Int = 1, log: (String) -> Void,
                      progress: (String) -> Void = { _ in }) throws -> EpochFeatureSource {
    guard count < 1 << 24 else { throw FeatureCacheError.tooLarge(samples: count) }
    let source = EpochFeatureSource(count: count, dim: dim)
    var extracted = 0, reused = 0
    let started = Date()
    let total = plan.values.reduce(0) { $0 + $1.count }
    var lastProgress = Date.distantPast, lastLog = Date()
    func tell(_ text: String) {
      guard world.isCoordinator else { return }
      let now = Date()
      if now.timeIntervalSince(lastProgress) >= 2 { progress(text); lastProgress = now }
      if now.timeIntervalSince(lastLog) >= 10 { log(text); lastLog = now }
    }
    for (index, epoch) in plan.keys.sorted().enumerated() {
      tell("augmented features: epoch \(index + 1) of \(plan.count), \(extracted + reused) of \(total) images ready "
           + "(\(extracted) extracted, \(reused) read)")
      let needed = plan[epoch] ?? []
      // 1. The coordinator locks the epoch, reads what the cache holds, and says which positions are missing.
      var lock: FileLock?
      var stored: (positions: [Int], matrix: FloatBuffer)?
      var missing: [Int] = []
      if world.isCoordinator { lock = FileLock(path: epochPath(epoch) + ".lock", directory: directory) }
      // Another job extracting this epoch holds the lock: wait for it in short agreed polls, so that no rank sits
      // in one collective for the whole wait (the watchdog would take that for a hung rank).
      var waiting = false
      while true {
        var held = [world.isCoordinator && lock?.tryAcquire() == false ? 1.0 : 0.0]
        try world.allReduceMax(&held)
        if held[0] == 0 { break }
        if !waiting { log("waiting for another job that extracts epoch \(epoch) into \(directory)"); waiting = true }
        tell("augmented features: waiting for another job that extracts epoch \(epoch) into \(directory)")
        usleep(500_000)
      }
      if world.isCoordinator {
        stored = readEpoch(epoch, log: log)
        let have = Set(stored?.positions ?? [])
        missing = needed.filter { !have.contains($0) }
      }
      missing = try broadcastPositions(missing, world: world)

      // 2. Every rank extracts the missing positions in fixed global blocks (the same on any number of ranks).
      var fresh = FloatBuffer(count: 1)
      if !missing.isEmpty {
        let shard = BlockShard(count: missing.count, blockSize: Swift.max(1, block), world: world)
        let mine = shard.blocks(rank: world.rank)
        tower.prefetch(plan: { (positions: Array(missing[mine[$0]]), epoch: epoch) }, from: 0, count: mine.count,
                       workers: workers, depth: 2, dataset: dataset)
        defer { tower.stopPrefetch() }
        let local = try shard.computeLocal(rank: world.rank, width: dim) { block, out in
          try StopSignal.stopIfBeforeFirstStep()  // a stop during extraction ends at once (finished epochs stay)
          try tower.features(positions: Array(missing[block]), epoch: epoch, into: out)
          tell("augmented features: epoch \(index + 1) of \(plan.count), extracting (rank 0 at image "
               + "\(block.upperBound - shard.positions(rank: world.rank).lowerBound) of its "
               + "\(shard.positions(rank: world.rank).count)); \(extracted + reused) of \(total) images ready")
        }
        fresh = try shard.gather(local, width: dim, world: world)
        extracted += missing.count
      }
      reused += needed.count - missing.count

      // 3. The coordinator merges, writes the grown epoch file (a failed write is a warning: the run goes on) and
      //    broadcasts the needed rows; every rank keeps them.
      let rows = FloatBuffer(count: Swift.max(1, needed.count * dim))
      if world.isCoordinator {
        var rowOf: [Int: (FloatBuffer, Int)] = [:]
        if let stored { for (row, position) in stored.positions.enumerated() { rowOf[position] = (stored.matrix, row) } }
        for (row, position) in missing.enumerated() { rowOf[position] = (fresh, row) }
        if !missing.isEmpty { writeEpoch(epoch, rowOf: rowOf, log: log) }
        for (row, position) in needed.enumerated() {
          guard let (matrix, at) = rowOf[position] else { continue }  // every needed position is stored or fresh
          (rows.pointer + row * dim).update(from: matrix.readOnly + at * dim, count: dim)
        }
      }
      lock?.release()
      try world.broadcast(rows.pointer, count: needed.count * dim, root: 0)
      source.add(epoch: epoch, positions: needed, matrix: rows)
    }
    let seconds = Date().timeIntervalSince(started)
    log("augmented features: \(plan.count) epoch(s), \(reused) read from the cache, \(extracted) extracted on "
        + "\(world.size) rank(s)" + (extracted > 0 ? String(format: " (%.1f img/s)", Double(extracted) / Swift.max(seconds, 1e-9)) : "")
        + "; cache \(directory)")
    if world.isCoordinator { evictOldEntries(log: log) }
    return source
  }

  /// Rank 0's positions on every rank (little-endian UInt32, exact below 2^24 = the size bound).
  private func broadcastPositions(_ positions: [Int], world: Collective) throws -> [Int] {
    var bytes = positions.flatMap { position in withUnsafeBytes(of: UInt32(position).littleEndian) { Array($0) } }
    try world.broadcast(bytes: &bytes, root: 0)
    return stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { (i: Int) -> Int in
      var word: UInt32 = 0
      for j in 0..<4 { word |= UInt32(bytes[i + j]) << UInt32(8 * j) }
      return Int(word)
    }
  }

  /// The stored positions and rows of an epoch, or nil (absent, another key, or damaged: then said and ignored).
  func readEpoch(_ epoch: Int, log: (String) -> Void) -> (positions: [Int], matrix: FloatBuffer)? {
    let path = epochPath(epoch)
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    do {
      let file = try SafetensorsFile(path: path)
      guard file.metadata["key"] == key, file.metadata["epoch"] == "\(epoch)" else { return nil }
      guard let info = file["features"], let positionInfo = file["positions"], info.shape.count == 2,
            info.shape[1] == dim, positionInfo.shape == [info.shape[0]] else {
        throw FeatureCacheFileError.damaged("tensor shapes do not fit (features (M, \(dim)), positions (M))")
      }
      let (matrix, raw, checksumMatches) = try Self.readEpochData(file)
      let positions = raw.compactMap { value -> Int? in
        guard value.isFinite, value >= 0, value < Float(count), value == value.rounded() else { return nil }
        return Int(value)
      }
      guard positions.count == raw.count, Set(positions).count == positions.count else {
        throw FeatureCacheFileError.damaged("positions outside 0..<\(count) or repeated")
      }
      guard checksumMatches else { throw FeatureCacheFileError.damaged("checksum mismatch") }
      return (positions, matrix)
    } catch {
      log("warning: feature cache \(path) is damaged (\(error)); extracting its epoch again")
      return nil
    }
  }

  private func writeEpoch(_ epoch: Int, rowOf: [Int: (FloatBuffer, Int)], log: (String) -> Void) {
    let positions = rowOf.keys.sorted()
    let matrix = FloatBuffer(count: Swift.max(1, positions.count * dim))
    for (row, position) in positions.enumerated() {
      let (source, at) = rowOf[position]!  // keys of rowOf
      (matrix.pointer + row * dim).update(from: source.readOnly + at * dim, count: dim)
    }
    let positionFloats = positions.map(Float.init)
    let positionValues = FloatBuffer(positionFloats)
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      try SafetensorsWriter.write(
        [.init(name: "features", shape: [positions.count, dim], values: matrix.readOnly),
         .init(name: "positions", shape: [positions.count], values: positionValues.readOnly)],
        metadata: ["key": key, "epoch": "\(epoch)", "checksum": Self.checksumOf(matrix, count: positions.count * dim, positions: positionFloats),
                   "format": "rada-augmented-features-v1"],
        to: epochPath(epoch))
    } catch {
      log("warning: could not write the feature cache \(epochPath(epoch)) (\(error)); the run goes on with the "
          + "features in memory. Free space there or choose another --feature-cache DIR.")
    }
  }

  /// An epoch file's features (M·D) and raw positions (M), and whether they match the checksum it records
  /// (a file without one does not match).
  static func readEpochData(_ file: SafetensorsFile) throws -> (matrix: FloatBuffer, positions: [Float], checksumMatches: Bool) {
    guard let info = file["features"] else { throw FeatureCacheFileError.damaged("no 'features' tensor") }
    let matrix = FloatBuffer(count: Swift.max(1, info.count))
    try file.read("features", into: matrix.pointer)
    let positions = file["positions"] == nil ? [] : try file.floats("positions")
    let recorded = file.metadata["checksum"]
    return (matrix, positions, recorded == checksumOf(matrix, count: info.count, positions: positions))
  }

  /// Checksum of an epoch file's data: the features (count floats) followed by the positions.
  static func checksumOf(_ matrix: FloatBuffer, count: Int, positions: [Float]) -> String {
    var bytes = matrix.readOnly.withMemoryRebound(to: UInt8.self, capacity: count * 4) { Data(bytes: $0, count: count * 4) }
    positions.withUnsafeBytes { bytes.append(contentsOf: $0) }
    return checksum(bytes)
  }

  /// Keeps the whole cache directory under `maxBytes` by deleting the least recently written entries (never this
  /// run's).
  func evictOldEntries(log: (String) -> Void) {
    guard maxBytes > 0 else { return }
    var entries = FeatureCacheListing.entries(root: root)
    var total = entries.reduce(0.0) { $0 + Double($1.bytes) }
    entries.sort { $0.modified < $1.modified }
    for entry in entries where total > maxBytes && entry.path != directory {
      do {
        try FileManager.default.removeItem(atPath: entry.path)
        total -= Double(entry.bytes)
        log("feature cache over \(String(format: "%.1f", maxBytes / 1e9)) GB: removed the oldest entry \(entry.path)")
      } catch {
        log("warning: could not remove \(entry.path) from the feature cache: \(error)")
      }
    }
  }
}

enum FeatureCacheFileError: Error, CustomStringConvertible {
  case damaged(String)
  var description: String { switch self { case let .damaged(why): return why } }
}

/// An exclusive lock on a file (flock), held from a successful `tryAcquire` until `release` (or deinit). Where the
/// lock file cannot be created (a read-only cache), every attempt succeeds: the run computes what it needs.
final class FileLock {
  private var fd: Int32 = -1

  init(path: String, directory: String) {
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    fd = open(path, O_RDWR | O_CREAT, 0o644)
  }

  /// True when this process holds the lock now (false: another process holds it).
  func tryAcquire() -> Bool {
    guard fd >= 0 else { return true }
    return flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK
  }

  func release() {
    if fd >= 0 { flock(fd, LOCK_UN); close(fd) }
    fd = -1
  }

  deinit { release() }
}

/// What `rada features ls|rm|verify` shows: entries of a feature cache directory.
public enum FeatureCacheListing {
  public struct Entry {
    public var path: String
    /// "augmented" (a directory of epoch files) or "plain" (one file of center-crop features).
    public var kind: String
    public var bytes: Int64
    public var modified: Date
    public var epochs: [String]
  }

  public static func entries(root: String) -> [Entry] {
    let fm = FileManager.default
    guard let names = try? fm.contentsOfDirectory(atPath: root) else { return [] }
    return names.sorted().compactMap { name in
      let path = root + "/" + name
      guard let attributes = try? fm.attributesOfItem(atPath: path) else { return nil }
      let modified = attributes[.modificationDate] as? Date ?? .distantPast
      if name.hasPrefix("aug-"), (attributes[.type] as? FileAttributeType) == .typeDirectory {
        let files = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
        let bytes = files.reduce(Int64(0)) {
          $0 + (((try? fm.attributesOfItem(atPath: path + "/" + $1))?[.size] as? NSNumber)?.int64Value ?? 0)
        }
        let newest = files.compactMap { (try? fm.attributesOfItem(atPath: path + "/" + $0))?[.modificationDate] as? Date }.max()
        return Entry(path: path, kind: "augmented", bytes: bytes, modified: newest ?? modified,
                     epochs: files.filter { $0.hasSuffix(".safetensors") })
      }
      guard name.hasSuffix(".safetensors") else { return nil }
      return Entry(path: path, kind: "plain", bytes: (attributes[.size] as? NSNumber)?.int64Value ?? 0,
                   modified: modified, epochs: [])
    }
  }

  /// Problems of one entry's files (empty: sound): unreadable headers, and for augmented epochs the checksum.
  public static func verify(_ entry: Entry) -> [String] {
    let files = entry.kind == "augmented" ? entry.epochs.map { entry.path + "/" + $0 } : [entry.path]
    var problems: [String] = []
    for path in files {
      do {
        let file = try SafetensorsFile(path: path)
        guard file["features"] != nil else { problems.append("\(path): no 'features' tensor"); continue }
        // Epoch files record a checksum; center-crop entries are checked for a readable header only.
        if file.metadata["checksum"] != nil, try !AugmentedFeatureCache.readEpochData(file).checksumMatches {
          problems.append("\(path): checksum mismatch (damaged)")
        }
      } catch {
        problems.append("\(path): \(error)")
      }
    }
    return problems
  }
}
