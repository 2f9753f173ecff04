// The OpenMPI Collective. MPI is initialised once per process with MPI_THREAD_SERIALIZED (the main thread makes
// the calls, except while GradientReducer's progress thread drives the gradient buckets and the main thread
// waits) and MPI_ERRORS_RETURN, so a failed call becomes a Swift error that names the operation and the rank
// instead of a silent abort. MPI_Finalize runs at exit (never in tests). Non-blocking reductions progress only
// when MPI is called: `test` polls (see DESIGN.md step flow). The collective watchdog is described below.
// Shape letters: none (buffers are `count` floats).
import CMPI
import Foundation
import Tensor

// The watchdog (issue 15): every collective is started non-blocking and completed by polling, so none can wait
// longer than `watchdogSeconds`; then the waiting ranks hold a roll call on a private communicator and the error
// names the ranks that did not answer (stopped, hung, dead or still computing). MPI_Init and MPI_Finalize cannot
// be polled: a timer thread ends the process if they do not return in time. Together they cover the job from
// MPI start to finalize: loading, broadcasts, feature encoding, evaluation, checkpoints and teardown.

public final class MPICollective: Collective {
  public let rank: Int
  public let size: Int
  public let localRank: Int
  public let localSize: Int
  public let hostName: String
  public let libraryVersion: String
  public let allowsCallsFromSecondThread: Bool
  private let comm: MPI_Comm?
  /// A duplicate of the world communicator for the watchdog's roll call (never mixed with the job's traffic).
  private let rollCallComm: MPI_Comm?
  /// Seconds a collective may wait before this rank gives up and names the missing ranks; 0 waits forever.
  public var watchdogSeconds: Double = 0
  /// Collectives started so far (the roll call compares them: ranks in different collectives are a bug).
  private var sequence: Int64 = 0

  nonisolated(unsafe) private static var sharedInstance: MPICollective?

