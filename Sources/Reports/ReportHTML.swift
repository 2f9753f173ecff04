// The HTML pages of `rada report`: one run (loss, learning rate, accuracy and throughput charts, the results
// table, the world layout, the resolved config) and a comparison of several runs (one colour per run on every
// chart, and a table of runs x final metrics sorted by clicking a header). Each page is one self-contained file:
// inline CSS, inline SVG, a few lines of inline script for sorting; every text from a run is escaped.
import Foundation
import Training

public enum ReportPage {
  static let style = """
    body{font-family:sans-serif;margin:24px auto;max-width:1260px;padding:0 16px;color:#222;background:#fff}
    h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd} h3{font-size:14px;margin:14px 0 4px}
    .path{color:#666;font-size:13px;margin-bottom:12px} .note{color:#a15c00;font-size:13px}
    .charts{display:flex;flex-wrap:wrap;gap:16px}
    .chart{flex:1 1 520px;max-width:620px;height:auto;border:1px solid #eee;background:#fff}
    .chart-title{font-size:14px;font-weight:bold} .axis-title{font-size:12px;fill:#444} .no-data{fill:#999}
    table{border-collapse:collapse;font-size:13px;margin:6px 0}
    th,td{border:1px solid #ddd;padding:4px 10px;text-align:right} th:first-child,td:first-child{text-align:left}
    th{background:#f4f4f4} table.sortable th{cursor:pointer} table.sortable th:hover{background:#e8eef8}
    pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:10px;font-size:12px;overflow:auto}
    """

  /// Sorts a table.sortable by the clicked column (numbers by value, missing values last). Written without
  /// the less-than character so the page holds no "<" outside tags.
  static let sortScript = """
    document.querySelectorAll('table.sortable').forEach(function (table) {
      table.querySelectorAll('th').forEach(function (th, col) {
        th.addEventListener('click', function () {
          var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
          var ascending = th.getAttribute('data-order') !== 'asc';
          th.setAttribute('data-order', ascending ? 'asc' : 'desc');
          rows.sort(function (a, b) {
            var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
            if (x === '' || y === '') { return (x === '') - (y === ''); }
            var nx = parseFloat(x), ny = parseFloat(y);
            var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
            return ascending ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
    """

  static func page(title: String, body: String, script: Bool) -> String {
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>\(htmlEscape(title))</title>\n"
      + "<style>\n\(style)</style>\n</head>\n<body>\n\(body)"
      + (script ? "<script>\n\(sortScript)</script>\n" : "") + "</body>\n</html>\n"
  }

  /// Training keys first train/loss, then its parts in the order logged.
  static func lossKeys(_ keys: [String]) -> [String] {
    let train = keys.filter { $0.hasPrefix("train/") }
    return train.filter { $0 == "train/loss" } + train.filter { $0 != "train/loss" }
  }

  static func accuracyKeys(_ keys: [String]) -> [String] {
    keys.filter { $0.hasSuffix("/top1") && !$0.hasPrefix("train/") }
  }

  /// The four charts of one run, each series coloured by its place in the chart.
  public static func charts(for run: ReportRun) -> [LineChart] {
    let keys = run.metricKeys
    func chart(_ title: String, _ yLabel: String, _ keys: [String], includeZero: Bool) -> LineChart {
      let series = keys.enumerated().map {
        ChartSeries(name: $1, points: run.series($1), color: ReportPalette.color($0), isDashed: $1.hasPrefix("train/") && $1 != "train/loss")
      }
      return LineChart(title: title, xLabel: "step", yLabel: yLabel, series: series, includeZero: includeZero)
    }
    return [chart("Training loss", "loss", lossKeys(keys), includeZero: false),
            chart("Learning rate", "lr", keys.filter { $0 == "lr" }, includeZero: true),
            chart("Accuracy", "top-1 accuracy", accuracyKeys(keys), includeZero: true),
            chart("Throughput", "images / s", keys.filter { $0 == "img_per_s" }, includeZero: true)]
  }

