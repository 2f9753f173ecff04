// CLIP image preprocessing, bit-exact with open_clip's eval transform on Pillow 13 + torchvision 0.29:
// Resize(size, bicubic) -> CenterCrop(size) -> convert("RGB") -> ToTensor -> Normalize(mean, std).
// `ImageResize` is Pillow's Image.resize (libImaging/Resample.c): bicubic a = -0.5, support scaled when
// shrinking, weights in 22-bit fixed point, an 8-bit image between the two separable passes, and the pass
// order Pillow 13 picks. Output layout (3, size, size) float32, channels R, G, B.
// Shape letters: none (sizes are spelt out: size = the model's imageSize, height, width, channels).
import Foundation
import Tensor

// MARK: - Pillow's resampling

public enum ImageResize {
  /// Pillow's bicubic kernel with a = -0.5 (same operation order as Resample.c, so the same doubles).
  @inline(__always)
  static func bicubic(_ value: Double) -> Double {
    let a = -0.5
    let x = value < 0 ? -value : value
    if x < 1 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
    if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
    return 0
  }

  /// Filter taps for one axis: output i reads `count[i]` inputs from `first[i]`, weights at `i * taps`.
  struct Coefficients {
    var first: [Int32]
    var count: [Int32]
    var taps: Int
    /// Normalised weights (used by the 16-bit path).
    var weights: [Double]
    /// The same weights in fixed point with 22 fractional bits, rounded half away from zero.
    var fixed: [Int32]
  }

  static let precisionBits = 22

