// Expands a SweepSpec into configurations: the grid's cartesian product (first key slowest, as
// itertools.product), each combined with every random draw (draws come from SeededRNG(seed), keys in file
// order, so the same spec always gives the same values). Every configuration gets one deterministic run
// directory name: its readable key=value list plus a hash of the full argument list, so editing the shared
// args starts fresh runs instead of mixing results.
import Foundation
import Training
import Tensor

public struct SweepConfiguration: Equatable {
  /// Position in the expansion (the Slurm array index).
  public var index: Int
  /// (swept key, value) in spec order.
  public var values: [(key: String, value: SweepValue)]
  /// Full `rada train` arguments except --run-dir, --resume and --threads.
  public var arguments: [String]

  public static func == (a: SweepConfiguration, b: SweepConfiguration) -> Bool {
    a.index == b.index && a.arguments == b.arguments && a.values.map(\.key) == b.values.map(\.key)
      && a.values.map(\.value) == b.values.map(\.value)
  }

  /// "lr=1e-3,alpha=0.1" (labels, spec order).
  public var readableKey: String { values.map { "\($0.key)=\($0.value.label)" }.joined(separator: ",") }

  /// The run directory's name: readable part (commas and unsafe characters become _, at most 80 characters) + "-" + 8 hex
  /// digits of FNV-1a over the arguments, so two configurations never share a directory.
  public var runName: String {
    let safe = readableKey.map { c -> Character in
      c.isASCII && (c.isLetter || c.isNumber || "._=+-".contains(c)) ? c : "_"
    }
    return String(String(safe).prefix(80)) + "-" + String(format: "%08x", UInt32(truncatingIfNeeded: fnv1a(arguments.joined(separator: "\u{1F}"))))
  }

  /// Every option this configuration sets (swept values only), for grouping and sweep.json.
  public var settings: [String: String] {
    var all: [String: String] = [:]
    for (_, v) in values { for (k, s) in v.settings { all[k] = s } }
    return all
  }
}

/// 64-bit FNV-1a: stable across runs and platforms (Swift's Hasher is seeded per process).
func fnv1a(_ text: String) -> UInt64 {
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
  return hash
}

extension SweepSpec {
  /// Random draws: `randomCount` rows, each with one value per random key (file order).
  public func randomDraws() -> [[(key: String, value: SweepValue)]] {
    guard randomCount > 0 else { return [] }
    var rng = SeededRNG(seed: randomSeed)
    return (0..<randomCount).map { _ in
      random.map { key, distribution in
        let text: String
        switch distribution {
        case .choice(let options): text = options[rng.int(below: options.count)]
        case let .uniform(lo, hi): text = Self.format(lo + (hi - lo) * rng.uniformDouble())
        case let .logUniform(lo, hi): text = Self.format(exp(log(lo) + (log(hi) - log(lo)) * rng.uniformDouble()))
        }
        return (key, SweepValue(label: text, arguments: Self.arguments(key: key, value: text), settings: [key: text]))
      }
    }
  }

  /// Four significant digits: short run names, and values a person can type back.
  static func format(_ x: Double) -> String { String(format: "%.4g", x) }

  /// All configurations in order: grid product (first key slowest) x random draws.
  public func configurations() -> [SweepConfiguration] {
    var rows: [[(key: String, value: SweepValue)]] = [[]]
    for (key, values) in grid {
      rows = rows.flatMap { row in values.map { row + [(key, $0)] } }
    }
    let draws = randomDraws()
    if !draws.isEmpty { rows = rows.flatMap { row in draws.map { row + $0 } } }
    return rows.enumerated().map { index, row in
      SweepConfiguration(index: index, values: row, arguments: args + row.flatMap { $0.value.arguments })
    }
  }
}
