// --skip-bad-samples keeps labels true: an unreadable image is replaced by the next readable image of the same
// class (never by a neighbour of another class in the batch), and a class with no readable image is an error.
// Referee: the replacement's pixels equal the pixels of loading that same-class image directly.
import Data
import Foundation
import Training
import XCTest

final class BadSampleTests: XCTestCase {
  func testReplacementComesFromTheSameClassAndAnEmptyClassIsAnError() throws {
    let directory = NSTemporaryDirectory() + "rada-bad-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    func image(_ name: String, value: UInt8) throws -> String {
      let path = directory + "/" + name + ".png"
      try Synthetic.writePNG([UInt8](repeating: value, count: 8 * 8 * 3), size: 8, to: path)
      return path
    }
    let broken = directory + "/broken.png"
    try Data("not an image".utf8).write(to: URL(fileURLWithPath: broken))
    // positions: 0 red-a (class 0), 1 broken (class 0), 2 blue (class 1), 3 red-b (class 0), 4 broken (class 2)
    let samples = [Sample(path: try image("red-a", value: 200), label: 0), Sample(path: broken, label: 0),
                   Sample(path: try image("blue", value: 20), label: 1), Sample(path: try image("red-b", value: 120), label: 0),
                   Sample(path: broken, label: 2)]
    let dataset = Dataset(name: "t", root: directory, classNames: ["red", "blue", "empty"], samples: samples)
    let log = BadSampleLog()
    let load = SessionParts.pixelLoader(dataset: dataset, imageSize: 8, augment: false, seed: 1, badSamples: log)
    let plain = SessionParts.pixelLoader(dataset: dataset, imageSize: 8, augment: false, seed: 1)

    XCTAssertEqual(try load(1, 0), try plain(3, 0), "the next readable image of class 0 is position 3, not 2 (blue)")
    XCTAssertNotEqual(try plain(3, 0), try plain(2, 0), "the classes' images must differ for this test to mean anything")
    XCTAssertEqual(log.entries.map(\.position), [1], "the failure is recorded once")
    XCTAssertEqual(try load(0, 0), try plain(0, 0), "a readable image is itself")
    XCTAssertThrowsError(try load(4, 0)) { XCTAssertTrue("\($0)".contains("every image of class 'empty' is unreadable"), "\($0)") }
  }
}
