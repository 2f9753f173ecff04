// What a sweep has done so far, read from its run directories alone (so a killed or rebooted sweep, a cron
// rerun and Slurm array tasks all agree): COMPLETE = done, a live .sweep-lock = running, FAILED = failed,
// metrics or checkpoints without COMPLETE = interrupted (resumed with --resume auto), nothing = pending.
// The lock is an O_CREAT|O_EXCL file holding PID, process start time and host; a guard file taken with
// flock serialises "check, break a stale lock, create" so two sweeps never start the same configuration.
import Foundation
import Training

public enum SweepRunStatus: String, Codable, CaseIterable {
  case done, running, failed, interrupted, pending
}

/// One configuration's run directory and what it holds.
public struct SweepRunRecord {
  public var configuration: SweepConfiguration
  public var directory: String
  public var status: SweepRunStatus
  /// done: COMPLETE's numbers; otherwise the newest value of each key in metrics.jsonl.
  public var metrics: [String: Double]
  /// failed: the reason; running: the holder.
  public var detail: String

  public var name: String { configuration.runName }
}

// MARK: lock

public struct SweepLockHolder: Codable, Equatable {
  public var pid: Int32
  /// The training process the sweep started (mpirun or rada), so a killed sweep with a surviving child still counts.
  public var child: Int32?
  public var host: String
  /// /proc start time (clock ticks since boot) of `pid`, to tell a reused PID from the holder.
  public var startTicks: UInt64?
  public var childStartTicks: UInt64?
  public var started: Double

  public init(pid: Int32, child: Int32? = nil, host: String, startTicks: UInt64? = nil, childStartTicks: UInt64? = nil,
              started: Double) {
    self.pid = pid; self.child = child; self.host = host; self.startTicks = startTicks
    self.childStartTicks = childStartTicks; self.started = started
  }

  public var summary: String {
    "pid \(pid)\(child.map { ", child \($0)" } ?? "") on \(host) since \(Date(timeIntervalSince1970: started))"
  }
}

public enum SweepLock {
  public static let fileName = ".sweep-lock"

  public static func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(cString: buffer)
  }

  /// Start time of a live process from /proc/PID/stat (field 22), nil when it does not exist or is a zombie
  /// (a killed process whose parent died stays a zombie where nothing reaps orphans, e.g. in a container).
  public static func startTicks(of pid: Int32) -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let paren = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: paren)...].split(separator: " ")
    guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
    return UInt64(fields[19])
  }

  static func isAlive(_ pid: Int32, ticks: UInt64?) -> Bool {
    if FileManager.default.fileExists(atPath: "/proc/self/stat") {
      guard let now = startTicks(of: pid) else { return false }
      return ticks == nil || ticks == now
    }
    return kill(pid, 0) == 0 || errno == EPERM
  }

  /// A lock is stale when it was taken on this host and neither the sweep nor its child is alive. A lock from
  /// another host is never judged stale (we cannot see its processes); an unreadable one is stale after 60 s.
  public static func isStale(_ holder: SweepLockHolder?, lockPath: String) -> Bool {
    guard let holder else {
      let modified = (try? FileManager.default.attributesOfItem(atPath: lockPath)[.modificationDate] as? Date) ?? Date()
      return Date().timeIntervalSince(modified) > 60
    }
    guard holder.host == hostName() else { return false }
    if isAlive(holder.pid, ticks: holder.startTicks) { return false }
    if let child = holder.child, isAlive(child, ticks: holder.childStartTicks) { return false }
    return true
  }

  public static func holder(directory: String) -> SweepLockHolder? {
    guard let data = FileManager.default.contents(atPath: directory + "/" + fileName) else { return nil }
    return try? JSONDecoder().decode(SweepLockHolder.self, from: data)
  }

  /// The live holder of a directory's lock, or nil when it is free (absent or stale).
  public static func liveHolder(directory: String) -> SweepLockHolder? {
    let path = directory + "/" + fileName
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    let current = holder(directory: directory)
    if isStale(current, lockPath: path) { return nil }
    return current ?? SweepLockHolder(pid: 0, host: "?", started: 0)
  }

  /// Takes the lock for this process; returns the live holder instead when someone else has it.
  public static func acquire(directory: String) throws -> SweepLockHolder? {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let guardFD = open(directory + "/.sweep-lock.guard", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
    guard guardFD >= 0 else { throw SweepError.badSpec(key: "--out", reason: "cannot write in \(directory) (errno \(errno)); check permissions") }
    defer { close(guardFD) }  // closing releases the flock
    flock(guardFD, LOCK_EX)
    let path = directory + "/" + fileName
    if FileManager.default.fileExists(atPath: path) {
      let current = holder(directory: directory)
      if !isStale(current, lockPath: path) { return current ?? SweepLockHolder(pid: 0, host: "?", started: 0) }
      unlink(path)
    }
    let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      return holder(directory: directory) ?? SweepLockHolder(pid: 0, host: "?", started: 0)
    }
    let me = SweepLockHolder(pid: getpid(), child: nil, host: hostName(), startTicks: startTicks(of: getpid()),
                             childStartTicks: nil, started: Date().timeIntervalSince1970)
    let data = try JSONEncoder().encode(me)
    _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fsync(fd)
    close(fd)
    return nil
  }

  /// Records the child process in the lock we hold (rewritten atomically).
  public static func noteChild(directory: String, child: Int32) {
    guard var me = holder(directory: directory), me.pid == getpid() else { return }
    me.child = child
    me.childStartTicks = startTicks(of: child)
    guard let data = try? JSONEncoder().encode(me) else { return }
    let temporary = directory + "/" + fileName + ".tmp"
    _ = FileManager.default.createFile(atPath: temporary, contents: data)
    rename(temporary, directory + "/" + fileName)
  }

  public static func release(directory: String) {
    if let me = holder(directory: directory), me.pid == getpid() { unlink(directory + "/" + fileName) }
  }
}

