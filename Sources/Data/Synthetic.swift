// `rada synth`: a procedural vision-language task for the demo and tests. Classes are coloured shapes
// ("blue circle", folder blue_circle); each image draws one shape of its class at a random size and position on
// a background, with a caption ("a photo of a small blue circle on the left"). Every pixel is a function of
// (seed, split, index): reproducible anywhere. Splits and the base/new colour order are described below.
// Shape letters: K classes; image sizes are spelt out.
import CSupport
import Foundation
import Tensor

// Splits:
//   pretrain/  many captioned images for contrastive pretraining (captions.csv: path,caption)
//   train/     the few-shot pool (imagefolder)           test/  held-out images, same domain
//   shifted/   a shifted domain: unseen striped/checkered backgrounds, pixel noise and blur (TTT shows its worth here)
// Sorted class folders put the first colours in the base half (CoOp's base/new split), so new classes have
// colours the head never trained on.

public struct SyntheticSpec: Codable, Equatable {
  public var size = 32
  public var shapes = ["circle", "square", "triangle", "cross"]
  public var colours = ["blue", "green", "red", "yellow"]
  public var pretrainPerClass = 160
  public var trainPerClass = 16
  public var testPerClass = 24
  public var shiftedPerClass = 24
  public var seed = 1
  public init() {}

  public var classNames: [String] { colours.flatMap { c in shapes.map { "\(c)_\($0)" } }.sorted() }
}

public enum SyntheticError: Error, CustomStringConvertible {
  case writeFailed(path: String, reason: String)
  public var description: String {
    switch self {
    case let .writeFailed(path, reason): return "cannot write \(path): \(reason). Check free space and permissions."
    }
  }
}

public enum Synthetic {
  static let palette: [String: (Float, Float, Float)] = [
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (235, 215, 40),
    "purple": (150, 60, 200), "orange": (245, 140, 30), "cyan": (40, 200, 210), "white": (240, 240, 240),
  ]

  public enum Domain { case clean, shifted }

  /// Renders one RGB image (size x size x 3) and its caption.
  public static func render(colour: String, shape: String, size: Int, domain: Domain, seed: UInt64) -> (pixels: [UInt8], caption: String) {
    var rng = SeededRNG(seed: seed)
    let n = Float(size)
    var image = [Float](repeating: 0, count: size * size * 3)
    // Background
    switch domain {
    case .clean:
      let base = 40 + 120 * rng.uniformFloat(), tint = (0..<3).map { _ in 20 * (rng.uniformFloat() - 0.5) }
      let slope = 40 * (rng.uniformFloat() - 0.5)
      for y in 0..<size {
        for x in 0..<size {
          for c in 0..<3 { image[(y * size + x) * 3 + c] = base + tint[c] + slope * Float(y) / n }
        }
      }
    case .shifted:
      let a = (0..<3).map { _ in 255 * rng.uniformFloat() }, b = (0..<3).map { _ in 255 * rng.uniformFloat() }
      let period = 3 + rng.int(below: 4), checkered = rng.int(below: 2) == 0
      for y in 0..<size {
        for x in 0..<size {
          let on = checkered ? ((x / period + y / period) % 2 == 0) : ((x + y) / period % 2 == 0)
          for c in 0..<3 { image[(y * size + x) * 3 + c] = on ? a[c] : b[c] }
        }
      }
    }
    // Shape: radius and centre
    let isLarge = rng.int(below: 2) == 0
    let radius = n * (isLarge ? 0.30 + 0.08 * rng.uniformFloat() : 0.16 + 0.06 * rng.uniformFloat())
    let cx = radius + (n - 2 * radius) * rng.uniformFloat(), cy = radius + (n - 2 * radius) * rng.uniformFloat()
    let (r, g, b) = palette[colour] ?? (255, 255, 255)
    let jitter = 1 + 0.15 * (rng.uniformFloat() - 0.5)
    let fill = [r * jitter, g * jitter, b * jitter].map { min(255, $0) }
    for y in 0..<size {
      for x in 0..<size {
        var coverage: Float = 0
        for sy in 0..<2 {
          for sx in 0..<2 {
            let px = (Float(x) + 0.25 + 0.5 * Float(sx) - cx) / radius
            let py = (Float(y) + 0.25 + 0.5 * Float(sy) - cy) / radius
            if inside(shape, px, py) { coverage += 0.25 }
          }
        }
        if coverage > 0 {
          for c in 0..<3 { image[(y * size + x) * 3 + c] = (1 - coverage) * image[(y * size + x) * 3 + c] + coverage * fill[c] }
        }
      }
    }
    if domain == .shifted {
      image = boxBlur(image, size: size)
      for i in image.indices { image[i] += 30 * Float(rng.normal()) }
    }
    let pixels = image.map { UInt8(max(0, min(255, $0.rounded()))) }
    let horizontal = cx < n / 3 ? " on the left" : (cx > 2 * n / 3 ? " on the right" : "")
    let caption = "a photo of a \(isLarge ? "large" : "small") \(colour) \(shape)\(horizontal)"
    return (pixels, caption)
  }

