// CoOp/Dassl layouts built in a temp dir: an OxfordPets folder with a real split_zhou JSON, Dassl few-shot
// pickles (Fixtures/) remapped onto our root, our own few-shot JSON (drawn, saved, reused), base/new
// subsampling, FGVC-Aircraft's text lists, ImageNet and its shifts, and the load-time data checks.
// Shape letters: K classes, N samples.
import Foundation
import XCTest
@testable import Data

final class CoOpTests: XCTestCase {
  let classes = ["abyssinian", "beagle", "chihuahua"]

  /// ROOT/oxford_pets/images/<class>_<1...5>.png; split: train 1, 2, 3; val 4; test 5.
  func makePets(splitJSON: String? = nil) throws -> String {
    let root = try makeTempDir(self)
    var train: [String] = [], val: [String] = [], test: [String] = []
    for (label, name) in classes.enumerated() {
      for i in 1...5 {
        try writeFile(root, "oxford_pets/images/\(name)_\(i).png")
        let row = "[\"\(name)_\(i).png\", \(label), \"\(name)\"]"
        if i <= 3 { train.append(row) } else if i == 4 { val.append(row) } else { test.append(row) }
      }
    }
    let json = splitJSON ?? "{\"train\": [\(train.joined(separator: ","))], \"val\": [\(val.joined(separator: ","))],"
      + " \"test\": [\(test.joined(separator: ","))]}"
    try writeFile(root, "oxford_pets/split_zhou_OxfordPets.json", json)
    return root
  }

  func paths(_ dataset: Dataset) -> [String] {
    dataset.samples.map { String($0.path.dropFirst(dataset.root.count + "/images/".count)) }
  }

  func testSplitJSON() throws {
    let root = try makePets()
    let train = try DatasetSpec.load("coop:\(root):oxford_pets")
    XCTAssertEqual(train.root, root + "/oxford_pets")
    XCTAssertEqual(train.classNames, classes)
    XCTAssertEqual(paths(train), ["abyssinian_1.png", "abyssinian_2.png", "abyssinian_3.png", "beagle_1.png",
                                  "beagle_2.png", "beagle_3.png", "chihuahua_1.png", "chihuahua_2.png",
                                  "chihuahua_3.png"])
    XCTAssertEqual(train.samples.map(\.label), [0, 0, 0, 1, 1, 1, 2, 2, 2])
    XCTAssertTrue(train.samples.allSatisfy { $0.caption == nil })
    let test = try DatasetSpec.load("coop:\(root):oxford_pets:test")
    XCTAssertEqual(paths(test), ["abyssinian_5.png", "beagle_5.png", "chihuahua_5.png"])
    XCTAssertEqual(test.samples.map(\.label), [0, 1, 2])
    XCTAssertEqual(paths(try DatasetSpec.load("coop:\(root):oxford_pets:val")).count, 3)
  }

  func testDasslPickleFewShot() throws {
    for protocolVersion in [2, 4, 5] {
      let root = try makePets()
      try writeFile(root, "oxford_pets/split_fewshot/.keep", "")
      try FileManager.default.copyItem(atPath: fixturesDir + "/fewshot_p\(protocolVersion).pkl",
                                       toPath: root + "/oxford_pets/split_fewshot/shot_2-seed_1.pkl")
      let options = DatasetOptions(shots: 2, splitSeed: 1)
      let train = try DatasetSpec.load("coop:\(root):oxford_pets", options: options)
      // The pickle lists <class>_1 and <class>_3 for train, <class>_4 for val (see make_pickles.py).
      XCTAssertEqual(paths(train), ["abyssinian_1.png", "abyssinian_3.png", "beagle_1.png", "beagle_3.png",
                                    "chihuahua_1.png", "chihuahua_3.png"], "protocol \(protocolVersion)")
      XCTAssertEqual(train.samples.map(\.label), [0, 0, 1, 1, 2, 2])
      XCTAssertTrue(train.notes.contains { $0.contains("shot_2-seed_1.pkl") })
      let val = try DatasetSpec.load("coop:\(root):oxford_pets:val", options: options)
      XCTAssertEqual(paths(val), ["abyssinian_4.png", "beagle_4.png", "chihuahua_4.png"])
      // Base classes of the few-shot train split: first ceil(3/2) = 2 labels.
      let base = try DatasetSpec.load("coop:\(root):oxford_pets",
                                      options: DatasetOptions(shots: 2, splitSeed: 1, subsample: .base))
      XCTAssertEqual(base.classNames, ["abyssinian", "beagle"])
      XCTAssertEqual(base.samples.map(\.label), [0, 0, 1, 1])
    }
  }

