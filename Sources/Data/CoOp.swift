// The CoOp/Dassl benchmark layouts (KaiyangZhou/CoOp DATASETS.md; folder and file names as in the dataset classes
// of CoOp and of the RAda code, eft/datasets/*.py). Splits come from `split_zhou_<Name>.json` ({"train", "val",
// "test"} lists of [path relative to the image folder, label, classname]), from FGVC-Aircraft's
// images_variant_<split>.txt, or from class folders for ImageNet and its shifts. Few-shot training splits come
// from Dassl's split_fewshot/shot_<shots>-seed_<seed>.pkl (restricted reader), else our .json beside it, else a draw.
// Shape letters: K classes, N samples.
import Foundation
import Tensor

/// A split of a benchmark (`coop:ROOT:NAME:SPLIT`).
public enum DataSplit: String, CaseIterable, Codable, Sendable {
  case train, val, test
}

public enum CoOpBenchmark: String, CaseIterable, Sendable {
  case oxfordPets = "oxford_pets", oxfordFlowers = "oxford_flowers", fgvcAircraft = "fgvc_aircraft", dtd, eurosat
  case stanfordCars = "stanford_cars", food101, sun397, caltech101, ucf101, imagenet
  case imagenetV2 = "imagenet-v2", imagenetSketch = "imagenet-sketch", imagenetA = "imagenet-a"
  case imagenetR = "imagenet-r"

  /// Accepts our names, hyphen/underscore/case variants, and Dassl's class names (OxfordPets, DescribableTextures).
  public init?(name: String) {
    func key(_ s: String) -> String { s.lowercased().filter { $0 != "_" && $0 != "-" } }
    let aliases = ["describabletextures": CoOpBenchmark.dtd, "flowers102": .oxfordFlowers,
                   "imagenetsketch": .imagenetSketch]
    if let found = CoOpBenchmark.allCases.first(where: { key($0.rawValue) == key(name) }) {
      self = found
    } else if let alias = aliases[key(name)] {
      self = alias
    } else {
      return nil
    }
  }

  /// Folder under ROOT.
  public var folder: String {
    switch self {
    case .food101: return "food-101"
    case .caltech101: return "caltech-101"
    case .imagenetV2: return "imagenetv2"
    default: return rawValue
    }
  }

  /// Folder (under `folder`) that split paths are relative to; "" means `folder` itself.
  public var imageFolder: String {
    switch self {
    case .oxfordPets, .fgvcAircraft, .dtd, .food101, .imagenet, .imagenetSketch: return "images"
    case .oxfordFlowers: return "jpg"
    case .eurosat: return "2750"
    case .stanfordCars: return ""
    case .sun397: return "SUN397"
    case .caltech101: return "101_ObjectCategories"
    case .ucf101: return "UCF-101-midframes"
    case .imagenetV2: return "imagenetv2-matched-frequency-format-val"
    case .imagenetA: return "imagenet-a"
    case .imagenetR: return "imagenet-r"
    }
  }

  /// split_zhou_<Name>.json for the benchmarks that ship one.
  public var splitFile: String? {
    switch self {
    case .oxfordPets: return "split_zhou_OxfordPets.json"
    case .oxfordFlowers: return "split_zhou_OxfordFlowers.json"
    case .dtd: return "split_zhou_DescribableTextures.json"
    case .eurosat: return "split_zhou_EuroSAT.json"
    case .stanfordCars: return "split_zhou_StanfordCars.json"
    case .food101: return "split_zhou_Food101.json"
    case .sun397: return "split_zhou_SUN397.json"
    case .caltech101: return "split_zhou_Caltech101.json"
    case .ucf101: return "split_zhou_UCF101.json"
    default: return nil
    }
  }

  /// ImageNet's distribution shifts are evaluation sets: only a test split.
  public var isTestOnly: Bool { [.imagenetV2, .imagenetSketch, .imagenetA, .imagenetR].contains(self) }
}

