// What `rada report` reads from a run directory (DESIGN.md "Run directory"): metrics.jsonl (required, unless a
// demo folder holds only results.json), config.resolved.yaml, world.json, COMPLETE and results.json (optional).
// Metric lines become series keyed by name with the step as x; a null (non-finite) value is kept as a gap, and
// a step logged twice (a resumed run repeats the steps after its checkpoint) keeps its last value.
import Foundation
import Tensor
import Training

public enum ReportError: Error, CustomStringConvertible, Equatable {
  case missingRunDirectory(String)
  case missingFile(String, hint: String)
  case badJSON(file: String, line: Int?, reason: String)
  case noRuns(String)
  case cannotWrite(String, reason: String)
  case badScreenshot(String, reason: String)
  case badColor(String)
  case screenshotCheckFailed(String, problems: [String])

  public var description: String {
    switch self {
    case let .missingRunDirectory(path):
      return "report: run directory \(path) does not exist. Pass the --run-dir of a `rada train` run."
    case let .missingFile(path, hint): return "report: \(path) not found. \(hint)"
    case let .badJSON(file, line, reason):
      return "report: \(file)\(line.map { " line \($0)" } ?? "") is not valid JSON (\(reason)). "
        + "Check that the file was written by rada and not cut short."
    case let .noRuns(path):
      return "report --compare: \(path) lists no run directories. Pass run directories, or a sweep directory "
        + "whose sweep.json lists them."
    case let .cannotWrite(path, reason): return "report: cannot write \(path): \(reason). Choose another --out."
    case let .badScreenshot(path, reason):
      return "report --check-png: \(path): \(reason). Pass a PNG screenshot taken by chromium --screenshot."
    case let .screenshotCheckFailed(path, problems):
      return "report --check-png: \(path): " + problems.joined(separator: "; ")
        + ". Look at the screenshot: the charts may not have rendered."
    case let .badColor(text): return "report: colour '\(text)' is not #rrggbb. Write it like \"#1f77b4\"."
    }
  }
}

/// A cell of a results table: a number, a text, or nothing.
public enum ReportValue: Equatable {
  case number(Double)
  case text(String)
  case missing

  init(json: Any?) {
    switch json {
    case let n as NSNumber:
      self = n.doubleValue.isFinite ? .number(n.doubleValue) : .missing
    case let t as String: self = .text(t)
    default: self = .missing
    }
  }

  public var number: Double? { if case let .number(v) = self { return v }; return nil }

  /// Metrics in [0, 1] show 4 decimals; others 4 significant digits.
  public var display: String {
    switch self {
    case let .number(v):
      if v == v.rounded() && abs(v) < 1e15 { return String(format: "%.0f", v) }  // counts, steps, ranks
      return abs(v) <= 1 ? String(format: "%.4f", v) : String(format: "%.4g", v)
    case let .text(t): return t
    case .missing: return "–"
    }
  }
}

/// A table: one row per setting (or run), one column per metric.
public struct ResultsTable: Equatable {
  public var title: String
  public var rowHeader: String
  public var columns: [String]
  public var rows: [(label: String, cells: [String: ReportValue])]

  public init(title: String, rowHeader: String, columns: [String], rows: [(label: String, cells: [String: ReportValue])]) {
    self.title = title; self.rowHeader = rowHeader; self.columns = columns; self.rows = rows
  }

  public static func == (a: ResultsTable, b: ResultsTable) -> Bool {
    a.title == b.title && a.columns == b.columns && a.rows.count == b.rows.count
      && zip(a.rows, b.rows).allSatisfy { $0.label == $1.label && $0.cells == $1.cells }
  }
}

/// Everything the report shows of one run directory.
public struct ReportRun {
  public var name: String
  public var path: String
  /// metrics.jsonl, one dictionary per readable line: numbers as Double, null as nil (non-numbers dropped).
  public var lines: [[String: Double?]]
  /// Lines of metrics.jsonl that could not be parsed (e.g. the last line of a killed run).
  public var skippedLines: Int
  public var configText: String?
  public var world: [String: Any]?
  /// COMPLETE's numbers (nil: the run has not finished).
  public var complete: [String: Double]?
  public var results: ResultsTable?
  /// Settings a sweep gave this run (from sweep.json), shown as columns on the comparison page.
  public var settings: [String: String] = [:]
  /// The status sweep.json gives the run (done, running, failed, interrupted, pending), when it has one.
  public var sweepStatus: String?

