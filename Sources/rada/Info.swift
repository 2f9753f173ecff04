// `rada info`: what a user runs first on a new cluster. Every rank reports its host, rank layout, MPI
// library, OpenBLAS kernel and threads, CPU flags and a measured sgemm speed with the self-check result;
// the coordinator prints one table.
import ArgumentParser
import Distributed
import Foundation
import Kernels
import Training

struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Show ranks, MPI, OpenBLAS kernel and measured sgemm speed.")

  @OptionGroup var runtime: RuntimeOptions
  @Option(help: "Matrix size for the sgemm measurement.") var gemmSize = 1024

  func validate() throws { try checkRange("--gemm-size", gemmSize, 16...16_384) }
  @Flag(help: "Print one JSON object per rank instead of the table.") var json = false

  struct Row: Codable {
    var host: String, rank: Int, size: Int, localRank: Int, localSize: Int, mpi: String
    var blasCore: String, blasOriginalCore: String, blasForced: String, blasThreads: Int, blasIdleSpin: String
    /// Who chose the kernel: "OPENBLAS_CORETYPE" (the user: the way to force one), "rada" (generic fallback
    /// replaced) or "OpenBLAS" (its own choice for this CPU).
    var blasCoreSetBy: String
    var cpu: String, cpuFlags: [String], gflops: Double, selfCheckError: Float, selfCheckPassed: Bool
  }

  func run() throws {
    let report = try Runtime.start(requestedThreads: runtime.threads)
    let world = try makeCollective()
    let gflops = BLASRuntime.measureGFLOPS(size: gemmSize)
    let row = Row(host: world.hostName, rank: world.rank, size: world.size, localRank: world.localRank,
                  localSize: world.localSize, mpi: world.libraryVersion, blasCore: report.blas.coreName,
                  blasOriginalCore: report.blas.originalCoreName, blasForced: report.blas.forcedCoreType,
                  blasThreads: BLASRuntime.threads, blasIdleSpin: idleSpin(report.blas),
                  blasCoreSetBy: report.blas.userSetCoreType ? "OPENBLAS_CORETYPE"
                    : (report.blas.forcedCoreType.isEmpty ? "OpenBLAS" : "rada"),
                  cpu: CPUInfo.model(), cpuFlags: CPUInfo.features(),
                  gflops: gflops, selfCheckError: report.selfCheckError, selfCheckPassed: report.selfCheckError < 1e-4)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let rows = try world.allGather(string: String(decoding: try encoder.encode(row), as: UTF8.self))
    guard world.isCoordinator else { return }
    if json { rows.forEach { print($0) }; return }
    let decoded = try rows.map { try JSONDecoder().decode(Row.self, from: Data($0.utf8)) }
    print("rada info: \(decoded.count) rank(s), \(decoded[0].mpi)")
    print(pad("rank", 5) + pad("host", 16) + pad("local", 7) + pad("blas core", 30) + pad("thr", 4)
          + pad("sgemm GFLOP/s", 15) + "self-check")
    for r in decoded {
      let core = r.blasCoreSetBy == "OPENBLAS_CORETYPE" ? "\(r.blasCore) (OPENBLAS_CORETYPE)"
        : (r.blasForced.isEmpty ? r.blasCore : "\(r.blasCore) (was \(r.blasOriginalCore))")
      print(pad("\(r.rank)", 5) + pad(r.host, 16) + pad("\(r.localRank)/\(r.localSize)", 7) + pad(core, 30)
            + pad("\(r.blasThreads)", 4) + pad(String(format: "%.1f", r.gflops), 15)
            + (r.selfCheckPassed ? "ok" : "FAILED") + String(format: " (max rel err %.1e)", r.selfCheckError))
    }
    print("OpenBLAS idle workers: \(decoded[0].blasIdleSpin)")
    if decoded[0].blasCoreSetBy != "OPENBLAS_CORETYPE" {
      print("another kernel: OPENBLAS_CORETYPE=NAME rada ... (e.g. Haswell, Zen, SkylakeX; the CPU must have its instructions)")
    }
    print("cpu: \(decoded[0].cpu), flags: \(decoded[0].cpuFlags.joined(separator: " "))")
    let total = decoded.reduce(0) { $0 + $1.gflops }
    print(String(format: "total sgemm: %.1f GFLOP/s over %d rank(s)", total, decoded.count))
  }
}

/// How long idle OpenBLAS workers spin before sleeping, and who chose it.
func idleSpin(_ status: BLASStatus) -> String {
  let exponent = status.idleSpinExponent == 0 ? 28 : status.idleSpinExponent
  let who = status.userSetIdleSpin ? "OPENBLAS_THREAD_TIMEOUT" : (status.idleSpinExponent == 0 ? "OpenBLAS default" : "rada")
  return "spin 2^\(exponent) cycles, then sleep (\(who))"
}

func pad(_ s: String, _ width: Int) -> String {
  s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}
