// Input safety in the Tensor module: checked size arithmetic, bounded file reads, and safetensors / .npy headers
// whose shapes overflow, are negative or are not integers (each refused with the file named, never a trap).
// Shape letters: none.
import Foundation
import Tensor
import XCTest

final class InputLimitsTests: XCTestCase {
  func testCheckedArithmeticReturnsNilWhereSwiftWouldTrap() {
    XCTAssertEqual(Checked.product([2, 3, 4]), 24)
    XCTAssertEqual(Checked.product([Int]()), 1)
    XCTAssertEqual(Checked.product([0, Int.max]), 0)
    XCTAssertNil(Checked.product([1 << 32, 1 << 32]))
    XCTAssertNil(Checked.product([3, -1]))
    XCTAssertNil(Checked.multiply(Int.max, 2))
    XCTAssertNil(Checked.add(Int.max, 1))
    XCTAssertEqual(Checked.sum([1, 2, 3]), 6)
    XCTAssertNil(Checked.sum([Int.max, 1]))
    XCTAssertEqual(Checked.integer(3.0), 3)
    XCTAssertEqual(Checked.integer(-7.0), -7)
    for bad in [Double.nan, .infinity, -.infinity, 1e300, 2.5, 9.3e18] { XCTAssertNil(Checked.integer(bad), "\(bad)") }
    XCTAssertNil(Checked.integer(5.0, in: 0...4))
  }

  func testJSONIntegersAreExactAndBooleansAndFractionsAreRefused() throws {
    let json = #"{"i": 3, "big": 9223372036854775807, "huge": 18446744073709551615, "f": 2.5, "e": 1e300,"#
      + #" "whole": 4.0, "t": true, "s": "3", "neg": -2}"#
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    XCTAssertEqual(Checked.integer(json: object["i"]), 3)
    XCTAssertEqual(Checked.integer(json: object["big"]), Int.max)
    XCTAssertEqual(Checked.integer(json: object["whole"]), 4)
    XCTAssertEqual(Checked.integer(json: object["neg"]), -2)
    XCTAssertNil(Checked.integer(json: object["neg"], in: 0...10))
    for key in ["huge", "f", "e", "t", "s", "missing"] { XCTAssertNil(Checked.integer(json: object[key]), key) }
  }

