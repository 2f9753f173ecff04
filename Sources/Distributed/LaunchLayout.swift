// How this process was launched, read before MPI starts: rank, size and ranks on this node from
// OpenMPI (OMPI_COMM_WORLD_*), Slurm (SLURM_*), PMIx/PMI; and the compute threads this rank should use:
// the CPUs it may run on (after binding) divided among the ranks that share them, unless RADA_THREADS
// or --threads says otherwise. Ranks x threads never exceed the cores.
// Shape letters: none.
import Foundation

public struct LaunchLayout: Codable, Equatable {
  public var rank: Int
  public var size: Int
  public var localRank: Int
  public var localSize: Int
  /// Which launcher set the variables ("mpirun", "slurm", "pmix", "none").
  public var launcher: String

  public init(rank: Int, size: Int, localRank: Int, localSize: Int, launcher: String) {
    self.rank = rank; self.size = size; self.localRank = localRank; self.localSize = localSize; self.launcher = launcher
  }

  public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> LaunchLayout {
    func int(_ key: String) -> Int? { env[key].flatMap { Int($0.split(separator: "(").first ?? "") } }
    if let size = int("OMPI_COMM_WORLD_SIZE") {
      return LaunchLayout(rank: int("OMPI_COMM_WORLD_RANK") ?? 0, size: size,
                          localRank: int("OMPI_COMM_WORLD_LOCAL_RANK") ?? 0,
                          localSize: int("OMPI_COMM_WORLD_LOCAL_SIZE") ?? 1, launcher: "mpirun")
    }
    if let size = int("SLURM_NTASKS"), env["SLURM_PROCID"] != nil {
      return LaunchLayout(rank: int("SLURM_PROCID") ?? 0, size: size, localRank: int("SLURM_LOCALID") ?? 0,
                          localSize: int("SLURM_NTASKS_PER_NODE") ?? int("SLURM_TASKS_PER_NODE") ?? 1, launcher: "slurm")
    }
    if let size = int("PMI_SIZE") ?? int("PMIX_SIZE") {
      return LaunchLayout(rank: int("PMI_RANK") ?? int("PMIX_RANK") ?? 0, size: size,
                          localRank: int("MPI_LOCALRANKID") ?? int("PMI_LOCAL_RANK") ?? 0,
                          localSize: int("MPI_LOCALNRANKS") ?? int("PMI_LOCAL_SIZE") ?? 1, launcher: "pmi")
    }
    return LaunchLayout(rank: 0, size: 1, localRank: 0, localSize: 1, launcher: "none")
  }

  /// Compute threads for this rank: an explicit request wins; otherwise the CPUs this process may use,
  /// shared among the ranks bound to the same set (mpirun binds one core per rank by default, in which
  /// case each rank sees one CPU already).
  public func threadsPerRank(allowedCPUs: Int, onlineCPUs: Int, requested: Int?) -> Int {
    if let requested, requested > 0 { return requested }
    if allowedCPUs < onlineCPUs { return max(1, allowedCPUs) }
    return max(1, onlineCPUs / max(1, localSize))
  }
}
