// .npy round trips, and a file written by numpy itself (bytes spelled out below, as numpy.save writes them
// for np.array([[1, 2, 3], [4, 5, 6]], dtype='<i8')).
// Shape letters: none.
import Foundation
import Tensor
import XCTest

final class NPYTests: XCTestCase {
  func testRoundTripFloat32KeepsShapeAndValues() throws {
    let array = NPYArray(shape: [2, 3], floats: [1, -2.5, 3, 4e-8, .greatestFiniteMagnitude, 0])
    let encoded = array.encoded()
    XCTAssertEqual((encoded.count - array.data.count) % 64, 0, "header must be padded to 64 bytes")
    let back = try NPYArray.parse(encoded)
    XCTAssertEqual(back.shape, [2, 3])
    XCTAssertEqual(back.floats(), array.floats())
  }

  func testReadsNumpyInt64File() throws {
    let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }"
    var text = header + String(repeating: " ", count: 128 - 10 - header.count - 1) + "\n"
    text = String(text.prefix(118))
    var file = Data([0x93] + Array("NUMPY".utf8) + [1, 0, 118, 0]) + Data(text.utf8)
    for v: Int64 in [1, 2, 3, 4, 5, 6] { withUnsafeBytes(of: v.littleEndian) { file.append(contentsOf: $0) } }
    let array = try NPYArray.parse(file)
    XCTAssertEqual(array.shape, [2, 3])
    XCTAssertEqual(array.ints(), [1, 2, 3, 4, 5, 6])
  }

  func testRejectsTruncatedAndForeignFiles() {
    let good = NPYArray(shape: [4], floats: [1, 2, 3, 4]).encoded()
    XCTAssertThrowsError(try NPYArray.parse(good.prefix(good.count - 1))) { error in
      XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
    }
    XCTAssertThrowsError(try NPYArray.parse(Data("PK\u{3}\u{4}not numpy".utf8)))
    XCTAssertThrowsError(try NPYArray.read(path: "/nonexistent/x.npy")) { error in
      XCTAssertTrue("\(error)".contains("/nonexistent/x.npy"))
    }
  }
}
