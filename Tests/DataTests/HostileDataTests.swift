// Input safety of dataset lists: labels that are huge, negative or not integers in manifests and split JSONs,
// and pickles nested 300,000 deep (built bottom-up, and top-down through the memo) are refused with the file
// named; none may trap, abort on allocation or overflow the stack.
// Shape letters: none.
import Foundation
import XCTest
@testable import Data

final class HostileDataTests: XCTestCase {
  func testManifestLabelsOutOfRangeAreRefusedWithTheRow() throws {
    let root = try makeTempDir(self)
    try writeFile(root, "a.png")
    for (name, label) in [("huge", "9223372036854775807"), ("big", "1000000000"), ("negative", "-5")] {
      try writeFile(root, "\(name).csv", "path,label\na.png,0\na.png,\(label)\n")
      assertDataError(try DatasetSpec.load("manifest:\(root)/\(name).csv"), name) {
        if case let .labelOutOfRange(file, entry, value, _) = $0 {
          return file.hasSuffix("\(name).csv") && entry == "row 3" && String(value) == label
        }
        return false
      }
    }
    for (name, label) in [("fraction", "2.5"), ("overflow", "99999999999999999999999"), ("nan", "nan")] {
      try writeFile(root, "\(name).csv", "path,label\na.png,\(label)\n")
      assertDataError(try DatasetSpec.load("manifest:\(root)/\(name).csv"), name) {
        if case let .malformed(file, reason) = $0 { return file.hasSuffix("\(name).csv") && reason.contains("row 2") }
        return false
      }
    }
  }

  func makePets(_ label: String) throws -> String {
    let root = try makeTempDir(self)
    try writeFile(root, "oxford_pets/images/a_1.png")
    try writeFile(root, "oxford_pets/split_zhou_OxfordPets.json",
                  "{\"train\": [[\"a_1.png\", 0, \"a\"], [\"a_1.png\", \(label), \"b\"]], \"val\": [], \"test\": []}")
    return root
  }

  func testSplitJSONLabelsThatAreNotSmallIntegersAreRefused() throws {
    for label in ["1e300", "2.5", "true", "\"3\"", "-1e300"] {
      assertDataError(try DatasetSpec.load("coop:\(try makePets(label)):oxford_pets"), label) {
        if case let .malformed(file, reason) = $0 { return file.hasSuffix(".json") && reason.contains("train[1]") }
        return false
      }
    }
    for label in ["9223372036854775807", "1000000000", "-4"] {
      assertDataError(try DatasetSpec.load("coop:\(try makePets(label)):oxford_pets"), label) {
        if case let .labelOutOfRange(file, entry, _, _) = $0 { return file.hasSuffix(".json") && entry == "train[1]" }
        return false
      }
    }
  }

  func readPickle(_ bytes: [UInt8]) throws -> (train: [DasslDatum], val: [DasslDatum]) {
    let path = try makeTempDir(self) + "/deep.pkl"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return try DasslPickle.readSplits(path)
  }

  func expectBadPickle(_ bytes: [UInt8], _ fragment: String, line: UInt = #line) {
    assertDataError(try readPickle(bytes), fragment, line: line) {
      if case let .badPickle(file, _, reason) = $0 { return file.hasSuffix("deep.pkl") && reason.contains(fragment) }
      return false
    }
  }

