// Parameter table layout (contiguous offsets, trainable count, decay default) and the seeded RNG: the same seed
// gives the same stream, other seeds and argument orders of derivedSeed differ, uniforms lie in [0, 1).
// Shape letters: none.
import Tensor
import XCTest

final class TensorBasicsTests: XCTestCase {
  func testParameterTableAssignsContiguousOffsets() {
    var table = ParameterTable()
    table.add("a.weight", [3, 4])
    table.add("a.bias", [4])
    table.add("b", [2, 2, 2], trainable: false)
    XCTAssertEqual(table["a.bias"]?.offset, 12)
    XCTAssertEqual(table["b"]?.offset, 16)
    XCTAssertEqual(table.totalCount, 24)
    XCTAssertEqual(table.trainableCount, 16)
    XCTAssertEqual(table["a.weight"]?.decays, true)
    XCTAssertEqual(table["a.bias"]?.decays, false)
    XCTAssertNil(table["missing"])
  }

  func testSeededRNGIsReproducibleAndDerivedSeedsDiffer() {
    var a = SeededRNG(seed: 42), b = SeededRNG(seed: 42), c = SeededRNG(seed: 43)
    let sa = (0..<5).map { _ in a.next() }
    XCTAssertEqual(sa, (0..<5).map { _ in b.next() })
    XCTAssertNotEqual(sa, (0..<5).map { _ in c.next() })
    XCTAssertNotEqual(derivedSeed(1, 2, 3), derivedSeed(1, 3, 2))
    XCTAssertEqual(derivedSeed(1, 2, 3), derivedSeed(1, 2, 3))
    var u = SeededRNG(seed: 9)
    let values = (0..<10_000).map { _ in u.uniformFloat() }
    XCTAssertTrue(values.allSatisfy { $0 >= 0 && $0 < 1 })
    XCTAssertEqual(values.reduce(0, +) / 10_000, 0.5, accuracy: 0.02)
  }

  /// A view shares its owner's memory both ways and keeps it alive after the owner's last other reference is gone.
  func testViewSharesAndKeepsItsOwnerAlive() {
    var owner: FloatBuffer? = FloatBuffer((0..<10).map(Float.init))
    let view = FloatBuffer(viewing: owner!, offset: 3, count: 4)
    XCTAssertEqual(view.array, [3, 4, 5, 6])
    view[0] = -1
    XCTAssertEqual(owner![3], -1)
    owner![6] = 60
    XCTAssertEqual(view[3], 60)
    owner = nil  // the view still holds the memory
    XCTAssertEqual(view.array, [-1, 4, 5, 60])
  }
}
