// fastExp / fastErf / fastOnePlusErf against Double libm on dense grids, and the row reductions against
// Double sums. Tolerances are the accuracy promised in FastMath.swift's header.
// Shape letters: none.
import Foundation
import Kernels
import Tensor
import XCTest

final class FastMathTests: XCTestCase {
  func maxRelativeError(_ xs: [Float], _ f: (Float) -> Float, _ ref: (Double) -> Double) -> (Double, Float) {
    var worst = 0.0, at: Float = 0
    for x in xs {
      let expected = ref(Double(x))
      let err = abs(Double(f(x)) - expected) / abs(expected)
      if err > worst || err.isNaN { worst = err; at = x }
    }
    return (worst, at)
  }

  func grid(_ lo: Float, _ hi: Float, _ count: Int) -> [Float] {
    (0...count).map { lo + (hi - lo) * Float($0) / Float(count) }
  }

  func testFastExpRelativeError() {
    // 2e-7 ≈ 2 fp32 ulps: polynomial error 1.9e-9 plus Horner and scaling roundings.
    let (err, at) = maxRelativeError(grid(-87, 88, 400_000), fastExp, exp)
    XCTAssertLessThan(err, 2e-7, "fastExp max relative error \(err) at x = \(at)")
    XCTAssertEqual(fastExp(-100), 0, "fastExp underflows to 0 below -87")
    XCTAssertEqual(fastExp(0), 1, "fastExp(0)")
  }

  func testFastErfRelativeError() {
    // The brief's bound: 1e-6 relative to Double erf, including tiny arguments (odd polynomial, no cancellation).
    var xs = grid(-6, 6, 400_000).filter { $0 != 0 }
    xs += [1e-30, -1e-20, 1e-8, 3e-4, 0.999, 1.0, 1.001]
    let (err, at) = maxRelativeError(xs, fastErf, erf)
    XCTAssertLessThan(err, 1e-6, "fastErf max relative error \(err) at x = \(at)")
  }

  func testFastOnePlusErfKeepsTheNegativeTail() {
    // 1 + erf(x) = erfc(−x) down to erfc(5.5) ≈ 7e-15: relative error bound 2e-6 (g evaluated in fp32 errs
    // 6e-7; the fp32 square t² adds up to 30·6e-8 = 2e-6·... at t = 5.5, exp amplifies it into the result).
    let (err, at) = maxRelativeError(grid(-5.5, 4, 200_000), fastOnePlusErf) { erfc(-$0) }
    XCTAssertLessThan(err, 4e-6, "fastOnePlusErf max relative error \(err) at x = \(at)")
  }

  func testRowReductionsMatchDouble() {
    for count in [1, 15, 16, 17, 100, 1000] {
      let x = randomBuffer(count, seed: UInt64(count)), y = randomBuffer(count, seed: UInt64(count) + 7)
      var sum = 0.0, dot = 0.0, best = -Double.infinity
      for i in 0..<count { sum += Double(x[i]); dot += Double(x[i]) * Double(y[i]); best = max(best, Double(x[i])) }
      // fp32 sums of up to 1000 unit normals: error ~1e-6·sqrt(n)·… ; 1e-4 absolute is ample and tight for O(1) bugs.
      XCTAssertEqual(Double(rowSum(x.readOnly, count)), sum, accuracy: 1e-4, "rowSum count \(count)")
      XCTAssertEqual(Double(rowDot(x.readOnly, y.readOnly, count)), dot, accuracy: 1e-4, "rowDot count \(count)")
      XCTAssertEqual(Double(rowMax(x.readOnly, count)), best, "rowMax count \(count)")
    }
  }
}
