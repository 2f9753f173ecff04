// File-system helpers shared by the dataset readers: joining a listed relative path onto a dataset root without
// letting it escape (no absolute paths, no `..`), listing image files, and checking that listed images exist.
// Shape letters: none.
import Foundation
import Tensor

enum DataPaths {
  static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

  static func isImage(_ name: String) -> Bool {
    guard let dot = name.lastIndex(of: "."), !name.hasPrefix(".") else { return false }
    return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
  }

  /// root + "/" + relative, refusing absolute paths, `..` components and empty paths (named in the error with
  /// the file that listed them).
  static func join(_ root: String, _ relative: String, listedIn file: String) throws -> String {
    let parts = relative.split(separator: "/", omittingEmptySubsequences: true)
    if relative.hasPrefix("/") || relative.hasPrefix("~") || relative.contains("\\") || parts.isEmpty
      || parts.contains("..") {
      throw DataError.pathEscapesRoot(file: file, path: relative)
    }
    let kept = parts.filter { $0 != "." }.joined(separator: "/")
    return root.hasSuffix("/") ? root + kept : root + "/" + kept
  }

  static func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
  }

  static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

  /// Non-hidden entries of a folder, sorted (byte order for ASCII names, as Python's sorted()).
  static func listSorted(_ folder: String) throws -> [String] {
    do {
      return try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
    } catch {
      throw DataError.unreadable(path: folder, reason: "cannot list the folder (\(error.localizedDescription))")
    }
  }

  /// Subfolders of a folder (following symlinks), sorted.
  static func subfolders(_ folder: String) throws -> [String] {
    try listSorted(folder).filter { isDirectory(folder + "/" + $0) }
  }

  /// Image files under `folder`, recursively (symlinked folders followed, depth-limited against cycles), as paths
  /// relative to `folder`, sorted.
  static func images(under folder: String, depth: Int = 8) throws -> [String] {
    var found: [String] = []
    func walk(_ relative: String, _ level: Int) throws {
      let absolute = relative.isEmpty ? folder : folder + "/" + relative
      for name in try listSorted(absolute) {
        let child = relative.isEmpty ? name : relative + "/" + name
        if isDirectory(folder + "/" + child) {
          if level < depth { try walk(child, level + 1) }
        } else if isImage(name) {
          found.append(child)
        }
      }
    }
    try walk("", 0)
    return found.sorted()
  }

  /// Fails with every missing image named (first few) when any listed sample file does not exist.
  static func checkExist(_ samples: [Sample], listedIn file: String) throws {
    var missing: [String] = []
    var total = 0
    for sample in samples where !exists(sample.path) {
      total += 1
      if missing.count < 5 { missing.append(sample.path) }
    }
    if total > 0 { throw DataError.missingFiles(file: file, missing: missing, total: total) }
  }

  /// The whole file as UTF-8 (BOM dropped), refusing files over `BoundedFile.listLimit` (1 GiB) and non-files.
  static func readText(_ path: String) throws -> String {
    try decodeText(readBounded(path), path: path)
  }

  /// The whole file, refusing files over `BoundedFile.listLimit` (1 GiB: any real list of samples) and devices.
  static func readBounded(_ path: String) throws -> Data {
    do { return try BoundedFile.read(path, limit: BoundedFile.listLimit, what: "a dataset list") } catch let error as InputLimitError {
      switch error {
      case let .unreadable(_, reason): throw DataError.unreadable(path: path, reason: reason)
      case .tooLarge: throw DataError.malformed(file: path, reason: error.description)
      }
    }
  }

  static func decodeText(_ data: Data, path: String) throws -> String {
    guard let text = String(data: data, encoding: .utf8) else {
      throw DataError.malformed(file: path, reason: "not UTF-8 text")
    }
    if text.unicodeScalars.first == "\u{FEFF}" { return String(text.unicodeScalars.dropFirst()) }
    return text
  }
}