  /// Resample.c `precompute_coeffs` for the box (0, inSize) + `normalize_coeffs_8bpc`.
  static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1.0)
    let support = 2.0 * filterScale
    let taps = Int(support.rounded(.up)) * 2 + 1
    let inverseFilterScale = 1.0 / filterScale
    var first = [Int32](repeating: 0, count: outSize), count = [Int32](repeating: 0, count: outSize)
    var weights = [Double](repeating: 0, count: outSize * taps)
    for output in 0..<outSize {
      let center = (Double(output) + 0.5) * scale
      let low = max(Int(center - support + 0.5), 0)       // C (int) truncation, then clamp
      let high = min(Int(center + support + 0.5), inSize)
      var sum = 0.0
      for x in 0..<(high - low) {
        let w = bicubic((Double(x + low) - center + 0.5) * inverseFilterScale)
        weights[output * taps + x] = w
        sum += w
      }
      if sum != 0 { for x in 0..<(high - low) { weights[output * taps + x] /= sum } }
      first[output] = Int32(low); count[output] = Int32(high - low)
    }
    let one = Double(1 << precisionBits)
    let fixed = weights.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) }
    return Coefficients(first: first, count: count, taps: taps, weights: weights, fixed: fixed)
  }

  /// Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the width
  /// shrinks (height - toHeight > 2 · (width - toWidth), toHeight < height); otherwise horizontal first. Measured on
  /// Pillow 13.0.0 with 387 random size pairs (both orders give different bytes, exactly one matched every time).
  public static func isVerticalFirst(width: Int, height: Int, toWidth: Int, toHeight: Int) -> Bool {
    toHeight < height && (height - toHeight) > 2 * (width - toWidth)
  }

  // in: (rows, inWidth, channels) -> out: (rows, outWidth, channels)
  static func horizontal8(_ output: UnsafeMutablePointer<UInt8>, _ input: UnsafePointer<UInt8>,
                          rows: Int, inWidth: Int, channels: Int, _ k: Coefficients) {
    let outWidth = k.first.count
    let half = Int32(1 << (precisionBits - 1))
    k.fixed.withUnsafeBufferPointer { fixed in
      for row in 0..<rows {
        let line = input + row * inWidth * channels
        let out = output + row * outWidth * channels
        for x in 0..<outWidth {
          let first = Int(k.first[x]), count = Int(k.count[x])
          let weights = fixed.baseAddress! + x * k.taps
          for c in 0..<channels {
            var sum = half
            var p = line + first * channels + c
            for t in 0..<count { sum &+= Int32(p.pointee) &* weights[t]; p += channels }
            out[x * channels + c] = clip8(sum)
          }
        }
      }
    }
  }

  // in: (inHeight, width, channels) -> out: (outHeight, width, channels)
  static func vertical8(_ output: UnsafeMutablePointer<UInt8>, _ input: UnsafePointer<UInt8>,
                        width: Int, channels: Int, _ k: Coefficients) {
    let outHeight = k.first.count
    let rowLength = width * channels
    let half = Int32(1 << (precisionBits - 1))
    k.fixed.withUnsafeBufferPointer { fixed in
      var sums = [Int32](repeating: 0, count: rowLength)
      sums.withUnsafeMutableBufferPointer { sumsBuffer in
        let sums = sumsBuffer.baseAddress!
        for y in 0..<outHeight {
          let first = Int(k.first[y]), count = Int(k.count[y])
          let weights = fixed.baseAddress! + y * k.taps
          sums.update(repeating: half, count: rowLength)
          for t in 0..<count {
            let line = input + (first + t) * rowLength
            let w = weights[t]
            for i in 0..<rowLength { sums[i] &+= Int32(line[i]) &* w }
          }
          let out = output + y * rowLength
          for i in 0..<rowLength { out[i] = clip8(sums[i]) }
        }
      }
    }
  }

  /// Resample.c clip8: the arithmetic shift floors, then the lookup table clamps to 0...255.
  @inline(__always)
  static func clip8(_ sum: Int32) -> UInt8 {
    let v = sum >> Int32(precisionBits)
    return v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
  }

  /// Separable bicubic on interleaved uint8 samples, pass order as Pillow 13.
  /// pixels: (height, width, channels) -> (toHeight, toWidth, channels)
  public static func bicubic8(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                              toWidth: Int, toHeight: Int) -> [UInt8] {
    let needHorizontal = toWidth != width, needVertical = toHeight != height
    if !needHorizontal && !needVertical { return pixels }
    let kx = needHorizontal ? coefficients(inSize: width, outSize: toWidth) : nil
    let ky = needVertical ? coefficients(inSize: height, outSize: toHeight) : nil
    func horizontal(_ source: [UInt8], rows: Int) -> [UInt8] {
      var out = [UInt8](repeating: 0, count: rows * toWidth * channels)
      source.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { horizontal8($0.baseAddress!, src.baseAddress!, rows: rows,
                                                         inWidth: width, channels: channels, kx!) }
      }
      return out
    }
    func vertical(_ source: [UInt8], columns: Int) -> [UInt8] {
      var out = [UInt8](repeating: 0, count: toHeight * columns * channels)
      source.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { vertical8($0.baseAddress!, src.baseAddress!, width: columns,
                                                       channels: channels, ky!) }
      }
      return out
    }
    if isVerticalFirst(width: width, height: height, toWidth: toWidth, toHeight: toHeight) {
      let tall = needVertical ? vertical(pixels, columns: width) : pixels
      return needHorizontal ? horizontal(tall, rows: toHeight) : tall
    }
    let wide = needHorizontal ? horizontal(pixels, rows: height) : pixels
    return needVertical ? vertical(wide, columns: toWidth) : wide
  }

  /// The 16-bit gray path (Pillow "I;16"): double weights, each pass rounded half away from zero and
  /// clipped to 0...65535. samples: (height, width) -> (toHeight, toWidth)
  public static func bicubic16(_ samples: [UInt16], width: Int, height: Int,
                               toWidth: Int, toHeight: Int) -> [UInt16] {
    func pass(_ source: [UInt16], outer: Int, inLength: Int, stride: Int, outStride: Int, lineStep: Int,
              outLineStep: Int, _ k: Coefficients) -> [UInt16] {
      // Generic 1-D pass along an axis: `outer` lines, samples `stride` apart within a line.
      let outLength = k.first.count
      var out = [UInt16](repeating: 0, count: outer * outLength)
      for line in 0..<outer {
        for o in 0..<outLength {
          var sum = 0.0
          for t in 0..<Int(k.count[o]) {
            sum += Double(source[line * lineStep + (Int(k.first[o]) + t) * stride]) * k.weights[o * k.taps + t]
          }
          let rounded = Int(sum >= 0 ? sum + 0.5 : sum - 0.5)
          out[line * outLineStep + o * outStride] = UInt16(min(max(rounded, 0), 65535))
        }
      }
      return out
    }
    func horizontal(_ s: [UInt16], rows: Int) -> [UInt16] {
      pass(s, outer: rows, inLength: width, stride: 1, outStride: 1, lineStep: width, outLineStep: toWidth,
           coefficients(inSize: width, outSize: toWidth))
    }
    func vertical(_ s: [UInt16], columns: Int) -> [UInt16] {
      pass(s, outer: columns, inLength: height, stride: columns, outStride: columns, lineStep: 1, outLineStep: 1,
           coefficients(inSize: height, outSize: toHeight))
    }
    let needHorizontal = toWidth != width, needVertical = toHeight != height
    if isVerticalFirst(width: width, height: height, toWidth: toWidth, toHeight: toHeight) {
      let tall = needVertical ? vertical(samples, columns: width) : samples
      return needHorizontal ? horizontal(tall, rows: toHeight) : tall
    }
    let wide = needHorizontal ? horizontal(samples, rows: height) : samples
    return needVertical ? vertical(wide, columns: toWidth) : wide
  }

  /// Pillow's NEAREST scaling (Geometry.c ImagingScaleAffine): source x = floor(r · 0.5 + x · r) with
  /// r = width / toWidth, accumulated in double exactly as Pillow adds the step.
  /// pixels: (height, width, channels) -> (toHeight, toWidth, channels)
  public static func nearest<T>(_ pixels: [T], width: Int, height: Int, channels: Int,
                                toWidth: Int, toHeight: Int) -> [T] {
    func table(_ inSize: Int, _ outSize: Int) -> [Int] {
      let step = Double(inSize) / Double(outSize)
      var position = step * 0.5
      var result = [Int](repeating: 0, count: outSize)
      for i in 0..<outSize { result[i] = min(Int(position), inSize - 1); position += step }
      return result
    }
    let xs = table(width, toWidth), ys = table(height, toHeight)
    var out = [T]()
    out.reserveCapacity(toWidth * toHeight * channels)
    for y in ys {
      for x in xs {
        for c in 0..<channels { out.append(pixels[(y * width + x) * channels + c]) }
      }
    }
    return out
  }

  /// Pillow's MULDIV255: (c * a + 128 + ((c * a + 128) >> 8)) >> 8.
  @inline(__always)
  static func multiplyDivide255(_ c: UInt8, _ a: UInt8) -> UInt8 {
    let t = UInt32(c) * UInt32(a) + 128
    return UInt8(truncatingIfNeeded: ((t >> 8) + t) >> 8)
  }

  /// Image.resize(size, BICUBIC) on an image in its own mode, as Pillow 13 does it: P and 1 use NEAREST,
  /// LA and RGBA are resized premultiplied (RGBa / La) and converted back, I;16 uses the double path,
  /// CMYK is resized per channel like RGB.
  public static func resize(_ image: DecodedImage, width toWidth: Int, height toHeight: Int) -> DecodedImage {
    precondition(toWidth > 0 && toHeight > 0, "ImageResize: target size \(toWidth)x\(toHeight)")
    let (w, h, c) = (image.width, image.height, image.channels)
    if w == toWidth && h == toHeight { return image }
    switch image.mode {
    case .gray, .rgb, .cmyk:
      return DecodedImage(width: toWidth, height: toHeight, mode: image.mode,
                          pixels: bicubic8(image.pixels, width: w, height: h, channels: c,
                                           toWidth: toWidth, toHeight: toHeight))
    case .palette, .bilevel:
      return DecodedImage(width: toWidth, height: toHeight, mode: image.mode,
                          pixels: nearest(image.pixels, width: w, height: h, channels: c,
                                          toWidth: toWidth, toHeight: toHeight))
    case .gray16:
      return DecodedImage(width: toWidth, height: toHeight, mode: .gray16,
                          samples16: bicubic16(image.samples16, width: w, height: h,
                                               toWidth: toWidth, toHeight: toHeight))
    case .grayAlpha, .rgba:
      var premultiplied = image.pixels
      for p in stride(from: 0, to: premultiplied.count, by: c) {
        let alpha = premultiplied[p + c - 1]
        for i in 0..<(c - 1) { premultiplied[p + i] = multiplyDivide255(premultiplied[p + i], alpha) }
      }
      var out = bicubic8(premultiplied, width: w, height: h, channels: c, toWidth: toWidth, toHeight: toHeight)
      // RGBa -> RGBA: CLIP8(255 c / a) in integers; c kept when a is 0 or 255.
      for p in stride(from: 0, to: out.count, by: c) {
        let alpha = Int(out[p + c - 1])
        if alpha == 0 || alpha == 255 { continue }
        for i in 0..<(c - 1) { out[p + i] = UInt8(min(255, 255 * Int(out[p + i]) / alpha)) }
      }
      return DecodedImage(width: toWidth, height: toHeight, mode: image.mode, pixels: out)
    }
  }
}

