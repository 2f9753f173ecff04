// A sweep's results, written into its --out directory after every run and by `rada sweep status`:
//   results.csv  one row per configuration: swept keys, status, final metrics (sorted), run
//   results.md   a Markdown table, the best run by the spec's metric, and (when runs cover CoOp base and new
//                classes) base / new / harmonic mean per dataset with CoOp's average row
//   sweep.json   each run's directory, config and metrics: the hook `rada report` reads for its HTML page
// Base-to-new convention (CoOp/CoCoOp tables): H = 2·base·new / (base + new) per dataset; the average row is the
// arithmetic mean of base and of new over datasets, and its H is the harmonic mean OF THOSE MEANS (not the mean of
// the per-dataset H values).
import Foundation
import Training
import Tensor

public enum SweepResults {
  /// The best finished run by `spec.metric` (max or min); nil when no finished run has the metric.
  public static func best(_ records: [SweepRunRecord], spec: SweepSpec) -> SweepRunRecord? {
    let scored = records.filter { $0.status == .done && $0.metrics[spec.metric] != nil }
    return spec.mode == "min" ? scored.min { $0.metrics[spec.metric]! < $1.metrics[spec.metric]! }
                              : scored.max { $0.metrics[spec.metric]! < $1.metrics[spec.metric]! }
  }

  /// Metric columns: the spec's metric first, then every other key the runs report, sorted.
  static func metricColumns(_ records: [SweepRunRecord], spec: SweepSpec) -> [String] {
    let keys = Set(records.filter { $0.status == .done }.flatMap(\.metrics.keys))
    return (keys.contains(spec.metric) ? [spec.metric] : []) + keys.subtracting([spec.metric]).sorted()
  }

  static func formatNumber(_ x: Double?) -> String {
    guard let x else { return "" }
    if x == x.rounded() && abs(x) < 1e9 { return String(Int(x)) }
    return String(format: "%.6g", x)
  }

