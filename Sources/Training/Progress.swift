// The coordinator's console line:
//   step 1200/5000 | loss 2.314 | lr 3.0e-4 | 412 ms/step | 118 img/s | eta 4m10s
// printed once per interval, and between those lines a live bar (the line rewritten with \r) when the job's
// output is a terminal. Under mpirun every rank's stdout is a pseudo-terminal even when mpirun itself writes to
// a file, so "is a terminal" asks the launcher (ProgressMode.resolve), never the rank's own isatty alone.
import Foundation

/// `run.progress` / `--progress`: how the training loop reports progress.
public enum ProgressMode: String, CaseIterable, Codable, Sendable {
  /// `bar` when the job's output is a terminal, else `lines`.
  case auto
  /// A live bar rewritten in place between the progress lines (terminals only: it writes \r and ESC[K).
  case bar
  /// One plain progress line every `run.logEvery` steps: what log files and schedulers want.
  case lines
  /// No progress lines (evaluation results and the final summary are still printed).
  case none

  /// `auto` decided for this process: `bar` or `lines`; other modes stay as they are.
  public func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) -> ProgressMode {
    guard self == .auto else { return self }
    return ProgressMode.outputIsTerminal(environment: environment) ? .bar : .lines
  }

  /// Whether what this process prints ends up on a terminal.
  /// 1. `RADA_OUTPUT_TTY=1|0`, set by launch/train-local and launch/train-hosts from their own stdout, decides.
  /// 2. `TERM=dumb` or a stdout that is no terminal: no.
  /// 3. Under mpirun (OMPI_COMM_WORLD_SIZE set) the rank's terminal is mpirun's pseudo-terminal: the answer is
  ///    where mpirun's own stdout points, read from /proc/<parent>/fd/1 (mpirun is the parent of the ranks on its
  ///    node; on other nodes the parent is orted, whose output is no terminal). Unreadable: no.
  public static func outputIsTerminal(environment: [String: String]) -> Bool {
    if let told = environment["RADA_OUTPUT_TTY"], !told.isEmpty { return told == "1" }
    if environment["TERM"] == "dumb" || isatty(STDOUT_FILENO) == 0 { return false }
    guard environment["OMPI_COMM_WORLD_SIZE"] != nil else { return true }
    return pathIsTerminal(linkTarget(of: "/proc/\(getppid())/fd/1"))
  }

  /// Device paths of terminals: /dev/pts/N, /dev/ttyN, /dev/tty, /dev/console.
  static func pathIsTerminal(_ path: String?) -> Bool {
    guard let path else { return false }
    return path.hasPrefix("/dev/pts/") || path.hasPrefix("/dev/tty") || path == "/dev/console"
  }

  static func linkTarget(of path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink(path, &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

public struct ProgressLine {
  public static func format(step: Int, totalSteps: Int, loss: Double, lr: Double, secondsPerStep: Double,
                            imagesPerSecond: Double) -> String {
    let eta = Double(max(0, totalSteps - step)) * secondsPerStep
    return "step \(step)/\(totalSteps) | loss \(String(format: "%.3f", loss)) | lr \(scientific(lr)) | "
      + "\(whole(secondsPerStep * 1000)) ms/step | \(whole(imagesPerSecond)) img/s | eta \(duration(eta))"
  }

  /// A timing rounded to a whole number, or "?" when it is not finite (a clock that did not advance, say).
  static func whole(_ x: Double) -> String { x.isFinite && abs(x) < 1e15 ? String(Int(x.rounded())) : "?" }

  /// 3.0e-4 style (no zero-padded exponent).
  public static func scientific(_ x: Double) -> String {
    String(format: "%.1e", x).replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+0", with: "e+")
  }

  public static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds < 1e15 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
  }

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
