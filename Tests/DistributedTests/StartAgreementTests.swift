// The start-up agreement's comparison (which key differs first, which ranks hold which value) and the digest,
// checked on hand-written lists; launch/tests/cluster-faults.sh runs the real cross-rank refusal under mpirun.
// Shape letters: none.
import Distributed
import Foundation
import XCTest

final class StartAgreementTests: XCTestCase {
  func testFirstDifferenceNamesTheKeyAndGroupsRanksByValue() throws {
    let same: [FingerprintEntry] = [("binary", "a"), ("config.optim.lr", "0.5"), ("model.weights", "w")]
    var other = same
    other[1].value = "0.1"
    other[2].value = "v"  // also differs, but later in the order
    let difference = try XCTUnwrap(StartAgreement.firstDifference([same, other, same]))
    XCTAssertEqual(difference.key, "config.optim.lr")
    XCTAssertEqual(difference.groups.map(\.value), ["0.5", "0.1"])
    XCTAssertEqual(difference.groups.map(\.ranks), [[0, 2], [1]])
    XCTAssertNil(StartAgreement.firstDifference([same, same]))
  }

  func testAKeyOnlyOneRankHasIsADifference() throws {
    let difference = try XCTUnwrap(StartAgreement.firstDifference([[("a", "1")], [("a", "1"), ("b", "2")]]))
    XCTAssertEqual(difference.key, "b")
    XCTAssertEqual(difference.groups.map(\.value), ["(missing)", "2"])
  }

  func testOneRankAlwaysAgreesAndTheErrorNamesKeyAndRanks() throws {
    try StartAgreement.check(LocalCollective(), entries: [("config.optim.lr", "0.5")])
    let error = AgreementError.mismatch(what: "start-up", key: "model.shapes", groups: [("x", [0]), ("y", [1, 2])])
    XCTAssertTrue(error.description.contains("'model.shapes' (rank 0: x; ranks 1,2: y)"), error.description)
  }

  func testFlattenGivesDottedSortedKeys() throws {
    let json = try JSONSerialization.jsonObject(with: Data(#"{"run": {"seed": 3, "dir": "r"}, "a": [1, 2]}"#.utf8))
    let flat = StartAgreement.flatten(json, prefix: "config")
    XCTAssertEqual(flat.map(\.key), ["config.a", "config.run.dir", "config.run.seed"])
    XCTAssertEqual(flat.map(\.value), ["1 | 2", "r", "3"])
  }

  func testDigestChangesWithContentAndContinues() {
    // Referee: zlib's crc32 of "123456789" is the standard check value cbf43926, adler32 is 091e01de.
    XCTAssertEqual(StartAgreement.digest(of: "123456789"), "cbf43926091e01de")
    XCTAssertNotEqual(StartAgreement.digest(of: "a"), StartAgreement.digest(of: "b"))
    let whole = Array("hello world".utf8), first = Array("hello ".utf8), second = Array("world".utf8)
    let continued = second.withUnsafeBytes { s in
      StartAgreement.digest(s, previous: first.withUnsafeBytes { StartAgreement.digest($0) })
    }
    XCTAssertEqual(continued, whole.withUnsafeBytes { StartAgreement.digest($0) })
    // Across the 1 MiB chunks the C side feeds zlib: any split gives the digest of the whole.
    let big = (0..<(3 << 20) + 7).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
    let all = big.withUnsafeBytes { StartAgreement.digest($0) }
    for split in [1, (1 << 20) - 1, 1 << 20, (2 << 20) + 5] {
      let head = big[..<split].withUnsafeBytes { StartAgreement.digest($0) }
      XCTAssertEqual(big[split...].withUnsafeBytes { StartAgreement.digest($0, previous: head) }, all, "split at \(split)")
    }
  }
}
