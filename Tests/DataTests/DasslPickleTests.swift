// The restricted pickle reader against pickles written by CPython's pickle module (Fixtures/make_pickles.py):
// every Datum must match the JSON the generator wrote from the same objects, and pickles that reference any
// global other than Dassl's Datum (os.system, eval, another class) must be refused with the global's name.
// Shape letters: none.
import Foundation
import XCTest
@testable import Data

final class DasslPickleTests: XCTestCase {
  func expected(_ name: String) throws -> (train: [DasslDatum], val: [DasslDatum]) {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDir + "/" + name))
    let object = try JSONSerialization.jsonObject(with: data) as! [String: [[Any]]]
    func rows(_ key: String) -> [DasslDatum] {
      object[key]!.map { DasslDatum(impath: $0[0] as! String, label: ($0[1] as! NSNumber).intValue,
                                    domain: ($0[2] as! NSNumber).intValue, classname: $0[3] as! String) }
    }
    return (rows("train"), rows("val"))
  }

  func testReadsProtocols2To5() throws {
    let reference = try expected("fewshot_expected.json")
    XCTAssertEqual(reference.train.count, 6)
    for protocolVersion in [2, 4, 5] {
      let read = try DasslPickle.readSplits(fixturesDir + "/fewshot_p\(protocolVersion).pkl")
      XCTAssertEqual(read.train, reference.train, "protocol \(protocolVersion) train")
      XCTAssertEqual(read.val, reference.val, "protocol \(protocolVersion) val")
    }
  }

  func testLongMemoIndices() throws {
    // 400 items: memo indices above 255 use LONG_BINPUT in protocol 2.
    let reference = try expected("many_expected.json")
    let read = try DasslPickle.readSplits(fixturesDir + "/many_p2.pkl")
    XCTAssertEqual(read.train.count, 400)
    XCTAssertEqual(read.train, reference.train)
    XCTAssertEqual(read.val, [])
  }

  func testRefusesOtherGlobals() {
    for (file, global) in [("evil_reduce_p2.pkl", "posix.system"), ("evil_raw_os.pkl", "os.system"),
                           ("evil_eval_p4.pkl", "builtins.eval"),
                           ("unknown_class_p4.pkl", "dassl.data.datasets.base_dataset.NotDatum")] {
      assertDataError(try DasslPickle.readSplits(fixturesDir + "/" + file), file) {
        if case let .unsafePickle(path, reason) = $0 { return path.hasSuffix(file) && reason.hasSuffix(" " + global) }
        return false
      }
    }
  }

  func testTruncatedAndUnsupported() throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: fixturesDir + "/fewshot_p4.pkl"))
    let dir = try makeTempDir(self)
    try bytes.prefix(100).write(to: URL(fileURLWithPath: dir + "/cut.pkl"))
    assertDataError(try DasslPickle.readSplits(dir + "/cut.pkl"), "truncated") {
      if case .badPickle = $0 { return true }; return false
    }
    // Protocol 0 text opcodes (here DICT 0x64) are outside the reader's opcode set.
    try Data("(dp0\nS'train'\np1\n(lp2\nsS'val'\np3\n(lp4\ns.".utf8).write(to: URL(fileURLWithPath: dir + "/p0.pkl"))
    assertDataError(try DasslPickle.readSplits(dir + "/p0.pkl"), "protocol 0") {
      if case let .badPickle(_, _, reason) = $0 { return reason.contains("0x64") }
      return false
    }
  }
}
