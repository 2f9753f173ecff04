// Checks a screenshot of a report (launch/tests/report-browser.sh): the PNG is not blank and shows the chart
// colours. Decodes with the project's PNG decoder and counts pixels near each expected colour.
import Foundation
import Imaging
import Training

public struct ScreenshotCheck {
  public var width: Int
  public var height: Int
  /// Pixels that are not (near) white: text, axes, lines.
  public var inkedPixels: Int
  /// Expected colour (as given, "#rrggbb") -> pixels within `tolerance` of it in every channel.
  public var colorPixels: [(color: String, count: Int)]

  /// "#1f77b4" -> (31, 119, 180); nil when not of that form.
  public static func parseColor(_ text: String) -> (UInt8, UInt8, UInt8)? {
    let hex = text.hasPrefix("#") ? String(text.dropFirst()) : text
    guard hex.count == 6, let value = UInt32(hex, radix: 16) else { return nil }
    return (UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff))
  }

  /// `tolerance` allows for anti-aliasing at the edges of 2-px lines (their cores keep the exact colour).
  public static func analyse(path: String, colors: [String], tolerance: Int = 12) throws -> ScreenshotCheck {
    let image = try ImageDecoder.decode(path: path)
    guard image.mode == .rgb || image.mode == .rgba else {
      throw ReportError.badScreenshot(path, reason: "a \(image.mode.rawValue) image, expected RGB or RGBA")
    }
    let targets = try colors.map { text -> (UInt8, UInt8, UInt8) in
      guard let rgb = parseColor(text) else {
        throw ReportError.badColor(text)
      }
      return rgb
    }
    var counts = [Int](repeating: 0, count: targets.count), inked = 0
    let channels = image.channels
    image.pixels.withUnsafeBufferPointer { p in
      for i in 0..<(image.width * image.height) {
        let r = Int(p[i * channels]), g = Int(p[i * channels + 1]), b = Int(p[i * channels + 2])
        if r < 235 || g < 235 || b < 235 { inked += 1 }
        for (t, target) in targets.enumerated()
        where abs(r - Int(target.0)) <= tolerance && abs(g - Int(target.1)) <= tolerance && abs(b - Int(target.2)) <= tolerance {
          counts[t] += 1
        }
      }
    }
    return ScreenshotCheck(width: image.width, height: image.height, inkedPixels: inked,
                           colorPixels: Array(zip(colors, counts)).map { (color: $0.0, count: $0.1) })
  }
}
