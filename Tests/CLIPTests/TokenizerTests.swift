// CLIPTokenizer against open_clip.tokenize: Fixtures/tokenizer/cases.json holds texts and the ids open_clip
// 3.3.0 (ftfy 6.3.1, mojibake repair included) produced for them (see generate_tokenizer_cases.py). Ids are
// integers, so every comparison is exact, and every case is asserted.
// Shape letters: T tokens, V vocab.
import CLIP
import Foundation
import XCTest

final class TokenizerTests: XCTestCase {
  struct Case: Decodable {
    var text: String
    var ids: [Int32]
    var short: [String: [Int32]]?  // context length -> ids
  }

  struct Cases: Decodable { var cases: [Case] }

  static let tokenizer = Result { try CLIPTokenizer() }

  func loadCases() throws -> [Case] {
    let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    let data = try Data(contentsOf: fixtures.appendingPathComponent("tokenizer/cases.json"))
    return try JSONDecoder().decode(Cases.self, from: data).cases
  }

  /// The text with non-printable-ASCII code points as \u{...}, for failure messages.
  func escaped(_ text: String) -> String {
    let shown = text.unicodeScalars.map { c in
      (0x20..<0x7F).contains(c.value) ? String(c) : "\\u{\(String(c.value, radix: 16))}"
    }.joined()
    return shown.count > 80 ? String(shown.prefix(80)) + "..." : shown
  }

  /// nil when equal, else where and how the rows differ.
  func difference(_ got: [Int32], _ expected: [Int32]) -> String? {
    if got == expected { return nil }
    guard got.count == expected.count else { return "length \(got.count), expected \(expected.count)" }
    let first = got.indices.first { got[$0] != expected[$0] }!
    let window = first..<min(first + 6, got.count)
    return "first difference at position \(first): got \(Array(got[window])), expected \(Array(expected[window]))"
  }

  func testMatchesOpenCLIPOnEveryCase() throws {
    let tokenizer = try Self.tokenizer.get()
    let cases = try loadCases()
    XCTAssertGreaterThan(cases.count, 50, "cases.json looks truncated")
    var failedCases = Set<Int>()
    for (index, item) in cases.enumerated() {
      var checks = [(77, item.ids)]
      for (length, ids) in (item.short ?? [:]).sorted(by: { $0.key < $1.key }) { checks.append((Int(length)!, ids)) }
      for (contextLength, expected) in checks {
        let got = tokenizer.tokenize([item.text], contextLength: contextLength)[0]
        if let problem = difference(got, expected) {
          failedCases.insert(index)
          XCTFail("case \(index) \"\(escaped(item.text))\" context \(contextLength): \(problem)")
        }
      }
    }
    print("TokenizerTests: \(cases.count - failedCases.count) of \(cases.count) cases exact")
  }

  func testBatchEqualsOneByOneAndEncodeOmitsSpecialTokens() throws {
    let tokenizer = try Self.tokenizer.get()
    let cases = try loadCases()
    let batch = tokenizer.tokenize(cases.map(\.text))
    XCTAssertEqual(batch, cases.map(\.ids), "a batch must give the rows of the single texts")
    let dog = try XCTUnwrap(cases.first { $0.text == "a photo of a dog." })
    let end = try XCTUnwrap(dog.ids.firstIndex(of: CLIPTokenizer.endToken))
    XCTAssertEqual(tokenizer.encode(dog.text), Array(dog.ids[1..<end]))
    XCTAssertEqual(dog.ids.first, CLIPTokenizer.startToken)
  }

  func testTruncationKeepsEndToken() throws {
    let tokenizer = try Self.tokenizer.get()
    // 500 words of one token each: the row is <start>, 75 words, <end>, whatever the context length.
    let rows = tokenizer.tokenize([String(repeating: "dog ", count: 500)], contextLength: 77)
    XCTAssertEqual(rows[0].count, 77)
    XCTAssertEqual(rows[0].first, CLIPTokenizer.startToken)
    XCTAssertEqual(rows[0].last, CLIPTokenizer.endToken)
    XCTAssertFalse(rows[0].dropFirst().dropLast().contains(0))
  }

  /// 1000 unseen class names through one tokenizer (its BPE cache filling as it goes) give the same rows as a
  /// fresh tokenizer per prompt. (Speed is a benchmark matter, not a timed test: rada never times tests in CI.)
  func testThousandPromptsWithAFillingCacheMatchFreshTokenizers() throws {
    let tokenizer = try CLIPTokenizer()  // fresh: an empty BPE cache
    // 1000 distinct made-up class names (syllable combinations), so BPE runs on unseen words.
    let syllables = ["ka", "lo", "mi", "tre", "vus", "don", "pel", "qua", "zir", "bex"]
    let prompts = (0..<1000).map { i in
      let name = [i % 10, (i / 10) % 10, (i / 100) % 10, (i * 7) % 10].map { syllables[$0] }.joined()
      return "a photo of a \(name)_\(i % 13), a type of thing."
    }
    let rows = tokenizer.tokenize(prompts)
    XCTAssertEqual(rows.count, 1000)
    for i in stride(from: 0, to: 1000, by: 97) {
      XCTAssertEqual(rows[i], try CLIPTokenizer().tokenize([prompts[i]])[0], "prompt \(i): \(prompts[i])")
    }
    XCTAssertTrue(rows.allSatisfy { $0.first == CLIPTokenizer.startToken && $0.contains(CLIPTokenizer.endToken) })
  }

  func testUnreadableVocabularyNamesTheFile() throws {
    XCTAssertThrowsError(try CLIPTokenizer(vocabularyPath: "/nonexistent/vocab.txt.gz")) { error in
      XCTAssertTrue("\(error)".contains("/nonexistent/vocab.txt.gz"), "\(error)")
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("rada-bad-vocab-\(getpid()).txt")
    try Data("header\nnot a merge at all\n".utf8).write(to: path)
    defer { try? FileManager.default.removeItem(at: path) }
    XCTAssertThrowsError(try CLIPTokenizer(vocabularyPath: path.path)) { error in
      guard case TokenizerError.vocabularyMalformed = error else { return XCTFail("unexpected \(error)") }
    }
  }
}