public enum CoOp {
  /// Options that shrink the split (see `DatasetOptions`).
  public static func load(root: String, benchmark: CoOpBenchmark, split: DataSplit,
                          options: DatasetOptions = DatasetOptions()) throws -> Dataset {
    let layout = Layout(root: root, benchmark: benchmark)
    guard DataPaths.isDirectory(layout.dir) else {
      throw DataError.unreadable(path: layout.dir, reason: "folder not found; lay out \(benchmark.rawValue) as in"
        + " CoOp's DATASETS.md under ROOT")
    }
    if benchmark.isTestOnly && split != .test {
      throw DataError.badSpec(spec: "coop:\(root):\(benchmark.rawValue):\(split.rawValue)",
                              reason: "\(benchmark.rawValue) is an evaluation set with only a test split")
    }
    var notes: [String] = []
    let source = try layout.readSource()
    // ImageNet has no separate val split: CoOp validates on the test (ImageNet val) images.
    let effectiveSplit = benchmark == .imagenet && split == .val ? .test : split

    var samples: [Sample]
    var listedIn: String? = source.isListed ? source.file : nil
    if options.shots > 0 && effectiveSplit != .test {
      let fewShot = try layout.fewShot(source: source, shots: options.shots, seed: options.splitSeed, notes: &notes)
      samples = effectiveSplit == .train ? fewShot.train : fewShot.val
      listedIn = fewShot.file
    } else {
      samples = try source.read(effectiveSplit)
    }
    // Folder listings exist by construction; lists (split JSON, text files, pickles) are checked.
    if options.checkFiles, let listedIn { try DataPaths.checkExist(samples, listedIn: listedIn) }
    // Every class has training samples (checked when the train split is read), so the train labels CoOp
    // subsamples from are 0..<K; a few-shot split keeps every class too.
    let (kept, classNames) = FewShot.subsample(samples, classNames: source.classNames,
                                                trainLabels: Array(source.classNames.indices),
                                                subset: options.subsample)
    return Dataset(name: "\(benchmark.rawValue):\(split.rawValue)", root: layout.dir, classNames: classNames,
                   samples: kept, notes: notes)
  }

  /// Where a benchmark's files are.
  struct Layout {
    let root: String
    let benchmark: CoOpBenchmark
    var dir: String { root + "/" + benchmark.folder }
    var imageDir: String { benchmark.imageFolder.isEmpty ? dir : dir + "/" + benchmark.imageFolder }

    /// The class list plus a reader for each split.
    struct Source {
      var classNames: [String]
      var file: String
      /// The samples come from a list in `file` (so may name missing images), not from listing folders.
      var isListed = true
      var read: (DataSplit) throws -> [Sample]
    }

    func readSource() throws -> Source {
      if let splitFile = benchmark.splitFile {
        let file = dir + "/" + splitFile
        let splits = try readSplitJSON(file, keys: ["train", "val", "test"])
        let classNames = try classList(splits, file: file)
        return Source(classNames: classNames, file: file) { splits[$0.rawValue]!.map(\.withoutCaption) }
      }
      switch benchmark {
      case .fgvcAircraft: return try fgvcSource()
      case .imagenetV2: return try imagenetV2Source()
      default: return try classFolderSource()
      }
    }

    /// Reads a split file ({"key": [[path, label, classname], ...]}) with paths relative to the image folder.
    /// Labels must lie in 0..<classes when the class count is known, else below the number of entries (every
    /// class has a training entry).
    func readSplitJSON(_ file: String, keys: [String], classes: Int? = nil) throws -> [String: [Sample]] {
      let text = try DataPaths.readText(file)
      guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw DataError.malformed(file: file, reason: "not a JSON object")
      }
      var splits: [String: [Sample]] = [:]
      let labelLimit = classes ?? keys.reduce(0) { $0 + ((object[$1] as? [Any])?.count ?? 0) }
      for key in keys {
        guard let entries = object[key] as? [[Any]] else {
          throw DataError.malformed(file: file, reason: "\"\(key)\" is missing or not a list of [path, label, classname]")
        }
        splits[key] = try entries.enumerated().map { index, entry in
          guard entry.count == 3, let path = entry[0] as? String, let className = entry[2] as? String else {
            throw DataError.malformed(file: file, reason: "\(key)[\(index)] is not [path, label, classname]")
          }
          guard let label = Checked.integer(json: entry[1]) else {
            let shown = Checked.isJSONBoolean(entry[1]) ? "a boolean" : String(describing: entry[1]).prefix(40)
            throw DataError.malformed(file: file, reason: "\(key)[\(index)]: label \(shown) is not an integer")
          }
          guard label >= 0 && label < labelLimit else {
            throw DataError.labelOutOfRange(file: file, entry: "\(key)[\(index)]", label: label, classes: labelLimit)
          }
          return Sample(path: try DataPaths.join(imageDir, path, listedIn: file), label: label, caption: className)
        }
      }
      return splits
    }

    /// Class names by label from the classname carried in each entry (kept in `caption` while reading, then
    /// cleared); every class must have training samples.
    func classList(_ splits: [String: [Sample]], file: String) throws -> [String] {
      var names: [Int: String] = [:]
      for (key, samples) in splits.sorted(by: { $0.key < $1.key }) {
        for (index, sample) in samples.enumerated() {
          if sample.label < 0 {
            throw DataError.labelOutOfRange(file: file, entry: "\(key)[\(index)]", label: sample.label,
                                            classes: (names.keys.max() ?? 0) + 1)
          }
          if let known = names[sample.label], known != sample.caption! {
            throw DataError.malformed(file: file, reason: "label \(sample.label) is called both '\(known)' and"
              + " '\(sample.caption!)' (\(key)[\(index)])")
          }
          names[sample.label] = sample.caption!
        }
      }
      let classCount = (names.keys.max() ?? -1) + 1
      if classCount == 0 { throw DataError.malformed(file: file, reason: "the splits are empty") }
      let trainLabels = Set(splits["train"]?.map(\.label) ?? [])
      for label in 0..<classCount where !trainLabels.contains(label) {
        throw DataError.emptyClass(file: file, className: names[label].map { "\($0) (label \(label))" }
                                     ?? "label \(label)")
      }
      return (0..<classCount).map { names[$0]! }
    }

