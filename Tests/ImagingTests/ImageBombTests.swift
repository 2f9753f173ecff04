// Image bombs: a few hundred bytes whose header declares 60000 x 60000 pixels (PNG and JPEG), or a 1 x 10^6
// strip, are refused before any pixel memory is allocated, with an error that says it is the size (and the
// RADA_MAX_IMAGE_PIXELS limit), not corruption. The headers are written here byte by byte.
// Shape letters: none (image sizes are spelt out).
import Foundation
import Imaging
import XCTest

/// PNG chunks need a CRC-32 (ISO-HDLC, as zlib's crc32).
func crc32(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
  }
  return ~crc
}

func bigEndian32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

/// A PNG signature and IHDR declaring width x height 8-bit RGB, then an IDAT of a few zero bytes and IEND.
func pngHeader(width: UInt32, height: UInt32) -> Data {
  func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
    let typed = Array(type.utf8) + body
    return bigEndian32(UInt32(body.count)) + typed + bigEndian32(crc32(typed))
  }
  let ihdr = bigEndian32(width) + bigEndian32(height) + [8, 2, 0, 0, 0]
  let idat: [UInt8] = [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]  // zlib stream of nothing
  return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", []))
}

/// A baseline grayscale JPEG header (DQT, SOF0, two one-code DHTs, SOS) declaring width x height.
func jpegHeader(width: UInt16, height: UInt16) -> Data {
  var bytes: [UInt8] = [0xFF, 0xD8]
  bytes += [0xFF, 0xDB, 0x00, 0x43, 0x00] + [UInt8](repeating: 1, count: 64)
  bytes += [0xFF, 0xC0, 0x00, 0x0B, 0x08, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF),
            0x01, 0x01, 0x11, 0x00]
  for table: UInt8 in [0x00, 0x10] { bytes += [0xFF, 0xC4, 0x00, 0x14, table, 1] + [UInt8](repeating: 0, count: 15) + [0] }
  bytes += [0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]
  bytes += [UInt8](repeating: 0, count: 32) + [0xFF, 0xD9]
  return Data(bytes)
}

final class ImageBombTests: XCTestCase {
  func assertTooLarge(_ data: Data, _ name: String, _ fragments: [String], line: UInt = #line) {
    XCTAssertThrowsError(try ImageDecoder.decode(data: data, name: name), line: line) { error in
      let text = "\(error)"
      XCTAssertTrue(text.contains(name) && !text.contains("corrupt"), text, line: line)
      for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' missing in \(text)", line: line) }
    }
  }

  func testDeclaredPixelsOverTheCapAreRefusedAsTooLarge() {
    XCTAssertEqual(ImageDecoder.maximumPixels, 1 << 26)
    assertTooLarge(pngHeader(width: 60000, height: 60000), "bomb.png", ["60000x60000", "RADA_MAX_IMAGE_PIXELS"])
    assertTooLarge(jpegHeader(width: 60000, height: 60000), "bomb.jpg", ["60000x60000", "RADA_MAX_IMAGE_PIXELS"])
  }

  func testAStripOneMillionPixelsLongIsRefused() {
    // 10^6 pixels is under the cap (and libpng's 10^6-per-side limit), but scaling its short side to 224 would
    // need 224 x 2.24e8 pixels.
    assertTooLarge(pngHeader(width: 1, height: 1_000_000), "strip.png", ["1x1000000", "512:1"])
  }

  func testTheCapIsSettableFromTheEnvironment() {
    setenv("RADA_MAX_IMAGE_PIXELS", "100", 1)
    defer { unsetenv("RADA_MAX_IMAGE_PIXELS") }
    XCTAssertEqual(ImageDecoder.maximumPixels, 100)
    assertTooLarge(pngHeader(width: 11, height: 10), "small.png", ["11x10", "limit of 100"])
    // Under the cap the same header gets as far as the (empty) pixel data: a corrupt-data error, not a size one.
    XCTAssertThrowsError(try ImageDecoder.decode(data: pngHeader(width: 10, height: 10), name: "ok.png")) { error in
      XCTAssertFalse("\(error)".contains("limit"), "\(error)")
    }
  }
}
