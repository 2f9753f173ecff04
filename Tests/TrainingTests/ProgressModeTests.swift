// run.progress / --progress: the config value is typed (unknown values name the allowed ones), and `auto`
// follows the launcher's answer (RADA_OUTPUT_TTY) or, under mpirun, where mpirun's own stdout points: the rank's
// pseudo-terminal alone never turns the bar on. The end-to-end check (a log written under mpirun holds no control
// characters) is launch/tests/progress-log.sh.
import Foundation
@testable import Training
import XCTest

final class ProgressModeTests: XCTestCase {
  func testConfigTakesTheModesAndNamesThemOnABadValue() throws {
    var c = TrainConfig()
    XCTAssertEqual(c.run.progress, .auto, "default")
    for mode in ProgressMode.allCases {
      try c.apply(override: "run.progress=\(mode.rawValue)")
      XCTAssertEqual(c.run.progress, mode)
      XCTAssertEqual(try TrainConfig.load(yaml: c.yaml()).run.progress, mode, "the resolved YAML reads back")
    }
    XCTAssertThrowsError(try c.apply(override: "run.progress=fancy")) { error in
      let text = "\(error)"
      XCTAssertTrue(text.contains("run.progress") && text.contains("auto, bar, lines, none"), text)
    }
    XCTAssertThrowsError(try c.merge(yaml: "run:\n  progress: yes\n", source: "x.yaml")) { error in
      XCTAssertTrue("\(error)".contains("run.progress"), "\(error)")
    }
  }

  func testAutoAsksTheLauncher() {
    XCTAssertEqual(ProgressMode.auto.resolved(environment: ["RADA_OUTPUT_TTY": "1"]), .bar)
    XCTAssertEqual(ProgressMode.auto.resolved(environment: ["RADA_OUTPUT_TTY": "0"]), .lines)
    XCTAssertEqual(ProgressMode.auto.resolved(environment: ["TERM": "dumb"]), .lines)
    // XCTest's stdout is a pipe or a file here unless run from a terminal: auto must not pick the bar then.
    if isatty(STDOUT_FILENO) == 0 {
      XCTAssertEqual(ProgressMode.auto.resolved(environment: [:]), .lines)
      XCTAssertEqual(ProgressMode.auto.resolved(environment: ["OMPI_COMM_WORLD_SIZE": "2"]), .lines)
    }
    for mode in [ProgressMode.bar, .lines, .none] {
      XCTAssertEqual(mode.resolved(environment: ["RADA_OUTPUT_TTY": mode == .bar ? "0" : "1"]), mode, "explicit wins")
    }
  }

  func testTerminalDevicesAreRecognised() {
    for path in ["/dev/pts/3", "/dev/tty1", "/dev/tty", "/dev/console"] {
      XCTAssertTrue(ProgressMode.pathIsTerminal(path), path)
    }
    for path in ["/tmp/train.log", "pipe:[1234]", "socket:[99]", "/dev/null", "/dev/ptmx-not", ""] {
      XCTAssertFalse(ProgressMode.pathIsTerminal(path), path)
    }
    XCTAssertFalse(ProgressMode.pathIsTerminal(nil))
  }

  func testLinkTargetReadsAProcessLink() throws {
    let target = try XCTUnwrap(ProgressMode.linkTarget(of: "/proc/self/exe"))
    XCTAssertTrue(target.hasPrefix("/"), target)
    XCTAssertNil(ProgressMode.linkTarget(of: "/nonexistent/link"))
  }
}