  func testBoundedReadRefusesLargeFilesDevicesAndMissingFiles() throws {
    let path = NSTemporaryDirectory() + "rada-bounded-\(getpid())"
    defer { unlink(path) }
    try Data(repeating: 65, count: 100).write(to: URL(fileURLWithPath: path))
    XCTAssertEqual(try BoundedFile.read(path, limit: 100, what: "a test file").count, 100)
    XCTAssertThrowsError(try BoundedFile.read(path, limit: 99, what: "a test file")) { error in
      XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("99-byte limit"), "\(error)")
    }
    XCTAssertThrowsError(try BoundedFile.read("/dev/zero", limit: 10, what: "a test file")) { error in
      XCTAssertTrue("\(error)".contains("/dev/zero") && "\(error)".contains("not a regular file"), "\(error)")
    }
    XCTAssertThrowsError(try BoundedFile.read(path + "-missing", limit: 10, what: "a test file")) { error in
      XCTAssertTrue("\(error)".contains(path + "-missing"), "\(error)")
    }
  }

  func testFirstNonFiniteFindsTheFirstBadElement() {
    let values: [Float] = [1, 2, .nan, .infinity]
    values.withUnsafeBufferPointer { buffer in
      let found = firstNonFinite(buffer.baseAddress!, count: 4)
      XCTAssertEqual(found?.index, 2)
      XCTAssertNil(firstNonFinite(buffer.baseAddress!, count: 2))
    }
  }

  func safetensors(_ header: String, data: [UInt8] = []) -> Data {
    var out = Data()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: Array(header.utf8))
    out.append(contentsOf: data)
    return out
  }

  func testSafetensorsShapesThatOverflowOrAreNotSizesAreRefused() {
    let path = "/data/hostile.safetensors"
    let headers = [
      #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#,
      #"{"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}}"#,
      #"{"w": {"dtype": "F8_E5M2", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 0]}}"#,
      #"{"w": {"dtype": "F8_E5M2", "shape": [1000], "data_offsets": [0, 4]}}"#,
      #"{"w": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}"#,
      #"{"w": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 4]}}"#,
      #"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#,
      #"{"w": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}"#,
      #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e300]}}"#,
      #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 4]}}"#,
    ]
    for header in headers {
      XCTAssertThrowsError(try SafetensorsFile(data: safetensors(header, data: Array(repeating: 0, count: 16)), path: path),
                           header) { error in
        XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("'w'"), "\(header): \(error)")
      }
    }
    // A zero dimension makes an empty tensor whatever the other sizes say; it is valid and reads as [].
    let empty = safetensors(#"{"w": {"dtype": "F32", "shape": [0, 4611686018427387904], "data_offsets": [0, 0]}}"#)
    XCTAssertEqual(try SafetensorsFile(data: empty, path: path).floats("w"), [])
  }

  func npy(shape: String, descr: String = "<f4", body: Int = 16) -> Data {
    let header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }\n"
    var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    out.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
    out.append(contentsOf: Array(header.utf8))
    out.append(Data(repeating: 0, count: body))
    return out
  }

  func testNPYShapesThatAreNegativeOverflowOrNotIntegersAreRefused() throws {
    XCTAssertEqual(try NPYArray.parse(npy(shape: "(2, 2)"), path: "a.npy").shape, [2, 2])
    XCTAssertEqual(try NPYArray.parse(npy(shape: "(4,)"), path: "a.npy").shape, [4])
    for shape in ["(-1, 4)", "(4294967296, 4294967296)", "(9223372036854775807, 2)", "(2.5,)", "(a, 2)",
                  "(99999999999999999999999,)", "(1e300,)"] {
      XCTAssertThrowsError(try NPYArray.parse(npy(shape: shape), path: "/data/hostile.npy"), shape) { error in
        XCTAssertTrue("\(error)".contains("/data/hostile.npy"), "\(shape): \(error)")
      }
    }
    // Float values that are not integers never trap when asked for as Int.
    let floats = NPYArray(shape: [3], floats: [.nan, .infinity, 2.9])
    XCTAssertEqual(floats.ints(), [Int.min, Int.min, 2])
  }
}

final class CheckedReadTests: XCTestCase {
  func testReadIntoASlotRefusesOtherSizesAndNonFiniteValues() throws {
    let values: [Float] = [1, 2, .nan, 4]
    let data = values.withUnsafeBufferPointer {
      SafetensorsWriter.encode([.init(name: "w", shape: [4], values: $0.baseAddress!),
                                .init(name: "v", shape: [2], values: $0.baseAddress!)])
    }
    let file = try SafetensorsFile(data: data, path: "/runs/x/params.safetensors")
    var slot = [Float](repeating: 7, count: 3)
    XCTAssertThrowsError(try slot.withUnsafeMutableBufferPointer { try file.read("w", into: $0.baseAddress!, count: 3) }) { error in
      XCTAssertTrue("\(error)".contains("'w'") && "\(error)".contains("4 elements where 3"), "\(error)")
    }
    XCTAssertEqual(slot, [7, 7, 7], "nothing written before the size is checked")
    var four = [Float](repeating: 0, count: 4)
    XCTAssertThrowsError(try four.withUnsafeMutableBufferPointer { try file.read("w", into: $0.baseAddress!, count: 4) }) { error in
      XCTAssertTrue("\(error)".contains("element 2") && "\(error)".contains("params.safetensors"), "\(error)")
    }
    var two = [Float](repeating: 0, count: 2)
    try two.withUnsafeMutableBufferPointer { try file.read("v", into: $0.baseAddress!, count: 2) }
    XCTAssertEqual(two, [1, 2])
  }
}
