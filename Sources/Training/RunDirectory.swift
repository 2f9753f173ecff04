// The run directory (DESIGN.md "Run directory"): config.resolved.yaml, world.json, metrics.jsonl, log.txt,
// checkpoints/, final head/model files. Only the coordinator writes here. A directory that already holds a run
// is refused unless resuming, so a finished result is never overwritten by accident.
import Foundation
import Tensor

public enum RunDirectoryError: Error, CustomStringConvertible {
  case alreadyHoldsRun(String)
  case cannotCreate(String, reason: String)

  public var description: String {
    switch self {
    case let .alreadyHoldsRun(path):
      return "\(path) already holds a run (metrics.jsonl or checkpoints exist). Pass --resume auto to continue it, "
        + "or choose another --run-dir."
    case let .cannotCreate(path, reason): return "cannot create run directory \(path): \(reason). Check the path and permissions."
    }
  }
}

public struct RunDirectory {
  /// RUN/extraction.txt: one line on the augmented feature extraction, present while it runs (`rada sweep status`).
  public static let extractionFile = "extraction.txt"

  public let path: String
  public var url: URL { URL(fileURLWithPath: path) }
  public var metricsPath: String { path + "/metrics.jsonl" }
  public var checkpointsPath: String { path + "/checkpoints" }

  public init(path: String) { self.path = path }

  /// True when the directory already contains a run's output.
  public var holdsRun: Bool {
    let fm = FileManager.default
    return fm.fileExists(atPath: metricsPath) || fm.fileExists(atPath: checkpointsPath)
      || fm.fileExists(atPath: path + "/config.resolved.yaml")
  }

  /// Creates the directory (and checkpoints/). Refuses an existing run unless `resuming`.
  public func prepare(resuming: Bool) throws {
    if holdsRun && !resuming { throw RunDirectoryError.alreadyHoldsRun(path) }
    do {
      try FileManager.default.createDirectory(atPath: checkpointsPath, withIntermediateDirectories: true)
    } catch {
      throw RunDirectoryError.cannotCreate(path, reason: error.localizedDescription)
    }
  }

  public func file(_ name: String) -> String { path + "/" + name }

  /// Writes a small text file atomically (temporary name, fsync, rename).
  public func writeAtomically(_ name: String, _ text: String) throws {
    try Tensor.writeAtomically(Data(text.utf8), to: file(name))
  }
}

/// Names the file system that holds `path` for error messages: its mount point and the space left
/// ("the disk mounted at /scratch (0 bytes free)"), so a full disk is recognisable at once.
public func diskDescription(_ path: String) -> String {
  var directory = (path as NSString).standardizingPath
  while !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
    directory = (directory as NSString).deletingLastPathComponent
  }
  let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
  let mountPoint = mounts.split(separator: "\n").compactMap { line -> String? in
    let fields = line.split(separator: " ")
    return fields.count > 1 ? String(fields[1]) : nil
  }.filter { directory == $0 || directory.hasPrefix($0 == "/" ? "/" : $0 + "/") }.max { $0.count < $1.count } ?? "/"
  var info = statvfs()
  guard statvfs(directory, &info) == 0 else { return "the disk mounted at \(mountPoint)" }
  let free = UInt64(info.f_bavail) &* UInt64(info.f_frsize)
  return "the disk mounted at \(mountPoint) (\(free) bytes free)"
}

public enum MetricsError: Error, CustomStringConvertible {
  case writeFailed(path: String, reason: String)
  public var description: String {
    switch self {
    case let .writeFailed(path, reason):
      return "could not append to \(path) (\(reason)) on \(diskDescription(path)). Training stopped; the last "
        + "complete checkpoint is kept. Free space there, then rerun with --resume auto."
    }
  }
}

/// metrics.jsonl: one JSON object per line, appended and flushed per line so a crash loses at most one line.
/// A failed write (a full disk) is an error for the caller, never a crash.
public final class MetricsLog {
  private let handle: FileHandle?

  /// `enabled` is false on non-coordinator ranks (they log nothing).
  public init(path: String, enabled: Bool) throws {
    self.path = path
    guard enabled else { handle = nil; return }
    if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    guard let opened = FileHandle(forWritingAtPath: path) else {
      throw MetricsError.writeFailed(path: path, reason: "cannot open for writing")
    }
    do {
      // A line cut short by a full disk must not swallow the next one: end it first.
      if try opened.seekToEnd() > 0, let reader = FileHandle(forReadingAtPath: path) {
        try reader.seek(toOffset: try reader.seekToEnd() - 1)
        if try reader.read(upToCount: 1) != Data("\n".utf8) { try opened.write(contentsOf: Data("\n".utf8)) }
        try reader.close()
      }
    } catch {
      throw MetricsError.writeFailed(path: path, reason: (error as NSError).localizedDescription)
    }
    handle = opened
  }

  private let path: String

  /// Appends one line; keys are sorted for stable files; non-finite numbers are written as null.
  public func append(_ values: [String: Any]) throws {
    guard let handle else { return }
    let clean = values.mapValues { value -> Any in
      if let d = value as? Double, !d.isFinite { return NSNull() }
      if let f = value as? Float, !f.isFinite { return NSNull() }
      return value
    }
    guard let data = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
    do {
      try handle.write(contentsOf: data + Data("\n".utf8))
      try handle.synchronize()
    } catch {
      throw MetricsError.writeFailed(path: path, reason: (error as NSError).localizedDescription)
    }
  }

  deinit { handle?.closeFile() }

  /// Reads a metrics file back (for resume, reports and tests).
  public static func read(path: String) -> [[String: Any]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
    }
  }
}
