// `rada features ls|rm|verify`: the feature cache (--dir, $RADA_CACHE_DIR, or rada/features under $XDG_CACHE_HOME
// or ~/.cache). Entries are
// `aug-KEY/` folders of per-epoch augmented features (EFT with augmentation) and `KEY.safetensors` files of
// center-crop features (EFT without augmentation, eval). Training keeps the folder under data.featureCacheMaxGB.
import ArgumentParser
import Foundation
import Training

struct Features: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List, verify or remove entries of the image feature cache.",
    subcommands: [List.self, Verify.self, Remove.self])

  struct Location: ParsableArguments {
    @Option(help: "Cache folder (default: $RADA_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, then rada/features).")
    var dir: String?
    var root: String { SessionParts.featureCacheRoot(dir) }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the cache's entries and sizes.")
    @OptionGroup var location: Location

    func run() throws {
      let entries = FeatureCacheListing.entries(root: location.root)
      let formatter = ISO8601DateFormatter()
      for entry in entries {
        let what = entry.kind == "augmented" ? "augmented, \(entry.epochs.count) epoch(s)" : "center crop"
        print(String(format: "%10.1f MB  ", Double(entry.bytes) / 1e6) + formatter.string(from: entry.modified)
              + "  \((entry.path as NSString).lastPathComponent)  (\(what))")
      }
      let total = entries.reduce(Int64(0)) { $0 + $1.bytes }
      print(String(format: "%d entr%@, %.1f MB in %@", entries.count, entries.count == 1 ? "y" : "ies",
                   Double(total) / 1e6, location.root))
    }
  }

  struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check every entry's files (header, checksum); exit 1 naming the damaged ones.",
      discussion: "A damaged entry is also detected and recomputed by the next run that needs it.")
    @OptionGroup var location: Location

    func run() throws {
      let entries = FeatureCacheListing.entries(root: location.root)
      let problems = entries.flatMap(FeatureCacheListing.verify)
      for problem in problems { print("damaged: \(problem)") }
      print("\(entries.count) entr\(entries.count == 1 ? "y" : "ies") checked, \(problems.count) problem(s)"
            + (problems.isEmpty ? "" : "; remove them with `rada features rm NAME` (or let the next run recompute them)"))
      if !problems.isEmpty { throw ExitCode(1) }
    }
  }

  struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove entries by name, or --all.")
    @OptionGroup var location: Location
    @Flag(help: "Remove every entry.") var all = false
    @Argument(help: "Entry names as `rada features ls` shows them (aug-KEY or KEY.safetensors).") var names: [String] = []

    func validate() throws {
      if all == !names.isEmpty { throw ValidationError("give entry names or --all (not both).") }
      for name in names where name.contains("/") || name == "." || name == ".." {
        throw ValidationError("'\(name)' is not an entry name: give the name `rada features ls` prints.")
      }
    }

    func run() throws {
      let entries = FeatureCacheListing.entries(root: location.root)
      let chosen = all ? entries : try names.map { name in
        guard let entry = entries.first(where: { ($0.path as NSString).lastPathComponent == name }) else {
          throw ValidationError("no entry '\(name)' in \(location.root) (see `rada features ls --dir ...`).")
        }
        return entry
      }
      for entry in chosen {
        try FileManager.default.removeItem(atPath: entry.path)
        print("removed \(entry.path)")
      }
    }
  }
}
