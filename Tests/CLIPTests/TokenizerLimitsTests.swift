// Hostile text: the heap BPE used for long pieces gives exactly the ids of open_clip's rescanning loop (the
// naive referee, kept as `rescanMerge`), a row only encodes what it can hold (the first T - 2 ids equal the full
// encoding's), and a 500 KB word or caption tokenizes to a normal row. No timing here: speed belongs in bench.
// Shape letters: T tokens.
@testable import CLIP
import Foundation
import XCTest

final class TokenizerLimitsTests: XCTestCase {
  static let tokenizer = Result { try CLIPTokenizer() }

  func testHeapMergeEqualsTheRescanningLoop() throws {
    let tokenizer = try Self.tokenizer.get()
    var words = ["photograph", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "antidisestablishmentarianism", "héllo", "日本語のテキスト",
                 "aaaabbbbaaaabbbb", "ssssssssss", "a"]
    // Pseudo-random words over a small alphabet (many repeated pairs and overlaps) and over all bytes.
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func nextRandom() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
    for length in [2, 3, 5, 8, 13, 40, 200, 1000] {
      for _ in 0..<20 {
        let alphabet = Array("abeilnorst")
        words.append(String((0..<length).map { _ in alphabet[Int(nextRandom() % UInt64(alphabet.count))] }))
      }
    }
    for word in words {
      let bytes = Array(word.utf8)
      XCTAssertEqual(tokenizer.heapMerge(bytes), tokenizer.rescanMerge(bytes), word)
    }
    for _ in 0..<50 {
      let bytes = (0..<Int(nextRandom() % 300 + 1)).map { _ in UInt8(nextRandom() & 0xFF) }
      XCTAssertEqual(tokenizer.heapMerge(bytes), tokenizer.rescanMerge(bytes), "\(bytes)")
    }
  }

  func testARowEncodesOnlyWhatItHoldsAndStaysEqualToTheFullEncoding() throws {
    let tokenizer = try Self.tokenizer.get()
    let text = (0..<300).map { "word\($0) and, more!" }.joined(separator: " ")
    let full = tokenizer.encode(text)
    for context in [1, 2, 3, 10, 77] {
      let row = tokenizer.tokenize([text], contextLength: context)[0]
      var expected = [CLIPTokenizer.startToken] + full + [CLIPTokenizer.endToken]
      expected.removeLast(expected.count - context)
      expected[context - 1] = CLIPTokenizer.endToken
      XCTAssertEqual(row, expected, "context \(context)")
    }
    XCTAssertEqual(tokenizer.encode(text, limit: 5), Array(full.prefix(5)))
  }

  func testHalfAMegabyteWordAndCaptionGiveNormalRows() throws {
    let tokenizer = try Self.tokenizer.get()
    let word = String(repeating: "abcdefghij", count: 50_000)
    let caption = String(repeating: "a photo of a dog. ", count: 28_000)
    for text in [word, caption] {
      let row = tokenizer.tokenize([text], contextLength: 77)[0]
      XCTAssertEqual(row.count, 77)
      XCTAssertEqual(row.first, CLIPTokenizer.startToken)
      XCTAssertEqual(row.last, CLIPTokenizer.endToken)
      XCTAssertFalse(row.contains(0))
    }
  }
}
