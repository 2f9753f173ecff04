// Checkpoints (DESIGN.md "Run directory"): RUN/checkpoints/step_00001000/{model.safetensors, head.safetensors,
// optimizer.safetensors, state.json, DONE}. Written by the coordinator into a temporary directory, every file
// fsynced, state.json carrying a checksum of every tensor file, then renamed into place and marked DONE. Resume
// takes the newest complete checkpoint whose checksums verify, falling back to older ones (with a warning) when
// the newest is damaged. The last N are kept, plus the best by a named metric.
import Foundation
import Tensor

public struct CheckpointState: Codable, Equatable {
  public var version = 1
  /// Optimiser steps completed.
  public var step: Int
  public var epoch: Int
  /// World size that wrote it (resume on another size continues the same global schedule).
  public var worldSize: Int
  public var seed: Int
  /// Optimiser step counter and any extra scalars (Adam's step, best metric, ...).
  public var scalars: [String: Double] = [:]
  /// File name -> checksum (hex) of the tensor files next to state.json.
  public var checksums: [String: String] = [:]
  /// The resolved config the run was started with (YAML).
  public var config: String = ""

  public init(step: Int, epoch: Int, worldSize: Int, seed: Int) {
    self.step = step; self.epoch = epoch; self.worldSize = worldSize; self.seed = seed
  }
}

public enum CheckpointError: Error, CustomStringConvertible {
  case damaged(path: String, reason: String)
  case writeFailed(path: String, reason: String)

  public var description: String {
    switch self {
    case let .damaged(path, reason): return "checkpoint \(path) is damaged (\(reason)); it will not be used."
    case let .writeFailed(path, reason):
      return "could not write checkpoint \(path): \(reason). Free disk space or fix permissions; earlier checkpoints are intact."
    }
  }
}

/// A checksum over a file's bytes (64-bit, word-wise multiply-xorshift; fast, not cryptographic).
public func checksum(_ data: Data) -> String {
  var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(data.count)
  data.withUnsafeBytes { raw in
    let words = raw.count / 8
    let base = raw.baseAddress!
    for i in 0..<words {
      h = (h ^ base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01B3
      h ^= h >> 29
    }
    for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01B3 }
  }
  return String(h, radix: 16)
}

public struct Checkpointer {
  public let directory: String
  public let keepLast: Int

  public init(directory: String, keepLast: Int) {
    self.directory = directory
    self.keepLast = max(1, keepLast)
  }

  public static func name(step: Int) -> String { "step_" + String(format: "%08d", step) }

  /// Writes one checkpoint. `files` maps a file name to its tensors. Returns the checkpoint path.
  @discardableResult
  public func save(step: Int, files: [String: [SafetensorsWriter.Tensor]], state: CheckpointState) throws -> String {
    let final = directory + "/" + Checkpointer.name(step: step)
    let temporary = directory + "/.tmp-" + Checkpointer.name(step: step) + "-\(getpid())"
    let fm = FileManager.default
    do {
      try? fm.removeItem(atPath: temporary)
      try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
      var state = state
      for (name, tensors) in files.sorted(by: { $0.key < $1.key }) {
        let bytes = SafetensorsWriter.encode(tensors)
        try writeAtomically(bytes, to: temporary + "/" + name)
        state.checksums[name] = checksum(bytes)
      }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try writeAtomically(try encoder.encode(state), to: temporary + "/state.json")
      try? fm.removeItem(atPath: final)  // a re-save of the same step (e.g. a stop right after a periodic save)
      guard rename(temporary, final) == 0 else {
        throw CheckpointError.writeFailed(path: final, reason: String(cString: strerror(errno)))
      }
      try writeAtomically(Data("ok\n".utf8), to: final + "/DONE")
    } catch let error as CheckpointError {
      try? fm.removeItem(atPath: temporary)
      throw error
    } catch {
      try? fm.removeItem(atPath: temporary)
      throw CheckpointError.writeFailed(path: final, reason: "\(error)")
    }
    return final
  }

  /// Complete checkpoints (with DONE), newest first.
  public func complete() -> [(step: Int, path: String)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.compactMap { name -> (Int, String)? in
      guard name.hasPrefix("step_"), let step = Int(name.dropFirst(5)) else { return nil }
      let path = directory + "/" + name
      guard FileManager.default.fileExists(atPath: path + "/DONE") else { return nil }
      return (step, path)
    }.sorted { $0.0 > $1.0 }
  }

  /// Reads and verifies a checkpoint's state and checksums.
  public func verify(_ path: String) throws -> CheckpointState {
    guard let data = try? BoundedFile.read(path + "/state.json", limit: BoundedFile.configLimit, what: "a state.json") else {
      throw CheckpointError.damaged(path: path, reason: "state.json missing, unreadable or over 16 MiB")
    }
    let state: CheckpointState
    do { state = try JSONDecoder().decode(CheckpointState.self, from: data) } catch {
      throw CheckpointError.damaged(path: path, reason: "state.json unreadable: \(error)")
    }
    if let problem = state.problem { throw CheckpointError.damaged(path: path, reason: "state.json: \(problem)") }
    for (name, expected) in state.checksums {
      guard let bytes = FileManager.default.contents(atPath: path + "/" + name) else {
        throw CheckpointError.damaged(path: path, reason: "\(name) missing")
      }
      let actual = checksum(bytes)
      guard actual == expected else {
        throw CheckpointError.damaged(path: path, reason: "\(name) checksum \(actual) != recorded \(expected)")
      }
    }
    return state
  }

  /// The newest checkpoint that verifies; damaged newer ones are reported through `warn` and skipped.
  public func newestValid(warn: (String) -> Void) -> (path: String, state: CheckpointState)? {
    for candidate in complete() {
      do { return (candidate.path, try verify(candidate.path)) } catch { warn("\(error) Falling back to an older checkpoint.") }
    }
    return nil
  }

  /// Keeps the newest `keepLast` complete checkpoints plus `protectedSteps` (the best); removes the rest and
  /// any temporary directories left by a crash.
  public func prune(protectedSteps: Set<Int>) {
    let fm = FileManager.default
    for (index, entry) in complete().enumerated() where index >= keepLast && !protectedSteps.contains(entry.step) {
      try? fm.removeItem(atPath: entry.path)
    }
    for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(".tmp-") {
      try? fm.removeItem(atPath: directory + "/" + name)
    }
  }
}
