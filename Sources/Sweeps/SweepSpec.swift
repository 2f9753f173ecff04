// A sweep specification (`rada sweep SPEC.yaml`): shared `rada train` arguments, a grid and/or a seeded random
// search over options, ranks and threads per run, and the metric that ranks the runs. Keys keep the order they
// have in the file (the grid expands with the first key varying slowest, as itertools.product), so a spec always
// expands to the same configurations in the same order. See README "Sweeps" for the format.
import Foundation
import Training
import Tensor
import Yams

public enum SweepError: Error, CustomStringConvertible, Equatable {
  case unreadable(path: String, reason: String)
  case badSpec(key: String, reason: String)
  case indexOutOfRange(index: Int, count: Int)
  case tooManyCores(needed: Int, cores: Int, hint: String)
  case locked(run: String, holder: String)
  case cannotStart(command: String, reason: String)

  public var description: String {
    switch self {
    case let .unreadable(path, reason): return "cannot read sweep spec \(path): \(reason). Check the path."
    case let .badSpec(key, reason): return "sweep spec, key '\(key)': \(reason)."
    case let .indexOutOfRange(index, count):
      return "sweep configuration \(index) does not exist: the spec expands to \(count) configuration(s) (0...\(count - 1)). "
        + "Check the array range (--array=0-\(count - 1))."
    case let .tooManyCores(needed, cores, hint):
      return "the sweep needs \(needed) cores at once but this machine has \(cores). \(hint)"
    case let .locked(run, holder):
      return "configuration \(run) is already running (\(holder)). Wait for it, or delete its .sweep-lock if that process is gone."
    case let .cannotStart(command, reason):
      return "cannot start \(command): \(reason). Check that it is installed and on PATH (mpirun: launch/setup)."
    }
  }
}

/// One swept option's value. `label` names it in run directories and tables; `arguments` are the `rada train`
/// arguments it adds (a mapping value in the spec sets several options at once, e.g. a dataset's train and eval).
public struct SweepValue: Equatable, Codable {
  public var label: String
  public var arguments: [String]
  /// option name (or --set path) -> value text, for sweep.json and the dataset/subsample grouping.
  public var settings: [String: String]
}

public struct SweepSpec: Equatable {
  public enum Distribution: Equatable {
    case choice([String])
    case uniform(Double, Double)
    case logUniform(Double, Double)
  }

  /// Arguments every run gets (`rada train` flags; --run-dir and --resume are added per run).
  public var args: [String] = []
  /// Grid keys in file order, each with its values.
  public var grid: [(key: String, values: [SweepValue])] = []
  /// Random search: `count` samples drawn from `seed`, keys in file order.
  public var random: [(key: String, distribution: Distribution)] = []
  public var randomCount = 0
  public var randomSeed: UInt64 = 0
  public var ranks = 1
  public var threads = 1
  public var metric = "val/top1"
  /// max: higher is better; min: lower is better.
  public var mode = "max"
  /// A name for tables (default: the spec file's base name).
  public var name = "sweep"

  public init() {}

  public static func == (a: SweepSpec, b: SweepSpec) -> Bool {
    a.args == b.args && a.grid.map(\.key) == b.grid.map(\.key) && a.grid.map(\.values) == b.grid.map(\.values)
      && a.random.map(\.key) == b.random.map(\.key) && a.random.map(\.distribution) == b.random.map(\.distribution)
      && a.randomCount == b.randomCount && a.randomSeed == b.randomSeed && a.ranks == b.ranks
      && a.threads == b.threads && a.metric == b.metric && a.mode == b.mode && a.name == b.name
  }

  /// The keys that vary across configurations (grid first, then random), in order.
  public var sweptKeys: [String] { grid.map(\.key) + random.map(\.key) }

  /// Most configurations a spec may expand to (grid product x random count): beyond it the expansion alone
  /// would take minutes and gigabytes; split the sweep instead.
  public static let maximumConfigurations = 100_000

