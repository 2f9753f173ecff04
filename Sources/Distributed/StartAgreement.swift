// The start-up agreement (issue 15): before any rank branches on what it loaded, every rank must have started
// from the same resolved config, model, dataset listing and rada binary (an MPMD launch, a stale binary on one
// node or a different file at the same path would otherwise diverge or crash in a broadcast). Each rank reduces
// its key/value list to one 8-byte digest; the digests are all-gathered; only on a mismatch are the full lists
// gathered to name the first differing key and which ranks hold which value.
// Shape letters: none.
import CSupport
import Foundation

public enum AgreementError: RankAgreedError, CustomStringConvertible {
  /// `groups`: each distinct value with the ranks that hold it (rank order).
  case mismatch(what: String, key: String, groups: [(value: String, ranks: [Int])])

  public var description: String {
    switch self {
    case let .mismatch(what, key, groups):
      let detail = groups.map { "rank" + ($0.ranks.count > 1 ? "s " : " ")
        + $0.ranks.map(String.init).joined(separator: ",") + ": " + $0.value }.joined(separator: "; ")
      return "ranks disagree at start on \(what) key '\(key)' (\(detail)). Every rank must run the same rada binary "
        + "with the same config, model file and dataset; check the launch command (MPMD ':' parts), the files on "
        + "each node and that every node has the same build."
    }
  }
}

/// One entry of a fingerprint: a short, printable value (long contents go in as a digest).
public typealias FingerprintEntry = (key: String, value: String)

public enum StartAgreement {
  /// 64-bit digest of bytes as 16 hex digits (see rada_digest.h).
  public static func digest(_ bytes: UnsafeRawBufferPointer, previous: UInt64 = 0) -> UInt64 {
    rada_digest64(previous, bytes.baseAddress, bytes.count)
  }

  public static func hex(_ value: UInt64) -> String {
    let s = String(value, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
  }

  public static func digest(of text: String) -> String {
    var utf8 = Array(text.utf8)
    return hex(utf8.withUnsafeMutableBytes { digest(UnsafeRawBufferPointer($0)) })
  }

  /// The digest of this process's executable (/proc/self/exe): ranks started from different builds differ here.
  /// nil when the file cannot be read (then the binary is left out of the agreement, never guessed).
  public static func executableDigest() -> String? {
    guard let data = FileManager.default.contents(atPath: "/proc/self/exe")
      ?? Bundle.main.executablePath.flatMap({ FileManager.default.contents(atPath: $0) }) else { return nil }
    return hex(data.withUnsafeBytes { digest($0) }) + " (\(data.count) bytes)"
  }

  /// Encodes entries for the gather: key, unit separator, value, record separator.
  static func encode(_ entries: [FingerprintEntry]) -> [UInt8] {
    Array(entries.map { $0.key + "\u{1F}" + $0.value }.joined(separator: "\u{1E}").utf8)
  }

  static func decode(_ bytes: [UInt8]) -> [FingerprintEntry] {
    let text = String(decoding: bytes, as: UTF8.self)
    guard !text.isEmpty else { return [] }
    return text.split(separator: "\u{1E}", omittingEmptySubsequences: false).map { record in
      let parts = record.split(separator: "\u{1F}", maxSplits: 1, omittingEmptySubsequences: false)
      return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
    }
  }

  /// The first key (in rank 0's order, then keys only other ranks have) whose value is not the same on every
  /// rank, with the ranks grouped by value ("(missing)" where a rank lacks the key). nil when all agree.
  public static func firstDifference(_ perRank: [[FingerprintEntry]]) -> (key: String, groups: [(value: String, ranks: [Int])])? {
    var order: [String] = []
    var seen = Set<String>()
    for list in perRank { for entry in list where seen.insert(entry.key).inserted { order.append(entry.key) } }
    let maps = perRank.map { Dictionary($0.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first }) }
    for key in order {
      let values = maps.map { $0[key] ?? "(missing)" }
      guard Set(values).count > 1 else { continue }
      var groups: [(value: String, ranks: [Int])] = []
      for (rank, value) in values.enumerated() {
        if let i = groups.firstIndex(where: { $0.value == value }) { groups[i].ranks.append(rank) } else { groups.append((value, [rank])) }
      }
      return (key, groups)
    }
    return nil
  }

  /// Every rank calls this with its own entries at the same point. Returns when all ranks hold identical lists;
  /// otherwise every rank throws the same AgreementError (so all stop alike). `what` names the list in errors
  /// ("start-up", "resume").
  public static func check(_ world: Collective, entries: [FingerprintEntry], what: String = "start-up") throws {
    let encoded = encode(entries)
    var mine = encoded
    let digestValue = mine.withUnsafeMutableBytes { digest(UnsafeRawBufferPointer($0)) }
    // Fixed-size digests first: 8 bytes per rank.
    let digestBytes = withUnsafeBytes(of: digestValue.littleEndian) { Array($0) }
    let digests = try world.allGather(bytes: digestBytes)
    guard Set(digests).count > 1 else { return }
    let lists = try world.allGather(bytes: encoded).map(decode)
    guard let difference = firstDifference(lists) else { return }  // digests collided on different encodings
    throw AgreementError.mismatch(what: what, key: difference.key, groups: difference.groups)
  }

  /// A nested JSON-like value (from JSONSerialization) flattened into dotted keys, sorted: a config becomes
  /// ("optim.lr", "0.5"), ("run.batchSize", "12"), ...
  public static func flatten(_ value: Any, prefix: String = "") -> [FingerprintEntry] {
    if let dictionary = value as? [String: Any] {
      return dictionary.sorted { $0.key < $1.key }.flatMap { key, inner in
        flatten(inner, prefix: prefix.isEmpty ? key : prefix + "." + key)
      }
    }
    if let array = value as? [Any] {
      return [(prefix, array.map { flatten($0).map(\.value).joined(separator: ",") }.joined(separator: " | "))]
    }
    if value is NSNull { return [(prefix, "null")] }
    return [(prefix, "\(value)")]
  }
}
