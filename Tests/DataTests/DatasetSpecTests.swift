// Spec parsing, imagefolder and manifest datasets on tiny folders of real PNG files. Expected samples and
// labels are written out by hand from the folder layout each test creates.
// Shape letters: K classes, N samples.
import Foundation
import XCTest
@testable import Data

final class DatasetSpecTests: XCTestCase {
  func testParse() throws {
    XCTAssertEqual(try DatasetSpec.parse("imagefolder:/a/b"), .imageFolder(path: "/a/b"))
    XCTAssertEqual(try DatasetSpec.parse("manifest:x/train.csv"), .manifest(file: "x/train.csv"))
    XCTAssertEqual(try DatasetSpec.parse("coop:/data:oxford_pets"),
                   .coop(root: "/data", benchmark: .oxfordPets, split: .train))
    XCTAssertEqual(try DatasetSpec.parse("coop:/data:DescribableTextures:test"),
                   .coop(root: "/data", benchmark: .dtd, split: .test))
    XCTAssertEqual(try DatasetSpec.parse("coop:C:/x:food101:val"),
                   .coop(root: "C:/x", benchmark: .food101, split: .val))
    XCTAssertEqual(try DatasetSpec.parse("coop:/data:imagenet_a"),
                   .coop(root: "/data", benchmark: .imagenetA, split: .test), "shifts default to test")
    XCTAssertEqual(try DatasetSpec.parse("coop:/data:imagenetv2"),
                   .coop(root: "/data", benchmark: .imagenetV2, split: .test))
    for bad in ["foo", "imagefolder:", "zip:/x", "coop:/data", "coop:/data:cifar10", "coop::dtd"] {
      assertDataError(try DatasetSpec.parse(bad), bad) { if case .badSpec = $0 { return true }; return false }
    }
  }

  func testImageFolder() throws {
    let root = try makeTempDir(self)
    try writeFile(root, "dog/b.png")
    try writeFile(root, "dog/a.JPG")
    try writeFile(root, "dog/sub/c.jpeg")
    try writeFile(root, "dog/notes.txt", "not an image")
    try writeFile(root, "cat/z.PNG")
    try writeFile(root, "readme.png")  // not in a class folder: ignored
    let dataset = try DatasetSpec.load("imagefolder:\(root)")
    XCTAssertEqual(dataset.classNames, ["cat", "dog"])
    XCTAssertEqual(dataset.samples, [
      Sample(path: root + "/cat/z.PNG", label: 0), Sample(path: root + "/dog/a.JPG", label: 1),
      Sample(path: root + "/dog/b.png", label: 1), Sample(path: root + "/dog/sub/c.jpeg", label: 1),
    ])

    try FileManager.default.createDirectory(atPath: root + "/emu", withIntermediateDirectories: true)
    assertDataError(try DatasetSpec.load("imagefolder:\(root)"), "empty class folder") {
      if case let .emptyClass(_, name) = $0 { return name == "emu" }; return false
    }
    assertDataError(try DatasetSpec.load("imagefolder:\(root)/nope"), "missing folder") {
      if case .unreadable = $0 { return true }; return false
    }
  }

  func testManifestLabelHeaderKeepsFileOrder() throws {
    let root = try makeTempDir(self)
    for name in ["x/1.png", "x/2.png", "y 3.png"] { try writeFile(root, name) }
    try writeFile(root, "train.csv", "path,label\r\nx/2.png,1\r\n\"y 3.png\",0\r\nx/1.png,1\r\n")
    let dataset = try DatasetSpec.load("manifest:\(root)/train.csv")
    XCTAssertEqual(dataset.samples, [Sample(path: root + "/x/2.png", label: 1), Sample(path: root + "/y 3.png", label: 0),
                                     Sample(path: root + "/x/1.png", label: 1)])
    XCTAssertEqual(dataset.classNames, ["0", "1"])

    try writeFile(root, "classnames.txt", "zero\none\ntwo\n")
    assertDataError(try DatasetSpec.load("manifest:\(root)/train.csv"), "class 'two' has no sample") {
      if case let .emptyClass(_, name) = $0 { return name.hasPrefix("two") }; return false
    }
    try writeFile(root, "classnames.txt", "zero\none\n")
    XCTAssertEqual(try DatasetSpec.load("manifest:\(root)/train.csv").classNames, ["zero", "one"])

    try writeFile(root, "bad.csv", "path,label\nx/1.png,0\nx/2.png,2\n")
    assertDataError(try DatasetSpec.load("manifest:\(root)/bad.csv"), "label 2 with 2 classes") {
      if case let .labelOutOfRange(file, entry, label, classes) = $0 {
        return file.hasSuffix("bad.csv") && entry == "row 3" && label == 2 && classes == 2
      }
      return false
    }
  }