// MARK: - Crop, RGB conversion, normalisation

public enum ImageCrop {
  /// Pillow's crop for a box inside the image: rows top..<top+height, columns left..<left+width.
  public static func crop(_ image: DecodedImage, top: Int, left: Int, height: Int, width: Int) -> DecodedImage {
    precondition(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height
                 && left + width <= image.width,
                 "ImageCrop: box (\(top), \(left), \(height), \(width)) outside \(image.width)x\(image.height)")
    if top == 0 && left == 0 && height == image.height && width == image.width { return image }
    if image.mode == .gray16 {
      var out = [UInt16](); out.reserveCapacity(width * height)
      for y in top..<(top + height) { out += image.samples16[(y * image.width + left)..<(y * image.width + left + width)] }
      return DecodedImage(width: width, height: height, mode: .gray16, samples16: out)
    }
    let c = image.channels
    var out = [UInt8](); out.reserveCapacity(width * height * c)
    for y in top..<(top + height) {
      let start = (y * image.width + left) * c
      out += image.pixels[start..<(start + width * c)]
    }
    return DecodedImage(width: width, height: height, mode: image.mode, pixels: out)
  }

  /// One RGB sample from one C, M or Y sample and K, as Pillow's Convert.c cmyk2rgb (no colour management):
  /// nk = 255 - k, out = CLIP8(nk - MULDIV255(v, nk)). MULDIV255 is v·nk/255 rounded, never above nk, so
  /// the difference lies in 0...nk and CLIP8 never clips.
  @inline(__always)
  public static func cmykToRGB(_ value: UInt8, _ k: UInt8) -> UInt8 {
    let inverseK = 255 - k
    return inverseK - ImageResize.multiplyDivide255(value, inverseK)
  }

