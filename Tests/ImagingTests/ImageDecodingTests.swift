// ImageDecoder against Pillow 13: Fixtures/preprocess/<name>.decoded.npy holds np.asarray(Image.open(src))
// for every source (see generate_preprocess_cases.py, and generate_cmyk_cases.py for the CMYK / YCCK JPEGs
// listed in cmyk_cases.json). Decoded bytes are compared exactly (same libraries, same unpacking rules), and
// the mode must be Pillow's. Broken inputs must give typed errors naming the file; valid files of a kind we
// cannot decode must say so, never "corrupt". Shape letters: none (image sizes are spelt out).
import Foundation
import Imaging
import Tensor
import XCTest

final class ImageDecodingTests: XCTestCase {
  struct Case: Decodable { var file: String; var size: Int; var mode: String; var width: Int; var height: Int }
  struct Cases: Decodable { var cases: [Case] }

  static func fixtures() throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("preprocess")
  }

  /// list: cases.json (RGB, gray, PNG variants) or cmyk_cases.json (4-component JPEGs).
  static func cases(_ list: String = "cases.json") throws -> [Case] {
    try JSONDecoder().decode(Cases.self, from: Data(contentsOf: fixtures().appendingPathComponent(list))).cases
  }

  func testDecodedBytesAndModesMatchPillow() throws {
    let dir = try Self.fixtures()
    let cases = try Self.cases(), cmykCases = try Self.cases("cmyk_cases.json")
    XCTAssertGreaterThanOrEqual(cases.count, 15)
    XCTAssertGreaterThanOrEqual(cmykCases.count, 4)
    for c in cases + cmykCases {
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

  /// Pillow's convert("RGB") of the whole decoded CMYK image (Convert.c cmyk2rgb on every pixel), exact.
  func testCMYKAndYCCKConvertToRGBAsPillow() throws {
    let dir = try Self.fixtures()
    for c in try Self.cases("cmyk_cases.json") {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(c.file).path)
      XCTAssertEqual(image.mode, .cmyk, c.file)
      let stem = (c.file as NSString).deletingPathExtension
      let expected = try NPYArray.read(path: dir.appendingPathComponent("\(stem).converted.npy").path)
      XCTAssertEqual(expected.shape, [c.height, c.width, 3], c.file)
      let want = expected.ints(), got = ImageCrop.rgb(image).map(Int.init)
      XCTAssertEqual(want.count, got.count, "\(c.file): sample count")
      if let bad = zip(want, got).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
        let mismatches = zip(want, got).filter { $0 != $1 }.count
        XCTFail("\(c.file): \(mismatches) RGB samples differ from Pillow's convert(\"RGB\"); first at flat index "
                + "\(bad.offset): want \(bad.element.0) got \(bad.element.1)")
      }
    }
  }

  /// Every (C, K) byte pair against the real-valued product it approximates: Pillow's integer cmyk2rgb is
  /// (255 - c)(255 - k) / 255 rounded to nearest (no ties: 255 is odd), so a Double reference is exact here.
  func testCMYKToRGBIsTheRoundedProductForEveryBytePair() {
    var mismatches = 0
    for c in 0...255 {
      for k in 0...255 {
        let want = (Double((255 - c) * (255 - k)) / 255).rounded()
        if Double(ImageCrop.cmykToRGB(UInt8(c), UInt8(k))) != want {
          if mismatches == 0 { XCTFail("cmykToRGB(\(c), \(k)) = \(ImageCrop.cmykToRGB(UInt8(c), UInt8(k))), want \(want)") }
          mismatches += 1
        }
      }
    }
    XCTAssertEqual(mismatches, 0)
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
    // Valid files of a kind we cannot decode: the error names the variant and says to convert, never "corrupt".
    func isUnsupported(_ e: ImageError) -> Bool {
      guard case .unsupported = e else { return false }
      return !e.description.contains("corrupt") && e.description.contains("JPEG") && e.description.contains("Convert it")
    }
    assertError(try Data(contentsOf: dir.appendingPathComponent("two_components.jpg")), name: "two_components.jpg") {
      isUnsupported($0) && $0.description.contains("colour space with 2 components")
    }
    assertError(try Data(contentsOf: dir.appendingPathComponent("twelve_bit.jpg")), name: "twelve_bit.jpg") {
      isUnsupported($0) && $0.description.contains("12-bit samples")
    }
    assertError(try Data(contentsOf: dir.appendingPathComponent("lossless.jpg")), name: "lossless.jpg") {
      isUnsupported($0) && $0.description.contains("SOF type 0xc3")
    }
    // Other image formats, often found behind a .jpg name, are named by their magic bytes.
    let webp = Data("RIFF".utf8) + Data([0x24, 0, 0, 0]) + Data("WEBPVP8 ".utf8) + Data(repeating: 0, count: 24)
    assertError(webp, name: "photo_webp.jpg") {
      guard case .unsupported(_, "WebP", _) = $0 else { return false }
      return !$0.description.contains("corrupt") && $0.description.contains("Convert it")
    }
    assertError(Data("GIF89a".utf8) + Data(repeating: 1, count: 20), name: "anim.jpg") {
      if case .unsupported(_, "GIF", _) = $0 { return true }; return false
    }
    assertError(Data("BMxx not a bitmap".utf8), name: "bm.jpg") { if case .unknownFormat = $0 { return true }; return false }
    XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/dir/x.png")) { error in
      guard case ImageError.unreadable(let name, _)? = error as? ImageError else { return XCTFail("\(error)") }
      XCTAssertEqual(name, "/nonexistent/dir/x.png")
    }
  }
}
