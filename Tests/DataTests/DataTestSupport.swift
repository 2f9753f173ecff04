// Helpers for the Data tests: throwaway dataset folders in a temp dir with real (1x1 PNG) image files, and the
// pickle fixtures written by Fixtures/make_pickles.py, found relative to this file (DataTests has no bundled
// resources).
// Shape letters: none.
import Foundation
import XCTest
@testable import Data

/// A valid 1x1 RGB PNG (one red pixel), 69 bytes, made with zlib + struct in Python and checked with Pillow.
let tinyPNG = Data(base64Encoded:
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")!

let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// A fresh temp folder, removed when the test ends.
func makeTempDir(_ test: XCTestCase) throws -> String {
  let path = NSTemporaryDirectory() + "rada-data-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
  return path
}

/// Writes `text` (or a tiny PNG when nil) at root/relative, creating folders.
func writeFile(_ root: String, _ relative: String, _ text: String? = nil) throws {
  let path = root + "/" + relative
  try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                          withIntermediateDirectories: true)
  try (text.map { Data($0.utf8) } ?? tinyPNG).write(to: URL(fileURLWithPath: path))
}

/// Asserts that `body` throws a DataError matching `matches`, reporting what was thrown otherwise.
func assertDataError<T>(_ body: @autoclosure () throws -> T, _ what: String, file: StaticString = #filePath,
                        line: UInt = #line, _ matches: (DataError) -> Bool) {
  do {
    _ = try body()
    XCTFail("\(what): expected an error, got a value", file: file, line: line)
  } catch let error as DataError {
    XCTAssertTrue(matches(error), "\(what): unexpected error \(error)", file: file, line: line)
    XCTAssertFalse(error.description.isEmpty)
  } catch {
    XCTFail("\(what): not a DataError: \(error)", file: file, line: line)
  }
}