  /// Reads a run directory. Only metrics.jsonl (or, for a demo folder, results.json) is required.
  public static func load(path: String, name: String? = nil) throws -> ReportRun {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw ReportError.missingRunDirectory(path)
    }
    let dir = URL(fileURLWithPath: path)
    func file(_ name: String) -> String { dir.appendingPathComponent(name).path }
    let metricsPath = file("metrics.jsonl"), resultsPath = file("results.json")
    guard fm.fileExists(atPath: metricsPath) || fm.fileExists(atPath: resultsPath) else {
      throw ReportError.missingFile(metricsPath, hint: "A run directory written by `rada train` has metrics.jsonl "
        + "from its first step on; check the path (a sweep folder needs --compare).")
    }
    var run = ReportRun(name: name ?? dir.standardizedFileURL.lastPathComponent, path: path, lines: [],
                        skippedLines: 0, configText: nil, world: nil, complete: nil, results: nil)
    if let data = try? BoundedFile.read(metricsPath, limit: BoundedFile.listLimit, what: "a metrics log"),
       let text = String(data: data, encoding: .utf8) {
      for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
          run.skippedLines += 1; continue
        }
        var numbers: [String: Double?] = [:]
        for (key, value) in object {
          if value is NSNull { numbers[key] = .some(nil) }
          else if case let .number(v) = ReportValue(json: value) { numbers[key] = v }
        }
        run.lines.append(numbers)
      }
    } else if fm.fileExists(atPath: metricsPath) {
      throw ReportError.missingFile(metricsPath, hint: "It exists but cannot be read as UTF-8 text; check permissions.")
    }
    run.configText = try? String(contentsOfFile: file("config.resolved.yaml"), encoding: .utf8)
    if let object = try readJSON(file("world.json")) { run.world = object as? [String: Any] }
    if let object = try readJSON(file("COMPLETE")) {
      guard let dictionary = object as? [String: Any] else {
        throw ReportError.badJSON(file: file("COMPLETE"), line: nil, reason: "expected an object of final metrics")
      }
      run.complete = dictionary.compactMapValues { ReportValue(json: $0).number }
    }
    if let object = try readJSON(resultsPath) { run.results = try resultsTable(object, file: resultsPath) }
    return run
  }

  /// nil when the file does not exist; an error naming it when it is not JSON.
  static func readJSON(_ path: String) throws -> Any? {
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    let data: Data
    do { data = try BoundedFile.read(path, limit: BoundedFile.listLimit, what: "a run file") } catch {
      throw ReportError.badJSON(file: path, line: nil, reason: "\(error)")
    }
    do { return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
      throw ReportError.badJSON(file: path, line: nil, reason: "\(error.localizedDescription)")
    }
  }

  /// results.json: an array of rows, or {"rows": [...]}; each row an object with "setting" (or "name") and
  /// metric columns in the order first seen.
  static func resultsTable(_ object: Any, file: String) throws -> ResultsTable {
    let rowObjects: [Any]
    if let array = object as? [Any] { rowObjects = array }
    else if let dictionary = object as? [String: Any], let array = dictionary["rows"] as? [Any] { rowObjects = array }
    else { throw ReportError.badJSON(file: file, line: nil, reason: "expected an array of rows or {\"rows\": [...]}") }
    var columns: [String] = [], rows: [(label: String, cells: [String: ReportValue])] = []
    for (index, item) in rowObjects.enumerated() {
      guard let row = item as? [String: Any] else {
        throw ReportError.badJSON(file: file, line: nil, reason: "row \(index) is not an object")
      }
      let labelKey = row["setting"] != nil ? "setting" : "name"
      let label = row[labelKey].map { ReportValue(json: $0).display } ?? "row \(index + 1)"
      var cells: [String: ReportValue] = [:]
      for key in row.keys.sorted() where key != labelKey {
        if !columns.contains(key) { columns.append(key) }
        cells[key] = ReportValue(json: row[key])
      }
      rows.append((label, cells))
    }
    return ResultsTable(title: "Results (results.json)", rowHeader: "setting", columns: columns, rows: rows)
  }

  /// Every metric key, in the order first logged.
  public var metricKeys: [String] {
    var seen = Set<String>(), keys: [String] = []
    for line in lines { for key in line.keys.sorted() where !seen.contains(key) { seen.insert(key); keys.append(key) } }
    return keys
  }

  /// (step, value) of `key` in step order; nil values are gaps; a repeated step keeps its last value.
  public func series(_ key: String) -> [(x: Double, y: Double?)] {
    var byStep: [Double: Double?] = [:]
    for line in lines {
      guard let entry = line[key], let step = line["step"] ?? nil else { continue }
      byStep[step] = entry
    }
    return byStep.keys.sorted().map { ($0, byStep[$0]!) }
  }

  /// The final value of each metric: COMPLETE when the run finished, else the newest finite value logged.
  public var finalMetrics: [String: Double] {
    if let complete { return complete }
    var latest: [String: Double] = [:]
    for line in lines { for case let (key, value?) in line where key != "time" { latest[key] = value } }
    return latest
  }

  public var isComplete: Bool { complete != nil }

  /// COMPLETE (or the latest values) as settings x metrics: "zeroshot/top1" goes to row zeroshot, column top1.
  /// Zero-shot comes first; with base and new rows a harmonic-mean row is added where the file has none.
  public var finalTable: ResultsTable {
    let metrics = finalMetrics
    var rowNames: [String] = [], columns: [String] = [], cells: [String: [String: ReportValue]] = [:]
    for key in metrics.keys.sorted() {
      guard let slash = key.firstIndex(of: "/"), !key.hasPrefix("train/") else { continue }
      let row = String(key[..<slash]), column = String(key[key.index(after: slash)...])
      if !rowNames.contains(row) { rowNames.append(row) }
      if !columns.contains(column) { columns.append(column) }
      cells[row, default: [:]][column] = .number(metrics[key]!)
    }
    let preferred = ["top1", "top5", "mean_per_class"]
    columns = preferred.filter(columns.contains) + columns.filter { !preferred.contains($0) }
    let zeroShot = rowNames.filter { $0.replacingOccurrences(of: "_", with: "").replacingOccurrences(of: "-", with: "")
      .lowercased() == "zeroshot" }
    rowNames = zeroShot + rowNames.filter { !zeroShot.contains($0) }
    if let base = cells["base"], let new = cells["new"], !rowNames.contains(where: { ["hm", "harmonic"].contains($0) }) {
      var mean: [String: ReportValue] = [:]
      for column in columns {
        if let b = base[column]?.number, let n = new[column]?.number, b + n > 0 { mean[column] = .number(2 * b * n / (b + n)) }
      }
      if !mean.isEmpty { rowNames.append("harmonic mean (base, new)"); cells["harmonic mean (base, new)"] = mean }
    }
    return ResultsTable(title: isComplete ? "Final metrics (COMPLETE)" : "Latest metrics (run not complete)",
                        rowHeader: "setting", columns: columns,
                        rows: rowNames.map { ($0, cells[$0] ?? [:]) })
  }
}

