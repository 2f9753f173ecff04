// CLIP preprocessing against Pillow 13 + torchvision 0.29 + open_clip 3.3.0 (Fixtures/preprocess, written by
// generate_preprocess_cases.py; the CMYK / YCCK JPEG cases in cmyk_cases.json by generate_cmyk_cases.py, which
// replays the same transform with Pillow + numpy after checking the replay against every torch-made case).
// Resize + crop results are uint8 and compared exactly; the normalised tensor with atol 1e-6 (torch computes
// (v/255 - mean)/std in float32 like we do; 1e-6 only allows for a different operation order).
// Shape letters: none (image sizes are spelt out).
import Foundation
import Imaging
import Tensor
import XCTest

final class PreprocessTests: XCTestCase {
  struct Case: Decodable { var file: String; var size: Int; var mode: String }
  struct ResizeCase: Decodable { var file: String; var width: Int; var height: Int; var expected: String }
  struct Cases: Decodable { var cases: [Case]; var resizes: [ResizeCase] }
  struct CMYKCases: Decodable { var cases: [Case] }

  func load() throws -> (URL, Cases) {
    let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("preprocess")
    return (dir, try JSONDecoder().decode(Cases.self, from: Data(contentsOf: dir.appendingPathComponent("cases.json"))))
  }

  /// The eval-transform cases of cases.json followed by those of cmyk_cases.json.
  func loadAllCases() throws -> (URL, [Case]) {
    let (dir, cases) = try load()
    let cmyk = try JSONDecoder().decode(CMYKCases.self, from: Data(contentsOf: dir.appendingPathComponent("cmyk_cases.json")))
    XCTAssertGreaterThanOrEqual(cmyk.cases.count, 4, "cmyk_cases.json")
    return (dir, cases.cases + cmyk.cases)
  }

  /// Exact comparison with a message naming the case, the mismatch count and the first bad (row, col, channel).
  func assertBytes(_ got: [UInt8], _ expected: NPYArray, _ name: String, width: Int, channels: Int,
                   file: StaticString = #filePath, line: UInt = #line) {
    let want = expected.ints()
    XCTAssertEqual(got.count, want.count, "\(name): element count", file: file, line: line)
    guard let first = zip(want, got).enumerated().first(where: { $0.element.0 != Int($0.element.1) }) else { return }
    let bad = zip(want, got).filter { $0 != Int($1) }.count
    let maxDiff = zip(want, got).map { abs($0 - Int($1)) }.max() ?? 0
    let pixel = first.offset / channels
    XCTFail("\(name): \(bad) of \(want.count) bytes differ (max abs diff \(maxDiff)); first at row \(pixel / width) "
            + "col \(pixel % width) channel \(first.offset % channels): want \(first.element.0) got \(first.element.1)",
            file: file, line: line)
  }

  func testResizeMatchesPillowOnMixedScalings() throws {
    let (dir, cases) = try load()
    XCTAssertGreaterThanOrEqual(cases.resizes.count, 10)
    var verticalFirst = 0
    for r in cases.resizes {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(r.file).path)
      let out = ImageResize.resize(image, width: r.width, height: r.height)
      if ImageResize.isVerticalFirst(width: image.width, height: image.height, toWidth: r.width, toHeight: r.height) {
        verticalFirst += 1
      }
      let expected = try NPYArray.read(path: dir.appendingPathComponent(r.expected).path)
      XCTAssertEqual(expected.shape, [r.height, r.width, image.channels], r.expected)
      assertBytes(out.pixels, expected, r.expected, width: r.width, channels: image.channels)
    }
    // The fixtures must exercise both pass orders, or this test proves nothing about the order rule.
    XCTAssertGreaterThan(verticalFirst, 2)
    XCTAssertLessThan(verticalFirst, cases.resizes.count - 2)
  }

  func testResizeCropMatchesTorchvisionExactly() throws {
    let (dir, cases) = try loadAllCases()
    for c in cases {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(c.file).path)
      let cropped = CLIPPreprocessor(size: c.size).resizeAndCrop(image)
      XCTAssertEqual(cropped.mode.rawValue, c.mode, "\(c.file): mode kept through resize and crop")
      let stem = (c.file as NSString).deletingPathExtension
      let expected = try NPYArray.read(path: dir.appendingPathComponent("\(stem).rgb.npy").path)
      XCTAssertEqual(expected.shape, [c.size, c.size, 3], c.file)
      assertBytes(ImageCrop.rgb(cropped), expected, "\(c.file) resize+crop+RGB", width: c.size, channels: 3)
    }
  }

  func testNormalisedTensorMatchesOpenCLIP() throws {
    let (dir, cases) = try loadAllCases()
    for c in cases {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(c.file).path)
      let preprocess = CLIPPreprocessor(size: c.size)
      let out = FloatBuffer(count: 3 * c.size * c.size)
      preprocess(image, into: out.pointer)
      let stem = (c.file as NSString).deletingPathExtension
      let expected = try NPYArray.read(path: dir.appendingPathComponent("\(stem).tensor.npy").path)
      XCTAssertEqual(expected.shape, [3, c.size, c.size], c.file)
      let want = expected.floats(), got = out.array
      let diffs = zip(want, got).map { abs($0 - $1) }
      let maxDiff = diffs.max() ?? 0
      if maxDiff > 1e-6, let first = diffs.firstIndex(where: { $0 > 1e-6 }) {
        XCTFail("\(c.file) tensor: max abs diff \(maxDiff) > 1e-6; first bad index \(first) (channel "
                + "\(first / (c.size * c.size))): want \(want[first]) got \(got[first])")
      }
    }
  }

  func testResizedSizeAndCenterOffsets() {
    // torchvision: short side -> N, long side int(N * long / short).
    XCTAssertEqual(CLIPPreprocessor.resizedSize(width: 500, height: 375, size: 224).width, 298)  // 298.66 floored
    XCTAssertEqual(CLIPPreprocessor.resizedSize(width: 375, height: 500, size: 224).height, 298)
    XCTAssertEqual(CLIPPreprocessor.resizedSize(width: 33, height: 70, size: 32).height, 67)     // 67.87
    // Python round(): 17.5 -> 18, 16.5 -> 16, 0.5 -> 0, 1.5 -> 2.
    XCTAssertEqual(ImageCrop.centerOffset(67, 32), 18)
    XCTAssertEqual(ImageCrop.centerOffset(65, 32), 16)
    XCTAssertEqual(ImageCrop.centerOffset(33, 32), 0)
    XCTAssertEqual(ImageCrop.centerOffset(35, 32), 2)
    XCTAssertEqual(ImageCrop.centerOffset(48, 32), 8)
  }
}