  /// Charts of several runs: one series per run (coloured by run) for the loss, lr, each */top1 key, throughput.
  public static func comparisonCharts(for runs: [ReportRun]) -> [LineChart] {
    var accuracy: [String] = []
    for run in runs { for key in accuracyKeys(run.metricKeys) where !accuracy.contains(key) { accuracy.append(key) } }
    func chart(_ key: String, _ title: String, _ yLabel: String, includeZero: Bool) -> LineChart {
      // Runs that logged nothing yet (pending in a sweep) stay in the table only; colours follow the run's place.
      let series = runs.enumerated().filter { !$1.lines.isEmpty }
        .map { ChartSeries(name: $1.name, points: $1.series(key), color: ReportPalette.color($0)) }
      return LineChart(title: title, xLabel: "step", yLabel: yLabel, series: series, includeZero: includeZero)
    }
    return [chart("train/loss", "Training loss (train/loss)", "loss", includeZero: false)]
      + accuracy.map { chart($0, "Accuracy (\($0))", $0, includeZero: true) }
      + [chart("lr", "Learning rate", "lr", includeZero: true),
         chart("img_per_s", "Throughput", "images / s", includeZero: true)]
  }

  static func cell(_ value: ReportValue) -> String {
    let sortValue: String
    switch value {
    case let .number(v): sortValue = String(format: "%.17g", v)
    case let .text(t): sortValue = t
    case .missing: sortValue = ""
    }
    return "<td data-v=\"\(htmlEscape(sortValue))\">\(htmlEscape(value.display))</td>"
  }

