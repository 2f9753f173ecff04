// The polynomial exp used by the attention softmax against Foundation's exp in Double: relative error below
// 5e-7 (two float32 roundings plus the degree-6 Taylor remainder of ~1.3e-7 on |r| <= ln2/2), vector and scalar
// forms agree, and the clamp below -87 gives a tiny positive number rather than garbage.
import Foundation
@testable import RAda
import XCTest

final class FastExpTests: XCTestCase {
  func testMatchesLibmAcrossTheSoftmaxRange() {
    var worst = 0.0, worstAt: Float = 0
    var x: Float = -87
    while x <= 10 {
      var lanes = SIMD16<Float>()
      for lane in 0..<16 { lanes[lane] = x + Float(lane) * 0.0037 }
      let vector = fastExp(lanes)
      for lane in 0..<16 {
        let exact = exp(Double(lanes[lane]))
        let error = abs(Double(vector[lane]) - exact) / exact
        if error > worst { worst = error; worstAt = lanes[lane] }
        XCTAssertEqual(vector[lane], fastExp(lanes[lane]), "vector and scalar fastExp differ at \(lanes[lane])")
      }
      x += 0.0591
    }
    XCTAssertLessThan(worst, 5e-7, "fastExp relative error \(worst) at x = \(worstAt)")
    XCTAssertEqual(fastExp(Float(0)), 1)
    let clamped = fastExp(Float(-1000))
    XCTAssertTrue(clamped > 0 && clamped < 1e-37, "exp(-1000) clamps to ~e^-87, got \(clamped)")
  }
}
