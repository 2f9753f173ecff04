// Checkpoints (DESIGN.md "Run directory"): RUN/checkpoints/step_00001000/{model.safetensors, head.safetensors,
// optimizer.safetensors, state.json, DONE}. Written by the coordinator into a temporary directory, every file
// fsynced, state.json carrying a checksum of every tensor file, then renamed into place and marked DONE. Resume
// takes the newest complete checkpoint whose checksums verify, falling back to older ones (with a warning) when
// the newest is damaged. DONE holds the checksum of state.json, so state.json is covered too. state.json records
// the model fingerprint and every tensor's shape: a checkpoint of another model is refused before anything is
// copied (`checkCompatible`), and a run whose checkpoints are all damaged is refused, never restarted over them.
// The last N are kept, plus the best by a named metric.
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
  /// The model the run started from (shapes + weights digest; nil in checkpoints written before issue 15).
  public var model: ModelFingerprint?
  /// File name -> tensor name -> shape, for every tensor file (empty in checkpoints written before issue 15).
  public var shapes: [String: [String: [Int]]] = [:]

  public init(step: Int, epoch: Int, worldSize: Int, seed: Int) {
    self.step = step; self.epoch = epoch; self.worldSize = worldSize; self.seed = seed
  }
}

public enum CheckpointError: Error, CustomStringConvertible {
  case damaged(path: String, reason: String)
  case writeFailed(path: String, reason: String)
  /// Every complete checkpoint failed verification; `reasons` one per checkpoint.
  case allDamaged(directory: String, reasons: [String])
  /// The checkpoint belongs to another model or another parameter layout.
  case foreign(path: String, reason: String)

  public var description: String {
    switch self {
    case let .damaged(path, reason): return "checkpoint \(path) is damaged (\(reason)); it will not be used."
    case let .allDamaged(directory, reasons):
      return "every checkpoint in \(directory) is damaged (" + reasons.joined(separator: "; ") + "). Refusing to resume "
        + "(nothing was changed or deleted). To start over, move the run directory aside or pass another --run-dir."
    case let .foreign(path, reason):
      return "checkpoint \(path) does not belong to this model: \(reason). Nothing was changed. Resume with the model "
        + "and config the run was started with, or pass another --run-dir to start a new run."
    case let .writeFailed(path, reason):
      return "could not write checkpoint \(path) on \(diskDescription(path)): \(reason). Free disk space or fix "
        + "permissions, then rerun with --resume auto; earlier checkpoints are intact."
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
        state.shapes[name] = Dictionary(tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
      }
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      let stateBytes = try encoder.encode(state)
      try writeAtomically(stateBytes, to: temporary + "/state.json")
      try? fm.removeItem(atPath: final)  // a re-save of the same step (e.g. a stop right after a periodic save)
      guard rename(temporary, final) == 0 else {
        throw CheckpointError.writeFailed(path: final, reason: String(cString: strerror(errno)))
      }
      try writeAtomically(Data("state.json \(checksum(stateBytes))\n".utf8), to: final + "/DONE")
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
    // DONE: "state.json CHECKSUM" (before issue 15: "ok", no checksum of state.json).
    let done = String(decoding: FileManager.default.contents(atPath: path + "/DONE") ?? Data(), as: UTF8.self)
    let doneFields = done.split(whereSeparator: \.isWhitespace)
    if doneFields.count == 2, doneFields[0] == "state.json", String(doneFields[1]) != checksum(data) {
      throw CheckpointError.damaged(path: path, reason: "state.json checksum \(checksum(data)) != recorded \(doneFields[1])")
    } else if doneFields != ["ok"] && !(doneFields.count == 2 && doneFields[0] == "state.json") {
      throw CheckpointError.damaged(path: path, reason: "DONE unreadable")
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

  /// What resume starts from: nil when there is no complete checkpoint (a fresh start), the newest that
  /// verifies otherwise; throws `allDamaged` when checkpoints exist but none verifies (a silent restart from
  /// step 0 would overwrite and prune them and mix two runs in metrics.jsonl).
  public func resumePoint(warn: (String) -> Void) throws -> (path: String, state: CheckpointState)? {
    let candidates = complete()
    guard !candidates.isEmpty else { return nil }
    var reasons: [String] = []
    for candidate in candidates {
      do { return (candidate.path, try verify(candidate.path)) } catch {
        reasons.append("\(error)")
        warn("\(error) Falling back to an older checkpoint.")
      }
    }
    throw CheckpointError.allDamaged(directory: directory, reasons: reasons)
  }

  /// Refuses a checkpoint written for another model: a different starting model (fingerprint), or a tensor
  /// whose recorded shape differs from `expected` (file name -> tensor name -> shape). Older checkpoints without
  /// a record are checked against the tensor files' own headers by the caller before copying.
  public static func checkCompatible(_ state: CheckpointState, path: String, model: ModelFingerprint?,
                                     expected: [String: [String: [Int]]]) throws {
    if let model, let recorded = state.model {
      if recorded.shapes != model.shapes {
        throw CheckpointError.foreign(path: path, reason: "it was written for a model with other tensor shapes "
          + "(shape digest \(recorded.shapes), this model \(model.shapes))")
      }
      if recorded.weights != model.weights {
        throw CheckpointError.foreign(path: path, reason: "it was trained from other weights (digest \(recorded.weights), "
          + "this model \(model.weights))")
      }
    }
    for (file, tensors) in expected.sorted(by: { $0.key < $1.key }) {
      guard let recorded = state.shapes[file] else { continue }
      for (name, shape) in tensors.sorted(by: { $0.key < $1.key }) {
        guard let other = recorded[name] else {
          throw CheckpointError.foreign(path: path, reason: "\(file) has no tensor \(name)")
        }
        guard other == shape else {
          throw CheckpointError.foreign(path: path, reason: "\(file): \(name) has shape \(other), this model needs \(shape)")
        }
      }
    }
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
