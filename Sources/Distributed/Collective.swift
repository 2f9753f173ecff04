// The communication interface every rank uses, with two implementations: `MPICollective` (OpenMPI) and
// `LocalCollective` (one process, same semantics). Training code calls every collective on every rank in the
// same order; only side effects are gated on `isCoordinator` (STYLE.md §7). Buffers are raw float pointers:
// Distributed knows nothing of models.
// Shape letters: none (buffers are `count` floats; allgatherv takes per-rank counts).
import Tensor

public enum CollectiveError: Error, CustomStringConvertible {
  /// An MPI call returned an error code.
  case mpi(operation: String, rank: Int, code: Int32, message: String)
  /// A collective did not finish within the watchdog limit. `missing`: ranks that did not answer the roll call;
  /// `elsewhere`: ranks that answered from another collective (their order diverged).
  case timeout(operation: String, rank: Int, seconds: Double, missing: [Int], elsewhere: [(rank: Int, collective: Int64)])
  case invalidArgument(operation: String, detail: String)

  public var description: String {
    switch self {
    case let .mpi(operation, rank, code, message):
      return "\(operation) failed on rank \(rank) (MPI error \(code): \(message)). Another rank probably died or "
        + "the network dropped; check that rank's log, then rerun with --resume auto."
    case let .timeout(operation, rank, seconds, missing, elsewhere):
      let who = missing.isEmpty ? "every rank answered the roll call"
        : (missing.count == 1 ? "rank " : "ranks ") + missing.map(String.init).joined(separator: ",")
          + " did not reach it (stopped, hung, dead or still computing)"
      let diverged = elsewhere.isEmpty ? "" : "; " + elsewhere.map { "rank \($0.rank) is in collective #\($0.collective)" }
        .joined(separator: ", ") + " (collective order diverged: a bug)"
      return "watchdog: \(operation) on rank \(rank) did not complete within \(Int(seconds)) s: \(who)\(diverged). "
        + "Ending the job; resume with --resume auto. Raise run.collectiveTimeout (--set run.collectiveTimeout=S) "
        + "if that rank legitimately needs longer."
    case let .invalidArgument(operation, detail):
      return "\(operation): \(detail)"
    }
  }
}

/// An error that every rank throws at the same point because a collective decided it (a broadcast failure
/// message, an agreed flag): the executable prints it once and every rank exits 1 without MPI_Abort.
public protocol RankAgreedError: Error {}

/// A non-blocking allreduce in flight. Complete it with `Collective.wait`.
public final class PendingReduction {
  public let count: Int
  public let buffer: MutableFloats
  public internal(set) var isComplete = false
  /// Implementation data (an MPI request for MPICollective).
  var handle: OpaquePointer?
  let requestStorage: UnsafeMutablePointer<OpaquePointer?>

  init(buffer: MutableFloats, count: Int) {
    self.buffer = buffer
    self.count = count
    requestStorage = .allocate(capacity: 1)
    requestStorage.initialize(to: nil)
  }
  deinit { requestStorage.deallocate() }
}

public protocol Collective: AnyObject {
  var rank: Int { get }
  var size: Int { get }
  /// Rank among the processes on this node, and how many share the node.
  var localRank: Int { get }
  var localSize: Int { get }
  var hostName: String { get }
  /// MPI library version string ("single process" for LocalCollective).
  var libraryVersion: String { get }
  /// True when a second thread may make MPI calls while the main thread makes none (MPI_THREAD_SERIALIZED):
  /// GradientReducer then drives its reductions from a progress thread.
  var allowsCallsFromSecondThread: Bool { get }

  func barrier() throws
  /// In place: every rank ends with the element-wise sum over ranks.
  func allReduceSum(_ buffer: MutableFloats, count: Int) throws
  /// In place sum of Double scalars (loss sums, counts, checksums).
  func allReduceSum(_ values: inout [Double]) throws
  /// In place maximum of Double scalars (flags, timings).
  func allReduceMax(_ values: inout [Double]) throws
  func broadcast(_ buffer: MutableFloats, count: Int, root: Int) throws
  /// Broadcasts bytes of any length from root (length is sent first); other ranks' input is replaced.
  func broadcast(bytes: inout [UInt8], root: Int) throws
  /// Every rank's bytes (any length), in rank order.
  func allGather(bytes: [UInt8]) throws -> [[UInt8]]
  /// recv (size·count) = concatenation of every rank's send (count), in rank order.
  func allGather(_ send: Floats, count: Int, into recv: MutableFloats) throws
  /// recv (Σcounts) = concatenation of rank r's send (counts[r]), in rank order.
  func allGatherV(_ send: Floats, counts: [Int], into recv: MutableFloats) throws
  /// Starts an in-place sum; the buffer must stay alive and untouched until `wait`.
  func startAllReduceSum(_ buffer: MutableFloats, count: Int) throws -> PendingReduction
  /// Drives progress without blocking; true when the reduction is done.
  func test(_ pending: PendingReduction) throws -> Bool
  func wait(_ pending: PendingReduction) throws
  /// Ends the whole job (every rank) after printing `message` to stderr.
  func abort(code: Int32, message: String) -> Never
}

extension Collective {
  public var isCoordinator: Bool { rank == 0 }

  /// In place: every rank ends with the mean over ranks.
  public func allReduceMean(_ buffer: MutableFloats, count: Int) throws {
    try allReduceSum(buffer, count: count)
    if size > 1 {
      let scale = 1 / Float(size)
      for i in 0..<count { buffer[i] *= scale }
    }
  }

  public func allReduceSum(_ value: Double) throws -> Double {
    var values = [value]
    try allReduceSum(&values)
    return values[0]
  }

  public func allReduceMax(_ value: Double) throws -> Double {
    var values = [value]
    try allReduceMax(&values)
    return values[0]
  }

  public func allReduceMean(_ value: Double) throws -> Double { try allReduceSum(value) / Double(size) }

  /// Broadcasts a string (run directory, decisions) from root.
  public func broadcast(string: String, root: Int = 0) throws -> String {
    var bytes = Array(string.utf8)
    try broadcast(bytes: &bytes, root: root)
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Every rank's string, in rank order (used by `rada info` and world.json).
  public func allGather(string: String) throws -> [String] {
    try allGather(bytes: Array(string.utf8)).map { String(decoding: $0, as: UTF8.self) }
  }
}
