// Augmentation: the crop-box sampler is checked against torchvision's rules directly (bounds on area and
// ratio, the fallback box, determinism per seed); the pixels of resized_crop for fixed boxes against
// torchvision 0.29 + Pillow 13 fixtures (Tests/ImagingTests/Fixtures/preprocess, generate_preprocess_cases.py, and
// generate_cmyk_cases.py's replay for CMYK / YCCK JPEGs), exactly, since they are uint8 from the same integer
// arithmetic. Shape letters: none (image sizes are spelt out).
import Foundation
import Imaging
import Tensor
import XCTest
@testable import Data

final class AugmentationTests: XCTestCase {
  static let preprocessDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../ImagingTests/Fixtures/preprocess").standardized

  struct CropCase: Decodable { var file: String; var top: Int; var left: Int; var height: Int; var width: Int
    var size: Int; var expected: String }
  struct Cases: Decodable { var crops: [CropCase] }

  func testSampledBoxesRespectScaleAndRatio() {
    let crop = RandomResizedCrop()
    var fallbacks = 0
    for sample in 0..<2000 {
      var rng = SeededRNG(seed: derivedSeed(7, 0, UInt64(sample)))
      let (width, height) = (50 + sample % 300, 40 + (sample * 7) % 260)
      let box = crop.sampleBox(width: width, height: height, rng: &rng)
      XCTAssertTrue(box.top >= 0 && box.left >= 0 && box.top + box.height <= height && box.left + box.width <= width,
                    "sample \(sample): box \(box) outside \(width)x\(height)")
      let inRatio = Double(width) / Double(height)
      if box == crop.fallbackBox(width: width, height: height) {
        if inRatio >= 0.8 && inRatio <= 1.25 { fallbacks += 1 }
        continue
      }
      // A sampled box comes from sqrt(area * r) rounded, so its area/ratio may miss the bounds by rounding only:
      // allow one pixel of rounding on each side.
      let area = Double(width * height)
      let minArea = Double(max(box.width - 1, 0) * max(box.height - 1, 0))
      let maxArea = Double((box.width + 1) * (box.height + 1))
      XCTAssertLessThanOrEqual(minArea, area * 1.0, "sample \(sample): \(box)")
      XCTAssertGreaterThanOrEqual(maxArea, area * 0.08, "sample \(sample): \(box) too small for \(width)x\(height)")
      let lowRatio = Double(box.width - 1) / Double(box.height + 1), highRatio = Double(box.width + 1) / Double(max(box.height - 1, 1))
      XCTAssertLessThanOrEqual(lowRatio, 4.0 / 3.0, "sample \(sample): \(box) ratio")
      XCTAssertGreaterThanOrEqual(highRatio, 3.0 / 4.0, "sample \(sample): \(box) ratio")
    }
    // For near-square images a try misses with probability < 0.5, so 10 misses (the fallback) should be
    // rarer than 1e-3 per sample; a whole-image draw equal to the fallback box is rarer still.
    XCTAssertLessThanOrEqual(fallbacks, 2)
  }

  func testFallbackWhenBoundsAreImpossible() {
    // Scale above 1 makes every try fail (area larger than the image), so the fallback must be taken.
    let crop = RandomResizedCrop(scale: 1.5...2.0)
    var rng = SeededRNG(seed: 1)
    // Wide image 300x60: ratio 5 > 4/3 -> h = 60, w = round(60 * 4/3) = 80, centered: left (300-80)//2 = 110.
    XCTAssertEqual(crop.sampleBox(width: 300, height: 60, rng: &rng), CropBox(top: 0, left: 110, height: 60, width: 80))
    // Tall 50x200: ratio 0.25 < 3/4 -> w = 50, h = round(50 / 0.75) = 67 (66.67), top (200-67)//2 = 66.
    XCTAssertEqual(crop.sampleBox(width: 50, height: 200, rng: &rng), CropBox(top: 66, left: 0, height: 67, width: 50))
    // In-range ratio: the whole image.
    XCTAssertEqual(crop.sampleBox(width: 100, height: 90, rng: &rng), CropBox(top: 0, left: 0, height: 90, width: 100))
  }

