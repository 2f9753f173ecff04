// The single-process Collective: rank 0 of 1. Same semantics as MPI with one rank (sums are identities,
// gathers copy), so the trainer has no special cases for running without mpirun.
// Shape letters: none.
import Foundation
import Tensor

public final class LocalCollective: Collective {
  public init() {}
  public var rank: Int { 0 }
  public var size: Int { 1 }
  public var localRank: Int { 0 }
  public var localSize: Int { 1 }
  public var hostName: String { ProcessInfo.processInfo.hostName }
  public var libraryVersion: String { "single process (no MPI)" }
  public var allowsCallsFromSecondThread: Bool { false }

  public func barrier() throws {}
  public func allReduceSum(_ buffer: MutableFloats, count: Int) throws {}
  public func allReduceSum(_ values: inout [Double]) throws {}
  public func allReduceMax(_ values: inout [Double]) throws {}
  public func broadcast(_ buffer: MutableFloats, count: Int, root: Int) throws {
    guard root == 0 else { throw CollectiveError.invalidArgument(operation: "broadcast", detail: "root \(root) but size 1") }
  }
  public func broadcast(bytes: inout [UInt8], root: Int) throws {
    guard root == 0 else { throw CollectiveError.invalidArgument(operation: "broadcast", detail: "root \(root) but size 1") }
  }
  public func allGather(bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
  public func allGather(_ send: Floats, count: Int, into recv: MutableFloats) throws {
    if count > 0 && UnsafeMutableRawPointer(mutating: send) != UnsafeMutableRawPointer(recv) { recv.update(from: send, count: count) }
  }
  public func allGatherV(_ send: Floats, counts: [Int], into recv: MutableFloats) throws {
    guard counts.count == 1 else {
      throw CollectiveError.invalidArgument(operation: "allGatherV", detail: "\(counts.count) counts for 1 rank")
    }
    try allGather(send, count: counts[0], into: recv)
  }
  public func startAllReduceSum(_ buffer: MutableFloats, count: Int) throws -> PendingReduction {
    let pending = PendingReduction(buffer: buffer, count: count)
    pending.isComplete = true
    return pending
  }
  public func test(_ pending: PendingReduction) throws -> Bool { true }
  public func wait(_ pending: PendingReduction) throws {}
  public func abort(code: Int32, message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(code)
  }
}
