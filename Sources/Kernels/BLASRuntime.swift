// What OpenBLAS is doing in this process: the kernel it picked (after the start-up fix-up in
// CSupport/blas_fix.c), its thread count, a self-check of one sgemm against a naive loop, and a measured
// GFLOP/s. `rada info` prints these; training refuses to start when the self-check fails.
// Shape letters: none (the self-check's and the benchmark's sgemm sizes are spelt out).
import COpenBLAS
import CSupport
import Foundation
import Tensor

public struct BLASStatus: Codable, Equatable {
  /// Core OpenBLAS uses now.
  public var coreName: String
  /// Core OpenBLAS picked by itself before our fix-up.
  public var originalCoreName: String
  /// OPENBLAS_CORETYPE we forced ("" when none).
  public var forcedCoreType: String
  public var userSetCoreType: Bool
  public var threads: Int
  /// Idle OpenBLAS workers spin 2^idleSpinExponent cycles before sleeping (OPENBLAS_THREAD_TIMEOUT; 0: library
  /// default, 2^28). rada sets 12 at start unless the user set it (blas_fix.c).
  public var idleSpinExponent: Int
  public var userSetIdleSpin: Bool
  /// True when the core is a generic fallback although the CPU supports AVX2/AVX-512 (a 2-5x slowdown).
  public var isGenericFallback: Bool
}

public enum BLASRuntime {
  static let genericCores: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias",
                                         "atom", "penryn", "dunnington", "nehalem", "sandybridge", "unknown"]

  public static func status() -> BLASStatus {
    let report = rada_blas_fix_result()!.pointee
    let core = String(cString: openblas_get_corename())
    let features = CPUInfo.features()
    let capable = features.contains("avx2") || features.contains("avx512f")
    return BLASStatus(
      coreName: core,
      originalCoreName: withUnsafeBytes(of: report.original) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) },
      forcedCoreType: withUnsafeBytes(of: report.forced) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) },
      userSetCoreType: report.userSet != 0,
      threads: Int(openblas_get_num_threads()),
      idleSpinExponent: Int(report.threadTimeout), userSetIdleSpin: report.threadTimeoutUserSet != 0,
      isGenericFallback: capable && genericCores.contains(core.lowercased()))
  }

  public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }
  public static var threads: Int { Int(openblas_get_num_threads()) }

  /// Compares a 67x53x71 sgemm (odd sizes, all transpose combinations) against a naive Double loop.
  /// Returns the largest relative error; anything above 1e-4 means a broken BLAS.
  public static func selfCheck() -> Float {
    let m = 67, n = 53, k = 71
    var rng = SeededRNG(seed: 7)
    let a = FloatBuffer((0..<(m * k)).map { _ in Float(rng.normal()) })
    let b = FloatBuffer((0..<(k * n)).map { _ in Float(rng.normal()) })
    let c = FloatBuffer(count: m * n), ref = FloatBuffer(count: m * n)
    var worst: Float = 0
    for ta in [Transpose.noTranspose, .transpose] {
      for tb in [Transpose.noTranspose, .transpose] {
        gemm(ta, tb, m: m, n: n, k: k, a: a.readOnly, b: b.readOnly, c: c.pointer)
        naiveGemm(ta, tb, m: m, n: n, k: k, a: a.readOnly, b: b.readOnly, c: ref.pointer)
        for i in 0..<(m * n) {
          worst = max(worst, abs(c[i] - ref[i]) / max(1, abs(ref[i])))
        }
      }
    }
    return worst
  }

  /// Measured sgemm speed in GFLOP/s on n x n x n (median of `repeats` after one warm-up).
  public static func measureGFLOPS(size n: Int = 1024, repeats: Int = 5) -> Double {
    let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
    var rng = SeededRNG(seed: 1)
    for i in 0..<(n * n) { a[i] = rng.uniformFloat() - 0.5; b[i] = rng.uniformFloat() - 0.5 }
    gemm(.noTranspose, .noTranspose, m: n, n: n, k: n, a: a.readOnly, b: b.readOnly, c: c.pointer)
    var times: [Double] = []
    for _ in 0..<repeats {
      let start = DispatchTime.now().uptimeNanoseconds
      gemm(.noTranspose, .noTranspose, m: n, n: n, k: n, a: a.readOnly, b: b.readOnly, c: c.pointer)
      times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    times.sort()
    return 2.0 * Double(n * n * n) / times[times.count / 2] / 1e9
  }
}

/// CPU facts used for kernel choice and `rada info`.
public enum CPUInfo {
  public static func features() -> [String] {
    let bits = rada_cpu_features()
    let names: [(UInt32, String)] = [
      (UInt32(RADA_CPU_SSE42), "sse4.2"), (UInt32(RADA_CPU_AVX), "avx"), (UInt32(RADA_CPU_AVX2), "avx2"),
      (UInt32(RADA_CPU_FMA), "fma"), (UInt32(RADA_CPU_AVX512F), "avx512f"), (UInt32(RADA_CPU_AVX512BW), "avx512bw"),
      (UInt32(RADA_CPU_AVX512VL), "avx512vl"), (UInt32(RADA_CPU_AVX512DQ), "avx512dq"),
      (UInt32(RADA_CPU_AVX512BF16), "avx512_bf16"), (UInt32(RADA_CPU_AMX), "amx"),
    ]
    return names.filter { bits & $0.0 != 0 }.map(\.1)
  }

  public static func model() -> String {
    var family: Int32 = 0, model: Int32 = 0, stepping: Int32 = 0
    rada_cpu_model(&family, &model, &stepping)
    return "family \(family) model \(model)"
  }

  /// CPUs this process may run on (after mpirun/Slurm binding), falling back to the online count.
  public static var allowedCPUs: Int {
    let n = Int(rada_affinity_cpu_count())
    return n > 0 ? n : ProcessInfo.processInfo.activeProcessorCount
  }
}
