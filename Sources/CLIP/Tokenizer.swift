// The CLIP text tokenizer: byte-level BPE over the 49408-token vocabulary, equal to open_clip.tokenize
// (open_clip/tokenizer.py SimpleTokenizer, clean="lower"). Text is cleaned (TextCleaning module), split by
// open_clip's pattern `<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
// (IGNORECASE), and each piece's UTF-8 bytes are merged by rank. Output rows are T = contextLength ids:
// <start_of_text>, the text's ids, <end_of_text>, zeros; a long text is cut and still ends with <end_of_text>.
// Shape letters: T tokens, V vocab (ids are 0 ..< V).
import CSupport
import Foundation
import TextCleaning

// Hostile input: encoding stops once the row is full (a 500 KB caption costs what its first pieces cost), and
// a piece longer than `heapMergeThreshold` bytes is merged with a heap (O(n log n)) instead of the rescanning
// loop, which is quadratic; both give the same ids (tested against each other).

/// Problems loading the BPE vocabulary.
public enum TokenizerError: Error, CustomStringConvertible {
  case vocabularyMissing
  case vocabularyUnreadable(path: String, code: Int32)
  case vocabularyMalformed(path: String, line: Int, reason: String)

  public var description: String {
    switch self {
    case .vocabularyMissing:
      return "The CLIP vocabulary bpe_simple_vocab_16e6.txt.gz is not in the CLIP module's resource bundle; "
        + "rebuild the package so Sources/CLIP/Resources is copied, or pass its path to CLIPTokenizer(vocabularyPath:)."
    case .vocabularyUnreadable(let path, let code):
      let why = code == RADA_GZIP_OPEN_FAILED ? "cannot be opened" : code == RADA_GZIP_NO_MEMORY ? "does not fit in memory"
        : "is not a valid gzip file"
      return "The CLIP vocabulary \(path) \(why) (code \(code)); check the file is the gzip open_clip ships."
    case .vocabularyMalformed(let path, let line, let reason):
      return "The CLIP vocabulary \(path) line \(line): \(reason); use open_clip's bpe_simple_vocab_16e6.txt.gz."
    }
  }
}

/// open_clip's split pattern, applied as `re.findall` does: at each code point the first alternative that
/// matches wins (greedy), and a code point no alternative matches (whitespace) is skipped.
enum PieceSplitter {
  /// \p{L} (general category L*).
  static func isLetter(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII { return (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A }
    switch c.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
  }

  /// \p{N} (general category N*).
  static func isNumber(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 }
    switch c.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
  }

  /// The `regex` module's \s (unlike str.isspace it leaves out U+001C-U+001F).
  static func isSpace(_ c: Unicode.Scalar) -> Bool {
    c.value != 0x1C && c.value != 0x1D && c.value != 0x1E && c.value != 0x1F && TextCleaning.isPythonSpace(c)
  }

  /// `[^\s\p{L}\p{N}]` under IGNORECASE. U+0345 (a combining mark that case-folds to the letter ι) is the
  /// one code point IGNORECASE keeps out of this class, so no alternative matches it.
  static func isOther(_ c: Unicode.Scalar) -> Bool {
    !isSpace(c) && !isLetter(c) && !isNumber(c) && c.value != 0x345
  }

  /// Case-insensitive match of an ASCII-lowercase literal at `start` (IGNORECASE also lets ſ match s).
  static func matches(_ literal: String, _ text: [Unicode.Scalar], at start: Int) -> Bool {
    var i = start
    for expected in literal.unicodeScalars {
      guard i < text.count else { return false }
      let c = text[i]
      let lowered = (c.value >= 0x41 && c.value <= 0x5A) ? c.value + 0x20 : c.value
      guard lowered == expected.value || (expected == "s" && c.value == 0x17F) else { return false }
      i += 1
    }
    return true
  }

