// GradientReducer against a fake two-rank collective whose ranks hold identical gradients (a sum doubles every
// element, so the mean must give back the input). Checks both ways of driving the reductions: polled from the
// training thread, and the progress thread that makes every MPI call itself while backward runs. The real
// multi-rank runs (shared memory and TCP) are in launch/tests/fft-distributed.sh and `rada bench scaling`.
@testable import Distributed
import Foundation
import Tensor
import Training
import XCTest

/// Two identical ranks: a reduction completes on its `testsToComplete`-th test, doubling its buffer then.
/// Records the order buckets start in, whether any call came from the main thread, and can fail a start.
private final class TwinRanks: Collective {
  var rank: Int { 0 }
  var size: Int { 2 }
  var localRank: Int { 0 }
  var localSize: Int { 1 }
  var hostName: String { "twin" }
  var libraryVersion: String { "fake" }
  let allowsCallsFromSecondThread: Bool
  let testsToComplete: Int
  var failOnStart: Int?
  private let lock = NSLock()
  private var _startedOffsets: [Int] = []
  private var _callsOnMainThread = 0
  private var _testCalls = 0
  private var _completed = 0
  private var base: MutableFloats?
  var startedOffsets: [Int] { lock.withLock { _startedOffsets } }
  var callsOnMainThread: Int { lock.withLock { _callsOnMainThread } }
  var testCalls: Int { lock.withLock { _testCalls } }
  var completed: Int { lock.withLock { _completed } }
  var hasFailed: Bool { failOnStart.map { startedOffsets.count > $0 } ?? false }

  init(secondThread: Bool, testsToComplete: Int = 3) {
    allowsCallsFromSecondThread = secondThread
    self.testsToComplete = testsToComplete
  }
  func setBase(_ pointer: MutableFloats) { base = pointer }

  private func record() { if Thread.isMainThread { lock.withLock { _callsOnMainThread += 1 } } }
  private var countdown: [ObjectIdentifier: Int] = [:]

  func startAllReduceSum(_ buffer: MutableFloats, count: Int) throws -> PendingReduction {
    record()
    let offset = base.map { buffer - $0 } ?? -1
    let index = lock.withLock { () -> Int in _startedOffsets.append(offset); return _startedOffsets.count - 1 }
    if index == failOnStart {
      throw CollectiveError.mpi(operation: "MPI_Iallreduce(\(count) floats)", rank: 0, code: 15, message: "peer lost")
    }
    let pending = PendingReduction(buffer: buffer, count: count)
    lock.withLock { countdown[ObjectIdentifier(pending)] = testsToComplete }
    return pending
  }

  func test(_ pending: PendingReduction) throws -> Bool {
    record()
    if pending.isComplete { return true }
    let done = lock.withLock { () -> Bool in
      _testCalls += 1
      let left = countdown[ObjectIdentifier(pending)]! - 1
      countdown[ObjectIdentifier(pending)] = left
      return left == 0
    }
    if done {
      for i in 0..<pending.count { pending.buffer[i] *= 2 }
      pending.isComplete = true
      lock.withLock { _completed += 1 }
    }
    return pending.isComplete
  }

  func wait(_ pending: PendingReduction) throws { while try !test(pending) {} }

  func barrier() throws {}
  func allReduceSum(_ buffer: MutableFloats, count: Int) throws { for i in 0..<count { buffer[i] *= 2 } }
  func allReduceSum(_ values: inout [Double]) throws {}
  func allReduceMax(_ values: inout [Double]) throws {}
  func broadcast(_ buffer: MutableFloats, count: Int, root: Int) throws {}
  func broadcast(bytes: inout [UInt8], root: Int) throws {}
  func allGather(bytes: [UInt8]) throws -> [[UInt8]] { [bytes, bytes] }
  func allGather(_ send: Floats, count: Int, into recv: MutableFloats) throws {}
  func allGatherV(_ send: Floats, counts: [Int], into recv: MutableFloats) throws {}
  func abort(code: Int32, message: String) -> Never { fatalError(message) }
}

final class GradientReducerTests: XCTestCase {
  /// Tensors of 5, 7, 3 and 9 floats at offsets 0, 5, 12, 15; a gap (24..<30) that is not trainable.
  let ranges = [(offset: 0, count: 5), (offset: 5, count: 7), (offset: 12, count: 3), (offset: 15, count: 9),
                (offset: 30, count: 4)]