// MARK: reading run directories

public enum SweepState {
  public static let failedFile = "FAILED"

  public static func runDirectory(out: String, configuration: SweepConfiguration) -> String {
    out + "/runs/" + configuration.runName
  }

  /// RUN/extraction.txt (and OUT/extraction.txt for the sweep's own phase): where the feature extraction is.
  public static var extractionFile: String { RunDirectory.extractionFile }

  public static func record(out: String, configuration: SweepConfiguration) -> SweepRunRecord {
    let directory = runDirectory(out: out, configuration: configuration)
    let fm = FileManager.default
    var record = SweepRunRecord(configuration: configuration, directory: directory, status: .pending, metrics: [:], detail: "")
    if let data = fm.contents(atPath: directory + "/COMPLETE") {
      record.status = .done
      record.metrics = numbers((try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
      return record
    }
    record.metrics = latestMetrics(path: directory + "/metrics.jsonl")
    if let holder = SweepLock.liveHolder(directory: directory) {
      record.status = .running
      record.detail = holder.summary
      // The EFT feature extraction phase (before any step): where it is, from the run directory.
      if let phase = fm.contents(atPath: directory + "/" + extractionFile) {
        record.detail += "; " + String(decoding: phase.prefix(300), as: UTF8.self)
          .trimmingCharacters(in: .whitespacesAndNewlines)
      }
    } else if let data = fm.contents(atPath: directory + "/" + failedFile) {
      record.status = .failed
      record.detail = String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "failed"
    } else if fm.fileExists(atPath: directory + "/metrics.jsonl") || fm.fileExists(atPath: directory + "/checkpoints") {
      record.status = .interrupted
    }
    return record
  }

  public static func records(out: String, spec: SweepSpec) -> [SweepRunRecord] {
    spec.configurations().map { record(out: out, configuration: $0) }
  }

  static func numbers(_ object: [String: Any]) -> [String: Double] {
    var result: [String: Double] = [:]
    for (k, v) in object {
      // (Foundation on Linux reads JSON 1 as a number that also casts to Bool, so booleans are not filtered here.)
      if k != "skipped", let n = v as? NSNumber { result[k] = n.doubleValue }
    }
    return result
  }

  /// The newest value of every numeric key in metrics.jsonl (a running run's progress).
  static func latestMetrics(path: String) -> [String: Double] {
    var result: [String: Double] = [:]
    for line in MetricsLog.read(path: path) { for (k, v) in numbers(line) { result[k] = v } }
    result.removeValue(forKey: "time")
    return result
  }
}
