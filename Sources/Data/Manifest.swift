// `manifest:FILE.csv`: a CSV listing images relative to the CSV's folder, in file order. The header picks the
// second column: `path,label` (integer labels; class names from an optional classnames.txt beside the CSV, one
// per line, else "0", "1", ...), `path,classname` (labels = index in the sorted unique class names) or
// `path,caption` (caption-only, label `Sample.unlabeled`). Quoting follows RFC 4180 ("a,""b""" and newlines
// inside quotes). Shape letters: K classes, N samples (rows of the CSV).
import Foundation

public enum Manifest {
  public static func load(_ file: String, checkFiles: Bool = true) throws -> Dataset {
    let rows = try parseCSV(DataPaths.readText(file), file: file)
    guard let header = rows.first else { throw DataError.malformed(file: file, reason: "the file is empty") }
    let columns = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    guard columns.count == 2, columns[0] == "path", ["label", "classname", "caption"].contains(columns[1]) else {
      // Echo the header only when it looks like one: the file may be anything passed by mistake.
      let text = header.joined(separator: ",")
      let looksLikeHeader = text.count <= 40 && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_ ,".contains($0)) }
      throw DataError.malformed(file: file, reason: (looksLikeHeader ? "header is '\(text)'" : "the first line is not a CSV header")
        + "; expected path,label or path,classname or path,caption")
    }
    let folder = (file as NSString).deletingLastPathComponent
    let root = folder.isEmpty ? "." : folder
    var entries: [(path: String, value: String, line: Int)] = []
    for (index, row) in rows.enumerated().dropFirst() {
      if row.count == 1 && row[0].isEmpty { continue }  // blank line
      guard row.count == 2 else {
        throw DataError.malformed(file: file, reason: "row \(index + 1) has \(row.count) fields, expected 2")
      }
      entries.append((try DataPaths.join(root, row[0], listedIn: file), row[1], index + 1))
    }
    if entries.isEmpty { throw DataError.malformed(file: file, reason: "no rows after the header") }

    var classNames: [String] = []
    var samples: [Sample] = []
    switch columns[1] {
    case "caption":
      samples = entries.map { Sample(path: $0.path, label: Sample.unlabeled, caption: $0.value) }
    case "classname":
      classNames = Array(Set(entries.map { $0.value })).sorted()
      let labelOf = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
      samples = entries.map { Sample(path: $0.path, label: labelOf[$0.value]!) }
    default:
      var labels: [Int] = []
      for entry in entries {
        guard let label = Int(entry.value.trimmingCharacters(in: .whitespaces)) else {
          throw DataError.malformed(file: file, reason: "row \(entry.line): label '\(entry.value.prefix(40))' is not an integer")
        }
        labels.append(label)
      }
      let namesFile = root + "/classnames.txt"
      if DataPaths.exists(namesFile) {
        classNames = try DataPaths.readText(namesFile).split(whereSeparator: \.isNewline)
          .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      } else {
        // Every class needs a sample, so a label past the row count is wrong (and 0...10^18 is no class list).
        if let (entry, label) = zip(entries, labels).first(where: { $1 < 0 || $1 >= entries.count }) {
          throw DataError.labelOutOfRange(file: file, entry: "row \(entry.line)", label: label, classes: entries.count)
        }
        classNames = (0...max(0, labels.max() ?? 0)).map(String.init)
      }
      for (entry, label) in zip(entries, labels) where label < 0 || label >= classNames.count {
        throw DataError.labelOutOfRange(file: file, entry: "row \(entry.line)", label: label, classes: classNames.count)
      }
      var counts = [Int](repeating: 0, count: classNames.count)
      for label in labels { counts[label] += 1 }
      if let empty = counts.firstIndex(of: 0) {
        throw DataError.emptyClass(file: file, className: "\(classNames[empty]) (label \(empty))")
      }
      samples = zip(entries, labels).map { Sample(path: $0.path, label: $1) }
    }
    if checkFiles { try DataPaths.checkExist(samples, listedIn: file) }
    return Dataset(name: "manifest:\(file)", root: root, classNames: classNames, samples: samples)
  }

  /// RFC 4180 CSV: rows of fields; "" inside a quoted field is a quote; CR LF or LF ends a row.
  static func parseCSV(_ text: String, file: String) throws -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var inQuotes = false
    var wasQuoted = false
    var scalars = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    func endField() { row.append(field); field = ""; wasQuoted = false }
    func endRow() { endField(); rows.append(row); row = [] }
    while let c = pending ?? scalars.next() {
      pending = nil
      if inQuotes {
        if c == "\"" {
          let next = scalars.next()
          if next == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; pending = next }
        } else {
          field.unicodeScalars.append(c)
        }
        continue
      }
      switch c {
      case "\"":
        guard field.isEmpty && !wasQuoted else {
          throw DataError.malformed(file: file, reason: "row \(rows.count + 1): a quote inside an unquoted field")
        }
        inQuotes = true; wasQuoted = true
      case ",": endField()
      case "\r":
        let next = scalars.next()
        if next != "\n" { pending = next }
        endRow()
      case "\n": endRow()
      default: field.unicodeScalars.append(c)
      }
    }
    if inQuotes { throw DataError.malformed(file: file, reason: "a quoted field is not closed") }
    if !field.isEmpty || !row.isEmpty || wasQuoted { endRow() }
    return rows
  }
}
