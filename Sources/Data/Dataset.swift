// The dataset model shared by every source (image folders, CSV manifests, CoOp/Dassl benchmarks): a list of
// (image path, label, optional caption) with the class names the labels index. `DataError` is the one error
// enum of the Data module; every case names the file or entry and ends with a hint.
// Shape letters: K classes, N samples (the dataset size).
import Foundation

/// One image of a dataset. `path` is absolute (already joined with the dataset root).
public struct Sample: Equatable, Codable, Sendable {
  /// Label of a caption-only sample (`manifest:` with a `path,caption` header).
  public static let unlabeled = -1

  public var path: String
  /// Index into `Dataset.classNames` (0..<K), or `Sample.unlabeled`.
  public var label: Int
  public var caption: String?

  public init(path: String, label: Int, caption: String? = nil) {
    self.path = path; self.label = label; self.caption = caption
  }
}

/// A loaded split: N samples whose labels index K class names.
public struct Dataset: Sendable {
  /// Short name for logs, e.g. "oxford_pets:train" or "imagefolder:/data/x".
  public var name: String
  /// Folder the sample paths live under (sample paths are absolute and inside it).
  public var root: String
  /// (K) class names, label order. Empty for caption-only datasets.
  public var classNames: [String]
  /// (N) samples.
  public var samples: [Sample]
  /// What loading did that a user may want to see (few-shot file read or written, ...). The CLI prints these.
  public var notes: [String]

  public init(name: String, root: String, classNames: [String], samples: [Sample], notes: [String] = []) {
    self.name = name; self.root = root; self.classNames = classNames; self.samples = samples; self.notes = notes
  }

  public var count: Int { samples.count }
  /// True when every sample carries a class label (not a caption-only dataset).
  public var isLabeled: Bool { !classNames.isEmpty }
}

public enum DataError: Error, CustomStringConvertible, Equatable {
  case badSpec(spec: String, reason: String)
  case unreadable(path: String, reason: String)
  case malformed(file: String, reason: String)
  case noImages(folder: String)
  case emptyClass(file: String, className: String)
  case labelOutOfRange(file: String, entry: String, label: Int, classes: Int)
  case pathEscapesRoot(file: String, path: String)
  case missingFiles(file: String, missing: [String], total: Int)
  case unsafePickle(file: String, reason: String)
  case badPickle(file: String, offset: Int, reason: String)
  case sampleFailed(path: String, position: Int, reason: String)
  case allSamplesFailed(step: Int, first: String)

  public var description: String {
    switch self {
    case let .badSpec(spec, reason):
      return "bad dataset spec '\(spec)': \(reason). Use imagefolder:PATH, manifest:FILE.csv or coop:ROOT:NAME[:SPLIT]"
        + " (see `rada train --help`)."
    case let .unreadable(path, reason):
      return "cannot read \(path): \(reason). Check the path and its permissions."
    case let .malformed(file, reason):
      return "\(file) is malformed: \(reason). Fix or regenerate the file."
    case let .noImages(folder):
      return "no images (.jpg, .jpeg, .png) found under \(folder). Point the spec at the folder that holds one"
        + " subfolder per class."
    case let .emptyClass(file, className):
      return "class '\(className)' has no samples in the training split (\(file)). Add images for it or remove the"
        + " class."
    case let .labelOutOfRange(file, entry, label, classes):
      return "\(file): entry \(entry) has label \(label), outside 0..<\(classes). Labels must index the class list;"
        + " fix the entry or the class list."
    case let .pathEscapesRoot(file, path):
      return "\(file) lists '\(path)', which is absolute or leaves the dataset folder (..). Use paths relative to"
        + " the dataset folder."
    case let .missingFiles(file, missing, total):
      let shown = missing.prefix(5).joined(separator: ", ")
      return "\(total) image(s) listed in \(file) do not exist, e.g. \(shown). Check the dataset root, or download"
        + " the missing images."
    case let .unsafePickle(file, reason):
      return "refusing to load \(file): \(reason). rada reads only Dassl few-shot pickles (Datum objects); delete the"
        + " file to let rada sample a new split, or recreate it with Dassl."
    case let .badPickle(file, offset, reason):
      return "\(file) is not a readable Dassl pickle (byte \(offset): \(reason)). Delete it to let rada sample a new"
        + " split."
    case let .sampleFailed(path, position, reason):
      return "cannot load sample \(position) (\(path)): \(reason). Fix or remove the file, or pass"
        + " --skip-bad-samples to record and replace bad images."
    case let .allSamplesFailed(step, first):
      return "every sample of the batch for step \(step) failed to load (first: \(first)). The dataset is likely"
        + " unreadable; check the data root."
    }
  }
}