  public static func load(path: String) throws -> SweepSpec {
    let data: Data
    do { data = try BoundedFile.read(path, limit: BoundedFile.configLimit, what: "a sweep spec") } catch let error as InputLimitError {
      if case .unreadable = error, !FileManager.default.fileExists(atPath: path) {
        throw SweepError.unreadable(path: path, reason: "no such file")
      }
      throw SweepError.unreadable(path: path, reason: "\(error)")
    }
    // The default name is the file's base name, made safe for run names, tables and the Slurm script.
    let base = String(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent.map { isNameCharacter($0) ? $0 : "_" })
    return try parse(yaml: String(decoding: data, as: UTF8.self), name: String(base.prefix(64)))
  }

  /// Characters a sweep name may hold: it is written into file names and the `--emit-slurm` script.
  static func isNameCharacter(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || "._-".contains(c)) }

  /// The first option among `arguments` that would move a run (--run-dir, --resume, --threads, --set run.dir=...),
  /// in any spelling ArgumentParser accepts ("--run-dir X", "--run-dir=X", "--set run.dir=X", "--set=run.dir=X").
  static func reservedOption(in arguments: [String]) -> String? {
    func isRunDirSet(_ assignment: Substring) -> Bool {
      assignment.split(separator: "=", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) == "run.dir" } ?? false
    }
    for (i, argument) in arguments.enumerated() {
      let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
      if ["--run-dir", "--resume", "--threads"].contains(name) { return argument }
      if argument == "--set", i + 1 < arguments.count, isRunDirSet(Substring(arguments[i + 1])) { return "--set " + arguments[i + 1] }
      if argument.hasPrefix("--set="), isRunDirSet(argument.dropFirst(6)) { return argument }
    }
    return nil
  }

  public static func parse(yaml text: String, name: String = "sweep") throws -> SweepSpec {
    let root: Node?
    do { try checkYAMLDepth(text); root = try Yams.compose(yaml: text) } catch {
      throw SweepError.badSpec(key: "(file)", reason: yamlErrorSummary(error))
    }
    guard let mapping = root?.mapping else {
      throw SweepError.badSpec(key: "(file)", reason: "the top level must be a mapping with args, grid and/or random")
    }
    if let root, !yamlNodeCountIsWithin(root, limit: TrainConfig.maximumYAMLNodes) {
      throw SweepError.badSpec(key: "(file)", reason: "it expands to more than \(TrainConfig.maximumYAMLNodes) values "
                                 + "(YAML aliases repeating each other?); write the spec out without aliases")
    }
    var spec = SweepSpec()
    spec.name = name
    let known = ["args", "grid", "random", "ranks", "threads", "metric", "mode", "name"]
    for (keyNode, value) in mapping {
      let key = keyNode.string ?? "\(keyNode)"
      switch key {
      case "args": spec.args = try parseArgs(value)
      case "grid": spec.grid = try parseGrid(value)
      case "random": try parseRandom(value, into: &spec)
      case "ranks": spec.ranks = try positiveInt(value, key: key)
      case "threads": spec.threads = try positiveInt(value, key: key)
      case "metric": spec.metric = try scalar(value, key: key)
      case "mode":
        spec.mode = try scalar(value, key: key)
        guard ["max", "min"].contains(spec.mode) else { throw SweepError.badSpec(key: key, reason: "use max or min (got '\(spec.mode)')") }
      case "name":
        spec.name = try scalar(value, key: key)
        guard !spec.name.isEmpty, spec.name.count <= 64, spec.name.allSatisfy(isNameCharacter) else {
          throw SweepError.badSpec(key: key, reason: "use at most 64 letters, digits, '.', '_' or '-' (it names files and the Slurm job)")
        }
      default:
        throw SweepError.badSpec(key: key, reason: "unknown key; valid keys are \(known.joined(separator: ", "))")
      }
    }
    guard !spec.grid.isEmpty || spec.randomCount > 0 else {
      throw SweepError.badSpec(key: "grid", reason: "nothing to sweep: give a grid (e.g. grid: {lr: [1e-3, 1e-2]}) or random: {count: N, ...}")
    }
    let duplicates = Dictionary(grouping: spec.sweptKeys, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
    if let d = duplicates.first { throw SweepError.badSpec(key: d, reason: "appears in both grid and random; sweep it in one of them") }
    for reserved in ["run-dir", "resume", "run.dir", "threads"] where spec.sweptKeys.contains(reserved) {
      throw SweepError.badSpec(key: reserved, reason: "is set by the sweep for each run and cannot be swept")
    }
    if let arg = reservedOption(in: spec.args) {
      throw SweepError.badSpec(key: "args", reason: "\(arg) is set by the sweep for each run (runs stay under --out); remove it from args (use threads: for threads)")
    }
    for (key, values) in spec.grid {
      for value in values { if let arg = reservedOption(in: value.arguments) {
        throw SweepError.badSpec(key: "grid.\(key)", reason: "\(arg) is set by the sweep for each run (runs stay under --out)")
      } }
    }
    for case let (key, .choice(options)) in spec.random {
      for option in options { if let arg = reservedOption(in: arguments(key: key, value: option)) {
        throw SweepError.badSpec(key: "random.\(key)", reason: "\(arg) is set by the sweep for each run (runs stay under --out)")
      } }
    }
    var count = 1
    for (_, values) in spec.grid { count = Checked.multiply(count, values.count) ?? Int.max }
    if spec.randomCount > 0 { count = Checked.multiply(count, spec.randomCount) ?? Int.max }
    guard count <= maximumConfigurations else {
      throw SweepError.badSpec(key: spec.randomCount > 0 ? "random.count" : "grid",
                               reason: "the spec expands to \(count == Int.max ? "more than \(Int.max)" : String(count)) configurations, "
                                 + "more than the \(maximumConfigurations) a sweep runs; split it into several sweeps")
    }
    return spec
  }

  // MARK: parsing helpers

  private static func scalar(_ node: Node, key: String) throws -> String {
    guard let s = node.scalar?.string else { throw SweepError.badSpec(key: key, reason: "expected a single value, got \(describe(node))") }
    return s
  }

  private static func positiveInt(_ node: Node, key: String) throws -> Int {
    let s = try scalar(node, key: key)
    guard let v = Int(s), v >= 1, v <= maximumConfigurations else {
      throw SweepError.badSpec(key: key, reason: "expected a whole number >= 1 (at most \(maximumConfigurations)), got '\(s.prefix(40))'")
    }
    return v
  }

  private static func describe(_ node: Node) -> String {
    switch node {
    case .scalar(let s): return "'\(s.string)'"
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    }
  }

  /// `args:` is a list of words or one string split at whitespace.
  private static func parseArgs(_ node: Node) throws -> [String] {
    if let s = node.scalar?.string { return s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init) }
    guard let list = node.sequence else { throw SweepError.badSpec(key: "args", reason: "expected a list of rada train arguments") }
    return try list.map { try scalar($0, key: "args") }
  }

  /// `grid:` maps an option (or --set path) to a list of values; a value may be a mapping of several options.
  private static func parseGrid(_ node: Node) throws -> [(key: String, values: [SweepValue])] {
    guard let mapping = node.mapping else {
      throw SweepError.badSpec(key: "grid", reason: "expected a mapping of option -> list of values, e.g. grid: {lr: [1e-3, 1e-2]}")
    }
    return try mapping.map { keyNode, valuesNode in
      let key = try scalar(keyNode, key: "grid")
      try checkOptionName(key, section: "grid")
      guard let list = valuesNode.sequence, !list.isEmpty else {
        throw SweepError.badSpec(key: "grid.\(key)", reason: "expected a non-empty list of values, e.g. [1e-3, 1e-2]")
      }
      let values = try list.map { try sweepValue($0, key: key) }
      let labels = values.map(\.label)
      if Set(labels).count != labels.count {
        throw SweepError.badSpec(key: "grid.\(key)", reason: "values repeat (\(labels.joined(separator: ", "))); give distinct values or a distinct 'name' per mapping")
      }
      return (key, values)
    }
  }

  static func checkOptionName(_ key: String, section: String) throws {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    guard !key.isEmpty, !key.hasPrefix("-"), key.unicodeScalars.allSatisfy(allowed.contains) else {
      throw SweepError.badSpec(key: "\(section).\(key)", reason: "write the option name without dashes (lr, batch-size) or a --set path (optim.lr)")
    }
    if key.contains(".") {
      let valid = TrainConfig.validKeys
      guard valid.contains(key) else {
        throw SweepError.badSpec(key: "\(section).\(key)", reason: "not a config key for --set; valid keys: \(valid.joined(separator: ", "))")
      }
    }
  }

  /// Arguments for one option value: `lr` -> --lr V; `optim.lr` -> --set optim.lr=V; booleans are flags.
  public static func arguments(key: String, value: String) -> [String] {
    if key.contains(".") { return ["--set", "\(key)=\(value)"] }
    switch value {
    case "true": return ["--\(key)"]
    case "false": return []
    default: return ["--\(key)", value]
    }
  }

  private static func sweepValue(_ node: Node, key: String) throws -> SweepValue {
    if let s = node.scalar?.string {
      return SweepValue(label: s, arguments: arguments(key: key, value: s), settings: [key: s])
    }
    guard let mapping = node.mapping else {
      throw SweepError.badSpec(key: "grid.\(key)", reason: "a value must be a scalar or a mapping of options, got \(describe(node))")
    }
    var label: String?
    var args: [String] = []
    var settings: [String: String] = [:]
    for (k, v) in mapping {
      let option = try scalar(k, key: "grid.\(key)")
      let text = try scalar(v, key: "grid.\(key).\(option)")
      if option == "name" { label = text; continue }
      try checkOptionName(option, section: "grid.\(key)")
      args += arguments(key: option, value: text)
      settings[option] = text
      if label == nil { label = text }
    }
    guard let label else { throw SweepError.badSpec(key: "grid.\(key)", reason: "an empty mapping sets nothing") }
    return SweepValue(label: label, arguments: args, settings: settings)
  }

  /// `random: {count: N, seed: S, lr: {loguniform: [1e-4, 1e-2]}, alpha: [0, 0.1], wd: {uniform: [0, 1e-3]}}`
  private static func parseRandom(_ node: Node, into spec: inout SweepSpec) throws {
    guard let mapping = node.mapping else {
      throw SweepError.badSpec(key: "random", reason: "expected a mapping with count, seed and distributions per option")
    }
    var sawCount = false
    for (keyNode, value) in mapping {
      let key = try scalar(keyNode, key: "random")
      switch key {
      case "count": spec.randomCount = try positiveInt(value, key: "random.count"); sawCount = true
      case "seed":
        let s = try scalar(value, key: "random.seed")
        guard let seed = UInt64(s) else { throw SweepError.badSpec(key: "random.seed", reason: "expected a whole number >= 0, got '\(s)'") }
        spec.randomSeed = seed
      default:
        try checkOptionName(key, section: "random")
        spec.random.append((key, try distribution(value, key: "random.\(key)")))
      }
    }
    guard sawCount else { throw SweepError.badSpec(key: "random.count", reason: "missing: how many random configurations to draw") }
    guard !spec.random.isEmpty else { throw SweepError.badSpec(key: "random", reason: "no options to draw; add e.g. lr: {loguniform: [1e-4, 1e-2]}") }
  }

  private static func distribution(_ node: Node, key: String) throws -> Distribution {
    if let list = node.sequence {
      guard !list.isEmpty else { throw SweepError.badSpec(key: key, reason: "an empty choice list") }
      return .choice(try list.map { try scalar($0, key: key) })
    }
    guard let mapping = node.mapping, mapping.count == 1, let (kind, range) = mapping.first.map({ ($0.key.string ?? "", $0.value) }) else {
      throw SweepError.badSpec(key: key, reason: "expected a list of choices, {uniform: [a, b]} or {loguniform: [a, b]}")
    }
    guard let bounds = range.sequence, bounds.count == 2,
          let a = bounds.first?.scalar?.string, let b = bounds.last?.scalar?.string,
          let lo = Double(a), let hi = Double(b), lo.isFinite, hi.isFinite, lo <= hi else {
      throw SweepError.badSpec(key: key, reason: "\(kind) needs two numbers [low, high] with low <= high")
    }
    switch kind {
    case "uniform": return .uniform(lo, hi)
    case "loguniform":
      guard lo > 0 else { throw SweepError.badSpec(key: key, reason: "loguniform needs low > 0 (got \(a))") }
      return .logUniform(lo, hi)
    default: throw SweepError.badSpec(key: key, reason: "unknown distribution '\(kind)'; use uniform or loguniform")
    }
  }
}