  func testManifestClassnameAndCaptionHeaders() throws {
    let root = try makeTempDir(self)
    for name in ["a.png", "b.png", "c.png"] { try writeFile(root, "img/" + name) }
    try writeFile(root, "named.csv", "path,classname\nimg/a.png,zebra\nimg/b.png,\"ant, red\"\nimg/c.png,zebra\n")
    let named = try DatasetSpec.load("manifest:\(root)/named.csv")
    XCTAssertEqual(named.classNames, ["ant, red", "zebra"])
    XCTAssertEqual(named.samples.map(\.label), [1, 0, 1])

    try writeFile(root, "captions.csv",
                  "path,caption\nimg/a.png,\"a \"\"quoted\"\" dog,\nover two lines\"\nimg/b.png,plain\n")
    let captions = try DatasetSpec.load("manifest:\(root)/captions.csv")
    XCTAssertFalse(captions.isLabeled)
    XCTAssertEqual(captions.samples, [
      Sample(path: root + "/img/a.png", label: Sample.unlabeled, caption: "a \"quoted\" dog,\nover two lines"),
      Sample(path: root + "/img/b.png", label: Sample.unlabeled, caption: "plain"),
    ])
    assertDataError(try DatasetSpec.load("manifest:\(root)/captions.csv", options: DatasetOptions(shots: 1)),
                    "few-shot of captions") { if case .badSpec = $0 { return true }; return false }
  }

  func testManifestRejectsEscapingPathsMissingFilesAndBadHeaders() throws {
    let root = try makeTempDir(self)
    try writeFile(root, "a.png")
    for (name, path) in [("up", "../a.png"), ("abs", "/etc/passwd"), ("mid", "x/../../a.png")] {
      try writeFile(root, "\(name).csv", "path,label\n\(path),0\n")
      assertDataError(try DatasetSpec.load("manifest:\(root)/\(name).csv"), name) {
        if case let .pathEscapesRoot(file, listed) = $0 { return file.hasSuffix("\(name).csv") && listed == path }
        return false
      }
    }
    try writeFile(root, "missing.csv", "path,label\na.png,0\ngone.png,0\n")
    assertDataError(try DatasetSpec.load("manifest:\(root)/missing.csv"), "missing image") {
      if case let .missingFiles(_, missing, total) = $0 { return total == 1 && missing == [root + "/gone.png"] }
      return false
    }
    // With the check off, loading succeeds and the loader meets the missing file later.
    XCTAssertEqual(try DatasetSpec.load("manifest:\(root)/missing.csv",
                                        options: DatasetOptions(checkFiles: false)).count, 2)
    try writeFile(root, "header.csv", "file,label\na.png,0\n")
    assertDataError(try DatasetSpec.load("manifest:\(root)/header.csv"), "bad header") {
      if case .malformed = $0 { return true }; return false
    }
  }

  func testCSVQuoting() throws {
    let rows = try Manifest.parseCSV("a,\"b,c\",\"d\"\"e\"\n\"\",f\r\n\"g\nh\",i", file: "t.csv")
    XCTAssertEqual(rows, [["a", "b,c", "d\"e"], ["", "f"], ["g\nh", "i"]])
    assertDataError(try Manifest.parseCSV("a,\"b\n", file: "t.csv"), "unclosed quote") {
      if case .malformed = $0 { return true }; return false
    }
  }

  func testFewShotAndSubsampleOnImageFolder() throws {
    let root = try makeTempDir(self)
    for c in ["a", "b", "c"] { for i in 0..<5 { try writeFile(root, "\(c)/\(i).png") } }
    let base = try DatasetSpec.load("imagefolder:\(root)", options: DatasetOptions(shots: 2, subsample: .base))
    // 3 classes: base = first ceil(3/2) = 2 (a, b), 2 shots each.
    XCTAssertEqual(base.classNames, ["a", "b"])
    XCTAssertEqual(base.samples.map(\.label), [0, 0, 1, 1])
    let new = try DatasetSpec.load("imagefolder:\(root)", options: DatasetOptions(subsample: .new))
    XCTAssertEqual(new.classNames, ["c"])
    XCTAssertEqual(new.samples.count, 5)
    XCTAssertTrue(new.samples.allSatisfy { $0.label == 0 && $0.path.contains("/c/") })
  }
}