  func testEvilPickleIsRefusedAtLoad() throws {
    let root = try makePets()
    try writeFile(root, "oxford_pets/split_fewshot/.keep", "")
    try FileManager.default.copyItem(atPath: fixturesDir + "/evil_reduce_p2.pkl",
                                     toPath: root + "/oxford_pets/split_fewshot/shot_1-seed_1.pkl")
    assertDataError(try DatasetSpec.load("coop:\(root):oxford_pets", options: DatasetOptions(shots: 1)), "evil") {
      if case .unsafePickle = $0 { return true }; return false
    }
  }

  func testDrawnFewShotIsSavedAndReused() throws {
    let root = try makePets()
    let options = DatasetOptions(shots: 2, splitSeed: 7)
    let first = try DatasetSpec.load("coop:\(root):oxford_pets", options: options)
    XCTAssertEqual(first.samples.map(\.label), [0, 0, 1, 1, 2, 2])
    XCTAssertEqual(Set(first.samples.map(\.path)).count, 6, "draws without replacement")
    let saved = root + "/oxford_pets/split_fewshot/shot_2-seed_7.json"
    XCTAssertTrue(FileManager.default.fileExists(atPath: saved))
    XCTAssertTrue(first.notes.contains { $0.contains("saved") })
    // Val: min(K, 4) = 2 per class requested, only 1 available per class: all kept.
    XCTAssertEqual(paths(try DatasetSpec.load("coop:\(root):oxford_pets:val", options: options)),
                   ["abyssinian_4.png", "beagle_4.png", "chihuahua_4.png"])
    let again = try DatasetSpec.load("coop:\(root):oxford_pets", options: options)
    XCTAssertEqual(again.samples, first.samples)
    XCTAssertTrue(again.notes.contains { $0.hasPrefix("read few-shot split") })
    // The saved file is what is read: edit it and the edit shows.
    try writeFile(root, "oxford_pets/split_fewshot/shot_2-seed_7.json",
                  "{\"train\": [[\"beagle_5.png\", 1, \"beagle\"]], \"val\": []}")
    XCTAssertEqual(paths(try DatasetSpec.load("coop:\(root):oxford_pets", options: options)), ["beagle_5.png"])
  }

  func testBaseAndNewSubsample() throws {
    let root = try makePets()
    let new = try DatasetSpec.load("coop:\(root):oxford_pets:test", options: DatasetOptions(subsample: .new))
    XCTAssertEqual(new.classNames, ["chihuahua"])
    XCTAssertEqual(paths(new), ["chihuahua_5.png"])
    XCTAssertEqual(new.samples.map(\.label), [0])
    let base = try DatasetSpec.load("coop:\(root):oxford_pets:test", options: DatasetOptions(subsample: .base))
    XCTAssertEqual(base.classNames, ["abyssinian", "beagle"])
    XCTAssertEqual(base.samples.map(\.label), [0, 1])
  }

  func testSplitChecks() throws {
    let noTrainForBeagle = "{\"train\": [[\"abyssinian_1.png\", 0, \"abyssinian\"], [\"chihuahua_1.png\", 2,"
      + " \"chihuahua\"]], \"val\": [], \"test\": [[\"beagle_5.png\", 1, \"beagle\"]]}"
    assertDataError(try DatasetSpec.load("coop:\(try makePets(splitJSON: noTrainForBeagle)):oxford_pets"),
                    "empty class") { if case let .emptyClass(_, name) = $0 { return name.hasPrefix("beagle") }
                                     return false }
    let negative = "{\"train\": [[\"abyssinian_1.png\", -1, \"abyssinian\"]], \"val\": [], \"test\": []}"
    assertDataError(try DatasetSpec.load("coop:\(try makePets(splitJSON: negative)):oxford_pets"), "label -1") {
      if case let .labelOutOfRange(file, entry, label, _) = $0 {
        return file.hasSuffix("split_zhou_OxfordPets.json") && entry == "train[0]" && label == -1
      }
      return false
    }
    let escaping = "{\"train\": [[\"../../secret.png\", 0, \"abyssinian\"]], \"val\": [], \"test\": []}"
    assertDataError(try DatasetSpec.load("coop:\(try makePets(splitJSON: escaping)):oxford_pets"), "escape") {
      if case let .pathEscapesRoot(_, path) = $0 { return path == "../../secret.png" }; return false
    }
    let missing = "{\"train\": [[\"abyssinian_1.png\", 0, \"abyssinian\"], [\"abyssinian_9.png\", 0,"
      + " \"abyssinian\"]], \"val\": [], \"test\": []}"
    assertDataError(try DatasetSpec.load("coop:\(try makePets(splitJSON: missing)):oxford_pets"), "missing") {
      if case let .missingFiles(file, paths, total) = $0 {
        return file.hasSuffix(".json") && total == 1 && paths[0].hasSuffix("oxford_pets/images/abyssinian_9.png")
      }
      return false
    }
    assertDataError(try DatasetSpec.load("coop:\(try makeTempDir(self)):dtd"), "no folder") {
      if case .unreadable = $0 { return true }; return false
    }
  }

