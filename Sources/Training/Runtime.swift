// Process start-up shared by every command that computes: read the launch layout, pick threads per rank,
// configure OpenBLAS and the kernel thread pool, and verify the BLAS kernel (the start-up fix-up lives in
// CSupport/blas_fix.c). Refuses to run on a BLAS that fails its self-check, and says loudly when it is slow.
import Distributed
import Foundation
import Kernels

public enum RuntimeError: Error, CustomStringConvertible {
  case blasSelfCheckFailed(core: String, error: Float)
  public var description: String {
    switch self {
    case let .blasSelfCheckFailed(core, error):
      return "OpenBLAS (core \(core)) failed its sgemm self-check (relative error \(error)). "
        + "Set OPENBLAS_CORETYPE to a kernel this CPU supports (e.g. Haswell) or RADA_BLAS_FIX=0, and rerun `rada info`."
    }
  }
}

public struct RuntimeReport: Codable {
  public var layout: LaunchLayout
  public var threads: Int
  public var blas: BLASStatus
  public var selfCheckError: Float
}

public enum Runtime {
  /// Configures threads and verifies BLAS. `requestedThreads` comes from --threads (nil: automatic).
  @discardableResult
  public static func start(requestedThreads: Int? = nil) throws -> RuntimeReport {
    let layout = LaunchLayout.fromEnvironment()
    let env = ProcessInfo.processInfo.environment
    let requested = requestedThreads ?? env["RADA_THREADS"].flatMap(Int.init)
    let threads = layout.threadsPerRank(allowedCPUs: CPUInfo.allowedCPUs,
                                        onlineCPUs: ProcessInfo.processInfo.activeProcessorCount,
                                        requested: requested)
    BLASRuntime.setThreads(threads)
    Parallel.threads = threads
    let status = BLASRuntime.status()
    let error = BLASRuntime.selfCheck()
    guard error < 1e-4 else { throw RuntimeError.blasSelfCheckFailed(core: status.coreName, error: error) }
    if status.isGenericFallback {
      FileHandle.standardError.write(("warning: OpenBLAS uses the generic '\(status.coreName)' kernel on a CPU with "
        + "\(CPUInfo.features().joined(separator: " ")); matrix products run 2-5x slower. Unset OPENBLAS_CORETYPE "
        + "or set it to SkylakeX/Haswell.\n").data(using: .utf8)!)
    }
    return RuntimeReport(layout: layout, threads: threads, blas: status, selfCheckError: error)
  }
}