  /// Shape membership in coordinates scaled by the radius (centre at 0).
  static func inside(_ shape: String, _ x: Float, _ y: Float) -> Bool {
    switch shape {
    case "circle": return x * x + y * y <= 1
    case "square": return abs(x) <= 0.8 && abs(y) <= 0.8
    case "triangle": return y <= 0.8 && y >= -0.9 && abs(x) <= (y + 0.9) / 1.7 * 0.95
    case "cross": return (abs(x) <= 0.3 && abs(y) <= 0.95) || (abs(y) <= 0.3 && abs(x) <= 0.95)
    case "ring": let d = x * x + y * y; return d <= 1 && d >= 0.4
    case "diamond": return abs(x) + abs(y) <= 1
    default: return x * x + y * y <= 1
    }
  }

  static func boxBlur(_ image: [Float], size: Int) -> [Float] {
    var out = image
    for y in 0..<size {
      for x in 0..<size {
        for c in 0..<3 {
          var sum: Float = 0, count: Float = 0
          for dy in -1...1 {
            for dx in -1...1 {
              let yy = y + dy, xx = x + dx
              if yy >= 0 && yy < size && xx >= 0 && xx < size { sum += image[(yy * size + xx) * 3 + c]; count += 1 }
            }
          }
          out[(y * size + x) * 3 + c] = sum / count
        }
      }
    }
    return out
  }

  public static func writePNG(_ pixels: [UInt8], size: Int, to path: String) throws {
    var message = [CChar](repeating: 0, count: 256)
    let status = pixels.withUnsafeBufferPointer { p in
      rada_png_write(path, p.baseAddress, Int32(size), Int32(size), 3, &message, 256)
    }
    if status != 0 { throw SyntheticError.writeFailed(path: path, reason: String(cString: message)) }
  }

  /// Writes the whole dataset under `directory`; returns the number of images written.
  @discardableResult
  public static func generate(_ spec: SyntheticSpec, into directory: String) throws -> Int {
    let fm = FileManager.default
    var written = 0
    var captions = "path,caption\n"
    let splits: [(String, Int, Domain, UInt64)] = [("pretrain", spec.pretrainPerClass, .clean, 1),
                                                   ("train", spec.trainPerClass, .clean, 2),
                                                   ("test", spec.testPerClass, .clean, 3),
                                                   ("shifted", spec.shiftedPerClass, .shifted, 4)]
    for (split, perClass, domain, stream) in splits where perClass > 0 {
      for (classIndex, name) in spec.classNames.enumerated() {
        let folder = "\(directory)/\(split)/\(name)"
        do { try fm.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
          throw SyntheticError.writeFailed(path: folder, reason: error.localizedDescription)
        }
        let parts = name.split(separator: "_").map(String.init)
        for i in 0..<perClass {
          let seed = derivedSeed(UInt64(spec.seed), stream, UInt64(classIndex), UInt64(i))
          let (pixels, caption) = render(colour: parts[0], shape: parts[1], size: spec.size, domain: domain, seed: seed)
          let file = String(format: "%05d.png", i)
          try writePNG(pixels, size: spec.size, to: "\(folder)/\(file)")
          if split == "pretrain" { captions += "\(name)/\(file),\(caption)\n" }
          written += 1
        }
      }
    }
    if spec.pretrainPerClass > 0 {
      try Data(captions.utf8).write(to: URL(fileURLWithPath: "\(directory)/pretrain/captions.csv"))
    }
    let readme = """
      rada synthetic dataset (rada synth, seed \(spec.seed), \(spec.size) px)
      classes (\(spec.classNames.count)): \(spec.classNames.joined(separator: ", "))
      pretrain/captions.csv  manifest:pretrain/captions.csv  image-caption pairs for `rada pretrain`
      train/ test/           imagefolder: few-shot pool and held-out test, same domain
      shifted/               imagefolder: unseen backgrounds, noise and blur
      base classes = first half of the sorted names (--subsample base), new = the rest.

      """
    try Data(readme.utf8).write(to: URL(fileURLWithPath: "\(directory)/README.txt"))
    return written
  }
}
