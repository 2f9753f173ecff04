// Parses the dataset spec strings of `rada train --train DATA` (and --eval DATA, as every command that reads a
// dataset) and loads them, applying the few-shot and base/new options. The formats are documented once, on
// `DatasetSpec`, and copied to the README (whose K is the shot count and S the split seed, as in Dassl's names).
// Shape letters: K classes, N samples.
import Foundation

/// Options that shrink a dataset: `--shots SHOTS --split-seed SEED --subsample base|new|all`.
public struct DatasetOptions: Equatable, Sendable {
  /// Images per class for train (min(shots, 4) for val), 0 = the full split. Test splits are never shrunk.
  public var shots: Int
  /// The seed in split_fewshot/shot_<shots>-seed_<seed>.{pkl,json}; Dassl uses the run seed (1, 2, 3 in the papers).
  public var splitSeed: Int
  public var subsample: ClassSubset
  /// Check at load that every listed image exists (one stat per sample; folder-based sources exist by
  /// construction). Off: a missing file fails (or is skipped) when the loader reaches it.
  public var checkFiles: Bool

  public init(shots: Int = 0, splitSeed: Int = 1, subsample: ClassSubset = .all, checkFiles: Bool = true) {
    self.shots = shots; self.splitSeed = splitSeed; self.subsample = subsample; self.checkFiles = checkFiles
  }
}

/// A dataset spec. Formats:
///
/// - `imagefolder:PATH` — PATH/<class>/**/<image>. Classes are the sorted subfolder names (label = index);
///   images are .jpg/.jpeg/.png in any case, in sorted relative-path order. Files directly in PATH are ignored.
/// - `manifest:FILE.csv` — a CSV with a header, rows in file order, image paths relative to the CSV's folder
///   (absolute paths and `..` are refused). Headers:
///   `path,label` (integer labels; class names from FOLDER/classnames.txt, one per line, if present, else the
///   label numbers), `path,classname` (label = index in the sorted unique class names), `path,caption`
///   (image-text pairs, no labels). RFC 4180 quoting: `"a, ""b"""`.
/// - `coop:ROOT:NAME[:SPLIT]` — a CoOp/Dassl benchmark laid out under ROOT as in CoOp's DATASETS.md; SPLIT is
///   train (default), val or test. NAME and the files read:
///   oxford_pets (oxford_pets/images, split_zhou_OxfordPets.json), oxford_flowers (oxford_flowers/jpg,
///   split_zhou_OxfordFlowers.json), fgvc_aircraft (fgvc_aircraft/images, variants.txt,
///   images_variant_{train,val,test}.txt), dtd (dtd/images, split_zhou_DescribableTextures.json),
///   eurosat (eurosat/2750, split_zhou_EuroSAT.json), stanford_cars (stanford_cars, split_zhou_StanfordCars.json),
///   food101 (food-101/images, split_zhou_Food101.json), sun397 (sun397/SUN397, split_zhou_SUN397.json),
///   caltech101 (caltech-101/101_ObjectCategories, split_zhou_Caltech101.json), ucf101
///   (ucf101/UCF-101-midframes, split_zhou_UCF101.json), imagenet (imagenet/images/{train,val} with one folder
///   per wnid, label = sorted folder index, names from imagenet/classnames.txt lines `wnid name`; val = test =
///   images/val as in CoOp). Test-only shifts (SPLIT defaults to test): imagenet-v2
///   (imagenetv2/imagenetv2-matched-frequency-format-val/<label>/), imagenet-sketch (imagenet-sketch/images/<wnid>),
///   imagenet-a (imagenet-a/imagenet-a/<wnid>), imagenet-r (imagenet-r/imagenet-r/<wnid>), each with its own
///   classnames.txt; A and R hold 200-class subsets: the classes are the wnid folders present (label = sorted
///   index). Split JSONs list [path relative to the image folder, label, classname].
///
/// Few-shot (`--shots K --split-seed S`, coop only): reads ROOT/<folder>/split_fewshot/shot_K-seed_S.pkl (Dassl's
/// file, restricted reader, impaths remapped onto ROOT) or our shot_K-seed_S.json; otherwise draws K per class
/// (min(K, 4) for val) with the seeded RNG and saves the .json there. For imagefolder and manifest the draw is
/// made in memory (nothing written). `--subsample base|new` keeps the first ceil(n/2) / the remaining sorted
/// training labels, relabelled from 0, as CoOp's subsample_classes.
///
/// Checks at load: labels in range, no class without training samples, no path leaving the dataset folder, and
/// (unless `checkFiles` is off) every listed image exists; each error names the file and what to do.
public enum DatasetSpec: Equatable, Sendable {
  case imageFolder(path: String)
  case manifest(file: String)
  case coop(root: String, benchmark: CoOpBenchmark, split: DataSplit)

