// `rada report`: a self-contained HTML report of a run directory (charts drawn as inline SVG, results table,
// world layout, resolved config), or with --compare a page overlaying several runs (or a sweep's runs) with a
// sortable table of final metrics. Hidden: --check-png checks a browser screenshot of a report (used by
// launch/tests/report-browser.sh).
import ArgumentParser
import Foundation
import Tensor
import Reports
import Training

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write an HTML report of a run directory, or compare several runs.",
    discussion: """
      Example: rada report runs/eft                      (writes runs/eft/report.html)
               rada report --compare runs/a runs/b --out compare.html
               rada report --compare runs/sweep1         (the runs listed in runs/sweep1/sweep.json)
      The page is one file with no external scripts, fonts or images: open it in any browser.
      """)

  @Argument(help: "RUN_DIR (or, with --compare, several RUN_DIRs or one SWEEP_DIR).") var paths: [String] = []
  @Flag(help: "Compare several runs: overlaid curves and a sortable table of final metrics.") var compare = false
  @Option(help: "Output file (default RUN_DIR/report.html, or SWEEP_DIR/report.html / ./compare.html with --compare).")
  var out: String?

  @Option(name: .customLong("check-png"), help: ArgumentHelp("Check a screenshot PNG of a report.", visibility: .hidden))
  var checkPNG: String?
  @Option(name: .customLong("expect-color"), help: ArgumentHelp("With --check-png: a colour that must show (#rrggbb).", visibility: .hidden))
  var expectColors: [String] = []
  @Option(name: .customLong("min-pixels"), help: ArgumentHelp("With --check-png: pixels each colour needs.", visibility: .hidden))
  var minPixels = 200

  func validate() throws {
    if checkPNG != nil { return }
    if paths.isEmpty { throw ValidationError("pass a run directory: rada report RUN_DIR") }
    if !compare && paths.count > 1 {
      throw ValidationError("one run directory at a time; pass --compare to compare \(paths.count) runs.")
    }
  }

  func run() throws {
    if let checkPNG { return try check(checkPNG) }
    let html: String, output: String
    if compare {
      let runs = try loadComparisonRuns(paths: paths)
      let isSweep = paths.count == 1
      let title = isSweep ? URL(fileURLWithPath: paths[0]).standardizedFileURL.lastPathComponent : "\(runs.count) runs"
      html = ReportPage.comparison(runs, title: title)
      output = out ?? (isSweep ? paths[0] + "/report.html" : "compare.html")
    } else {
      html = ReportPage.run(try ReportRun.load(path: paths[0]))
      output = out ?? paths[0] + "/report.html"
    }
    do { try writeAtomically(Data(html.utf8), to: output) } catch {
      throw ReportError.cannotWrite(output, reason: "\(error)")
    }
    print("rada report: wrote \(output) (\(html.utf8.count / 1024) KiB)")
  }

  /// Prints the screenshot's size, inked pixels and each colour's count; fails when blank or a colour is missing.
  func check(_ path: String) throws {
    let result = try ScreenshotCheck.analyse(path: path, colors: expectColors)
    let total = result.width * result.height
    print("rada report --check-png: \(path) \(result.width)x\(result.height), \(result.inkedPixels) non-white pixels")
    var problems: [String] = []
    // Text, axes and grid alone cover well over 0.5% of a report page; a blank page has none.
    if result.inkedPixels < total / 200 { problems.append("the page looks blank (\(result.inkedPixels) non-white pixels)") }
    for (color, count) in result.colorPixels {
      print("  \(color): \(count) pixels")
      if count < minPixels { problems.append("\(color) shows on \(count) pixels (need \(minPixels))") }
    }
    if !problems.isEmpty { throw ReportError.screenshotCheckFailed(path, problems: problems) }
    print("screenshot check passed")
  }
}