  func testDeeplyNestedPicklesAreRefusedWithoutOverflowingTheStack() {
    let depth = 300_000
    // PROTO 2; ']' EMPTY_LIST x depth; 'a' APPEND x (depth - 1); STOP: lists nested 300,000 deep.
    let lists: [UInt8] = [0x80, 2] + [UInt8](repeating: 0x5D, count: depth) + [UInt8](repeating: 0x61, count: depth - 1) + [0x2E]
    expectBadPickle(lists, "nested more than 100 deep")
    // NONE, then TUPLE1 300,000 times.
    let tuples: [UInt8] = [0x80, 2, 0x4E] + [UInt8](repeating: 0x85, count: depth) + [0x2E]
    expectBadPickle(tuples, "nested more than 100 deep")
    // Dicts: EMPTY_DICT x depth, then (NONE key, SETITEM) pairs would need the key under the value; use
    // EMPTY_DICT, NONE (key), EMPTY_DICT ... so each SETITEM puts the inner dict under key None.
    var dicts: [UInt8] = [0x80, 2]
    for _ in 0..<depth { dicts += [0x7D, 0x4E] }
    dicts.removeLast()
    dicts += [UInt8](repeating: 0x73, count: depth - 1) + [0x2E]
    expectBadPickle(dicts, "nested more than 100 deep")
  }

  func testDeepChainBuiltThroughTheMemoIsReleasedIteratively() {
    // Top-down: each new list is appended into the previous one, which is fetched back from the memo, so every
    // container's recorded depth stays 2 while the real chain is 300,000 deep. Reading fails (the top object is
    // not a dict) and releasing the chain must not recurse.
    // PROTO 2, EMPTY_LIST, MEMOIZE (0); then per link: LONG_BINGET i, EMPTY_LIST, MEMOIZE (i + 1), APPEND.
    // Every parent stays on the stack as its APPEND target; STOP returns the last list.
    let chain = 300_000
    var bytes: [UInt8] = [0x80, 2, 0x5D, 0x94]
    for i in 0..<chain {
      let index = UInt32(i)
      bytes += [0x6A] + withUnsafeBytes(of: index.littleEndian, Array.init)
      bytes += [0x5D, 0x94, 0x61]
    }
    bytes += [0x2E]
    assertDataError(try readPickle(bytes), "memo chain") {
      if case let .badPickle(_, _, reason) = $0 { return reason.contains("not a dict") }
      return false
    }
  }

  /// README "Input safety": links are followed when reading (shared storage), listed paths are checked lexically.
  func testSymlinksToSharedStorageAreFollowedAndListedPathsStayInside() throws {
    let shared = try makeTempDir(self), root = try makeTempDir(self)
    try writeFile(shared, "pool/cat/1.png")
    try writeFile(shared, "pool/dog/2.png")
    // A dataset whose class folders are links into the shared pool.
    try FileManager.default.createDirectory(atPath: root + "/folder", withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(atPath: root + "/folder/cat", withDestinationPath: shared + "/pool/cat")
    try FileManager.default.createSymbolicLink(atPath: root + "/folder/dog", withDestinationPath: shared + "/pool/dog")
    let folder = try DatasetSpec.load("imagefolder:\(root)/folder")
    XCTAssertEqual(folder.classNames, ["cat", "dog"])
    XCTAssertEqual(folder.samples.map(\.path), [root + "/folder/cat/1.png", root + "/folder/dog/2.png"])
    // A manifest row naming a link inside its folder is followed; a row leaving the folder by path is not.
    try FileManager.default.createSymbolicLink(atPath: root + "/linked.png", withDestinationPath: shared + "/pool/cat/1.png")
    try writeFile(root, "ok.csv", "path,label\nlinked.png,0\n")
    XCTAssertEqual(try DatasetSpec.load("manifest:\(root)/ok.csv").samples.map(\.path), [root + "/linked.png"])
    try writeFile(root, "escape.csv", "path,label\n../\((shared as NSString).lastPathComponent)/pool/cat/1.png,0\n")
    assertDataError(try DatasetSpec.load("manifest:\(root)/escape.csv"), "escape") {
      if case .pathEscapesRoot = $0 { return true }; return false
    }
    // A link cycle inside a dataset ends at the walk's depth limit instead of looping.
    try FileManager.default.createSymbolicLink(atPath: shared + "/pool/cat/loop", withDestinationPath: shared + "/pool/cat")
    XCTAssertEqual(try DatasetSpec.load("imagefolder:\(root)/folder").count, 1 + 1 + 8)
  }
}