  static func csvField(_ text: String) -> String {
    text.contains(where: { ",\"\n".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
  }

  public static func csv(_ records: [SweepRunRecord], spec: SweepSpec) -> String {
    let metrics = metricColumns(records, spec: spec)
    var lines = [(spec.sweptKeys + ["status"] + metrics + ["run"]).map(csvField).joined(separator: ",")]
    for r in records {
      let labels = r.configuration.values.map(\.value.label)
      let shown = r.status == .done ? metrics.map { formatNumber(r.metrics[$0]) } : metrics.map { _ in "" }
      lines.append((labels + [r.status.rawValue] + shown + [r.name]).map(csvField).joined(separator: ","))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  static func counts(_ records: [SweepRunRecord]) -> String {
    SweepRunStatus.allCases.map { s in "\(records.filter { $0.status == s }.count) \(s.rawValue)" }.joined(separator: ", ")
  }

  public static func markdown(_ records: [SweepRunRecord], spec: SweepSpec) -> String {
    let metrics = metricColumns(records, spec: spec)
    let best = best(records, spec: spec)
    var md = "# Sweep \(spec.name)\n\n"
    md += "\(records.count) configuration(s): \(counts(records)). Ranked by `\(spec.metric)` (\(spec.mode)); best in bold.\n\n"
    let header = spec.sweptKeys + ["status"] + metrics + ["run"]
    md += "| " + header.joined(separator: " | ") + " |\n"
    md += "|" + header.map { _ in " --- " }.joined(separator: "|") + "|\n"
    for r in records {
      let isBest = best?.name == r.name
      var cells = r.configuration.values.map(\.value.label) + [r.status.rawValue]
      cells += metrics.map { r.status == .done ? formatNumber(r.metrics[$0]) : "" }
      cells.append("`runs/\(r.name)`")
      if isBest { cells = cells.map { $0.isEmpty ? $0 : "**\($0)**" } }
      md += "| " + cells.joined(separator: " | ") + " |\n"
    }
    if let best {
      md += "\nBest: \(best.configuration.readableKey) with \(spec.metric) = \(formatNumber(best.metrics[spec.metric])) (runs/\(best.name)).\n"
    } else {
      md += "\nNo finished run reports \(spec.metric) yet.\n"
    }
    let failed = records.filter { $0.status == .failed }
    if !failed.isEmpty {
      md += "\nFailed:\n" + failed.map { "- \($0.configuration.readableKey): \($0.detail)\n" }.joined()
    }
    md += baseToNewMarkdown(records, spec: spec)
    return md
  }

  // MARK: base-to-new

  public struct BaseNewRow: Equatable {
    public var dataset: String
    public var base: Double
    public var new: Double
    public var harmonic: Double { base + new > 0 ? 2 * base * new / (base + new) : 0 }
    public init(dataset: String, base: Double, new: Double) { self.dataset = dataset; self.base = base; self.new = new }
  }

  public static func harmonicMean(_ a: Double, _ b: Double) -> Double { a + b > 0 ? 2 * a * b / (a + b) : 0 }

  static let datasetKeys: Set<String> = ["dataset", "train", "eval", "data.train", "data.eval", "subsample", "data.subsample"]

  /// The value an option has in a configuration: swept value, else the shared args (--key V or --set key=V).
  static func option(_ names: [String], in configuration: SweepConfiguration) -> String? {
    for name in names { if let v = configuration.settings[name] { return v } }
    let args = configuration.arguments
    for (i, a) in args.enumerated() {
      for name in names {
        if name.contains("."), a == "--set", i + 1 < args.count, args[i + 1].hasPrefix(name + "=") {
          return String(args[i + 1].dropFirst(name.count + 1))
        }
        if a == "--" + name, i + 1 < args.count { return args[i + 1] }
      }
    }
    return nil
  }

  /// Dataset name: a swept `dataset` key's label, else NAME from a coop:ROOT:NAME[:SPLIT] train spec, else the
  /// train spec's last path component.
  public static func datasetName(_ configuration: SweepConfiguration) -> String {
    if let v = configuration.values.first(where: { $0.key == "dataset" }) { return v.value.label }
    guard let train = option(["train", "data.train"], in: configuration) else { return "data" }
    let parts = train.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    if parts.first == "coop", parts.count >= 3 { return parts[2] }
    return URL(fileURLWithPath: parts.last ?? train).lastPathComponent
  }

  /// Groups finished runs by the swept values other than dataset/subsample, and in each group pairs base and new
  /// accuracy per dataset: from one run's `base/<m>` and `new/<m>` metrics, or from the runs with subsample=base
  /// and subsample=new (their `metric`). Returns (group label, rows) for groups with at least one complete pair.
  public static func baseToNew(_ records: [SweepRunRecord], spec: SweepSpec) -> [(group: String, rows: [BaseNewRow])] {
    let suffix = spec.metric.split(separator: "/").last.map(String.init) ?? spec.metric
    var order: [String] = []
    var table: [String: [(dataset: String, base: Double?, new: Double?)]] = [:]
    for r in records where r.status == .done {
      let group = r.configuration.values.filter { !datasetKeys.contains($0.key) }
        .map { "\($0.key)=\($0.value.label)" }.joined(separator: ", ")
      let dataset = datasetName(r.configuration)
      var base = r.metrics["base/" + suffix], new = r.metrics["new/" + suffix]
      let subsample = option(["subsample", "data.subsample"], in: r.configuration)
      if subsample == "base", base == nil { base = r.metrics[spec.metric] }
      if subsample == "new", new == nil { new = r.metrics[spec.metric] }
      guard base != nil || new != nil else { continue }
      if table[group] == nil { order.append(group); table[group] = [] }
      if let i = table[group]!.firstIndex(where: { $0.dataset == dataset }) {
        table[group]![i].base = table[group]![i].base ?? base
        table[group]![i].new = table[group]![i].new ?? new
      } else {
        table[group]!.append((dataset, base, new))
      }
    }
    return order.compactMap { group in
      let rows = table[group]!.compactMap { e -> BaseNewRow? in
        guard let b = e.base, let n = e.new else { return nil }
        return BaseNewRow(dataset: e.dataset, base: b, new: n)
      }
      return rows.isEmpty ? nil : (group.isEmpty ? "all runs" : group, rows)
    }
  }

  /// CoOp's average row: mean base, mean new, and H of those means.
  public static func average(_ rows: [BaseNewRow]) -> BaseNewRow {
    let n = Double(max(1, rows.count))
    return BaseNewRow(dataset: "average", base: rows.map(\.base).reduce(0, +) / n, new: rows.map(\.new).reduce(0, +) / n)
  }

  static func baseToNewMarkdown(_ records: [SweepRunRecord], spec: SweepSpec) -> String {
    let groups = baseToNew(records, spec: spec)
    guard !groups.isEmpty else { return "" }
    // Accuracies are fractions in metrics; tables show percent as CoOp does.
    func pct(_ x: Double) -> String { String(format: "%.2f", x * 100) }
    var md = "\n## Base-to-new (\(spec.metric.split(separator: "/").last ?? ""), %)\n\n"
    md += "H = 2·base·new/(base+new). Average row: mean base and mean new over datasets, H of those means (CoOp/CoCoOp convention).\n"
    for (group, rows) in groups {
      md += "\n### \(group)\n\n| dataset | base | new | H |\n| --- | --- | --- | --- |\n"
      for row in rows { md += "| \(row.dataset) | \(pct(row.base)) | \(pct(row.new)) | \(pct(row.harmonic)) |\n" }
      if rows.count > 1 {
        let a = average(rows)
        md += "| **average** | \(pct(a.base)) | \(pct(a.new)) | \(pct(a.harmonic)) |\n"
      }
    }
    return md
  }

  // MARK: sweep.json and writing

  public static func json(_ records: [SweepRunRecord], spec: SweepSpec, specPath: String) throws -> Data {
    let best = best(records, spec: spec)
    let runs: [[String: Any]] = records.map { r in
      var config: [String: Any] = [:]
      for (k, v) in r.configuration.values { config[k] = v.label }
      return ["index": r.configuration.index, "name": r.name, "dir": r.directory, "status": r.status.rawValue,
              "config": config, "settings": r.configuration.settings, "arguments": r.configuration.arguments,
              "metrics": r.metrics, "detail": r.detail]
    }
    let object: [String: Any] = ["name": spec.name, "spec": specPath, "metric": spec.metric, "mode": spec.mode,
                                 "keys": spec.sweptKeys, "runs": runs, "best": best?.name ?? NSNull()]
    return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
  }

  /// Writes results.csv, results.md and sweep.json atomically (Slurm array tasks may write at the same time).
  public static func write(_ records: [SweepRunRecord], spec: SweepSpec, specPath: String, out: String) throws {
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    try Tensor.writeAtomically(Data(csv(records, spec: spec).utf8), to: out + "/results.csv")
    try Tensor.writeAtomically(Data(markdown(records, spec: spec).utf8), to: out + "/results.md")
    try Tensor.writeAtomically(try json(records, spec: spec, specPath: specPath) + Data("\n".utf8), to: out + "/sweep.json")
  }
}
