// The polynomial exp the attention softmax uses (Kernels.fastExp, 16 lanes) against Foundation's exp in Double
// over the softmax range: relative error below 5e-7 (two float32 roundings plus the polynomial's fit error),
// vector and scalar forms agree lane by lane, and inputs below -87 give exactly 0.
// Shape letters: none.
import Foundation
import Kernels
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
    XCTAssertEqual(fastExp(Float(-1000)), 0)
    XCTAssertEqual(fastExp(SIMD16<Float>(repeating: -1000)), SIMD16<Float>(repeating: 0))
  }
}
