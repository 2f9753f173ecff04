// `rada report`: axis ticks, data -> pixel mapping at a hand-computed point, one polyline per series with the
// right number of points, gaps and lone points, escaping of names and config values, the results tables
// (harmonic mean by hand), the comparison page, and errors that name the missing file.
import Foundation
import XCTest
@testable import Reports
import Training

final class ReportTests: XCTestCase {
  var scratch: URL!

  override func setUpWithError() throws {
    scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rada-report-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

  /// Writes a run directory: `lines` as metrics.jsonl, and the other files when given.
  func makeRun(_ name: String, lines: [String], config: String? = "setting: eft\n", complete: String? = nil,
               world: String? = nil, results: String? = nil) throws -> String {
    let dir = scratch.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
    for (file, text) in [("config.resolved.yaml", config), ("COMPLETE", complete), ("world.json", world), ("results.json", results)] {
      if let text { try text.write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8) }
    }
    return dir.path
  }

  /// Training lines for steps 0, 10, ..., 100: loss = 1 - step/100, ce = 0.8 (1 - step/100); eval every 20 steps.
  func standardLines() -> [String] {
    var lines: [String] = []
    for step in stride(from: 0, through: 100, by: 10) {
      let loss = 1 - Double(step) / 100
      lines.append("{\"step\":\(step),\"epoch\":0,\"train/loss\":\(loss),\"train/ce\":\(0.8 * loss),\"lr\":0.001,"
                   + "\"img_per_s\":\(100 + step),\"time\":\(1000 + step)}")
      if step % 20 == 0 && step > 0 {
        lines.append("{\"step\":\(step),\"val/top1\":\(Double(step) / 200),\"val/top5\":0.9}")
      }
    }
    return lines
  }

  /// The `<g class="series" data-series=NAME>` blocks of one chart (by title) with their polylines' point lists.
  func polylines(in html: String, chartTitle: String) -> [String: [[(Double, Double)]]] {
    guard let start = html.range(of: "<title>\(chartTitle)</title>"),
          let end = html.range(of: "</svg>", range: start.upperBound..<html.endIndex) else { return [:] }
    let svg = String(html[start.upperBound..<end.lowerBound])
    var result: [String: [[(Double, Double)]]] = [:]
    let groups = svg.components(separatedBy: "<g class=\"series\" data-series=\"").dropFirst()
    for group in groups {
      let name = String(group.prefix { $0 != "\"" })
      let body = group.components(separatedBy: "</g>")[0]
      var lines: [[(Double, Double)]] = []
      for part in body.components(separatedBy: "<polyline").dropFirst() {
        let points = part.components(separatedBy: "points=\"")[1].prefix { $0 != "\"" }
        lines.append(points.split(separator: " ").map {
          let xy = $0.split(separator: ","); return (Double(xy[0])!, Double(xy[1])!)
        })
      }
      result[name] = lines
    }
    return result
  }

  // MARK: axes

