// `rada-fuzz TARGET`: a seeded mutation loop over a seed corpus, for builds without libFuzzer (the normal debug
// build CI already has: no second, instrumented build of the whole package). It mutates corpus files (bit and
// byte flips, interesting numbers, inserted, deleted, repeated and spliced ranges), runs the target on each
// input for --seconds or --runs, and exits 0; a crash ends the process with its signal, so the caller fails.
// The same --seed replays the same inputs; --save FILE writes each input before it runs (the crasher's bytes).
// With -sanitize=fuzzer -DLIBFUZZER this file is left out; LibFuzzerMain.swift hands FuzzTargets to libFuzzer.
#if !LIBFUZZER
import Foundation
import Tensor

@main
struct MutationDriver {
  static let usage = """
    usage: rada-fuzz TARGET [--corpus DIR] [--seconds S] [--runs N] [--seed K] [--save FILE] [--max-size BYTES]
           rada-fuzz TARGET --input FILE     (run one input)
           rada-fuzz --list
    """

  /// Numbers and tokens that break parsers: size limits, signs, overflow edges, non-numbers.
  static let interesting: [String] = ["0", "-1", "1e300", "-1e300", "NaN", "nan", "Infinity", "4294967296",
                                      "9223372036854775807", "18446744073709551616", "2.5", "1e-320", "true", "null",
                                      "\"\"", "[]", "{}", "*a", "&a", "\u{0}", "\n", "'", "\"", ",", "..", "/", "\\"]

  static func main() {
    var arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.first == "--list" {
      for target in FuzzTargets.all { print("\(target.name)\t\(target.about)") }
      return
    }
    guard let name = arguments.first, let target = FuzzTargets.named(name) else { fail(usage) }
    arguments.removeFirst()
    var options: [String: String] = [:]
    while let flag = arguments.first, flag.hasPrefix("--"), arguments.count >= 2 {
      options[String(flag.dropFirst(2))] = arguments[1]
      arguments.removeFirst(2)
    }
    guard arguments.isEmpty else { fail(usage) }
    defer { try? FileManager.default.removeItem(atPath: FuzzTargets.scratch) }
    if let input = options["input"] {
      guard let data = FileManager.default.contents(atPath: input) else { fail("cannot read \(input)") }
      target(data)
      print("rada-fuzz \(name): \(input) ran without a crash")
      return
    }
    let seconds = Double(options["seconds"] ?? "") ?? 5
    let runs = Int(options["runs"] ?? "") ?? Int.max
    let seed = UInt64(options["seed"] ?? "") ?? UInt64(Date().timeIntervalSince1970)
    let maxSize = Int(options["max-size"] ?? "") ?? 1 << 16
    var corpus: [Data] = [Data()]
    if let directory = options["corpus"] {
      let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
      corpus += names.compactMap { FileManager.default.contents(atPath: directory + "/" + $0) }
    }
    print("rada-fuzz \(name): seed \(seed), \(corpus.count - 1) corpus file(s)")
    var rng = SeededRNG(seed: seed)
    let start = Date()
    var count = 0
    // Every corpus file once unmutated, then mutations of random corpus files.
    while count < runs && (count < corpus.count || Date().timeIntervalSince(start) < seconds) {
      var input = count < corpus.count ? corpus[count] : corpus[rng.int(below: corpus.count)]
      if count >= corpus.count {
        for _ in 0...rng.int(below: 4) { mutate(&input, rng: &rng, corpus: corpus, maxSize: maxSize) }
      }
      if let save = options["save"] { try? input.write(to: URL(fileURLWithPath: save)) }
      target(input)
      count += 1
    }
    print("rada-fuzz \(name): \(count) inputs in \(String(format: "%.1f", Date().timeIntervalSince(start))) s, no crash")
  }

  static func mutate(_ data: inout Data, rng: inout SeededRNG, corpus: [Data], maxSize: Int) {
    var bytes = [UInt8](data)
    func position() -> Int { bytes.isEmpty ? 0 : rng.int(below: bytes.count + 1) }
    switch rng.int(below: 8) {
    case 0 where !bytes.isEmpty:  // flip a bit
      let i = rng.int(below: bytes.count); bytes[i] ^= UInt8(1) << UInt8(rng.int(below: 8))
    case 1 where !bytes.isEmpty:  // set a byte to an edge value
      bytes[rng.int(below: bytes.count)] = [0, 0x7F, 0x80, 0xFF, 0x30, 0x39, 0x2D, 0x0A][rng.int(below: 8)]
    case 2:  // insert an interesting token
      bytes.insert(contentsOf: Array(interesting[rng.int(below: interesting.count)].utf8), at: position())
    case 3 where !bytes.isEmpty:  // replace a run of digits (or any byte) with an interesting number
      let i = rng.int(below: bytes.count)
      var end = i
      while end < bytes.count && (0x30...0x39).contains(bytes[end]) { end += 1 }
      bytes.replaceSubrange(i..<max(end, i + 1), with: Array(interesting[rng.int(below: 10)].utf8))
    case 4 where !bytes.isEmpty:  // delete a range
      let i = rng.int(below: bytes.count); bytes.removeSubrange(i..<min(bytes.count, i + 1 + rng.int(below: 16)))
    case 5 where !bytes.isEmpty:  // repeat a range (deep nesting, long words, many lines)
      let i = rng.int(below: bytes.count), length = min(bytes.count - i, 1 + rng.int(below: 8))
      let chunk = Array(bytes[i..<(i + length)])
      for _ in 0..<(1 + rng.int(below: 64)) { bytes.insert(contentsOf: chunk, at: i) }
    case 6:  // splice in part of another corpus file
      let other = [UInt8](corpus[rng.int(below: corpus.count)])
      if !other.isEmpty {
        let i = rng.int(below: other.count)
        bytes.insert(contentsOf: other[i..<min(other.count, i + 1 + rng.int(below: 64))], at: position())
      }
    default:  // random bytes
      bytes.insert(contentsOf: (0..<(1 + rng.int(below: 8))).map { _ in UInt8(rng.int(below: 256)) }, at: position())
    }
    if bytes.count > maxSize { bytes.removeLast(bytes.count - maxSize) }
    data = Data(bytes)
  }

  static func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(2)
  }
}
#endif
