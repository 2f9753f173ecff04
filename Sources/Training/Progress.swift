// The coordinator's console line:
//   step 1200/5000 | loss 2.314 | lr 3.0e-4 | 412 ms/step | 118 img/s | eta 4m10s
// printed once per interval (a live bar when stdout is a terminal is drawn by rewriting the line).
import Foundation

public struct ProgressLine {
  public static func format(step: Int, totalSteps: Int, loss: Double, lr: Double, secondsPerStep: Double,
                            imagesPerSecond: Double) -> String {
    let eta = Double(max(0, totalSteps - step)) * secondsPerStep
    return "step \(step)/\(totalSteps) | loss \(String(format: "%.3f", loss)) | lr \(scientific(lr)) | "
      + "\(Int((secondsPerStep * 1000).rounded())) ms/step | \(Int(imagesPerSecond.rounded())) img/s | eta \(duration(eta))"
  }

  /// 3.0e-4 style (no zero-padded exponent).
  public static func scientific(_ x: Double) -> String {
    String(format: "%.1e", x).replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+0", with: "e+")
  }

  public static func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
  }

  public static var isTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

  /// A 30-character bar for terminals.
  public static func bar(step: Int, totalSteps: Int) -> String {
    let filled = totalSteps > 0 ? min(30, 30 * step / totalSteps) : 0
    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "]"
  }
}

/// SIGTERM / SIGINT set a flag; the trainer agrees on it across ranks (allreduce max) at step boundaries,
/// writes a final checkpoint on all ranks together and exits cleanly so Slurm can requeue the job.
public enum StopSignal {
  nonisolated(unsafe) private static var flag: sig_atomic_t = 0
  nonisolated(unsafe) public private(set) static var signalNumber: Int32 = 0

  public static func install() {
    signal(SIGTERM) { sig in StopSignal.flag = 1; StopSignal.signalNumber = sig }
    signal(SIGINT) { sig in StopSignal.flag = 1; StopSignal.signalNumber = sig }
    signal(SIGUSR1) { sig in StopSignal.flag = 1; StopSignal.signalNumber = sig }
  }

  public static var isRequested: Bool { flag != 0 }
  /// For tests and for a stop decided elsewhere.
  public static func request() { flag = 1 }
  public static func reset() { flag = 0; signalNumber = 0 }
}
