// The OpenMPI Collective. MPI is initialised once per process with MPI_THREAD_SERIALIZED (the main thread makes
// the calls, except while GradientReducer's progress thread drives the gradient buckets and the main thread
// waits) and MPI_ERRORS_RETURN, so a failed call becomes a Swift error that names the operation and the rank
// instead of a silent abort. MPI_Finalize runs at exit (never in tests). Non-blocking reductions progress only
// when MPI is called: `test` polls (see DESIGN.md step flow).
import CMPI
import Foundation
import Tensor

public final class MPICollective: Collective {
  public let rank: Int
  public let size: Int
  public let localRank: Int
  public let localSize: Int
  public let hostName: String
  public let libraryVersion: String
  public let allowsCallsFromSecondThread: Bool
  private let comm: MPI_Comm?
  /// Seconds a blocking collective may take before the job is aborted; 0 disables (see `runWatched`).
  public var watchdogSeconds: Double = 0

  nonisolated(unsafe) private static var sharedInstance: MPICollective?

  /// The process-wide MPI communicator (initialises MPI on first use).
  public static func shared() throws -> MPICollective {
    if let existing = sharedInstance { return existing }
    let instance = try MPICollective()
    sharedInstance = instance
    return instance
  }

  /// True when this process was started by an MPI launcher (mpirun, srun --mpi=pmix, ...).
  public static var isLaunchedByMPI: Bool {
    let env = ProcessInfo.processInfo.environment
    return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
  }

  private init() throws {
    var provided: Int32 = 0
    var initialized: Int32 = 0
    MPI_Initialized(&initialized)
    if initialized == 0 {
      Self.preferRingForNonBlockingAllreduce()
      let code = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
      guard code == rada_mpi_success() else {
        throw CollectiveError.mpi(operation: "MPI_Init_thread", rank: -1, code: code, message: "initialisation failed")
      }
      atexit { var finalized: Int32 = 0; MPI_Finalized(&finalized); if finalized == 0 { MPI_Finalize() } }
    } else {
      MPI_Query_thread(&provided)
    }
    allowsCallsFromSecondThread = provided >= Int32(MPI_THREAD_SERIALIZED)
    comm = rada_mpi_comm_world()
    MPI_Comm_set_errhandler(comm, rada_mpi_errors_return())
    var r: Int32 = 0, s: Int32 = 0
    MPI_Comm_rank(comm, &r)
    MPI_Comm_size(comm, &s)
    rank = Int(r); size = Int(s)

    var node: MPI_Comm? = nil
    MPI_Comm_split_type(comm, rada_mpi_comm_type_shared(), r, rada_mpi_info_null(), &node)
    var lr: Int32 = 0, ls: Int32 = 1
    if node != nil { MPI_Comm_rank(node, &lr); MPI_Comm_size(node, &ls); MPI_Comm_free(&node) }
    localRank = Int(lr); localSize = Int(ls)

    var nameBuffer = [CChar](repeating: 0, count: Int(rada_mpi_max_processor_name()) + 1)
    var nameLength: Int32 = 0
    MPI_Get_processor_name(&nameBuffer, &nameLength)
    hostName = String(cString: nameBuffer)
    var versionBuffer = [CChar](repeating: 0, count: Int(rada_mpi_max_library_version_string()) + 1)
    var versionLength: Int32 = 0
    MPI_Get_library_version(&versionBuffer, &versionLength)
    libraryVersion = String(cString: versionBuffer).split(separator: ",").first.map(String.init) ?? "unknown"
  }

  /// OpenMPI's non-blocking allreduce (libnbc) picks a binomial tree (reduce, then broadcast: the data crosses
  /// the network twice, one direction at a time) for fewer than 4 ranks or in-place buffers, which is every
  /// gradient bucket; over TCP between two nodes that took twice as long as the ring (1.47 s against 0.74 s
  /// for the small config's 89 MB on 1 Gbit/s). Ask for the ring unless the user chose an algorithm.
  private static func preferRingForNonBlockingAllreduce() {
    let name = "OMPI_MCA_coll_libnbc_iallreduce_algorithm"
    if getenv(name) == nil { setenv(name, "1", 0) }
  }