  static let specials = ["<start_of_text>", "<end_of_text>"]
  static let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]

  /// Calls `body` with each piece of `text`, in order.
  static func forEachPiece(_ text: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>) -> Void) {
    var i = 0
    while i < text.count {
      let c = text[i]
      var end = i
      if c == "<", let special = specials.first(where: { matches($0, text, at: i) }) {
        end = i + special.unicodeScalars.count
      } else if c == "'", let contraction = contractions.first(where: { matches($0, text, at: i) }) {
        end = i + contraction.unicodeScalars.count
      } else if isLetter(c) {
        end = i + 1
        while end < text.count && isLetter(text[end]) { end += 1 }
      } else if isNumber(c) {
        end = i + 1
      } else if isOther(c) {
        end = i + 1
        while end < text.count && isOther(text[end]) { end += 1 }
      } else {
        i += 1
        continue
      }
      body(text[i..<end])
      i = end
    }
  }
}

/// Safe to share between threads: the vocabulary is immutable and the BPE cache is behind a lock.
public final class CLIPTokenizer: @unchecked Sendable {
  public static let startToken: Int32 = 49406
  public static let endToken: Int32 = 49407
  /// V: 256 bytes, 256 bytes ending a word (`</w>`), 48894 merges, 2 special tokens.
  public static let vocabularySize = 49408
  static let mergeCount = 49152 - 256 - 2

  /// Vocabulary id of each byte (open_clip's bytes_to_unicode order); the word-final form is this + 256.
  private let byteID: [Int32]
  /// Merge rank of a pair of ids, key (first << 32 | second); the merged token's id is 512 + rank.
  private let mergeRanks: [UInt64: Int32]
  /// BPE ids per piece, keyed by the piece's UTF-8 bytes (not String: "é" == "e\u{301}" in Swift).
  private var cache: [[UInt8]: [Int32]] = [:]
  private let cacheLock = NSLock()

  /// Loads the vocabulary shipped in the CLIP module's resources.
  public convenience init() throws {
    guard let url = Bundle.module.url(forResource: "bpe_simple_vocab_16e6.txt", withExtension: "gz") else {
      throw TokenizerError.vocabularyMissing
    }
    try self.init(vocabularyPath: url.path)
  }

  /// Loads a gzip'd open_clip BPE merges file (first line a header, then "first second" per merge).
  public init(vocabularyPath path: String) throws {
    var buffer: UnsafeMutablePointer<UInt8>?
    var length = 0
    let code = rada_gunzip_file(path, &buffer, &length)
    guard code == RADA_GZIP_OK, let buffer else { throw TokenizerError.vocabularyUnreadable(path: path, code: code) }
    defer { rada_gunzip_free(buffer) }
    let bytes = UnsafeBufferPointer(start: buffer, count: length)

    // bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to U+0100 upwards; the
    // vocabulary lists the printable ones first, then the rest, in byte order within each group.
    // Tokens are keyed by their UTF-8 bytes as they appear in the file (parsed as bytes, not Strings: Swift's
    // String splitting and hashing made loading take ~0.15 s, paid by every command that tokenizes).
    let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    let others = (0..<256).filter { !printable.contains($0) }
    var byteID = [Int32](repeating: 0, count: 256)
    var vocabulary: [[UInt8]: Int32] = [:]
    vocabulary.reserveCapacity(Self.vocabularySize)
    let wordEnd = Array("</w>".utf8)
    for (index, byte) in (printable + others).enumerated() {
      byteID[byte] = Int32(index)
      let scalar = Unicode.Scalar(UInt32(index < printable.count ? byte : 256 + index - printable.count))!
      let utf8 = Array(String(scalar).utf8)
      vocabulary[utf8] = Int32(index)
      vocabulary[utf8 + wordEnd] = Int32(index) + 256
    }

    // Line 1 is a header; lines 2 ... mergeCount+1 are "first second".
    var lineStart = 0, line = 1
    func nextLine() -> Range<Int>? {
      guard lineStart <= length else { return nil }
      var end = lineStart
      while end < length && bytes[end] != UInt8(ascii: "\n") { end += 1 }
      defer { lineStart = end + 1; line += 1 }
      return lineStart..<end
    }
    _ = nextLine()
    var ranks: [UInt64: Int32] = [:]
    ranks.reserveCapacity(Self.mergeCount)
    for rank in 0..<Self.mergeCount {
      guard let range = nextLine() else {
        throw TokenizerError.vocabularyMalformed(path: path, line: line,
                                                 reason: "has \(rank) merges, expected \(Self.mergeCount)")
      }
      let text = bytes[range]
      let space = text.firstIndex(of: UInt8(ascii: " "))
      guard let space, !text[(space + 1)...].contains(UInt8(ascii: " ")),
            let first = vocabulary[Array(text[..<space])], let second = vocabulary[Array(text[(space + 1)...])]
      else {
        throw TokenizerError.vocabularyMalformed(path: path, line: line - 1,
          reason: "\"\(String(decoding: text.prefix(80), as: UTF8.self))\" is not a merge of two known tokens")
      }
      ranks[UInt64(UInt32(first)) << 32 | UInt64(UInt32(second))] = Int32(rank)
      var merged = Array(text[..<space])
      merged += text[(space + 1)...]
      vocabulary[merged] = Int32(512 + rank)
    }
    self.byteID = byteID
    self.mergeRanks = ranks
  }