    /// FGVC-Aircraft: variants.txt (class names, label = line index) and images_variant_<split>.txt lines
    /// "<image id> <class name>", images at images/<id>.jpg.
    func fgvcSource() throws -> Source {
      let variantsFile = dir + "/variants.txt"
      let classNames = try DataPaths.readText(variantsFile).split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      let labelOf = Dictionary(classNames.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
      let read: (DataSplit) throws -> [Sample] = { split in
        let file = dir + "/images_variant_\(split.rawValue).txt"
        let lines = try DataPaths.readText(file).split(whereSeparator: \.isNewline)
        let samples = try lines.enumerated().compactMap { index, line -> Sample? in
          let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
          if parts.isEmpty { return nil }
          guard parts.count == 2, let label = labelOf[String(parts[1])] else {
            throw DataError.malformed(file: file, reason: "line \(index + 1) names no class listed in variants.txt")
          }
          return Sample(path: try DataPaths.join(imageDir, parts[0] + ".jpg", listedIn: file), label: label)
        }
        if split == .train {
          let present = Set(samples.map(\.label))
          if let empty = classNames.indices.first(where: { !present.contains($0) }) {
            throw DataError.emptyClass(file: file, className: classNames[empty])
          }
        }
        return samples
      }
      return Source(classNames: classNames, file: variantsFile, read: read)
    }

    /// classnames.txt lines "<wnid> <class name>", in file order.
    func wordNetNames() throws -> [(wnid: String, name: String)] {
      let file = dir + "/classnames.txt"
      return try DataPaths.readText(file).split(whereSeparator: \.isNewline).compactMap { line in
        let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
        if parts.isEmpty { return nil }
        guard parts.count == 2 else {
          throw DataError.malformed(file: file, reason: "line '\(line)' is not '<wnid> <class name>'")
        }
        return (String(parts[0]), String(parts[1]))
      }
    }

    /// ImageNet (images/train, images/val) and the Sketch/A/R shifts: one folder per wnid, label = index in the
    /// sorted folder list present (A and R hold 200-class subsets), names from classnames.txt.
    func classFolderSource() throws -> Source {
      let names = Dictionary(try wordNetNames().map { ($0.wnid, $0.name) }, uniquingKeysWith: { a, _ in a })
      let splitDir: (DataSplit) -> String = { split in
        benchmark == .imagenet ? imageDir + (split == .train ? "/train" : "/val") : imageDir
      }
      // The class list comes from the folder of the test split (ImageNet: images/val, else images/train).
      let listed = DataPaths.isDirectory(splitDir(.test)) ? splitDir(.test) : splitDir(.train)
      let classFolders = try DataPaths.subfolders(listed)
      if classFolders.isEmpty { throw DataError.noImages(folder: listed) }
      let classNames = try classFolders.map { wnid -> String in
        guard let name = names[wnid] else {
          throw DataError.malformed(file: dir + "/classnames.txt", reason: "folder \(wnid) has no class name")
        }
        return name
      }
      let read: (DataSplit) throws -> [Sample] = { split in
        let folder = splitDir(split)
        let present = try DataPaths.subfolders(folder)
        guard present == classFolders else {
          throw DataError.malformed(file: folder, reason: "its class folders differ from those of \(listed)")
        }
        var samples: [Sample] = []
        for (label, wnid) in classFolders.enumerated() {
          let images = try DataPaths.images(under: folder + "/" + wnid, depth: 0)
          if images.isEmpty { throw DataError.emptyClass(file: folder + "/" + wnid, className: classNames[label]) }
          samples += images.map { Sample(path: folder + "/" + wnid + "/" + $0, label: label) }
        }
        return samples
      }
      return Source(classNames: classNames, file: dir + "/classnames.txt", isListed: false, read: read)
    }

    /// ImageNet-V2: folders "0"..."999" named by label, class names in classnames.txt order.
    func imagenetV2Source() throws -> Source {
      let classNames = try wordNetNames().map(\.name)
      let read: (DataSplit) throws -> [Sample] = { _ in
        var samples: [Sample] = []
        for folder in try DataPaths.subfolders(imageDir) {
          guard let label = Int(folder) else { continue }
          guard label >= 0 && label < classNames.count else {
            throw DataError.labelOutOfRange(file: imageDir, entry: "folder \(folder)", label: label,
                                            classes: classNames.count)
          }
          samples += try DataPaths.images(under: imageDir + "/" + folder, depth: 0)
            .map { Sample(path: imageDir + "/" + folder + "/" + $0, label: label) }
        }
        if samples.isEmpty { throw DataError.noImages(folder: imageDir) }
        return samples.sorted { ($0.label, $0.path) < ($1.label, $1.path) }
      }
      return Source(classNames: classNames, file: dir + "/classnames.txt", isListed: false, read: read)
    }

    // MARK: Few-shot

    /// The few-shot train/val lists: Dassl's pickle, else our JSON, else drawn now and saved as JSON.
    func fewShot(source: Source, shots: Int, seed: Int, notes: inout [String])
      throws -> (train: [Sample], val: [Sample], file: String) {
      let base = dir + "/split_fewshot/shot_\(shots)-seed_\(seed)"
      let pickleFile = base + ".pkl", jsonFile = base + ".json"
      if DataPaths.exists(pickleFile) {
        let (train, val) = try DasslPickle.readSplits(pickleFile)
        notes.append("read Dassl few-shot split \(pickleFile)")
        return (try fromDassl(train, file: pickleFile, classes: source.classNames.count),
                try fromDassl(val, file: pickleFile, classes: source.classNames.count), pickleFile)
      }
      if DataPaths.exists(jsonFile) {
        let splits = try readSplitJSON(jsonFile, keys: ["train", "val"], classes: source.classNames.count)
        try checkLabels(splits, file: jsonFile, classes: source.classNames.count)
        notes.append("read few-shot split \(jsonFile)")
        return (splits["train"]!.map(\.withoutCaption), splits["val"]!.map(\.withoutCaption), jsonFile)
      }
      // As Dassl: `shots` per class for train, min(shots, 4) for val; ImageNet has no val split of its own.
      let train = FewShot.select(try source.read(.train), shots: shots, seed: UInt64(bitPattern: Int64(seed)),
                                 stream: 0)
      let val = benchmark == .imagenet ? [] : FewShot.select(try source.read(.val), shots: min(shots, 4),
                                                             seed: UInt64(bitPattern: Int64(seed)), stream: 1)
      do {
        try FileManager.default.createDirectory(atPath: dir + "/split_fewshot", withIntermediateDirectories: true)
        try writeSplitJSON(["train": train, "val": val], classNames: source.classNames, to: jsonFile)
        notes.append("drew a \(shots)-shot split (seed \(seed)) and saved it to \(jsonFile)")
      } catch {
        notes.append("drew a \(shots)-shot split (seed \(seed)); could not save \(jsonFile) (\(error)); the same"
          + " split is drawn again next time")
      }
      return (train, val, source.file)
    }

    /// Dassl's absolute impaths point into the folder of the machine that wrote the pickle: keep the part after
    /// the last `<benchmark folder>` component and join it onto our ROOT/<folder>.
    func fromDassl(_ datums: [DasslDatum], file: String, classes: Int) throws -> [Sample] {
      try datums.enumerated().map { index, datum in
        let parts = datum.impath.split(separator: "/").map(String.init)
        guard let at = parts.lastIndex(of: benchmark.folder), at + 1 < parts.count else {
          throw DataError.malformed(file: file, reason: "impath '\(datum.impath)' has no '\(benchmark.folder)' folder"
            + " to map onto \(dir)")
        }
        guard datum.label >= 0 && datum.label < classes else {
          throw DataError.labelOutOfRange(file: file, entry: "datum \(index) (\(datum.impath))", label: datum.label,
                                          classes: classes)
        }
        let relative = parts[(at + 1)...].joined(separator: "/")
        return Sample(path: try DataPaths.join(dir, relative, listedIn: file), label: datum.label)
      }
    }

    func checkLabels(_ splits: [String: [Sample]], file: String, classes: Int) throws {
      for (key, samples) in splits {
        for (index, sample) in samples.enumerated() where sample.label < 0 || sample.label >= classes {
          throw DataError.labelOutOfRange(file: file, entry: "\(key)[\(index)]", label: sample.label, classes: classes)
        }
      }
    }

    func writeSplitJSON(_ splits: [String: [Sample]], classNames: [String], to file: String) throws {
      let prefix = imageDir + "/"
      var object: [String: [[Any]]] = [:]
      for (key, samples) in splits {
        object[key] = samples.map { [String($0.path.dropFirst(prefix.count)), $0.label, classNames[$0.label]] }
      }
      let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
      try data.write(to: URL(fileURLWithPath: file), options: .atomic)
    }
  }
}

extension Sample {
  /// The split readers carry each entry's classname in `caption`; datasets of class labels have no captions.
  var withoutCaption: Sample { Sample(path: path, label: label) }
}
