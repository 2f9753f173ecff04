// safetensors: a file written by python's safetensors library (Fixtures/safetensors, generator beside it),
// round trips through our writer, and every header/offset error naming the file and tensor.
// Shape letters: none.
import Foundation
import Tensor
import XCTest

final class SafetensorsTests: XCTestCase {
  func fixturePath() throws -> String {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return url.appendingPathComponent("safetensors/python_written.safetensors").path
  }

  func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "rada-safetensors-\(getpid())-\(name)"
  }

  /// Header bytes + data bytes as safetensors lays them out (no padding needed by the format).
  func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    var out = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(header.utf8.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: Array(header.utf8))
    out.append(contentsOf: data)
    return out
  }

  func testReadsEveryFloatDTypeWrittenByPython() throws {
    let file = try SafetensorsFile(path: fixturePath())
    let expected: [Float] = [1, -2.5, 0.125, 1024, -0, 3]
    XCTAssertEqual(file.metadata, ["format": "pt", "note": "rada fixture"])
    XCTAssertEqual(Set(file.names), ["a.f32", "b.f16", "c.bf16", "d.f64", "e.i64", "f.scalar"])
    for name in ["a.f32", "b.f16", "c.bf16"] {
      XCTAssertEqual(file[name]?.shape, [2, 3], name)
      XCTAssertEqual(try file.floats(name), expected, name)
      XCTAssertEqual(try file.floats(name)[4].sign, .minus, "\(name): -0 keeps its sign")
    }
    XCTAssertEqual(file["d.f64"]?.shape, [3, 2])
    XCTAssertEqual(try file.floats("d.f64"), expected)
    XCTAssertEqual(file["f.scalar"]?.shape, [])
    XCTAssertEqual(try file.floats("f.scalar"), [2.75])
    XCTAssertThrowsError(try file.floats("e.i64")) { error in
      let text = "\(error)"
      XCTAssertTrue(text.contains("e.i64") && text.contains("I64") && text.contains("python_written"), text)
    }
    XCTAssertEqual(try file.ints("e.i64"), [0, 1, 2, 3])
    XCTAssertThrowsError(try file.ints("a.f32")) { XCTAssertTrue("\($0)".contains("a.f32")) }
    XCTAssertThrowsError(try file.floats("nope")) { XCTAssertTrue("\($0)".contains("nope")) }
  }

  func testHalfConversionCoversSubnormalsAndSpecials() {
    XCTAssertEqual(floatFromHalfBits(0x0001), Float(5.960464477539063e-08))  // smallest subnormal 2^-24
    XCTAssertEqual(floatFromHalfBits(0x3C00), 1)
    XCTAssertEqual(floatFromHalfBits(0xC000), -2)
    XCTAssertEqual(floatFromHalfBits(0x7BFF), 65504)
    XCTAssertEqual(floatFromHalfBits(0x7C00), .infinity)
    XCTAssertTrue(floatFromHalfBits(0x7E00).isNaN)
  }

  func testRoundTripThroughWriterKeepsNamesShapesValuesAndMetadata() throws {
    let a: [Float] = (0..<12).map { Float($0) * 0.37 - 2 }
    let b: [Float] = [Float.greatestFiniteMagnitude, -Float(bitPattern: 71362), 7]  // a subnormal (about -1e-40)
    let path = temporaryPath("roundtrip.safetensors")
    defer { unlink(path) }
    try a.withUnsafeBufferPointer { pa in
      try b.withUnsafeBufferPointer { pb in
        try SafetensorsWriter.write([.init(name: "z.first", shape: [3, 4], values: pa.baseAddress!),
                                     .init(name: "a.second", shape: [3], values: pb.baseAddress!)],
                                    metadata: ["format": "rada"], to: path)
      }
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp-\(getpid())"), "temporary file must be renamed")
    let header = try Data(contentsOf: URL(fileURLWithPath: path))
    let length = header.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    XCTAssertEqual(length % 8, 0, "header padded to 8 bytes like python safetensors")
    let file = try SafetensorsFile(path: path)
    XCTAssertEqual(file.names, ["z.first", "a.second"], "data order is the order written")
    XCTAssertEqual(file["z.first"]?.shape, [3, 4])
    XCTAssertEqual(try file.floats("z.first"), a)
    XCTAssertEqual(try file.floats("a.second"), b)
    XCTAssertEqual(file.metadata, ["format": "rada"])
  }

  func testErrorsNameFileAndTensor() {
    let path = "/tmp/some/model.safetensors"
    func expectError(_ data: Data, _ fragments: [String], line: UInt = #line) {
      XCTAssertThrowsError(try SafetensorsFile(data: data, path: path), line: line) { error in
        let text = "\(error)"
        for f in fragments + [path] { XCTAssertTrue(text.contains(f), "'\(f)' missing in: \(text)", line: line) }
      }
    }
    expectError(Data([1, 2, 3]), ["truncated"])
    expectError(file(header: "{}", declaredLength: 200_000_000), ["100 MB"])
    expectError(file(header: "{}", declaredLength: 50), ["truncated", "header says 50"])
    expectError(file(header: "{\"a\": {\"dtype\": \"F32\""), ["not valid JSON"])
    expectError(file(header: "[1, 2]"), ["not a JSON object"])
    expectError(file(header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, data: [0, 0, 0, 0]),
                ["'w'", "end 8 beyond the 4 data bytes"])
    expectError(file(header: #"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: Array(repeating: 0, count: 12)),
                ["'w'", "needs 12"])
    expectError(file(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#, data: Array(repeating: 0, count: 12)),
                ["'w'", "begin 8 after end 4"])
    expectError(file(header: #"{"w": {"dtype": "F32", "shape": [1]}}"#), ["'w'", "data_offsets"])
    XCTAssertThrowsError(try SafetensorsFile(path: "/nonexistent/dir/x.safetensors")) { error in
      XCTAssertTrue("\(error)".contains("/nonexistent/dir/x.safetensors"), "\(error)")
    }
    // An unknown dtype is listed and only fails when read, naming the tensor.
    let odd = file(header: #"{"q": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}"#, data: [0, 0])
    XCTAssertNoThrow(try SafetensorsFile(data: odd, path: path))
    XCTAssertThrowsError(try SafetensorsFile(data: odd, path: path).floats("q")) { error in
      XCTAssertTrue("\(error)".contains("'q'") && "\(error)".contains("F8_E4M3"), "\(error)")
    }
  }

  func testTruncatedPythonFileIsRejected() throws {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: fixturePath()))
    XCTAssertThrowsError(try SafetensorsFile(data: bytes.prefix(bytes.count - 3), path: "cut.safetensors")) { error in
      XCTAssertTrue("\(error)".contains("cut.safetensors") && "\(error)".contains("beyond"), "\(error)")
    }
  }
}

final class SafetensorsHalfTests: XCTestCase {
  /// F16 storage rounds to the nearest half (values exactly representable come back exactly; others within
  /// half's relative precision 2^-11) and is read back as f32 by our reader.
  func testF16WriteReadsBackRounded() throws {
    let values: [Float] = [0, 1, -2.5, 65504, 1e-3, 0.1, -3.14159]
    let buffer = FloatBuffer(values)
    let data = SafetensorsWriter.encode([.init(name: "x", shape: [7], values: buffer.readOnly)], storage: .f16)
    let file = try SafetensorsFile(data: data)
    XCTAssertEqual(file["x"]?.dtype, "F16")
    let back = try file.floats("x")
    XCTAssertEqual(Array(back[0..<4]), [0, 1, -2.5, 65504])
    for i in 4..<7 { XCTAssertEqual(back[i], values[i], accuracy: abs(values[i]) * 4.9e-4, "value \(i)") }
  }
}