  /// torchvision CenterCrop offsets: round((length - size) / 2) with Python's round-half-to-even.
  public static func centerOffset(_ length: Int, _ size: Int) -> Int {
    let difference = length - size
    let half = difference >> 1  // floor
    if difference & 1 == 0 { return half }
    return half & 1 == 0 ? half : half + 1  // x.5 rounds to the even neighbour
  }

  /// torchvision CenterCrop(size) for an image at least size x size.
  public static func centerCrop(_ image: DecodedImage, size: Int) -> DecodedImage {
    crop(image, top: centerOffset(image.height, size), left: centerOffset(image.width, size),
         height: size, width: size)
  }

  /// Image.convert("RGB"): L and 1 replicated, LA and RGBA drop alpha, I;16 clipped to 255, P already RGB,
  /// CMYK through `cmykToRGB`. -> (height, width, 3)
  public static func rgb(_ image: DecodedImage) -> [UInt8] {
    let count = image.width * image.height
    switch image.mode {
    case .rgb, .palette: return image.pixels
    case .cmyk:
      var out = [UInt8](repeating: 0, count: count * 3)
      for i in 0..<count {
        let k = image.pixels[4 * i + 3]
        for c in 0..<3 { out[3 * i + c] = cmykToRGB(image.pixels[4 * i + c], k) }
      }
      return out
    case .gray16:
      var out = [UInt8](repeating: 0, count: count * 3)
      for i in 0..<count {
        let v = UInt8(min(image.samples16[i], 255))
        out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v
      }
      return out
    case .gray, .bilevel, .grayAlpha, .rgba:
      let c = image.channels
      var out = [UInt8](repeating: 0, count: count * 3)
      for i in 0..<count {
        if c >= 3 {
          out[3 * i] = image.pixels[c * i]; out[3 * i + 1] = image.pixels[c * i + 1]; out[3 * i + 2] = image.pixels[c * i + 2]
        } else {
          let v = image.pixels[c * i]
          out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v
        }
      }
      return out
    }
  }
}