  /// Turns an MPI return code into an error that names the call and this rank.
  private func check(_ code: Int32, _ operation: String) throws {
    guard code != rada_mpi_success() else { return }
    var buffer = [CChar](repeating: 0, count: Int(rada_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    MPI_Error_string(code, &buffer, &length)
    throw CollectiveError.mpi(operation: operation, rank: rank, code: code, message: String(cString: buffer))
  }

  public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

  public func allReduceSum(_ buffer: MutableFloats, count: Int) throws {
    // MPI counts are Int32: reduce in chunks so buffers over 2^31 elements work too.
    var offset = 0
    while offset < count {
      let n = min(count - offset, Int(Int32.max))
      try check(MPI_Allreduce(rada_mpi_in_place(), buffer + offset, Int32(n), rada_mpi_float(), rada_mpi_sum(), comm),
                "MPI_Allreduce(sum, \(count) floats)")
      offset += n
    }
  }

  public func allReduceSum(_ values: inout [Double]) throws {
    let count = Int32(values.count)
    try values.withUnsafeMutableBufferPointer { p in
      try check(MPI_Allreduce(rada_mpi_in_place(), p.baseAddress, count, rada_mpi_double(), rada_mpi_sum(), comm),
                "MPI_Allreduce(sum, \(count) doubles)")
    }
  }

  public func allReduceMax(_ values: inout [Double]) throws {
    let count = Int32(values.count)
    try values.withUnsafeMutableBufferPointer { p in
      try check(MPI_Allreduce(rada_mpi_in_place(), p.baseAddress, count, rada_mpi_double(), rada_mpi_max(), comm),
                "MPI_Allreduce(max, \(count) doubles)")
    }
  }

  public func broadcast(_ buffer: MutableFloats, count: Int, root: Int) throws {
    var offset = 0
    while offset < count {
      let n = min(count - offset, Int(Int32.max))
      try check(MPI_Bcast(buffer + offset, Int32(n), rada_mpi_float(), Int32(root), comm), "MPI_Bcast(\(count) floats)")
      offset += n
    }
  }

  public func broadcast(bytes: inout [UInt8], root: Int) throws {
    var length = Int64(bytes.count)
    try check(MPI_Bcast(&length, 8, rada_mpi_byte(), Int32(root), comm), "MPI_Bcast(length)")
    if rank != root { bytes = [UInt8](repeating: 0, count: Int(length)) }
    if length > 0 {
      try bytes.withUnsafeMutableBytes { p in
        try check(MPI_Bcast(p.baseAddress, Int32(length), rada_mpi_byte(), Int32(root), comm), "MPI_Bcast(\(length) bytes)")
      }
    }
  }

  public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
    var lengths = [Int32](repeating: 0, count: size)
    var mine = Int32(bytes.count)
    try check(MPI_Allgather(&mine, 1, rada_mpi_int(), &lengths, 1, rada_mpi_int(), comm), "MPI_Allgather(lengths)")
    var displacements = [Int32](repeating: 0, count: size)
    for r in 1..<max(size, 1) where r < size { displacements[r] = displacements[r - 1] + lengths[r - 1] }
    var recv = [UInt8](repeating: 0, count: Int(lengths.reduce(0, +)) + 1)
    var send = bytes + [0]
    try check(MPI_Allgatherv(&send, mine, rada_mpi_byte(), &recv, &lengths, &displacements, rada_mpi_byte(), comm),
              "MPI_Allgatherv(bytes)")
    return (0..<size).map { r in Array(recv[Int(displacements[r])..<Int(displacements[r] + lengths[r])]) }
  }

  public func allGather(_ send: Floats, count: Int, into recv: MutableFloats) throws {
    try check(MPI_Allgather(send, Int32(count), rada_mpi_float(), recv, Int32(count), rada_mpi_float(), comm),
              "MPI_Allgather(\(count) floats)")
  }

  public func allGatherV(_ send: Floats, counts: [Int], into recv: MutableFloats) throws {
    guard counts.count == size else {
      throw CollectiveError.invalidArgument(operation: "allGatherV", detail: "\(counts.count) counts for \(size) ranks")
    }
    var counts32 = counts.map { Int32($0) }
    var displacements = [Int32](repeating: 0, count: size)
    for r in 1..<size { displacements[r] = displacements[r - 1] + counts32[r - 1] }
    try check(MPI_Allgatherv(send, counts32[rank], rada_mpi_float(), recv, &counts32, &displacements,
                             rada_mpi_float(), comm), "MPI_Allgatherv(\(counts.reduce(0, +)) floats)")
  }

  public func startAllReduceSum(_ buffer: MutableFloats, count: Int) throws -> PendingReduction {
    guard count <= Int(Int32.max) else {
      throw CollectiveError.invalidArgument(operation: "MPI_Iallreduce", detail: "\(count) floats exceed one request; use smaller buckets")
    }
    let pending = PendingReduction(buffer: buffer, count: count)
    try check(MPI_Iallreduce(rada_mpi_in_place(), buffer, Int32(count), rada_mpi_float(), rada_mpi_sum(), comm,
                             pending.requestStorage), "MPI_Iallreduce(\(count) floats)")
    return pending
  }

  public func test(_ pending: PendingReduction) throws -> Bool {
    if pending.isComplete { return true }
    var flag: Int32 = 0
    try check(MPI_Test(pending.requestStorage, &flag, nil), "MPI_Test(allreduce of \(pending.count) floats)")
    if flag != 0 { pending.isComplete = true }
    return pending.isComplete
  }

  public func wait(_ pending: PendingReduction) throws {
    if pending.isComplete { return }
    try check(MPI_Wait(pending.requestStorage, nil), "MPI_Wait(allreduce of \(pending.count) floats)")
    pending.isComplete = true
  }

  public func abort(code: Int32, message: String) -> Never {
    FileHandle.standardError.write(("rank \(rank): " + message + "\n").data(using: .utf8)!)
    MPI_Abort(comm, code)
    exit(code)
  }
}

/// The Collective for this process: MPI when started by an MPI launcher, otherwise a single local rank
/// (so commands answer instantly without the 0.4 s singleton MPI start-up).
public func makeCollective(forceMPI: Bool = false) throws -> Collective {
  if forceMPI || MPICollective.isLaunchedByMPI { return try MPICollective.shared() }
  return LocalCollective()
}
