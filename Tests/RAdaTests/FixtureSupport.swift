// Reading the fixtures written by Fixtures/generate_rada_fixtures.py and comparing arrays with a report that
// names the tensor, the worst difference and the first index beyond tolerance.
// Shape letters: none (fixture arrays carry their shapes).
import Foundation
import RAda
import Tensor
import XCTest

enum Fixture {
  static var directory: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

  static func array(_ name: String) throws -> NPYArray {
    try NPYArray.read(path: directory.appendingPathComponent(name + ".npy").path)
  }

  static func json(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: directory.appendingPathComponent(name + ".json"))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
  }
}

/// Asserts |actual - expected| <= tolerance(expected) elementwise; reports max abs diff and first bad index.
func assertClose(_ actual: [Float], _ expected: [Float], _ what: String, tolerance: (Float) -> Float,
                 file: StaticString = #filePath, line: UInt = #line) {
  guard actual.count == expected.count else {
    XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line); return
  }
  var worst: Float = 0, firstBad = -1
  for i in 0..<actual.count {
    let diff = abs(actual[i] - expected[i])
    if !(diff <= worst) { worst = diff }
    if !(diff <= tolerance(expected[i])) && firstBad < 0 { firstBad = i }
  }
  if firstBad >= 0 {
    XCTFail("\(what): max abs diff \(worst); first bad index \(firstBad): got \(actual[firstBad]), "
              + "expected \(expected[firstBad])", file: file, line: line)
  }
}

func maxAbs(_ values: [Float]) -> Float { values.reduce(0) { max($0, abs($1)) } }
