// The background loader with a fake `load` that sleeps a position-dependent random time (so workers finish out
// of order): batches come back in submission order with the right items, failures name the file, skipped
// samples are replaced and recorded the same way for 1 and 4 workers, and the prefetch window is never exceeded.
// Shape letters: B batch.
import Foundation
import XCTest
@testable import Data

final class BatchLoaderTests: XCTestCase {
  struct Failure: Error, CustomStringConvertible { var description: String }

  /// position*1000 + step, after a pseudo-random sleep of 0-2 ms; positions in `bad` throw.
  func fakeLoad(bad: Set<Int> = []) -> (LoadRequest) throws -> Int {
    return { request in
      usleep(UInt32((request.position * 7919 + request.step * 104_729) % 2000))
      if bad.contains(request.position) { throw Failure(description: "corrupt JPEG data") }
      return request.position * 1000 + request.step
    }
  }

  func batches(_ count: Int) -> [[Int]] {
    (0..<count).map { step in (0..<(1 + step % 5)).map { step * 10 + $0 } }  // sizes 1...5
  }

  func testDeliversInOrder() throws {
    let loader = BatchLoader(workers: 4, prefetchDepth: 3, pathOf: { "file\($0).png" }, load: fakeLoad())
    let plan = batches(20)
    for (step, positions) in plan.enumerated() { loader.submit(step: step, positions: positions) }
    for (step, positions) in plan.enumerated() {
      let batch = try XCTUnwrap(loader.next())
      XCTAssertEqual(batch.step, step)
      XCTAssertEqual(batch.positions, positions)
      XCTAssertEqual(batch.items, positions.map { $0 * 1000 + step }, "step \(step)")
      XCTAssertEqual(batch.replacedSlots, [])
    }
    XCTAssertNil(try loader.next(), "nothing pending")
    loader.submit(step: 20, positions: [])
    XCTAssertEqual(try loader.next()?.items, [], "an empty batch")
    XCTAssertLessThanOrEqual(loader.peakBatchesInMemory, 3)
  }

  func testErrorNamesTheFile() throws {
    let loader = BatchLoader(workers: 3, prefetchDepth: 2, pathOf: { "/data/file\($0).png" },
                             load: fakeLoad(bad: [13, 12]))
    loader.submit(step: 0, positions: [0, 1, 2])
    loader.submit(step: 1, positions: [11, 13, 12])
    loader.submit(step: 2, positions: [20])
    XCTAssertEqual(try loader.next()?.items, [0, 1000, 2000])
    XCTAssertThrowsError(try loader.next()) { error in
      // The first failing slot of the batch (slot 1, position 13), whatever thread failed first.
      guard case let DataError.sampleFailed(path, position, reason)? = error as? DataError else {
        return XCTFail("unexpected \(error)")
      }
      XCTAssertEqual(path, "/data/file13.png")
      XCTAssertEqual(position, 13)
      XCTAssertEqual(reason, "corrupt JPEG data")
      XCTAssertTrue("\(error)".contains("/data/file13.png"))
    }
    XCTAssertEqual(try loader.next()?.items, [20002], "later batches still load")
  }

  func testSkipBadSamplesIsDeterministic() throws {
    var runs: [([[Int]], [[Int]], [BadSample])] = []
    for workers in [1, 4] {
      let loader = BatchLoader(workers: workers, prefetchDepth: 2, skipBadSamples: true,
                               pathOf: { "file\($0).png" }, load: fakeLoad(bad: [13, 14, 31]))
      let plan = [[10, 11, 12], [12, 13, 14, 15], [30, 31], [13, 16]]
      for (step, positions) in plan.enumerated() { loader.submit(step: step, positions: positions) }
      var items: [[Int]] = [], replaced: [[Int]] = []
      while let batch = try loader.next() { items.append(batch.items); replaced.append(batch.replacedSlots) }
      runs.append((items, replaced, loader.badSamples))
    }
    // A failed slot takes the next good item of its batch (cyclic).
    XCTAssertEqual(runs[0].0, [[10000, 11000, 12000], [12001, 15001, 15001, 15001], [30002, 30002], [16003, 16003]])
    XCTAssertEqual(runs[0].1, [[], [1, 2], [1], [0]])
    XCTAssertEqual(runs[0].2.map(\.path), ["file13.png", "file14.png", "file31.png"], "each file once, in order")
    XCTAssertEqual(runs[0].2.map(\.step), [1, 1, 2])
    XCTAssertEqual(runs[0].2[0].reason, "corrupt JPEG data")
    XCTAssertEqual(runs[1].0, runs[0].0, "4 workers = 1 worker")
    XCTAssertEqual(runs[1].1, runs[0].1)
    XCTAssertEqual(runs[1].2, runs[0].2)

    let loader = BatchLoader(workers: 2, prefetchDepth: 1, skipBadSamples: true, pathOf: { "file\($0).png" },
                             load: fakeLoad(bad: [1, 2]))
    loader.submit(step: 0, positions: [1, 2])
    XCTAssertThrowsError(try loader.next(), "a batch with no good sample cannot be filled")
  }

  func testPrefetchWindowIsBounded() throws {
    let depth = 2
    let lock = NSLock()
    var consumed = 0, maxAhead = 0
    let loader = BatchLoader(workers: 4, prefetchDepth: depth, pathOf: { "file\($0)" }) { request -> Int in
      lock.lock()
      maxAhead = max(maxAhead, request.step - consumed)
      lock.unlock()
      return request.position
    }
    for step in 0..<12 { loader.submit(step: step, positions: Array(0..<3)) }
    for _ in 0..<12 {
      usleep(3000)  // a slow consumer: workers run ahead as far as they may
      _ = try XCTUnwrap(loader.next())
      lock.lock(); consumed += 1; lock.unlock()
    }
    // Step k starts only when k < delivered + depth, and delivered <= consumed + 1 when the closure looks.
    XCTAssertLessThanOrEqual(maxAhead, depth)
    XCTAssertEqual(loader.peakBatchesInMemory, depth, "the window fills up but never overflows")
  }

  func testDroppingTheLoaderStopsWorkers() {
    var loader: BatchLoader<Int>? = BatchLoader(workers: 3, prefetchDepth: 2, pathOf: { "\($0)" }, load: fakeLoad())
    loader!.submit(step: 0, positions: Array(0..<8))
    loader!.submit(step: 1, positions: Array(0..<8))
    loader = nil  // must return (workers joined), not hang
    XCTAssertNil(loader)
  }

  func testRefusedThreadsGiveAnErrorOrFewerWorkersNeverAHang() throws {
    defer { LoaderThreads.limitForTesting = nil }
    LoaderThreads.limitForTesting = 0
    let none = BatchLoader(workers: 2, prefetchDepth: 2, pathOf: { "\($0)" }, load: fakeLoad())
    XCTAssertEqual(none.startedWorkers, 0)
    none.submit(step: 0, positions: [1, 2])
    XCTAssertThrowsError(try none.next()) { XCTAssertTrue("\($0)".contains("could not start any of 2 image loader thread"), "\($0)") }
    none.stop()  // returns: no worker is counted that never ran

    LoaderThreads.limitForTesting = 1
    let one = BatchLoader(workers: 3, prefetchDepth: 2, pathOf: { "\($0)" }, load: fakeLoad())
    XCTAssertEqual(one.startedWorkers, 1)
    one.submit(step: 0, positions: [4, 5, 6])
    XCTAssertEqual(try one.next()?.items, [4000, 5000, 6000], "one worker still loads everything")
    one.stop()
  }
}