  func testFGVCAircraft() throws {
    let root = try makeTempDir(self)
    try writeFile(root, "fgvc_aircraft/variants.txt", "707-320\nA300B4\nBAE 146-200\n")
    try writeFile(root, "fgvc_aircraft/images_variant_train.txt",
                  "0001 A300B4\n0002 BAE 146-200\n0003 707-320\n")
    try writeFile(root, "fgvc_aircraft/images_variant_test.txt", "0004 BAE 146-200\n")
    for id in ["0001", "0002", "0003", "0004"] { try writeFile(root, "fgvc_aircraft/images/\(id).jpg") }
    let train = try DatasetSpec.load("coop:\(root):fgvc_aircraft")
    XCTAssertEqual(train.classNames, ["707-320", "A300B4", "BAE 146-200"])
    XCTAssertEqual(train.samples.map(\.label), [1, 2, 0])
    XCTAssertEqual(train.samples[0].path, root + "/fgvc_aircraft/images/0001.jpg")
    let test = try DatasetSpec.load("coop:\(root):fgvc_aircraft:test")
    XCTAssertEqual(test.samples, [Sample(path: root + "/fgvc_aircraft/images/0004.jpg", label: 2)])
  }

  func testImageNetAndShifts() throws {
    let root = try makeTempDir(self)
    let names = "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n"
    try writeFile(root, "imagenet/classnames.txt", names)
    for split in ["train", "val"] {
      try writeFile(root, "imagenet/images/\(split)/n01443537/b.JPEG")
      try writeFile(root, "imagenet/images/\(split)/n01440764/a.JPEG")
      try writeFile(root, "imagenet/images/\(split)/n01484850/c.JPEG")
    }
    let train = try DatasetSpec.load("coop:\(root):imagenet")
    XCTAssertEqual(train.classNames, ["tench", "goldfish", "great white shark"])
    XCTAssertEqual(train.samples.map(\.path), ["n01440764/a", "n01443537/b", "n01484850/c"].map {
      root + "/imagenet/images/train/\($0).JPEG" })
    let val = try DatasetSpec.load("coop:\(root):imagenet:val")
    XCTAssertEqual(val.samples.map(\.path), try DatasetSpec.load("coop:\(root):imagenet:test").samples.map(\.path))
    XCTAssertTrue(val.samples[0].path.contains("/images/val/"))

    // ImageNet-A: a 2-class subset of the names; README.txt beside the folders is ignored.
    try writeFile(root, "imagenet-a/classnames.txt", names)
    try writeFile(root, "imagenet-a/imagenet-a/README.txt", "readme")
    try writeFile(root, "imagenet-a/imagenet-a/n01484850/x.jpg")
    try writeFile(root, "imagenet-a/imagenet-a/n01440764/y.jpg")
    let a = try DatasetSpec.load("coop:\(root):imagenet-a")
    XCTAssertEqual(a.classNames, ["tench", "great white shark"])
    XCTAssertEqual(a.samples.map(\.label), [0, 1])
    XCTAssertEqual(a.samples[1].path, root + "/imagenet-a/imagenet-a/n01484850/x.jpg")
    assertDataError(try DatasetSpec.load("coop:\(root):imagenet-a:train"), "shift train split") {
      if case .badSpec = $0 { return true }; return false
    }

    // ImageNet-V2: folders named by label.
    try writeFile(root, "imagenetv2/classnames.txt", names)
    try writeFile(root, "imagenetv2/imagenetv2-matched-frequency-format-val/2/p.jpeg")
    try writeFile(root, "imagenetv2/imagenetv2-matched-frequency-format-val/0/q.jpeg")
    let v2 = try DatasetSpec.load("coop:\(root):imagenet-v2")
    XCTAssertEqual(v2.classNames.count, 3)
    XCTAssertEqual(v2.samples.map(\.label), [0, 2])
  }
}
