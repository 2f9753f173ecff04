// Training augmentation with torchvision semantics: RandomResizedCrop(size, scale, ratio, bicubic) ->
// RandomHorizontalFlip(0.5) -> RGB -> ToTensor -> Normalize, and the test-time-training views (view 0 the plain
// eval transform, views 1..<views random crops + flips). The randomness is our SeededRNG seeded with
// derivedSeed(seed, epoch, sampleIndex), so a sample's crop never depends on rank count or threads; the pixels
// follow torchvision's resized_crop (crop, then Pillow bicubic to size x size). Output (3, size, size) per view.
// Shape letters: none (size = the model's imageSize; views and channels are spelt out).
import Imaging
import Foundation
import Tensor

/// A crop box in pixels: rows top..<top+height, columns left..<left+width (torchvision's i, j, h, w).
public struct CropBox: Equatable, Sendable, CustomStringConvertible {
  public var top: Int, left: Int, height: Int, width: Int
  public init(top: Int, left: Int, height: Int, width: Int) {
    self.top = top; self.left = left; self.height = height; self.width = width
  }
  public var description: String { "(top \(top), left \(left), height \(height), width \(width))" }
}

/// torchvision.transforms.RandomResizedCrop's box sampling.
public struct RandomResizedCrop: Sendable {
  public var scale: ClosedRange<Double>
  public var ratio: ClosedRange<Double>
  /// torchvision tries this many random boxes before falling back to a center crop.
  public static let attempts = 10

  public init(scale: ClosedRange<Double> = 0.08...1.0, ratio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0)) {
    self.scale = scale; self.ratio = ratio
  }

  /// Python's round(): half to even.
  @inline(__always)
  static func roundHalfEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

  /// One box for an image of width x height (torchvision get_params, with our RNG): up to 10 tries of
  /// area ~ U(scale) * area and log-ratio ~ U(log ratio); then the fallback.
  public func sampleBox(width: Int, height: Int, rng: inout SeededRNG) -> CropBox {
    let area = Double(width * height)
    let logLow = log(ratio.lowerBound), logHigh = log(ratio.upperBound)
    for _ in 0..<Self.attempts {
      let targetArea = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * rng.uniformDouble())
      let aspect = exp(logLow + (logHigh - logLow) * rng.uniformDouble())
      let w = Self.roundHalfEven((targetArea * aspect).squareRoot())
      let h = Self.roundHalfEven((targetArea / aspect).squareRoot())
      if w > 0 && w <= width && h > 0 && h <= height {
        let top = rng.int(below: height - h + 1)
        let left = rng.int(below: width - w + 1)
        return CropBox(top: top, left: left, height: h, width: w)
      }
    }
    return fallbackBox(width: width, height: height)
  }

  /// The fallback: a center crop of the whole image with its ratio clamped into `ratio`.
  public func fallbackBox(width: Int, height: Int) -> CropBox {
    let inRatio = Double(width) / Double(height)
    var w = width, h = height
    if inRatio < ratio.lowerBound {
      h = Self.roundHalfEven(Double(w) / ratio.lowerBound)
    } else if inRatio > ratio.upperBound {
      w = Self.roundHalfEven(Double(h) * ratio.upperBound)
    }
    return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
  }
}

/// RandomResizedCrop + RandomHorizontalFlip + normalisation for training, and the TTT views.
public struct Augmentation: Sendable {
  public let preprocessor: CLIPPreprocessor
  public var crop: RandomResizedCrop
  public var flipProbability: Double

  public var size: Int { preprocessor.size }

  public init(preprocessor: CLIPPreprocessor, crop: RandomResizedCrop = RandomResizedCrop(),
              flipProbability: Double = 0.5) {
    self.preprocessor = preprocessor; self.crop = crop; self.flipProbability = flipProbability
  }

  /// torchvision resized_crop: crop the box, then resize to size x size with Pillow bicubic (in the image's mode).
  /// -> (size, size, channels) in the decoded mode.
  public func resizedCrop(_ image: DecodedImage, box: CropBox) -> DecodedImage {
    let cropped = ImageCrop.crop(image, top: box.top, left: box.left, height: box.height, width: box.width)
    return ImageResize.resize(cropped, width: size, height: size)
  }

  /// The random choices for one view: the box, then the flip (one uniform draw, flip when < p).
  public func sample(width: Int, height: Int, rng: inout SeededRNG) -> (box: CropBox, flipped: Bool) {
    let box = crop.sampleBox(width: width, height: height, rng: &rng)
    let flipped = rng.uniformDouble() < flipProbability
    return (box, flipped)
  }

  /// One training view of sample `sampleIndex` in `epoch`. out: (3, size, size)
  public func callAsFunction(_ image: DecodedImage, seed: UInt64, epoch: Int, sampleIndex: Int,
                             into out: MutableFloats) {
    var rng = SeededRNG(seed: derivedSeed(seed, UInt64(epoch), UInt64(sampleIndex)))
    let (box, flipped) = sample(width: image.width, height: image.height, rng: &rng)
    preprocessor.normalize(resizedCrop(image, box: box), flipped: flipped, into: out)
  }

  /// Test-time-training views: view 0 is the plain eval transform, views 1..<count are random resized crops
  /// and flips drawn from derivedSeed(seed, sampleIndex, view). out: (count, 3, size, size)
  public func tttViews(_ image: DecodedImage, count: Int, seed: UInt64, sampleIndex: Int, into out: MutableFloats) {
    precondition(count >= 1, "tttViews: count must be at least 1")
    let viewLength = 3 * size * size
    preprocessor(image, into: out)
    for view in 1..<max(count, 1) {
      var rng = SeededRNG(seed: derivedSeed(seed, UInt64(sampleIndex), UInt64(view), 0x7474_7476))  // "tttv"
      let (box, flipped) = sample(width: image.width, height: image.height, rng: &rng)
      preprocessor.normalize(resizedCrop(image, box: box), flipped: flipped, into: out + view * viewLength)
    }
  }
}
