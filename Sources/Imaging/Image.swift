// Decoded images and the decoder: JPEG (libjpeg-turbo) and PNG (libpng) through the C shims in CSupport,
// giving the same mode and bytes as Pillow 13's Image.open(...).load() for the same file (CMYK and YCCK
// JPEGs open as Pillow's inverted CMYK and become RGB only in Preprocess.swift, after the resize).
// Format is detected from the magic bytes, never from the extension. Layout: rows top to bottom, pixels
// interleaved (height, width, channels).
// Shape letters: none (image sizes are spelt out: height, width, channels).
import CSupport
import Foundation

/// Pillow's image modes that decoding can produce. The mode decides how resizing works (see Preprocess.swift).
public enum ImageMode: String, Sendable {
  /// 8-bit gray (1 channel).
  case gray = "L"
  /// 8-bit gray + alpha (2 channels); resized premultiplied like Pillow's "La".
  case grayAlpha = "LA"
  case rgb = "RGB"
  /// Resized premultiplied like Pillow's "RGBa".
  case rgba = "RGBA"
  /// 16-bit gray PNG (Pillow "I;16"): samples in `samples16`; resized in floating point, clipped to 255 for RGB.
  case gray16 = "I;16"
  /// Palette PNG (Pillow "P"): pixels hold the palette colours as RGB; Pillow resizes P with NEAREST.
  case palette = "P"
  /// 1-bit gray PNG (Pillow "1"): pixels hold 0 or 255 (1 channel); resized with NEAREST.
  case bilevel = "1"
  /// CMYK or YCCK JPEG (Pillow "CMYK", 4 channels, samples as Pillow holds them: 255 - libjpeg's CMYK);
  /// resized per channel like RGB (no premultiplication), converted to RGB after the crop.
  case cmyk = "CMYK"

  /// Samples per pixel as stored in `DecodedImage`.
  public var channels: Int {
    switch self {
    case .gray, .gray16, .bilevel: return 1
    case .grayAlpha: return 2
    case .rgb, .palette: return 3
    case .rgba, .cmyk: return 4
    }
  }
}

/// A decoded image: (height, width, channels) interleaved uint8, or uint16 for `.gray16`.
public struct DecodedImage: Equatable, Sendable {
  public var width: Int
  public var height: Int
  public var mode: ImageMode
  /// (height, width, channels) samples for every 8-bit mode; empty for `.gray16`.
  public var pixels: [UInt8]
  /// (height, width) samples for `.gray16`; empty otherwise.
  public var samples16: [UInt16]

  public var channels: Int { mode.channels }

  public init(width: Int, height: Int, mode: ImageMode, pixels: [UInt8] = [], samples16: [UInt16] = []) {
    precondition(mode == .gray16 ? samples16.count == width * height : pixels.count == width * height * mode.channels,
                 "DecodedImage: \(width)x\(height) \(mode.rawValue) does not match the sample count")
    self.width = width; self.height = height; self.mode = mode; self.pixels = pixels; self.samples16 = samples16
  }
}

public enum ImageError: Error, CustomStringConvertible, Equatable {
  case unreadable(name: String, reason: String)
  case empty(name: String)
  case unknownFormat(name: String, firstBytes: String)
  case corrupt(name: String, format: String, reason: String)
  /// A file of a kind the decoder cannot read: a JPEG variant (12-bit, lossless, unknown colour space) or
  /// another format recognised by its magic bytes (GIF, WebP, ...). `variant` says which.
  case unsupported(name: String, format: String, variant: String)
  case badSize(name: String, reason: String)

  public var description: String {
    switch self {
    case let .unreadable(name, reason):
      return "cannot read image \(name): \(reason). Check the path and permissions."
    case let .empty(name):
      return "image \(name) is an empty file. Re-download or remove it from the dataset."
    case let .unknownFormat(name, firstBytes):
      return "\(name) is not a JPEG or PNG file (starts with \(firstBytes)). Convert it to JPEG or PNG, "
        + "or remove it from the dataset."
    case let .corrupt(name, format, reason):
      return "\(name) is a corrupt or truncated \(format) file (\(reason)). Re-download the file or remove it "
        + "from the dataset (check with: python -c \"from PIL import Image; Image.open('\(name)').load()\")."
    case let .unsupported(name, format, variant):
      return "\(name) is a \(format) file that rada cannot decode: \(variant). Convert it to an 8-bit RGB JPEG or "
        + "PNG (e.g. ImageMagick: convert '\(name)' -colorspace sRGB -depth 8 out.png, or Pillow where it opens the "
        + "file: python -c \"from PIL import Image; Image.open('\(name)').convert('RGB').save('out.png')\"), or "
        + "remove it from the dataset."
    case let .badSize(name, reason):
      return "image \(name) cannot be used: \(reason). Remove it from the dataset or resize it."
    }
  }
}

public enum ImageDecoder {
  public enum Format: String { case jpeg = "JPEG", png = "PNG" }

