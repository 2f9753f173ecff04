// ImageDecoder against Pillow 13: Fixtures/preprocess/<name>.decoded.npy holds np.asarray(Image.open(src))
// for every source (see generate_preprocess_cases.py). Decoded bytes are compared exactly (same libraries,
// same unpacking rules), and the mode must be Pillow's. Broken inputs must give typed errors naming the file.
import CLIP
import Foundation
import Tensor
import XCTest

final class ImageDecodingTests: XCTestCase {
  struct Case: Decodable { var file: String; var size: Int; var mode: String; var width: Int; var height: Int }
  struct Cases: Decodable { var cases: [Case] }

  static func fixtures() throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("preprocess")
  }

  static func cases() throws -> [Case] {
    try JSONDecoder().decode(Cases.self, from: Data(contentsOf: fixtures().appendingPathComponent("cases.json"))).cases
  }

  func testDecodedBytesAndModesMatchPillow() throws {
    let dir = try Self.fixtures()
    let cases = try Self.cases()
    XCTAssertGreaterThanOrEqual(cases.count, 15)
    for c in cases {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(c.file).path)
      XCTAssertEqual(image.mode.rawValue, c.mode, "\(c.file): mode")
      XCTAssertEqual(image.width, c.width, "\(c.file): width")
      XCTAssertEqual(image.height, c.height, "\(c.file): height")
      let stem = (c.file as NSString).deletingPathExtension
      let expected = try NPYArray.read(path: dir.appendingPathComponent("\(stem).decoded.npy").path)
      let got = image.mode == .gray16 ? image.samples16.map(Int.init) : image.pixels.map(Int.init)
      XCTAssertEqual(expected.count, got.count, "\(c.file): sample count")
      let want = expected.ints()
      if let bad = zip(want, got).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
        let mismatches = zip(want, got).filter { $0 != $1 }.count
        XCTFail("\(c.file): \(mismatches) samples differ from Pillow; first at flat index \(bad.offset): "
                + "want \(bad.element.0) got \(bad.element.1)")
      }
    }
  }

  func testFormatComesFromMagicBytesNotExtension() throws {
    let dir = try Self.fixtures()
    let png = try Data(contentsOf: dir.appendingPathComponent("rgb_down.png"))
    let jpeg = try Data(contentsOf: dir.appendingPathComponent("jpeg_rgb.jpg"))
    XCTAssertEqual(ImageDecoder.format(of: png), .png)
    XCTAssertEqual(ImageDecoder.format(of: jpeg), .jpeg)
    // A PNG named .jpg decodes as PNG.
    let image = try ImageDecoder.decode(data: png, name: "misnamed.jpg")
    XCTAssertEqual(image.mode, .rgb)
    XCTAssertEqual(image.width, 67)
  }

  func assertError(_ data: Data, name: String, _ check: (ImageError) -> Bool, file: StaticString = #filePath,
                   line: UInt = #line) {
    do {
      _ = try ImageDecoder.decode(data: data, name: name)
      XCTFail("\(name): decoding should fail", file: file, line: line)
    } catch let error as ImageError {
      XCTAssertTrue(check(error), "\(name): unexpected error \(error)", file: file, line: line)
      XCTAssertTrue(error.description.contains(name), "\(name): message must name the file: \(error)", file: file, line: line)
      XCTAssertTrue(error.description.hasSuffix("."), "message should end with a hint: \(error)", file: file, line: line)
    } catch {
      XCTFail("\(name): untyped error \(error)", file: file, line: line)
    }
  }

  func testBrokenInputsGiveTypedErrors() throws {
    let dir = try Self.fixtures()
    let png = try Data(contentsOf: dir.appendingPathComponent("rgb_down.png"))
    let jpeg = try Data(contentsOf: dir.appendingPathComponent("jpeg_rgb.jpg"))
    assertError(Data(), name: "empty.png") { if case .empty = $0 { return true }; return false }
    assertError(Data("hello, not an image".utf8), name: "text.jpg") { if case .unknownFormat = $0 { return true }; return false }
    func isCorrupt(_ e: ImageError) -> Bool { if case .corrupt = e { return true }; return false }
    assertError(png.prefix(png.count / 2), name: "truncated.png", isCorrupt)
    assertError(jpeg.prefix(jpeg.count / 2), name: "truncated.jpg", isCorrupt)
    assertError(png.prefix(8), name: "signature_only.png", isCorrupt)
    assertError(jpeg.prefix(3), name: "soi_only.jpg", isCorrupt)
    var garbled = png
    for i in 40..<min(140, garbled.count) { garbled[garbled.startIndex + i] ^= 0x5A }
    assertError(garbled, name: "garbled.png", isCorrupt)
    XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/dir/x.png")) { error in
      guard case ImageError.unreadable(let name, _)? = error as? ImageError else { return XCTFail("\(error)") }
      XCTAssertEqual(name, "/nonexistent/dir/x.png")
    }
  }
}