// MARK: - The eval transform

/// open_clip's eval transform for one image: Resize(size, bicubic) -> CenterCrop(size) -> RGB -> ToTensor -> Normalize.
public struct CLIPPreprocessor: Sendable {
  /// OpenAI CLIP normalisation (open_clip OPENAI_DATASET_MEAN / STD).
  public static let clipMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
  public static let clipStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

  public let size: Int
  public let mean: [Float]
  public let std: [Float]
  /// (3, 256): the normalised value of every byte per channel, computed as torch does in float32:
  /// (v / 255 - mean) / std.
  let table: [Float]

  public init(size: Int, mean: [Float] = CLIPPreprocessor.clipMean, std: [Float] = CLIPPreprocessor.clipStd) {
    precondition(size > 0 && mean.count == 3 && std.count == 3, "CLIPPreprocessor: size > 0, 3 means and 3 stds")
    self.size = size; self.mean = mean; self.std = std
    var table = [Float](repeating: 0, count: 3 * 256)
    for c in 0..<3 { for v in 0..<256 { table[c * 256 + v] = (Float(v) / 255 - mean[c]) / std[c] } }
    self.table = table
  }

  /// torchvision Resize(size) output size: the short side becomes size, the long side int(size * long / short).
  public static func resizedSize(width: Int, height: Int, size: Int) -> (width: Int, height: Int) {
    if width <= height {
      return (size, Int(Double(size * height) / Double(width)))
    }
    return (Int(Double(size * width) / Double(height)), size)
  }

  /// Resize + center crop, still in the decoded mode: (size, size, channels).
  public func resizeAndCrop(_ image: DecodedImage) -> DecodedImage {
    let target = Self.resizedSize(width: image.width, height: image.height, size: size)
    let resized = ImageResize.resize(image, width: target.width, height: target.height)
    return ImageCrop.centerCrop(resized, size: size)
  }

  /// out: (3, size, size) normalised float32.
  public func callAsFunction(_ image: DecodedImage, into out: MutableFloats) {
    normalize(resizeAndCrop(image), flipped: false, into: out)
  }

  /// ToRGB + ToTensor + Normalize of a size x size image in any mode; `flipped` mirrors left-right.
  /// out: (3, size, size)
  public func normalize(_ image: DecodedImage, flipped: Bool, into out: MutableFloats) {
    precondition(image.width == size && image.height == size,
                 "CLIPPreprocessor.normalize: image is \(image.width)x\(image.height), expected \(size)x\(size)")
    let rgb = ImageCrop.rgb(image)
    let plane = size * size
    rgb.withUnsafeBufferPointer { src in
      table.withUnsafeBufferPointer { lut in
        for y in 0..<size {
          for x in 0..<size {
            let source = (y * size + (flipped ? size - 1 - x : x)) * 3
            let target = y * size + x
            out[target] = lut[Int(src[source])]
            out[plane + target] = lut[256 + Int(src[source + 1])]
            out[2 * plane + target] = lut[512 + Int(src[source + 2])]
          }
        }
      }
    }
  }
}