  public static func parse(_ text: String) throws -> DatasetSpec {
    guard let colon = text.firstIndex(of: ":") else {
      throw DataError.badSpec(spec: text, reason: "no 'kind:' prefix")
    }
    let kind = text[..<colon], rest = String(text[text.index(after: colon)...])
    if rest.isEmpty { throw DataError.badSpec(spec: text, reason: "nothing after '\(kind):'") }
    switch kind {
    case "imagefolder": return .imageFolder(path: rest)
    case "manifest": return .manifest(file: rest)
    case "coop":
      // ROOT may itself contain ':'; NAME and SPLIT are read from the right.
      var parts = rest.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
      var split: DataSplit? = nil
      if parts.count >= 3, let last = DataSplit(rawValue: parts.last!) { split = last; parts.removeLast() }
      guard parts.count >= 2, let name = parts.last, !parts.dropLast().joined(separator: ":").isEmpty else {
        throw DataError.badSpec(spec: text, reason: "expected coop:ROOT:NAME or coop:ROOT:NAME:SPLIT")
      }
      guard let benchmark = CoOpBenchmark(name: name) else {
        let known = CoOpBenchmark.allCases.map(\.rawValue).joined(separator: ", ")
        throw DataError.badSpec(spec: text, reason: "unknown benchmark '\(name)' (known: \(known))")
      }
      return .coop(root: parts.dropLast().joined(separator: ":"), benchmark: benchmark,
                   split: split ?? (benchmark.isTestOnly ? .test : .train))
    default:
      throw DataError.badSpec(spec: text, reason: "unknown kind '\(kind)'")
    }
  }

  /// Loads the spec with the options applied.
  public func load(options: DatasetOptions = DatasetOptions()) throws -> Dataset {
    switch self {
    case let .coop(root, benchmark, split):
      return try CoOp.load(root: root, benchmark: benchmark, split: split, options: options)
    case let .imageFolder(path):
      return try DatasetSpec.shrink(ImageFolder.load(path), options: options)
    case let .manifest(file):
      return try DatasetSpec.shrink(Manifest.load(file, checkFiles: options.checkFiles), options: options)
    }
  }

  /// Parses and loads in one call: `try DatasetSpec.load("coop:/data:dtd", options: ...)`.
  public static func load(_ text: String, options: DatasetOptions = DatasetOptions()) throws -> Dataset {
    try parse(text).load(options: options)
  }

  /// Few-shot and base/new for imagefolder and manifest datasets (the dataset is its own training split).
  static func shrink(_ dataset: Dataset, options: DatasetOptions) throws -> Dataset {
    var result = dataset
    if options.subsample != .all || options.shots > 0, !dataset.isLabeled {
      throw DataError.badSpec(spec: dataset.name, reason: "--shots and --subsample need class labels, and this"
        + " manifest has captions")
    }
    let trainLabels = dataset.samples.map(\.label)
    if options.shots > 0 {
      result.samples = FewShot.select(result.samples, shots: options.shots,
                                      seed: UInt64(bitPattern: Int64(options.splitSeed)))
      result.notes.append("drew a \(options.shots)-shot subset (seed \(options.splitSeed)) in memory")
    }
    (result.samples, result.classNames) = FewShot.subsample(result.samples, classNames: result.classNames,
                                                            trainLabels: trainLabels, subset: options.subsample)
    return result
  }
}
