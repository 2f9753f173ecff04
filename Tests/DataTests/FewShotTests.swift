// Few-shot selection (`shots` per class, the same split for the same seed, original order kept) and CoOp's
// base/new class subsampling, on hand-made label lists.
// Shape letters: K classes, N samples.
import XCTest
@testable import Data

final class FewShotTests: XCTestCase {
  func samples(_ labels: [Int]) -> [Sample] {
    labels.enumerated().map { Sample(path: "img\($0.offset)", label: $0.element) }
  }

  func testSelectTakesKPerClassDeterministically() {
    let all = samples([2, 0, 1, 0, 2, 0, 0, 1, 2, 2, 0])
    let picked = FewShot.select(all, shots: 2, seed: 5)
    XCTAssertEqual(picked.map(\.label), [0, 0, 1, 1, 2, 2])
    // Each class's picks are distinct members of that class, in their original order.
    for label in 0...2 {
      let paths = picked.filter { $0.label == label }.map(\.path)
      let members = all.filter { $0.label == label }.map(\.path)
      XCTAssertEqual(Set(paths).count, 2)
      XCTAssertTrue(paths.allSatisfy(members.contains))
      XCTAssertEqual(paths, members.filter(paths.contains), "label \(label) keeps the original order")
    }
    XCTAssertEqual(FewShot.select(all, shots: 2, seed: 5), picked, "same seed, same split")
    // Across seeds the draw changes for at least one class (5 members of class 0: 10 possible pairs).
    let others = (6..<16).map { FewShot.select(all, shots: 2, seed: UInt64($0)) }
    XCTAssertTrue(others.contains { $0 != picked })
    // Fewer members than K: all of them.
    XCTAssertEqual(FewShot.select(all, shots: 9, seed: 1).count, all.count)
  }

  func testSubsampleMatchesCoOp() {
    // CoOp: sorted unique train labels [0, 1, 3, 4, 7] (n = 5), base = first ceil(5/2) = 3: [0, 1, 3], new = [4, 7].
    let train = [7, 3, 0, 1, 4, 3]
    XCTAssertEqual(FewShot.keptLabels(trainLabels: train, subset: .base), [0, 1, 3])
    XCTAssertEqual(FewShot.keptLabels(trainLabels: train, subset: .new), [4, 7])
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"]
    let (kept, keptNames) = FewShot.subsample(samples([7, 3, 0, 5, 4]), classNames: names, trainLabels: train,
                                              subset: .new)
    XCTAssertEqual(kept.map(\.label), [1, 0])
    XCTAssertEqual(kept.map(\.path), ["img0", "img4"])
    XCTAssertEqual(keptNames, ["e", "h"])
    XCTAssertEqual(FewShot.subsample(samples([1, 0]), classNames: ["x", "y"], trainLabels: [0, 1], subset: .all).samples,
                   samples([1, 0]))
  }
}