  // MARK: - Encoding

  /// BPE ids of `text` after open_clip's cleaning, without <start_of_text>/<end_of_text>. With `limit`, pieces
  /// after the first `limit` ids are not encoded (the ids returned start with the same `limit` ids).
  public func encode(_ text: String, limit: Int = .max) -> [Int32] {
    let cleaned = TextCleaning.cleanLower(text)
    var ids: [Int32] = []
    PieceSplitter.forEachPiece(cleaned) { piece in
      if ids.count >= limit { return }
      if let special = Self.specialToken(piece) { ids.append(special); return }
      var bytes: [UInt8] = []
      for scalar in piece { bytes.append(contentsOf: UTF8.encode(scalar)!) }
      ids += bpe(bytes)
    }
    return ids
  }

  /// open_clip.tokenize(texts, context_length): (B, T) ids, T = contextLength (at least 1; with 1 the row is
  /// just <end_of_text>, as in open_clip).
  public func tokenize(_ texts: [String], contextLength: Int = 77) -> [[Int32]] {
    precondition(contextLength >= 1, "contextLength must be at least 1")
    return texts.map { text in
      // Only the first T - 2 text ids can reach the row; one more tells that the text was cut.
      var row = [Self.startToken] + encode(text, limit: contextLength - 1) + [Self.endToken]
      if row.count > contextLength {
        row.removeLast(row.count - contextLength)
        row[contextLength - 1] = Self.endToken
      }
      return row + [Int32](repeating: 0, count: contextLength - row.count)
    }
  }

  /// The id of a piece that is exactly "<start_of_text>" or "<end_of_text>" (open_clip's cache holds both),
  /// nil otherwise (a case-insensitive match such as "<ſtart_of_text>" is encoded like any other piece).
  private static func specialToken(_ piece: ArraySlice<Unicode.Scalar>) -> Int32? {
    guard piece.first == "<" else { return nil }
    if piece.elementsEqual("<start_of_text>".unicodeScalars) { return startToken }
    if piece.elementsEqual("<end_of_text>".unicodeScalars) { return endToken }
    return nil
  }

  /// Byte-pair merging of one piece: start from its bytes (the last in its `</w>` form), then repeatedly
  /// merge every occurrence, left to right, of the adjacent pair with the lowest rank.
  private func bpe(_ bytes: [UInt8]) -> [Int32] {
    // Long pieces (a 500 KB "word") are neither cached nor merged by rescanning.
    if bytes.count > Self.heapMergeThreshold { return heapMerge(bytes) }
    cacheLock.lock()
    let cached = cache[bytes]
    cacheLock.unlock()
    if let cached { return cached }
    let word = rescanMerge(bytes)
    cacheLock.lock()
    cache[bytes] = word
    cacheLock.unlock()
    return word
  }