  public static func table(_ table: ResultsTable, sortable: Bool) -> String {
    var s = "<table\(sortable ? " class=\"sortable\"" : "")>\n<thead><tr><th>\(htmlEscape(table.rowHeader))</th>"
    for column in table.columns { s += "<th>\(htmlEscape(column))</th>" }
    s += "</tr></thead>\n<tbody>\n"
    for row in table.rows {
      s += "<tr>" + cell(.text(row.label))
      for column in table.columns { s += cell(row.cells[column] ?? .missing) }
      s += "</tr>\n"
    }
    return s + "</tbody>\n</table>\n"
  }

  /// world.json: the top-level facts, then one table row per rank.
  static func worldSection(_ world: [String: Any]?) -> String {
    guard let world else { return "<p class=\"note\">world.json not found.</p>\n" }
    var s = "<p>"
    for key in world.keys.sorted() where key != "ranks" {
      s += "<b>\(htmlEscape(key))</b>: \(htmlEscape(ReportValue(json: world[key]).displayOrJSON(world[key])))&nbsp;&nbsp; "
    }
    s += "</p>\n"
    if let ranks = world["ranks"] as? [[String: Any]], !ranks.isEmpty {
      let preferred = ["rank", "host", "localRank", "threads", "blasCore"]
      var columns = preferred.filter { key in ranks.contains { $0[key] != nil } }
      for rank in ranks { for key in rank.keys.sorted() where !columns.contains(key) { columns.append(key) } }
      let rows = ranks.map { rank -> (label: String, cells: [String: ReportValue]) in
        (ReportValue(json: rank[columns[0]]).display,
         Dictionary(uniqueKeysWithValues: columns.dropFirst().map { ($0, ReportValue(json: rank[$0])) }))
      }
      s += table(ResultsTable(title: "ranks", rowHeader: columns[0], columns: Array(columns.dropFirst()), rows: rows),
                 sortable: false)
    }
    return s
  }

  static func chartsSection(_ charts: [LineChart]) -> String {
    "<div class=\"charts\">\n" + charts.map { $0.svg() }.joined(separator: "\n") + "\n</div>\n"
  }

  /// The report of one run directory.
  public static func run(_ run: ReportRun) -> String {
    var body = "<h1>rada report: \(htmlEscape(run.name))</h1>\n<div class=\"path\">\(htmlEscape(run.path))</div>\n"
    let lastStep = run.lines.compactMap { $0["step"] ?? nil }.max()
    body += "<p>Status: <b>\(run.isComplete ? "complete" : "not complete (no COMPLETE file)")</b>"
      + (lastStep.map { String(format: " &middot; last logged step %.0f", $0) } ?? "")
      + " &middot; \(run.lines.count) metric lines</p>\n"
    if run.skippedLines > 0 {
      body += "<p class=\"note\">\(run.skippedLines) unreadable line(s) of metrics.jsonl were skipped.</p>\n"
    }
    if !run.lines.isEmpty { body += "<h2>Curves</h2>\n" + chartsSection(charts(for: run)) }
    body += "<h2>Results</h2>\n"
    if let results = run.results { body += "<h3>\(htmlEscape(results.title))</h3>\n" + table(results, sortable: true) }
    let final = run.finalTable
    if !final.rows.isEmpty || run.results == nil {
      body += "<h3>\(htmlEscape(final.title))</h3>\n"
      body += final.rows.isEmpty ? "<p class=\"note\">no evaluation metrics logged.</p>\n" : table(final, sortable: false)
    }
    body += "<h2>World layout</h2>\n" + worldSection(run.world)
    body += "<h2>Resolved config</h2>\n"
    body += run.configText.map { "<pre class=\"config\">\(htmlEscape($0))</pre>\n" }
      ?? "<p class=\"note\">config.resolved.yaml not found.</p>\n"
    return page(title: "rada report: \(run.name)", body: body, script: run.results != nil)
  }

  /// Runs x final metrics: status, the sweep's settings, every non-training metric with a "/", and steps.
  public static func comparisonTable(_ runs: [ReportRun]) -> ResultsTable {
    var settings: [String] = [], metrics: [String] = []
    for run in runs {
      for key in run.settings.keys.sorted() where !settings.contains(key) { settings.append(key) }
      for key in run.finalMetrics.keys.sorted() where key.contains("/") && !key.hasPrefix("train/")
        && !metrics.contains(key) { metrics.append(key) }
    }
    metrics = metrics.filter { $0.hasSuffix("/top1") } + metrics.filter { !$0.hasSuffix("/top1") }
    let rows = runs.map { run -> (label: String, cells: [String: ReportValue]) in
      var cells: [String: ReportValue] = ["status": .text(run.sweepStatus ?? (run.isComplete ? "complete" : "not complete"))]
      for key in settings { cells[key] = run.settings[key].map { ReportValue.text($0) } ?? .missing }
      let final = run.finalMetrics
      for key in metrics { cells[key] = final[key].map { ReportValue.number($0) } ?? .missing }
      let steps = final["steps"] ?? run.lines.compactMap { $0["step"] ?? nil }.max()
      cells["steps"] = steps.map { .number($0) } ?? .missing
      cells["final train/loss"] = run.series("train/loss").last(where: { $0.y?.isFinite == true })?.y.map { .number($0) } ?? .missing
      return (run.name, cells)
    }
    return ResultsTable(title: "Runs", rowHeader: "run",
                        columns: ["status"] + settings + metrics + ["final train/loss", "steps"], rows: rows)
  }

  /// The comparison page of several runs (or a sweep).
  public static func comparison(_ runs: [ReportRun], title: String = "comparison") -> String {
    var body = "<h1>rada report: \(htmlEscape(title))</h1>\n"
    body += "<div class=\"path\">\(runs.count) runs: \(runs.map { htmlEscape($0.path) }.joined(separator: ", "))</div>\n"
    body += "<h2>Runs (click a header to sort)</h2>\n" + table(comparisonTable(runs), sortable: true)
    body += "<h2>Curves</h2>\n" + chartsSection(comparisonCharts(for: runs))
    return page(title: "rada report: \(title)", body: body, script: true)
  }
}

extension ReportValue {
  /// A number or text as `display`; anything else (objects, arrays) as compact JSON.
  func displayOrJSON(_ json: Any?) -> String {
    if self != .missing { return display }
    guard let json, !(json is NSNull), JSONSerialization.isValidJSONObject(json),
          let data = try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]) else { return "–" }
    return String(decoding: data, as: UTF8.self)
  }
}