  /// Runs one "backward" that reports tensors from last to first, then finish; returns the gradients.
  /// `backgroundCompletions`: how many reductions completed while the training thread only slept (up to 2 s
  /// per reported tensor, until every bucket started so far was complete).
  private func step(_ world: TwinRanks, progressThread: Bool, bucketFloats: Int = 10,
                    backgroundCompletions: UnsafeMutablePointer<Int>? = nil) throws -> (GradientReducer, [Float]) {
    let gradients = FloatBuffer(count: 34)
    for i in 0..<34 { gradients[i] = Float(i) * 0.5 - 3 }
    world.setBase(gradients.pointer)
    let reducer = GradientReducer(gradients: gradients.pointer, ranges: ranges, bucketFloats: bucketFloats, world: world,
                                  progressThread: progressThread)
    let before = world.completed
    for range in ranges.reversed() {
      try reducer.gradientsReady(from: range.offset)
      let started = reducer.buckets.filter { $0.start >= range.offset }.count
      // backward computing the next layer: the training thread makes no MPI call
      let deadline = Date().addingTimeInterval(2)
      while reducer.usesProgressThread && world.completed - before < started && !world.hasFailed && Date() < deadline {
        usleep(200)
      }
    }
    backgroundCompletions?.pointee = world.completed - before
    try reducer.finish()
    return (reducer, (0..<34).map { gradients[$0] })
  }

  func testBucketsAreWholeAdjacentTensorsInBackwardOrder() {
    let world = TwinRanks(secondThread: false)
    let gradients = FloatBuffer(count: 34)
    let reducer = GradientReducer(gradients: gradients.pointer, ranges: ranges, bucketFloats: 10, world: world)
    // 30..<34 alone (gap before it); 15..<24 (9) cannot take 12..<15 (would be 12 > 10); 5..<15 = 10; 0..<5.
    XCTAssertEqual(reducer.buckets.map { [$0.start, $0.count] }, [[30, 4], [15, 9], [5, 10], [0, 5]])
  }

  func testPolledReductionsAverageOnTheCallingThread() throws {
    let world = TwinRanks(secondThread: false)
    let (reducer, result) = try step(world, progressThread: true)
    XCTAssertFalse(reducer.usesProgressThread, "the collective does not allow a second thread")
    for i in 0..<34 { XCTAssertEqual(result[i], Float(i) * 0.5 - 3, "element \(i): the mean of two equal ranks") }
    XCTAssertEqual(world.startedOffsets, [30, 15, 5, 0])
    XCTAssertGreaterThan(world.callsOnMainThread, 0)
  }

  func testProgressThreadMakesEveryCallAndFinishesDuringBackward() throws {
    let world = TwinRanks(secondThread: true)
    var background = 0
    let (reducer, result) = try step(world, progressThread: true, backgroundCompletions: &background)
    XCTAssertTrue(reducer.usesProgressThread)
    for i in 0..<34 { XCTAssertEqual(result[i], Float(i) * 0.5 - 3, "element \(i)") }
    XCTAssertEqual(world.startedOffsets, [30, 15, 5, 0], "buckets start in backward order, each once")
    XCTAssertEqual(world.callsOnMainThread, 0, "the training thread made an MPI call")
    // Each reduction needs 3 tests, and the training thread never tested: all 4 completed in the background.
    XCTAssertEqual(background, 4)
    XCTAssertEqual(world.testCalls, 12)

    // A second step on the same reducer (the thread idles between steps) gives the same answer.
    var background2 = 0
    let gradients2 = try step(world, progressThread: true, backgroundCompletions: &background2).1
    XCTAssertEqual(gradients2, result)
    XCTAssertEqual(background2, 4)
    XCTAssertEqual(world.startedOffsets, [30, 15, 5, 0, 30, 15, 5, 0])
  }

  func testErrorOnTheProgressThreadSurfacesInFinish() throws {
    let world = TwinRanks(secondThread: true)
    world.failOnStart = 2
    XCTAssertThrowsError(try step(world, progressThread: true)) { error in
      XCTAssertTrue("\(error)".contains("MPI_Iallreduce"), "\(error)")
      XCTAssertTrue("\(error)".contains("peer lost"), "\(error)")
    }
    // Nothing starts after the failure (the caller unwinds and may free the gradients): buckets 0-2 only.
    XCTAssertEqual(world.startedOffsets, [30, 15, 5])
  }

  func testLayerFinishedKeepsTheFirstErrorForFinish() throws {
    let world = TwinRanks(secondThread: false)
    world.failOnStart = 1
    let gradients = FloatBuffer(count: 34)
    world.setBase(gradients.pointer)
    let reducer = GradientReducer(gradients: gradients.pointer, ranges: ranges, bucketFloats: 10, world: world)
    for range in ranges.reversed() { reducer.layerFinished(from: range.offset) }  // backward's callbacks: no throw
    XCTAssertEqual(world.startedOffsets, [30, 15], "nothing starts after the failed start")
    XCTAssertThrowsError(try reducer.finish()) { XCTAssertTrue("\($0)".contains("peer lost"), "\($0)") }
    // The next step starts clean.
    for range in ranges.reversed() { reducer.layerFinished(from: range.offset) }
    XCTAssertNoThrow(try reducer.finish())
    XCTAssertEqual(world.startedOffsets, [30, 15, 30, 15, 5, 0])
  }

  func testProgressThreadCanBeTurnedOff() throws {
    let world = TwinRanks(secondThread: true)
    let (reducer, result) = try step(world, progressThread: false)
    XCTAssertFalse(reducer.usesProgressThread)
    XCTAssertEqual(result[33], 33 * 0.5 - 3)
    XCTAssertGreaterThan(world.callsOnMainThread, 0)
  }
}