  /// Pieces longer than this many bytes use `heapMerge` (real words are a few dozen bytes).
  static let heapMergeThreshold = 128

  /// open_clip's bpe(): O(n) per merge, O(n²) for an n-byte piece.
  func rescanMerge(_ bytes: [UInt8]) -> [Int32] {
    var word = bytes.map { byteID[Int($0)] }
    word[word.count - 1] += 256
    while word.count > 1 {
      var bestRank = Int32.max, first: Int32 = 0, second: Int32 = 0
      for i in 0..<(word.count - 1) {
        if let rank = mergeRanks[UInt64(UInt32(word[i])) << 32 | UInt64(UInt32(word[i + 1]))], rank < bestRank {
          (bestRank, first, second) = (rank, word[i], word[i + 1])
        }
      }
      if bestRank == Int32.max { break }
      var merged: [Int32] = []
      merged.reserveCapacity(word.count)
      var i = 0
      while i < word.count {
        if i + 1 < word.count && word[i] == first && word[i + 1] == second {
          merged.append(512 + bestRank)
          i += 2
        } else {
          merged.append(word[i])
          i += 1
        }
      }
      word = merged
    }
    return word
  }

  /// The same merges as `rescanMerge` in O(n log n): a min-heap of (rank, position) over a linked list of
  /// tokens, stale entries skipped when popped. Equal because a merge's new pairs always rank after it (a
  /// merged token only appears in later merges of the vocabulary), so taking the lowest (rank, leftmost
  /// position) pair each time visits merges in the order of rescanMerge's passes, left to right within a rank.
  func heapMerge(_ bytes: [UInt8]) -> [Int32] {
    let count = bytes.count
    var token = bytes.map { byteID[Int($0)] }
    token[count - 1] += 256
    var next = Array(1...count)            // count = end of list
    var previous = Array(-1..<(count - 1))  // -1 = start of list
    var alive = [Bool](repeating: true, count: count)
    var heap = MinHeap()
    func rank(_ i: Int) -> Int32? {
      let j = next[i]
      guard j < count else { return nil }
      return mergeRanks[UInt64(UInt32(token[i])) << 32 | UInt64(UInt32(token[j]))]
    }
    func push(_ i: Int) { if let r = rank(i) { heap.push(UInt64(UInt32(r)) << 32 | UInt64(i)) } }
    for i in 0..<(count - 1) { push(i) }
    while let key = heap.pop() {
      let r = Int32(truncatingIfNeeded: key >> 32), i = Int(key & 0xFFFF_FFFF)
      guard alive[i], rank(i) == r else { continue }  // stale: i merged away or its right neighbour changed
      let j = next[i]
      token[i] = 512 + r
      alive[j] = false
      next[i] = next[j]
      if next[j] < count { previous[next[j]] = i }
      if previous[i] >= 0 { push(previous[i]) }
      push(i)
    }
    var word: [Int32] = []
    var i = 0
    while i < count { word.append(token[i]); i = next[i] }
    return word
  }
}

/// A binary min-heap of UInt64 keys (BPE: rank << 32 | position).
struct MinHeap {
  private var keys: [UInt64] = []

  mutating func push(_ key: UInt64) {
    keys.append(key)
    var child = keys.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      if keys[parent] <= keys[child] { break }
      keys.swapAt(parent, child)
      child = parent
    }
  }

  mutating func pop() -> UInt64? {
    guard let top = keys.first else { return nil }
    let last = keys.removeLast()
    if keys.isEmpty { return top }
    keys[0] = last
    var parent = 0
    while true {
      let left = 2 * parent + 1, right = left + 1
      var smallest = parent
      if left < keys.count && keys[left] < keys[smallest] { smallest = left }
      if right < keys.count && keys[right] < keys[smallest] { smallest = right }
      if smallest == parent { break }
      keys.swapAt(parent, smallest)
      parent = smallest
    }
    return top
  }
}