  func testNiceAxisTicksAndLabels() {
    // span 0.74 / 5 = 0.148 -> nice step 0.2 -> [0, 1]
    let unit = ChartAxis(covering: [0.13, 0.87])
    XCTAssertEqual(unit.step, 0.2, accuracy: 1e-12)
    XCTAssertEqual(unit.lo, 0, accuracy: 1e-12)
    XCTAssertEqual(unit.hi, 1, accuracy: 1e-12)
    XCTAssertEqual(unit.ticks.count, 6)
    XCTAssertEqual(unit.ticks.map(unit.label), ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])
    // Learning rates: 3.5e-3 with zero -> step 1e-3, 0...0.004
    let lr = ChartAxis(covering: [3.5e-3, 1e-3], includeZero: true)
    XCTAssertEqual(lr.ticks.map(lr.label), ["0", "0.001", "0.002", "0.003", "0.004"])
    // span 12 / 5 = 2.4 -> 2.5; labels keep the half
    let quarter = ChartAxis(covering: [0, 12])
    XCTAssertEqual(quarter.step, 2.5)
    XCTAssertEqual(quarter.label(2.5), "2.5")
    // One value on the step axis: widened by 10% either side (36...44), whole steps of 2.
    let single = ChartAxis(covering: [40], integral: true)
    XCTAssertEqual(single.lo, 36); XCTAssertEqual(single.hi, 44); XCTAssertEqual(single.step, 2)
    // Steps never go below 1 nor take 2.5 on an integral axis: 12 / 5 = 2.4 -> 5; 12 / 6 = 2 -> 2.
    XCTAssertEqual(ChartAxis(covering: [1, 2], integral: true).step, 1)
    XCTAssertEqual(ChartAxis(covering: [0, 12], integral: true).step, 5)
    XCTAssertEqual(ChartAxis(covering: [1, 12], integral: true, target: 6).ticks, [0, 2, 4, 6, 8, 10, 12])
    // Tiny values get an exponent.
    let tiny = ChartAxis(covering: [2e-6, 8e-6])
    XCTAssertTrue(tiny.label(4e-6).contains("e-6"), "label of 4e-6 on \(tiny): \(tiny.label(4e-6))")
    // No finite data: a default axis, no crash.
    XCTAssertEqual(ChartAxis(covering: [.nan]).ticks.first, 0)
  }

  // MARK: charts

  func testPolylinePerSeriesWithPointCountsAndKnownPoint() throws {
    let run = try ReportRun.load(path: makeRun("run", lines: standardLines()))
    let html = ReportPage.run(run)
    let loss = polylines(in: html, chartTitle: "Training loss")
    XCTAssertEqual(loss.keys.sorted(), ["train/ce", "train/loss"])
    XCTAssertEqual(loss["train/loss"]?.count, 1, "one polyline for train/loss")
    XCTAssertEqual(loss["train/loss"]?.first?.count, 11, "steps 0...100 by 10")
    XCTAssertEqual(loss["train/ce"]?.first?.count, 11)
    // Axes: x covers 0...100 (step 20), y covers 0...1 (step 0.2), so (step 50, loss 0.5) is the centre of the
    // plot. Default layout: plot x from 72 to 600 - 20 = 580, y from 34 + 240 = 274 (bottom) to 34 (top):
    // x = 72 + 0.5 * 508 = 326, y = 274 - 0.5 * 240 = 154. Step 0 (loss 1) is the top-left corner (72, 34).
    let points = loss["train/loss"]![0]
    XCTAssertEqual(points[5].0, 326, accuracy: 0.01); XCTAssertEqual(points[5].1, 154, accuracy: 0.01)
    XCTAssertEqual(points[0].0, 72, accuracy: 0.01); XCTAssertEqual(points[0].1, 34, accuracy: 0.01)
    XCTAssertEqual(points[10].0, 580, accuracy: 0.01); XCTAssertEqual(points[10].1, 274, accuracy: 0.01)

    let accuracy = polylines(in: html, chartTitle: "Accuracy")
    XCTAssertEqual(accuracy.keys.sorted(), ["val/top1"], "only */top1 series on the accuracy chart")
    XCTAssertEqual(accuracy["val/top1"]?.first?.count, 5, "eval at 20, 40, 60, 80, 100")
    XCTAssertEqual(polylines(in: html, chartTitle: "Learning rate")["lr"]?.first?.count, 11)
    XCTAssertEqual(polylines(in: html, chartTitle: "Throughput")["img_per_s"]?.first?.count, 11)
    // Four charts, each svg closed; first series of each chart in the first palette colour.
    XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 4)
    XCTAssertEqual(html.components(separatedBy: "</svg>").count - 1, 4)
    XCTAssertTrue(html.contains("stroke=\"#1f77b4\""))
  }

  func testGapsLonePointsAndRepeatedSteps() throws {
    // A null (logged for NaN) splits the line; a repeated step (resume) keeps its last value.
    let lines = ["{\"step\":1,\"train/loss\":3}", "{\"step\":2,\"train/loss\":2}", "{\"step\":3,\"train/loss\":null}",
                 "{\"step\":4,\"train/loss\":1.5}", "{\"step\":5,\"train/loss\":1}", "{\"step\":4,\"train/loss\":1.25}",
                 "{\"step\":5,\"train/loss\":1.0}", "{\"step\":6,\"val/top1\":0.5}", "not json {"]
    let run = try ReportRun.load(path: makeRun("gaps", lines: lines))
    XCTAssertEqual(run.skippedLines, 1)
    let series = run.series("train/loss")
    XCTAssertEqual(series.map(\.x), [1, 2, 3, 4, 5])
    XCTAssertNil(series[2].y)
    XCTAssertEqual(series[3].y, 1.25, "the last value of a repeated step wins")
    let html = ReportPage.run(run)
    let loss = polylines(in: html, chartTitle: "Training loss")["train/loss"]!
    XCTAssertEqual(loss.map(\.count), [2, 2], "two segments around the null")
    // val/top1 has one point: no polyline, one dot.
    let accuracy = polylines(in: html, chartTitle: "Accuracy")
    XCTAssertEqual(accuracy["val/top1"]?.count, 0)
    let chart = ReportPage.charts(for: run)[2]
    XCTAssertEqual(chart.svg().components(separatedBy: "<circle").count - 1, 1)
    // A chart with nothing to draw says so.
    let empty = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [ChartSeries(name: "a", points: [(1, nil)], color: "#000000")])
    XCTAssertTrue(empty.svg().contains("no data"))
  }

  // MARK: escaping

  func testEscapesNamesAndConfigValues() throws {
    let lines = ["{\"step\":1,\"train/loss\":1,\"a<b&c/top1\":0.5}", "{\"step\":2,\"train/loss\":0.5,\"a<b&c/top1\":0.6}"]
    let path = try makeRun("esc", lines: lines, config: "name: a<b&c\nnote: \"quoted\" 'x'\n",
                           complete: "{\"a<b&c/top1\":0.6}",
                           world: "{\"size\":1,\"mpi\":\"<script>\",\"ranks\":[{\"rank\":0,\"host\":\"h<1>\",\"blasCore\":\"SkylakeX\"}]}")
    let html = ReportPage.run(try ReportRun.load(path: path))
    XCTAssertTrue(html.contains("name: a&lt;b&amp;c"))
    XCTAssertTrue(html.contains("&quot;quoted&quot; &#39;x&#39;"))
    XCTAssertTrue(html.contains("h&lt;1&gt;"))
    XCTAssertTrue(html.contains("data-series=\"a&lt;b&amp;c/top1\""))
    XCTAssertFalse(html.contains("a<b"))
    assertWellFormed(html)
  }

  /// Every "<" opens a known tag (or closes one), and the tags that hold others are balanced.
  func assertWellFormed(_ html: String, file: StaticString = #filePath, line: UInt = #line) {
    let known: Set<String> = ["!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "div",
                              "p", "b", "svg", "g", "line", "text", "rect", "polyline", "circle", "table", "thead",
                              "tbody", "tr", "th", "td", "pre", "script"]
    var index = html.startIndex
    while let open = html[index...].firstIndex(of: "<") {
      let rest = html[html.index(after: open)...]
      let name = String(rest.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber || $0 == "!" })
      if !known.contains(name) {
        let context = html[open...].prefix(40)
        XCTFail("unescaped '<' or unknown tag at offset \(html.distance(from: html.startIndex, to: open)): \(context)", file: file, line: line)
        return
      }
      index = html.index(after: open)
    }
    for tag in ["svg", "g", "polyline", "table", "tr", "pre", "text", "script", "title", "circle"] {
      let opens = html.components(separatedBy: "<\(tag)>").count - 1 + html.components(separatedBy: "<\(tag) ").count - 1
      let closes = html.components(separatedBy: "</\(tag)>").count - 1
      XCTAssertEqual(opens, closes, "<\(tag)> opened \(opens) times, closed \(closes) times", file: file, line: line)
    }
  }

  // MARK: tables

  func testFinalTableWithZeroShotAndHarmonicMean() throws {
    let complete = "{\"steps\":40,\"base/top1\":0.8,\"new/top1\":0.6,\"zeroshot/top1\":0.5,\"base/top5\":0.9}"
    let run = try ReportRun.load(path: makeRun("final", lines: standardLines(), complete: complete))
    let table = run.finalTable
    XCTAssertEqual(table.rows.map(\.label), ["zeroshot", "base", "new", "harmonic mean (base, new)"])
    XCTAssertEqual(table.columns, ["top1", "top5"])
    // 2 * 0.8 * 0.6 / (0.8 + 0.6) = 0.96 / 1.4
    XCTAssertEqual(table.rows[3].cells["top1"]?.number ?? -1, 0.96 / 1.4, accuracy: 1e-12)
    XCTAssertNil(table.rows[3].cells["top5"], "new has no top5, so no harmonic mean of top5")
    let html = ReportPage.run(run)
    XCTAssertTrue(html.contains(">0.6857<"))
    assertWellFormed(html)
  }

  func testResultsJSONIsShown() throws {
    let results = "{\"rows\":[{\"setting\":\"zeroshot\",\"top1\":0.4},{\"setting\":\"eft\",\"top1\":0.7,\"note\":\"a<b\"}]}"
    let run = try ReportRun.load(path: makeRun("demo", lines: standardLines(), results: results))
    XCTAssertEqual(run.results?.rows.map(\.label), ["zeroshot", "eft"])
    XCTAssertEqual(run.results?.columns, ["top1", "note"])
    let html = ReportPage.run(run)
    XCTAssertTrue(html.contains("<td data-v=\"eft\">eft</td><td data-v=\"0.69999999999999996\">0.7000</td>"))
    assertWellFormed(html)
  }

  // MARK: comparison

  func testComparisonOverlaysRunsAndSortableTable() throws {
    let a = try makeRun("sweep/a", lines: standardLines(), complete: "{\"steps\":100,\"val/top1\":0.5}")
    _ = try makeRun("sweep/b", lines: Array(standardLines().prefix(6)))
    // As `rada sweep` writes it: objects with dir, name, status, settings; a pending run has no directory yet.
    try ("{\"runs\":[{\"directory\":\"a\",\"name\":\"lr=1e-3\",\"settings\":{\"lr\":\"1e-3\"}},\"b\","
         + "{\"dir\":\"runs/c\",\"name\":\"c\",\"status\":\"pending\"}]}")
      .write(toFile: scratch.appendingPathComponent("sweep/sweep.json").path, atomically: true, encoding: .utf8)
    let runs = try loadComparisonRuns(paths: [scratch.appendingPathComponent("sweep").path])
    XCTAssertEqual(runs.map(\.name), ["lr=1e-3", "b", "c"])
    XCTAssertEqual(ReportPage.comparisonTable(runs).rows[2].cells["status"], .text("pending"))
    XCTAssertEqual(runs[0].path, a)
    let html = ReportPage.comparison(runs)
    let loss = polylines(in: html, chartTitle: "Training loss (train/loss)")
    XCTAssertEqual(loss.keys.sorted(), ["b", "lr=1e-3"])
    XCTAssertEqual(loss["lr=1e-3"]?.first?.count, 11)
    XCTAssertEqual(loss["b"]?.first?.count, 5, "b logged steps 0...40 (6 lines incl. one eval line)")
    XCTAssertTrue(html.contains("data-series=\"b\">\n<polyline fill=\"none\" stroke=\"#ff7f0e\""), "second run, second colour")
    let table = ReportPage.comparisonTable(runs)
    XCTAssertEqual(table.columns, ["status", "lr", "val/top1", "val/top5", "final train/loss", "steps"])
    XCTAssertEqual(table.rows[0].cells["val/top1"], .number(0.5), "complete run: COMPLETE's value")
    XCTAssertEqual(table.rows[1].cells["val/top1"], .number(0.1), "running run: latest logged value")
    XCTAssertEqual(table.rows[1].cells["steps"], .number(40))
    XCTAssertTrue(html.contains("<table class=\"sortable\">"))
    XCTAssertTrue(html.contains("<script>"))
    assertWellFormed(html)
  }

  // MARK: errors

  func testMissingFilesNameTheFile() throws {
    let absent = scratch.appendingPathComponent("absent").path
    XCTAssertThrowsError(try ReportRun.load(path: absent)) { error in
      XCTAssertTrue("\(error)".contains(absent), "\(error)")
    }
    let empty = scratch.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    XCTAssertThrowsError(try ReportRun.load(path: empty.path)) { error in
      XCTAssertTrue("\(error)".contains(empty.path + "/metrics.jsonl"), "\(error)")
    }
    let bad = try makeRun("bad", lines: standardLines(), complete: "{\"steps\": 4")
    XCTAssertThrowsError(try ReportRun.load(path: bad)) { error in
      XCTAssertTrue("\(error)".contains(bad + "/COMPLETE"), "\(error)")
    }
    XCTAssertThrowsError(try loadComparisonRuns(paths: [empty.path])) { error in
      XCTAssertTrue("\(error)".contains("sweep.json"), "\(error)")
    }
    try "[\"missing-run\"]".write(to: empty.appendingPathComponent("sweep.json"), atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try loadComparisonRuns(paths: [empty.path])) { error in
      XCTAssertTrue("\(error)".contains("missing-run"), "\(error)")
    }
  }
}
