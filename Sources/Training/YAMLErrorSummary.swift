// Yams' error descriptions quote the offending line of the file. rada's messages never echo bytes of a file the
// user may have passed by mistake (README "Input safety"), so YAML errors are reported by position and problem.
import Foundation
import Yams

/// "line L column C: problem" for a Yams parse error; other errors by their type name only.
func yamlErrorSummary(_ error: Error) -> String {
  guard let yaml = error as? YamlError else { return "not valid YAML (\(type(of: error)))" }
  switch yaml {
  case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
    return "not valid YAML: line \(mark.line) column \(mark.column): \(problem)"
  case let .reader(problem, offset, _, _):
    return "not valid YAML: \(problem)" + (offset.map { " at byte \($0)" } ?? "")
  case .dataCouldNotBeDecoded: return "not UTF-8 text"
  default: return "not valid YAML"
  }
}