  /// Decoded images may hold at most this many pixels (checked from the header, before decoding):
  /// $RADA_MAX_IMAGE_PIXELS when set, else 2^26 (Pillow warns at 2^26.4 and refuses at twice that).
  public static var maximumPixels: Int { Int(rada_image_max_pixels()) }
  /// Longest side over shortest side (checked from the header); beyond it the short-side resize of
  /// preprocessing would explode.
  public static let maximumAspectRatio = Int(RADA_IMAGE_MAX_ASPECT)

  /// The format from the first bytes (JPEG SOI FF D8 FF; PNG signature 89 50 4E 47 0D 0A 1A 0A), or nil.
  public static func format(of data: Data) -> Format? {
    let head = [UInt8](data.prefix(8))
    if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
    if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
    return nil
  }

  /// Names the other image formats found in datasets (often behind a .jpg name), from their magic bytes.
  static func otherFormat(of data: Data) -> String? {
    let head = [UInt8](data.prefix(16))
    func starts(_ bytes: [UInt8], at offset: Int = 0) -> Bool {
      head.count >= offset + bytes.count && Array(head[offset..<(offset + bytes.count)]) == bytes
    }
    if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "GIF" }
    if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return "WebP" }
    if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
    if starts(Array("BM".utf8)) && starts([0, 0, 0, 0], at: 6) { return "BMP" }  // reserved header bytes
    if starts(Array("ftyp".utf8), at: 4) {  // ISO media file: the brand tells images from video
      if ["avif", "avis"].contains(where: { starts(Array($0.utf8), at: 8) }) { return "AVIF" }
      if ["heic", "heix", "heim", "heis", "mif1", "msf1"].contains(where: { starts(Array($0.utf8), at: 8) }) {
        return "HEIF/HEIC"
      }
    }
    if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) { return "JPEG 2000" }
    if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return "JPEG XL" }
    return nil
  }

  public static func decode(path: String) throws -> DecodedImage {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
      let reason = FileManager.default.fileExists(atPath: path) ? "permission denied or unreadable" : "no such file"
      throw ImageError.unreadable(name: path, reason: reason)
    }
    return try decode(data: data, name: path)
  }

  /// Decodes JPEG or PNG bytes; `name` is only used in error messages.
  public static func decode(data: Data, name: String) throws -> DecodedImage {
    if data.isEmpty { throw ImageError.empty(name: name) }
    guard let format = format(of: data) else {
      if let other = otherFormat(of: data) {
        throw ImageError.unsupported(name: name, format: other, variant: "rada reads JPEG and PNG only")
      }
      let hex = data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
      throw ImageError.unknownFormat(name: name, firstBytes: hex)
    }
    var image = rada_image()
    var message = [CChar](repeating: 0, count: 512)
    let status: Int32 = data.withUnsafeBytes { raw in
      let base = raw.bindMemory(to: UInt8.self).baseAddress!
      switch format {
      case .jpeg: return rada_decode_jpeg(base, raw.count, &image, &message, message.count)
      case .png: return rada_decode_png(base, raw.count, &image, &message, message.count)
      }
    }
    if status == RADA_IMAGE_UNSUPPORTED {
      throw ImageError.unsupported(name: name, format: format.rawValue, variant: String(cString: message))
    }
    if status == RADA_IMAGE_TOO_LARGE {
      throw ImageError.badSize(name: name, reason: String(cString: message))
    }
    guard status == 0, let pixels = image.pixels else {
      let reason = String(cString: message)
      throw ImageError.corrupt(name: name, format: format.rawValue, reason: reason.isEmpty ? "decoder failed" : reason)
    }
    defer { rada_image_free(&image) }
    let width = Int(image.width), height = Int(image.height), channels = Int(image.channels)
    guard width > 0, height > 0 else { throw ImageError.badSize(name: name, reason: "size \(width)x\(height)") }
    if image.bitDepth == 16 {
      let count = width * height
      let samples = pixels.withMemoryRebound(to: UInt16.self, capacity: count) {
        Array(UnsafeBufferPointer(start: $0, count: count))
      }
      return DecodedImage(width: width, height: height, mode: .gray16, samples16: samples)
    }
    let mode: ImageMode
    if image.isPalette != 0 {
      mode = .palette
    } else if image.isBilevel != 0 {
      mode = .bilevel
    } else if image.isCMYK != 0 {
      mode = .cmyk
    } else {
      switch channels {
      case 1: mode = .gray
      case 2: mode = .grayAlpha
      case 3: mode = .rgb
      case 4: mode = .rgba
      default: throw ImageError.corrupt(name: name, format: format.rawValue, reason: "\(channels) channels")
      }
    }
    guard mode.channels == channels else {
      throw ImageError.corrupt(name: name, format: format.rawValue, reason: "\(channels) channels for mode \(mode.rawValue)")
    }
    let bytes = Array(UnsafeBufferPointer(start: pixels, count: width * height * channels))
    return DecodedImage(width: width, height: height, mode: mode, pixels: bytes)
  }
}
