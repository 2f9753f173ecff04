// Config values with a fixed set of choices (optimiser, schedule, mask loss, non-finite policy, best mode, overlap,
// progress, setting, class subset): typed enums decoded from their names in YAML, flags and `--set`, so no string
// is compared after decoding. A wrong name is refused naming the choices ("use sgd, adam, adamw").
import Data
import Foundation
import RAda

public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension ConfigChoice {
  /// "sgd, adam, adamw"
  public static var choices: String { allCases.map(\.rawValue).joined(separator: ", ") }

  public init(from decoder: Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    guard let value = Self(rawValue: name) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "use " + Self.choices))
    }
    self = value
  }
}

/// `setting`: which parts train (`rada ttt` runs TTT).
public enum TrainingSetting: String, ConfigChoice {
  /// The head only, on frozen encoders.
  case eft
  /// Both towers and the head.
  case fft
}

/// `schedule.name`.
public enum ScheduleKind: String, ConfigChoice {
  /// The base lr throughout.
  case constant
  /// Per step, with an optional linear warm-up (schedule.warmupSteps).
  case cosine
  /// Per epoch as the reference (Dassl): schedule.warmupEpochs at the constant schedule.warmupLR, then cosine.
  case dasslCosine = "dassl_cosine"
}

/// `run.nonFinite`: what a NaN/Inf loss or gradient does.
public enum NonFinitePolicy: String, ConfigChoice {
  case stop, skip
}

/// `run.bestMode`: whether a higher `run.bestMetric` is better.
public enum BestMode: String, ConfigChoice {
  case max, min
}

/// `fft.overlap`: whether gradient buckets start their allreduce during backward.
public enum OverlapMode: String, ConfigChoice {
  /// Only when the ranks span several nodes.
  case auto
  case always
  case never
}

extension OptimizerKind: ConfigChoice {}
extension ProgressMode: ConfigChoice {}
extension MaskLossKind: ConfigChoice {}
extension ClassSubset: ConfigChoice {}
