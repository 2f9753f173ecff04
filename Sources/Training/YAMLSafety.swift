// Reading YAML that may be hostile (configs, --set values, sweep specs; README "Input safety"). Yams composes
// nodes recursively, so a document nested thousands deep overflows the stack, and its Node -> Any conversion
// force-unwraps a mapping key that is not a scalar ({[x]: 1}). So: `checkYAMLDepth` bounds the nesting from the
// text before Yams sees it, `yamlValue` converts nodes itself and refuses non-scalar keys, and
// `yamlErrorSummary` reports errors by position, never quoting the file's bytes.
import Foundation
import Yams

public enum YAMLSafety {
  /// Deepest nesting accepted (real configs nest 3 deep); far below what overflows Yams' recursion.
  public static let maximumDepth = 200
}

/// Throws when the text may nest deeper than `YAMLSafety.maximumDepth`. The bound is conservative and lexical:
/// per line, indentation columns + block entries ("- ", "? ") + open flow brackets ([ {) outside quotes and
/// comments, which is at least the line's nesting depth.
public func checkYAMLDepth(_ text: String) throws {
  var flow = 0
  for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
    var column = 0, blocks = 0, index = line.startIndex
    while index < line.endIndex, line[index] == " " { column += 1; index = line.index(after: index) }
    var quote: Character? = nil, previous: Character = " ", deepest = flow
    while index < line.endIndex {
      let c = line[index]
      if let q = quote {
        if c == q { quote = nil }
      } else if c == "#" && (previous == " " || previous == "\t") {
        break
      } else if c == "\"" || (c == "'" && (previous == " " || "[{,:".contains(previous))) {
        quote = c
      } else if c == "[" || c == "{" {
        flow += 1; deepest = max(deepest, flow)
      } else if c == "]" || c == "}" {
        flow = max(0, flow - 1)
      } else if (c == "-" || c == "?") && (previous == " " || previous == "-") {
        let next = line.index(after: index)
        if next == line.endIndex || line[next] == " " { blocks += 1 }
      }
      previous = c
      index = line.index(after: index)
    }
    if column + blocks + deepest > YAMLSafety.maximumDepth {
      throw YAMLDepthError(depth: column + blocks + deepest)
    }
  }
}

struct YAMLDepthError: Error { let depth: Int }

/// True when `root`, its aliases expanded, holds at most `limit` nodes; counted with an explicit stack that
/// stops at the limit, so an alias bomb (9 levels of 9 copies: 387 million nodes) costs `limit` steps.
public func yamlNodeCountIsWithin(_ root: Node, limit: Int) -> Bool {
  var pending = [root], count = 0
  while let node = pending.popLast() {
    count += 1
    if count > limit { return false }
    if let sequence = node.sequence { pending += Array(sequence) }
    if let mapping = node.mapping { for (key, value) in mapping { pending.append(key); pending.append(value) } }
  }
  return true
}

/// A composed node as Foundation values (String, Int, Double, Bool, NSNull, [Any], [String: Any]), as Yams.load
/// gives them, but refusing mapping keys that are not scalars instead of trapping. Depth is bounded by
/// `checkYAMLDepth` (run first), so the recursion is shallow.
func yamlValue(_ node: Node) throws -> Any {
  switch node {
  case .scalar: return node.any
  case let .sequence(sequence): return try sequence.map(yamlValue)
  case let .mapping(mapping):
    var dictionary: [String: Any] = [:]
    for (key, value) in mapping {
      guard let name = key.scalar?.string else { throw YAMLKeyError(mark: key.mark) }
      dictionary[name] = try yamlValue(value)
    }
    return dictionary
  }
}

struct YAMLKeyError: Error { let mark: Mark? }

/// Parses `text` safely (depth bound, then compose, then `yamlValue`); nil for an empty document.
func loadYAML(_ text: String) throws -> Any? {
  try checkYAMLDepth(text)
  guard let root = try Yams.compose(yaml: text) else { return nil }
  return try yamlValue(root)
}

/// "line L column C: problem" for a YAML error; never the text of the file.
public func yamlErrorSummary(_ error: Error) -> String {
  if let deep = error as? YAMLDepthError {
    return "it nests deeper than \(YAMLSafety.maximumDepth) levels (about \(deep.depth)); a config is a few levels deep"
  }
  if let key = error as? YAMLKeyError {
    return "a mapping key is not a plain value" + (key.mark.map { " (line \($0.line) column \($0.column))" } ?? "")
  }
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