  func testSameSeedSameCropDifferentSampleDifferentCrop() {
    let augmentation = Augmentation(preprocessor: CLIPPreprocessor(size: 32))
    func draw(_ seed: UInt64, _ epoch: Int, _ index: Int) -> (CropBox, Bool) {
      var rng = SeededRNG(seed: derivedSeed(seed, UInt64(epoch), UInt64(index)))
      let s = augmentation.sample(width: 400, height: 300, rng: &rng)
      return (s.box, s.flipped)
    }
    XCTAssertEqual(draw(3, 1, 17).0, draw(3, 1, 17).0)
    XCTAssertEqual(draw(3, 1, 17).1, draw(3, 1, 17).1)
    let distinct = Set((0..<50).map { "\(draw(3, 1, $0).0)" })
    XCTAssertGreaterThan(distinct.count, 45, "different samples should get different boxes")
    let flips = (0..<400).filter { draw(5, 0, $0).1 }.count
    XCTAssertTrue((150...250).contains(flips), "flip rate \(flips)/400 should be near 1/2")
  }

  func testResizedCropPixelsMatchTorchvision() throws {
    let dir = Self.preprocessDir
    let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: dir.appendingPathComponent("cases.json")))
    let cmyk = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: dir.appendingPathComponent("cmyk_cases.json")))
    XCTAssertGreaterThanOrEqual(cases.crops.count, 6)
    XCTAssertGreaterThanOrEqual(cmyk.crops.count, 3)
    for c in cases.crops + cmyk.crops {
      let image = try ImageDecoder.decode(path: dir.appendingPathComponent(c.file).path)
      let augmentation = Augmentation(preprocessor: CLIPPreprocessor(size: c.size))
      let out = augmentation.resizedCrop(image, box: CropBox(top: c.top, left: c.left, height: c.height, width: c.width))
      let got = ImageCrop.rgb(out)
      let want = try NPYArray.read(path: dir.appendingPathComponent(c.expected).path).ints()
      XCTAssertEqual(got.count, want.count, c.expected)
      if let first = zip(want, got).enumerated().first(where: { $0.element.0 != Int($0.element.1) }) {
        let bad = zip(want, got).filter { $0 != Int($1) }.count
        XCTFail("\(c.expected): \(bad) bytes differ; first at flat index \(first.offset): "
                + "want \(first.element.0) got \(first.element.1)")
      }
    }
  }

  func testFlipAndTTTViews() throws {
    let image = try ImageDecoder.decode(path: Self.preprocessDir.appendingPathComponent("rgb_down.png").path)
    let n = 32, plane = n * n
    let augmentation = Augmentation(preprocessor: CLIPPreprocessor(size: n))
    // Flipped normalisation mirrors each row exactly.
    let square = augmentation.resizedCrop(image, box: CropBox(top: 0, left: 0, height: 50, width: 50))
    let plain = FloatBuffer(count: 3 * plane), mirrored = FloatBuffer(count: 3 * plane)
    augmentation.preprocessor.normalize(square, flipped: false, into: plain.pointer)
    augmentation.preprocessor.normalize(square, flipped: true, into: mirrored.pointer)
    for c in 0..<3 { for y in 0..<n { for x in 0..<n {
      XCTAssertEqual(plain[c * plane + y * n + x], mirrored[c * plane + y * n + (n - 1 - x)])
    } } }
    // TTT: view 0 equals the eval transform; other views are deterministic and differ from view 0.
    let views = FloatBuffer(count: 4 * 3 * plane), again = FloatBuffer(count: 4 * 3 * plane)
    augmentation.tttViews(image, count: 4, seed: 11, sampleIndex: 2, into: views.pointer)
    augmentation.tttViews(image, count: 4, seed: 11, sampleIndex: 2, into: again.pointer)
    let eval = FloatBuffer(count: 3 * plane)
    augmentation.preprocessor(image, into: eval.pointer)
    XCTAssertEqual(Array(views.array[0..<(3 * plane)]), eval.array, "view 0 must be the eval transform")
    XCTAssertEqual(views.array, again.array, "same seed, same views")
    for v in 1..<4 {
      XCTAssertNotEqual(Array(views.array[(v * 3 * plane)..<((v + 1) * 3 * plane)]), eval.array, "view \(v)")
    }
  }
}