/// The runs a comparison page shows: the given run directories, or the ones a sweep directory's sweep.json lists
/// (an array of paths, or {"runs": [...]} with paths or objects holding "directory"/"dir"/"path" and optional
/// "name" and "settings"); relative paths are taken from the sweep directory. Without sweep.json, the
/// subdirectories that hold metrics.jsonl.
public func loadComparisonRuns(paths: [String]) throws -> [ReportRun] {
  let fm = FileManager.default
  if paths.count == 1, !fm.fileExists(atPath: paths[0] + "/metrics.jsonl") {
    let sweep = paths[0]
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: sweep, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw ReportError.missingRunDirectory(sweep)
    }
    let sweepFile = URL(fileURLWithPath: sweep).appendingPathComponent("sweep.json").path
    func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : URL(fileURLWithPath: sweep).appendingPathComponent(p).path }
    if let object = try ReportRun.readJSON(sweepFile) {
      let entries = (object as? [Any]) ?? ((object as? [String: Any])?["runs"] as? [Any])
      guard let entries else {
        throw ReportError.badJSON(file: sweepFile, line: nil, reason: "expected an array of run directories or {\"runs\": [...]}")
      }
      var runs: [ReportRun] = []
      for entry in entries {
        if let path = entry as? String { runs.append(try ReportRun.load(path: resolve(path))); continue }
        guard let object = entry as? [String: Any],
              let path = (object["directory"] ?? object["dir"] ?? object["path"] ?? object["runDir"]) as? String else {
          throw ReportError.badJSON(file: sweepFile, line: nil, reason: "a run entry has no \"directory\"")
        }
        let name = object["name"] as? String
        var run: ReportRun
        if let status = object["status"] as? String, !fm.fileExists(atPath: resolve(path) + "/metrics.jsonl") {
          // A sweep lists runs that have not started (or failed before logging): a row without curves.
          run = ReportRun(name: name ?? path, path: resolve(path), lines: [], skippedLines: 0, configText: nil,
                          world: nil, complete: nil, results: nil)
          run.sweepStatus = status
        } else {
          run = try ReportRun.load(path: resolve(path), name: name)
          run.sweepStatus = object["status"] as? String
        }
        if let settings = object["settings"] as? [String: Any] {
          run.settings = settings.mapValues { ReportValue(json: $0).display }
        }
        runs.append(run)
      }
      guard !runs.isEmpty else { throw ReportError.noRuns(sweepFile) }
      return runs
    }
    let children = ((try? fm.contentsOfDirectory(atPath: sweep)) ?? []).sorted()
      .filter { fm.fileExists(atPath: sweep + "/" + $0 + "/metrics.jsonl") }
    guard !children.isEmpty else {
      throw ReportError.missingFile(sweepFile, hint: "A sweep directory lists its runs in sweep.json; or pass the run "
        + "directories themselves to --compare.")
    }
    return try children.map { try ReportRun.load(path: sweep + "/" + $0) }
  }
  return try paths.map { try ReportRun.load(path: $0) }
}