  /// The process-wide MPI communicator (initialises MPI on first use). `watchdogSeconds` > 0 also limits
  /// MPI_Init (a rank that never starts) and, at exit, MPI_Finalize.
  public static func shared(watchdogSeconds: Double = 0) throws -> MPICollective {
    if let existing = sharedInstance {
      if watchdogSeconds > 0 { existing.watchdogSeconds = watchdogSeconds }
      return existing
    }
    finalizeLimit = watchdogSeconds
    let timer = DeadlineTimer(seconds: watchdogSeconds, message: "MPI start-up (MPI_Init) did not complete within "
      + "\(watchdogSeconds) s: some rank did not start or is stopped. Check every node's rank is running, then rerun.")
    let instance = try MPICollective()
    timer.cancel()
    instance.watchdogSeconds = watchdogSeconds
    sharedInstance = instance
    return instance
  }
  nonisolated(unsafe) private static var finalizeLimit: Double = 0

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
      atexit {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        guard finalized == 0 else { return }
        let timer = DeadlineTimer(seconds: MPICollective.finalizeLimit, message: "MPI teardown (MPI_Finalize) did not "
          + "complete within \(MPICollective.finalizeLimit) s: another rank is stopped or hung. Results written before "
          + "this point are complete.")
        MPI_Finalize()
        timer.cancel()
      }
    } else {
      MPI_Query_thread(&provided)
    }
    allowsCallsFromSecondThread = provided >= Int32(MPI_THREAD_SERIALIZED)
    comm = rada_mpi_comm_world()
    MPI_Comm_set_errhandler(comm, rada_mpi_errors_return())
    var duplicate: MPI_Comm? = nil
    MPI_Comm_dup(comm, &duplicate)
    rollCallComm = duplicate
    if duplicate != nil { MPI_Comm_set_errhandler(duplicate, rada_mpi_errors_return()) }
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

  // MARK: Watched completion

  /// Starts a non-blocking collective with `start` and polls it to completion (see `poll`).
  private func watched(_ operation: String, _ start: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws {
    let request = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 1)
    request.initialize(to: nil)
    defer { request.deallocate() }
    sequence += 1
    try check(start(request), operation)
    try poll(request, operation)
  }

  /// Tests the request until it completes: first in a tight loop (small collectives finish in microseconds),
  /// then yielding the core, then sleeping, so a rank that waits long does not starve another rank on its core.
  /// After `watchdogSeconds` the roll call names the ranks that are missing and the wait ends with an error.
  private func poll(_ request: UnsafeMutablePointer<OpaquePointer?>, _ operation: String) throws {
    let began = DispatchTime.now().uptimeNanoseconds
    var flag: Int32 = 0
    var tests = 0
    while true {
      try check(MPI_Test(request, &flag, nil), operation)
      if flag != 0 { return }
      tests += 1
      if tests < 256 { continue }
      let waited = Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9
      if waited < 0.002 { sched_yield() } else { usleep(waited < 0.1 ? 50 : 1000) }
      if watchdogSeconds > 0 && waited > watchdogSeconds {
        let answers = rollCall(grace: min(5, max(1, watchdogSeconds / 2)))
        throw CollectiveError.timeout(operation: operation + " (collective #\(sequence))", rank: rank,
                                      seconds: watchdogSeconds, missing: answers.missing, elsewhere: answers.elsewhere)
      }
    }
  }

  /// Every rank that timed out sends (rank, collective number) to all others and listens for `grace` seconds.
  /// Ranks that stay silent are missing (stopped, hung, dead or still busy outside MPI); ranks that answer
  /// from a different collective are reported too (their collective order diverged: a bug).
  private func rollCall(grace: Double) -> (missing: [Int], elsewhere: [(rank: Int, collective: Int64)]) {
    guard size > 1, let rollCallComm else { return ([], []) }
    let mine = UnsafeMutablePointer<Int64>.allocate(capacity: 2)
    mine[0] = Int64(rank); mine[1] = sequence
    // Leaked on purpose: a send may still be queued for a rank that never receives it, and the process ends next.
    let answers = UnsafeMutablePointer<Int64>.allocate(capacity: 2 * size)
    answers.initialize(repeating: -1, count: 2 * size)
    let requests = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 2 * size)
    requests.initialize(repeating: nil, count: 2 * size)
    let tag: Int32 = 0x0DA
    for other in 0..<size where other != rank {
      MPI_Isend(mine, 2, rada_mpi_long_long(), Int32(other), tag, rollCallComm, requests + 2 * other)
      MPI_Irecv(answers + 2 * other, 2, rada_mpi_long_long(), Int32(other), tag, rollCallComm, requests + 2 * other + 1)
    }
    var answered = Set([rank])
    let began = DispatchTime.now().uptimeNanoseconds
    while answered.count < size && Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9 < grace {
      for other in 0..<size where !answered.contains(other) {
        var flag: Int32 = 0
        if MPI_Test(requests + 2 * other + 1, &flag, nil) == rada_mpi_success(), flag != 0 { answered.insert(other) }
      }
      usleep(1000)
    }
    let missing = (0..<size).filter { !answered.contains($0) }
    let elsewhere = answered.sorted().filter { $0 != rank && answers[2 * $0 + 1] != sequence }.map { ($0, answers[2 * $0 + 1]) }
    return (missing, elsewhere)
  }

  // MARK: Collectives

  public func barrier() throws { try watched("MPI_Barrier") { MPI_Ibarrier(comm, $0) } }

  public func allReduceSum(_ buffer: MutableFloats, count: Int) throws {
    // MPI counts are Int32: reduce in chunks so buffers over 2^31 elements work too.
    var offset = 0
    while offset < count {
      let n = min(count - offset, Int(Int32.max))
      try watched("MPI_Allreduce(sum, \(count) floats)") {
        MPI_Iallreduce(rada_mpi_in_place(), buffer + offset, Int32(n), rada_mpi_float(), rada_mpi_sum(), comm, $0)
      }
      offset += n
    }
  }

  public func allReduceSum(_ values: inout [Double]) throws {
    let count = Int32(values.count)
    try values.withUnsafeMutableBufferPointer { p in
      try watched("MPI_Allreduce(sum, \(count) doubles)") {
        MPI_Iallreduce(rada_mpi_in_place(), p.baseAddress, count, rada_mpi_double(), rada_mpi_sum(), comm, $0)
      }
    }
  }

  public func allReduceMax(_ values: inout [Double]) throws {
    let count = Int32(values.count)
    try values.withUnsafeMutableBufferPointer { p in
      try watched("MPI_Allreduce(max, \(count) doubles)") {
        MPI_Iallreduce(rada_mpi_in_place(), p.baseAddress, count, rada_mpi_double(), rada_mpi_max(), comm, $0)
      }
    }
  }

  public func broadcast(_ buffer: MutableFloats, count: Int, root: Int) throws {
    var offset = 0
    while offset < count {
      let n = min(count - offset, Int(Int32.max))
      try watched("MPI_Bcast(\(count) floats)") {
        MPI_Ibcast(buffer + offset, Int32(n), rada_mpi_float(), Int32(root), comm, $0)
      }
      offset += n
    }
  }

  public func broadcast(bytes: inout [UInt8], root: Int) throws {
    var length = Int64(bytes.count)
    try watched("MPI_Bcast(length)") { MPI_Ibcast(&length, 8, rada_mpi_byte(), Int32(root), comm, $0) }
    guard length >= 0 && length <= Int64(Int32.max) else {
      throw CollectiveError.invalidArgument(operation: "MPI_Bcast(bytes)", detail: "root \(root) sent length \(length)")
    }
    if rank != root { bytes = [UInt8](repeating: 0, count: Int(length)) }
    if length > 0 {
      try bytes.withUnsafeMutableBytes { p in
        try watched("MPI_Bcast(\(length) bytes)") { MPI_Ibcast(p.baseAddress, Int32(length), rada_mpi_byte(), Int32(root), comm, $0) }
      }
    }
  }

  public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
    var lengths = [Int32](repeating: 0, count: size)
    var mine = Int32(bytes.count)
    try watched("MPI_Allgather(lengths)") { MPI_Iallgather(&mine, 1, rada_mpi_int(), &lengths, 1, rada_mpi_int(), comm, $0) }
    guard lengths.allSatisfy({ $0 >= 0 }), lengths.reduce(0, { $0 + Int($1) }) < Int(Int32.max) else {
      throw CollectiveError.invalidArgument(operation: "MPI_Allgatherv(bytes)", detail: "lengths \(lengths) do not fit one call")
    }
    var displacements = [Int32](repeating: 0, count: size)
    for r in 1..<max(size, 1) where r < size { displacements[r] = displacements[r - 1] + lengths[r - 1] }
    var recv = [UInt8](repeating: 0, count: Int(lengths.reduce(0, +)) + 1)
    var send = bytes + [0]
    try watched("MPI_Allgatherv(bytes)") {
      MPI_Iallgatherv(&send, mine, rada_mpi_byte(), &recv, &lengths, &displacements, rada_mpi_byte(), comm, $0)
    }
    return (0..<size).map { r in Array(recv[Int(displacements[r])..<Int(displacements[r] + lengths[r])]) }
  }

  public func allGather(_ send: Floats, count: Int, into recv: MutableFloats) throws {
    try watched("MPI_Allgather(\(count) floats)") {
      MPI_Iallgather(send, Int32(count), rada_mpi_float(), recv, Int32(count), rada_mpi_float(), comm, $0)
    }
  }

  public func allGatherV(_ send: Floats, counts: [Int], into recv: MutableFloats) throws {
    guard counts.count == size else {
      throw CollectiveError.invalidArgument(operation: "allGatherV", detail: "\(counts.count) counts for \(size) ranks")
    }
    var counts32 = counts.map { Int32($0) }
    var displacements = [Int32](repeating: 0, count: size)
    for r in 1..<size { displacements[r] = displacements[r - 1] + counts32[r - 1] }
    try watched("MPI_Allgatherv(\(counts.reduce(0, +)) floats)") {
      MPI_Iallgatherv(send, counts32[rank], rada_mpi_float(), recv, &counts32, &displacements, rada_mpi_float(), comm, $0)
    }
  }

  public func startAllReduceSum(_ buffer: MutableFloats, count: Int) throws -> PendingReduction {
    guard count <= Int(Int32.max) else {
      throw CollectiveError.invalidArgument(operation: "MPI_Iallreduce", detail: "\(count) floats exceed one request; use smaller buckets")
    }
    let pending = PendingReduction(buffer: buffer, count: count)
    sequence += 1
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
    try poll(pending.requestStorage, "MPI_Wait(allreduce of \(pending.count) floats)")
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
/// `watchdogSeconds` (run.collectiveTimeout): the longest any collective, MPI_Init or MPI_Finalize may wait.
public func makeCollective(forceMPI: Bool = false, watchdogSeconds: Double = 0) throws -> Collective {
  if forceMPI || MPICollective.isLaunchedByMPI { return try MPICollective.shared(watchdogSeconds: watchdogSeconds) }
  return LocalCollective()
}

/// Ends the process if `cancel` is not called within `seconds` (0: never): for MPI_Init and MPI_Finalize, which
/// block inside MPI where no poll can give up. Prints `message` with the rank from the launcher's environment.
final class DeadlineTimer {
  private let lock = NSLock()
  private var cancelled = false

  init(seconds: Double, message: String) {
    guard seconds > 0 else { cancelled = true; return }
    let rank = LaunchLayout.fromEnvironment().rank
    let thread = Thread { [self] in
      let began = DispatchTime.now().uptimeNanoseconds
      while Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9 < seconds {
        Thread.sleep(forTimeInterval: min(0.25, seconds / 8))
        lock.lock(); let done = cancelled; lock.unlock()
        if done { return }
      }
      FileHandle.standardError.write(("rank \(rank): watchdog: " + message + "\n").data(using: .utf8)!)
      _exit(124)
    }
    thread.name = "rada-deadline"
    thread.start()
  }

  func cancel() { lock.lock(); cancelled = true; lock.unlock() }
}
