// Text cleaning in front of the CLIP tokenizer: open_clip's `_clean_lower` (open_clip/tokenizer.py 3.3.0) =
// ftfy.fix_text with its defaults (ftfy 6.3.1), Python's html.unescape twice, str.strip, whitespace collapse,
// str.lower. Everything works on code points ([Unicode.Scalar]), as Python strings do; Swift String equality
// would treat "é" and "e\u{301}" as equal, Python does not. Python's tables are generated into
// TextCleaningTables.swift by Tests/CLIPTests/Fixtures/tokenizer/generate_tokenizer_cases.py --tables.
// Shape letters: none (text, not tensors).
import Foundation

// ftfy's mojibake repair (fix_encoding: "cafÃ©" -> "café") is ported with its badness heuristic, codecs and
// byte-level repairs. Not ported: fix_surrogates (a Swift String cannot hold a lone surrogate).

public enum TextCleaning {
  public typealias Scalars = [Unicode.Scalar]

  /// open_clip `_clean_lower`: whitespace_clean(basic_clean(text)).lower().
  public static func cleanLower(_ text: String) -> Scalars {
    var scalars = fixText(Array(text.unicodeScalars))
    scalars = htmlUnescape(htmlUnescape(scalars))
    return pythonLower(collapseWhitespace(scalars))
  }

  // MARK: - Character classes (Python's definitions)

  /// Python str.isspace: bidirectional class WS, B or S, or category Zs.
  public static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
      return true
    default:
      return false
    }
  }

  private static func isASCIIDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
  private static func isASCIIHexDigit(_ c: Unicode.Scalar) -> Bool {
    isASCIIDigit(c) || (c.value >= 0x41 && c.value <= 0x46) || (c.value >= 0x61 && c.value <= 0x66)
  }
  private static func isASCIILetter(_ c: Unicode.Scalar) -> Bool {
    (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A)
  }

  // MARK: - Tables (generated from Python, see TextCleaningTables.swift)

  struct Tables {
    var html5: [String: Scalars]          // html.entities.html5, names with and without ';'
    var ftfyUppercase: [String: Scalars]  // ftfy's extra all-caps entity names, e.g. "EACUTE;"
    var width: [UInt32: Scalars]          // ftfy WIDTH_MAP
    var ligatures: [UInt32: Scalars]      // ftfy LIGATURES
    var windows1252C1: [UInt32: Scalars]  // 0x80-0x9F decoded as sloppy-windows-1252
    var invalidCharrefs: [UInt32: Scalars]  // html._invalid_charrefs
    var longestEntityName: Int
  }

  static let tables: Tables = {
    func parse(_ table: String) -> [(String, Scalars)] {
      table.split(separator: "\n").map { line in
        let fields = line.split(separator: " ")
        let value = fields.dropFirst().map { Unicode.Scalar(UInt32($0, radix: 16)!)! }
        return (String(fields[0]), value)
      }
    }
    func byCodePoint(_ table: String) -> [UInt32: Scalars] {
      Dictionary(uniqueKeysWithValues: parse(table).map { (UInt32($0.0, radix: 16)!, $0.1) })
    }
    let html5 = Dictionary(uniqueKeysWithValues: parse(TextCleaningTables.html5Entities))
    return Tables(html5: html5,
                  ftfyUppercase: Dictionary(uniqueKeysWithValues: parse(TextCleaningTables.ftfyUppercaseEntities)),
                  width: byCodePoint(TextCleaningTables.widthMap),
                  ligatures: byCodePoint(TextCleaningTables.ligatures),
                  windows1252C1: byCodePoint(TextCleaningTables.sloppyWindows1252C1),
                  invalidCharrefs: byCodePoint(TextCleaningTables.htmlInvalidCharrefs),
                  longestEntityName: html5.keys.map(\.count).max() ?? 0)
  }()

  /// Looks up an entity name given as code points; names are ASCII, so anything else cannot match
  /// (and must not: Swift String equality would match "\u{212A}" with "K").
  private static func entity(_ name: ArraySlice<Unicode.Scalar>, in table: [String: Scalars]) -> Scalars? {
    guard name.allSatisfy({ $0.isASCII }) else { return nil }
    var key = String.UnicodeScalarView()
    key.append(contentsOf: name)
    return table[String(key)]
  }

  // MARK: - ftfy.fix_text

  /// ftfy.fix_text: fixes each line (segment ending in "\n") until nothing changes. HTML entities are
  /// unescaped until the first segment that contains "<" (then the text is probably HTML), as "auto" does.
  static func fixText(_ text: Scalars) -> Scalars {
    let maxDecodeLength = 1_000_000  // ftfy's max_decode_length
    var fixed = Scalars()
    fixed.reserveCapacity(text.count)
    var unescapesHTML = true
    var start = 0
    while start < text.count {
      var end = text[start...].firstIndex(of: "\n").map { $0 + 1 } ?? text.count
      if end - start > maxDecodeLength { end = start + maxDecodeLength }
      let segment = Array(text[start..<end])
      if unescapesHTML && segment.contains("<") { unescapesHTML = false }
      fixed += fixSegment(segment, unescapesHTML: unescapesHTML)
      start = end
    }
    return fixed
  }

  /// ftfy.fix_and_explain: the fixers in ftfy's order, repeated until the text stops changing.
  static func fixSegment(_ segment: Scalars, unescapesHTML: Bool) -> Scalars {
    var text = segment
    while true {
      let original = text
      if unescapesHTML { text = ftfyUnescapeHTML(text) }
      text = fixEncoding(text)
      text = fixC1Controls(text)
      text = translate(text, tables.ligatures)
      text = translate(text, tables.width)
      text = uncurlQuotes(text)
      text = fixLineBreaks(text)
      text = removeTerminalEscapes(text)
      text = removeControlCharacters(text)
      text = nfc(text)
      if text == original { return text }
    }
  }

  /// str.translate with a code point -> text map.
  static func translate(_ text: Scalars, _ map: [UInt32: Scalars]) -> Scalars {
    var out = Scalars()
    out.reserveCapacity(text.count)
    for c in text {
      if c.value >= 0x80, let replacement = map[c.value] { out += replacement } else { out.append(c) }
    }
    return out
  }

  /// ftfy fix_c1_controls: U+0080-U+009F read as the Windows-1252 bytes they probably were.
  static func fixC1Controls(_ text: Scalars) -> Scalars {
    guard text.contains(where: { $0.value >= 0x80 && $0.value <= 0x9F }) else { return text }
    return translate(text, tables.windows1252C1)
  }

  /// ftfy uncurl_quotes: ʼ ‘ ’ ‚ ‛ -> ' and “ ” „ ‟ -> ".
  static func uncurlQuotes(_ text: Scalars) -> Scalars {
    text.map { c in
      switch c.value {
      case 0x2BC, 0x2018...0x201B: return "'"
      case 0x201C...0x201F: return "\""
      default: return c
      }
    }
  }

  /// ftfy fix_line_breaks: \r\n, \r, U+2028, U+2029 and U+0085 become \n.
  static func fixLineBreaks(_ text: Scalars) -> Scalars {
    var out = Scalars()
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      switch text[i].value {
      case 0x0D:
        out.append("\n")
        if i + 1 < text.count && text[i + 1] == "\n" { i += 1 }
      case 0x2028, 0x2029, 0x85: out.append("\n")
      default: out.append(text[i])
      }
      i += 1
    }
    return out
  }

  /// ftfy remove_terminal_escapes: drops `ESC [ (\d|;)* [a-zA-Z]` (\d is any Unicode decimal digit, as in re).
  static func removeTerminalEscapes(_ text: Scalars) -> Scalars {
    guard text.contains("\u{1B}") else { return text }
    var out = Scalars()
    var i = 0
    while i < text.count {
      if text[i] == "\u{1B}" && i + 1 < text.count && text[i + 1] == "[" {
        var j = i + 2
        while j < text.count && (text[j] == ";" || text[j].properties.numericType == .decimal) { j += 1 }
        if j < text.count && isASCIILetter(text[j]) { i = j + 1; continue }
      }
      out.append(text[i])
      i += 1
    }
    return out
  }

  /// ftfy remove_control_chars: C0 controls except \t \n \f \r, DEL, deprecated Arabic format controls,
  /// the byte order mark and the interlinear annotation / object replacement characters.
  static func removeControlCharacters(_ text: Scalars) -> Scalars {
    text.filter { c in
      switch c.value {
      case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return false
      default: return true
      }
    }
  }

  /// Unicode NFC (unicodedata.normalize("NFC")). Below U+0300 there is nothing to compose or decompose.
  static func nfc(_ text: Scalars) -> Scalars {
    guard text.contains(where: { $0.value >= 0x300 }) else { return text }
    var view = String.UnicodeScalarView()
    view.append(contentsOf: text)
    return Array(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
  }

  /// ftfy unescape_html: only `&#?[0-9A-Za-z]{1,24};` is considered. Names come from html5 (those ending
  /// in ';') plus ftfy's upper-case extras; numeric references are decoded by html.unescape unless the
  /// result still contains ';' (then the reference is left alone).
  static func ftfyUnescapeHTML(_ text: Scalars) -> Scalars {
    guard text.contains("&") else { return text }
    var out = Scalars()
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      guard text[i] == "&" else { out.append(text[i]); i += 1; continue }
      let isNumeric = i + 1 < text.count && text[i + 1] == "#"
      let nameStart = i + (isNumeric ? 2 : 1)
      var nameEnd = nameStart
      while nameEnd < text.count && nameEnd - nameStart <= 24
              && (isASCIIDigit(text[nameEnd]) || isASCIILetter(text[nameEnd])) { nameEnd += 1 }
      let runLength = nameEnd - nameStart
      guard runLength >= 1 && runLength <= 24 && nameEnd < text.count && text[nameEnd] == ";" else {
        out.append("&"); i += 1; continue
      }
      let reference = text[i...nameEnd]
      if isNumeric {
        let decoded = htmlUnescape(Array(reference))
        out += decoded.contains(";") ? Array(reference) : decoded
      } else {
        let name = text[(i + 1)...nameEnd]
        out += entity(name, in: tables.html5) ?? entity(name, in: tables.ftfyUppercase) ?? Array(reference)
      }
      i = nameEnd + 1
    }
    return out
  }

  // MARK: - ftfy fix_encoding (mojibake repair)

  /// A single-byte codec as Python defines it: what each byte decodes to, and back.
  struct SingleByteCodec {
    var name: String
    var decoding: [Unicode.Scalar]       // 256 entries, byte -> code point
    var encoding: [UInt32: UInt8]        // the inverse (generated tables are one-to-one)

    /// str.encode(name): nil when a code point has no byte (ftfy's possible_encoding is false).
    func encode(_ text: Scalars) -> [UInt8]? {
      var bytes = [UInt8]()
      bytes.reserveCapacity(text.count)
      for c in text {
        guard let byte = encoding[c.value] else { return nil }
        bytes.append(byte)
      }
      return bytes
    }
  }

  /// ftfy's character classes (badness.MOJIBAKE_CATEGORIES and chardata.UTF8_CLUES), one bit each.
  struct MojibakeCategory: OptionSet {
    let rawValue: UInt32
    static let names = ["common", "c1", "bad", "law", "currency", "start_punctuation", "end_punctuation", "numeric",
                        "kaomoji", "upper_accented", "lower_accented", "upper_common", "lower_common", "box",
                        "utf8_first_of_2", "utf8_first_of_3", "utf8_first_of_4", "utf8_continuation",
                        "utf8_continuation_strict"]
    static let common = Self(rawValue: 1 << 0), c1 = Self(rawValue: 1 << 1), bad = Self(rawValue: 1 << 2)
    static let law = Self(rawValue: 1 << 3), currency = Self(rawValue: 1 << 4)
    static let startPunctuation = Self(rawValue: 1 << 5), endPunctuation = Self(rawValue: 1 << 6)
    static let numeric = Self(rawValue: 1 << 7), kaomoji = Self(rawValue: 1 << 8)
    static let upperAccented = Self(rawValue: 1 << 9), lowerAccented = Self(rawValue: 1 << 10)
    static let upperCommon = Self(rawValue: 1 << 11), lowerCommon = Self(rawValue: 1 << 12)
    static let box = Self(rawValue: 1 << 13)
    static let utf8FirstOf2 = Self(rawValue: 1 << 14), utf8FirstOf3 = Self(rawValue: 1 << 15)
    static let utf8FirstOf4 = Self(rawValue: 1 << 16), utf8Continuation = Self(rawValue: 1 << 17)
    static let utf8ContinuationStrict = Self(rawValue: 1 << 18)
  }

  struct MojibakeTables {
    var codecs: [SingleByteCodec]                // chardata.CHARMAP_ENCODINGS, in the order ftfy tries them
    var strictWindows1252: [Unicode.Scalar?]     // nil: byte undefined (81 8D 8F 90 9D)
    var categories: [MojibakeCategory]           // indexed by code point below U+10000; none above
  }

  static let mojibake: MojibakeTables = {
    var codecs = [SingleByteCodec]()
    var strictWindows1252 = [Unicode.Scalar?]()
    for line in TextCleaningTables.singleByteCodecs.split(separator: "\n") {
      let fields = line.split(separator: " ")
      let decoding = fields.dropFirst().map { Unicode.Scalar(UInt32($0, radix: 16)!)! }
      precondition(decoding.count == 256, "TextCleaningTables.singleByteCodecs: \(fields[0]) is not 256 bytes")
      if fields[0] == "windows-1252" {
        strictWindows1252 = decoding.map { $0 == "\u{FFFD}" ? nil : $0 }
      } else {
        let encoding = Dictionary(uniqueKeysWithValues: decoding.enumerated().map { ($1.value, UInt8($0)) })
        codecs.append(SingleByteCodec(name: String(fields[0]), decoding: decoding, encoding: encoding))
      }
    }
    var categories = [MojibakeCategory](repeating: [], count: 0x10000)
    for line in TextCleaningTables.mojibakeCategories.split(separator: "\n") {
      let fields = line.split(separator: " ")
      let bit = MojibakeCategory.names.firstIndex(of: String(fields[0]))!
      for field in fields.dropFirst() {
        let codePoint = Int(field, radix: 16)!
        precondition(codePoint < 0x10000, "ftfy character class \(fields[0]) reaches above U+FFFF")
        categories[codePoint].insert(MojibakeCategory(rawValue: 1 << UInt32(bit)))
      }
    }
    return MojibakeTables(codecs: codecs, strictWindows1252: strictWindows1252, categories: categories)
  }()

  /// ftfy fix_encoding: repeats one repair step until the text stops changing.
  static func fixEncoding(_ text: Scalars) -> Scalars {
    var text = text
    while true {
      let fixed = fixEncodingStep(text)
      if fixed == text { return text }
      text = fixed
    }
  }

  /// ftfy _fix_encoding_one_step_and_explain with the default TextFixerConfig.
  static func fixEncodingStep(_ text: Scalars) -> Scalars {
    // ASCII text (every ordinary prompt) and text that does not look like mojibake are left alone.
    if text.allSatisfy(\.isASCII) || !isBad(text) { return text }

    // Text that encodes in a single-byte codec and whose bytes are (nearly) UTF-8: decode them as UTF-8.
    var isLatin1 = false
    for codec in mojibake.codecs {
      guard var bytes = codec.encode(text) else { continue }
      if codec.name == "latin-1" { isLatin1 = true }
      // In MacRoman the pattern would match an en dash and a space.
      if codec.name != "macroman" && containsAlteredUTF8(bytes) { bytes = restoreByteA0(bytes) }
      if codec.name.hasPrefix("sloppy") { bytes = replaceLossySequences(bytes) }
      let allowsVariants = bytes.contains(0xED) || bytes.contains(0xC0)  // "utf-8-variants" instead of "utf-8"
      if let decoded = decodeUTF8(bytes, allowsVariants: allowsVariants) { return decoded }
    }

    // UTF-8 mojibake embedded in other text: repair each piece on its own.
    if containsUTF8Mojibake(text) {
      let fixed = decodeInconsistentUTF8(text)
      if fixed != text { return fixed }
    }

    // Latin-1 with C1 controls that was meant as Windows-1252. (ftfy's check for "windows-1252" among the
    // possible codecs never holds: the list has "sloppy-windows-1252", so this is always tried.)
    if isLatin1 {
      let decoded = text.map { mojibake.strictWindows1252[Int($0.value)] }
      if !decoded.contains(nil) {
        let fixed = decoded.map { $0! }
        if fixed != text { return fixed }
      }
    }
    if text.contains(where: { $0.value >= 0x80 && $0.value <= 0x9F }) { return fixC1Controls(text) }
    return text
  }

  // MARK: Badness (ftfy.badness.is_bad)

  /// ftfy is_bad: whether BADNESS_RE matches anywhere, i.e. some sequence of characters is far more likely
  /// mojibake than intended. Each `case` below is one alternative of the regex, in its order.
  static func isBad(_ text: Scalars) -> Bool {
    typealias C = MojibakeCategory
    let table = mojibake.categories
    let categories = text.map { $0.value < 0x10000 ? table[Int($0.value)] : [] }
    // Every alternative needs some character of a class (CJK, emoji, most scripts have none).
    if categories.allSatisfy(\.isEmpty) { return false }
    let count = text.count
    // Out-of-range positions belong to no class and are no character, so patterns running off the end fail.
    func isIn(_ i: Int, _ set: C) -> Bool { i < count && !categories[i].isDisjoint(with: set) }
    func isOneOf(_ i: Int, _ list: [UInt32]) -> Bool { i < count && list.contains(text[i].value) }
    func isLowerASCII(_ i: Int) -> Bool { i < count && text[i].value >= 0x61 && text[i].value <= 0x7A }
    func isLetterASCII(_ i: Int) -> Bool { i < count && isASCIILetter(text[i]) }
    func isSpace(_ i: Int) -> Bool { i < count && isPythonSpace(text[i]) }
    func isWord(_ i: Int) -> Bool {  // Python re \w on str: str.isalnum() or "_"
      guard i < count else { return false }
      let c = text[i]
      if c == "_" { return true }
      switch c.properties.generalCategory {
      case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
      default: return c.properties.numericType != nil
      }
    }
    let accentedAndSymbols: C = [.lowerAccented, .upperAccented, .box, .startPunctuation, .endPunctuation,
                                 .currency, .numeric, .law]
    let lookalikes: C = [.c1, .bad, .startPunctuation, .endPunctuation, .currency]
    let aHatTildeLead: [UInt32] = [0xC2, 0xC3, 0xCE, 0xD0]                      // Â Ã Î Ð
    // € œ Š š ¢ £ Ÿ ž nbsp shy ® © ° · » – — ´
    let aHatTildeNext: [UInt32] = [0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE,
                                   0xA9, 0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4]
    let arabicLead: [UInt32] = [0xD8, 0xD9]                                     // Ø Ù
    let arabicExtra: [UInt32] = [0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB]          // Ÿ Š ® ° µ »
    let arabicNext: C = [.common, .currency, .bad, .numeric, .startPunctuation]
    let cyrillicEnds: [UInt32] = [0x412, 0x413, 0x420, 0x421]                   // В Г Р С
    let greekEnds: [UInt32] = [0x392, 0x393, 0x39E, 0x39F]                      // Β Γ Ξ Ο
    let aHat: [UInt32] = [0xC3, 0xC2]                                           // Ã Â

    for i in 0..<count {
      // Every alternative needs a character of some class at i, i + 1 or i + 2: skip plain stretches cheaply.
      if categories[i].isEmpty && (i + 1 >= count || categories[i + 1].isEmpty)
          && (i + 2 >= count || categories[i + 2].isEmpty) { continue }
      let c = text[i].value
      if isIn(i, .c1) { return true }
      if isIn(i, accentedAndSymbols.union(.bad)) && isIn(i + 1, .bad) { return true }
      if isLetterASCII(i) && isIn(i + 1, [.lowerCommon, .upperCommon]) && isIn(i + 2, .bad) { return true }
      if isIn(i, .bad) && isIn(i + 1, accentedAndSymbols) { return true }
      if isIn(i, [.lowerAccented, .lowerCommon, .box, .endPunctuation, .currency, .numeric])
          && isIn(i + 1, .upperAccented) { return true }
      if isIn(i, [.box, .endPunctuation, .currency, .numeric]) && isIn(i + 1, .lowerAccented) { return true }
      if isIn(i, [.lowerAccented, .box, .endPunctuation]) && isIn(i + 1, .currency) { return true }
      if isSpace(i) && isIn(i + 1, .upperAccented) && isIn(i + 2, .currency) { return true }
      if isIn(i, [.upperAccented, .box]) && isIn(i + 1, [.numeric, .law]) { return true }
      if isIn(i, [.lowerAccented, .upperAccented, .box, .currency, .endPunctuation])
          && isIn(i + 1, .startPunctuation) && isIn(i + 2, .numeric) { return true }
      if isIn(i, [.lowerAccented, .upperAccented, .currency, .numeric, .box, .law])
          && isIn(i + 1, .endPunctuation) && isIn(i + 2, .startPunctuation) { return true }
      if isIn(i, [.currency, .numeric, .box]) && isIn(i + 1, .startPunctuation) { return true }
      if isLowerASCII(i) && isIn(i + 1, .upperAccented) && isIn(i + 2, [.startPunctuation, .currency]) { return true }
      if isIn(i, .box) && isIn(i + 1, .kaomoji) { return true }
      if isIn(i, [.lowerAccented, .upperAccented, .currency, .numeric, .startPunctuation, .endPunctuation, .law])
          && isIn(i + 1, .box) { return true }
      if isIn(i, .box) && isIn(i + 1, .endPunctuation) { return true }
      if isIn(i, [.lowerAccented, .upperAccented]) && isIn(i + 1, [.startPunctuation, .endPunctuation])
          && isWord(i + 2) { return true }
      // Œ or œ not followed by an unaccented Latin letter (nor by the end of the text).
      if (c == 0x152 || c == 0x153) && i + 1 < count && !isASCIILetter(text[i + 1]) { return true }
      if isIn(i, .upperAccented) && isOneOf(i + 1, [0xB0]) { return true }
      if isOneOf(i, aHatTildeLead)
          && (isOneOf(i + 1, aHatTildeNext) || isIn(i + 1, [.startPunctuation, .endPunctuation])) { return true }
      if c == 0xD7 && isOneOf(i + 1, [0xB2, 0xB3]) { return true }                 // × ² ³
      if isOneOf(i, arabicLead) && (isIn(i + 1, arabicNext) || isOneOf(i + 1, arabicExtra))
          && isOneOf(i + 2, arabicLead) && (isIn(i + 3, arabicNext) || isOneOf(i + 3, arabicExtra)) { return true }
      if c == 0xE0 && isOneOf(i + 1, [0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE]) { return true }  // à ² µ ¹ ¼ ½ ¾
      // √ ± ∂ † ≠ ® ™ ´ ≤ ≥ ¥ µ ø
      if c == 0x221A && isOneOf(i + 1, [0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265,
                                         0xA5, 0xB5, 0xF8]) { return true }
      if c == 0x2248 && isOneOf(i + 1, [0xB0, 0xA2]) { return true }            // ≈ ° ¢
      if c == 0x201A && isOneOf(i + 1, [0xC4]) && isOneOf(i + 2, [0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB,
                                                                  0x2020, 0xB0, 0xA2, 0x3C0]) { return true }
      if c == 0x201A && isOneOf(i + 1, [0xE2, 0xF3]) && isOneOf(i + 2, [0xE0, 0xE4, 0xB0, 0xEA]) { return true }
      if c == 0x432 && isOneOf(i + 1, [0x402]) { return true }                  // вЂ
      if isOneOf(i, cyrillicEnds) && (isIn(i + 1, lookalikes) || isOneOf(i + 1, [0xB0, 0xB5]))
          && isOneOf(i + 2, cyrillicEnds) { return true }
      // ГўВЂВ, any character but a newline, then a Latin letter or a space.
      if c == 0x413 && i + 6 < count
          && text[(i + 1)...(i + 4)].elementsEqual(["\u{45E}", "\u{412}", "\u{402}", "\u{412}"])
          && text[i + 5] != "\n" && (isLetterASCII(i + 6) || text[i + 6] == " ") { return true }
      if c == 0xC3 && isOneOf(i + 1, [0xA0, 0xA1]) { return true }              // Ã nbsp, Ã¡
      if isLowerASCII(i) && ((isSpace(i + 1) && isOneOf(i + 2, aHat) && isOneOf(i + 3, [0x20]))
                              || (isOneOf(i + 1, aHat) && isOneOf(i + 2, [0x20]))) { return true }
      if i == 0 && isOneOf(0, aHat) && isOneOf(1, [0x20]) { return true }
      if (isLowerASCII(i) || isOneOf(i, [0x2E, 0x2C, 0x3F, 0x21]) || isIn(i, .endPunctuation)) && isOneOf(i + 1, [0xC2])
          && (isOneOf(i + 2, [0x20]) || isIn(i + 2, [.startPunctuation, .endPunctuation])) { return true }
      if c == 0x3B2 && isOneOf(i + 1, [0x20AC])
          && isOneOf(i + 2, [0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0]) { return true }  // β€ ™ nbsp Ά shy ® °
      if isOneOf(i, greekEnds) && (isIn(i + 1, lookalikes) || isOneOf(i + 1, [0xB0]))
          && isOneOf(i + 2, greekEnds) { return true }
      if c == 0x101 && isOneOf(i + 1, [0x20AC]) { return true }                 // ā€
    }
    return false
  }

  // MARK: Byte-level repairs (ftfy.fixes)

  /// Length of the chardata.ALTERED_UTF8_RE match at `i` (alternatives in the regex's order), or 0: UTF-8
  /// sequences whose 0xA0 byte became a space.
  private static func alteredUTF8Length(_ b: [UInt8], at i: Int) -> Int {
    let n = b.count
    func byte(_ k: Int) -> UInt8? { k < n ? b[k] : nil }
    func isCont(_ k: Int) -> Bool { byte(k).map { (0x80...0xBF).contains($0) } ?? false }
    func isNarrowCont(_ k: Int) -> Bool {  // [\x80-\x84\x86-\x9f\xa1-\xbf]: not 85, A0 or ASCII
      guard let x = byte(k) else { return false }
      return (0x80...0xBF).contains(x) && x != 0x85 && x != 0xA0
    }
    func isSpace(_ k: Int) -> Bool { byte(k) == 0x20 }
    if [0xC2, 0xC3, 0xC5, 0xCE, 0xD0, 0xD9].contains(b[i]) && isSpace(i + 1) { return 2 }
    if (b[i] == 0xE2 || b[i] == 0xE3) && isSpace(i + 1) && isNarrowCont(i + 2) { return 3 }
    if (0xE0...0xE3).contains(b[i]) && isNarrowCont(i + 1) && isSpace(i + 2) { return 3 }
    if b[i] == 0xF0 {
      if isSpace(i + 1) && isCont(i + 2) && isCont(i + 3) { return 4 }
      if isCont(i + 1) && isSpace(i + 2) && isCont(i + 3) { return 4 }
      if isCont(i + 1) && isCont(i + 2) && isSpace(i + 3) { return 4 }
    }
    return 0
  }

  static func containsAlteredUTF8(_ bytes: [UInt8]) -> Bool {
    bytes.indices.contains { alteredUTF8Length(bytes, at: $0) > 0 }
  }

  /// ftfy restore_byte_a0: "Ã " before a word becomes "à " (A_GRAVE_WORD_RE), then spaces inside the
  /// ALTERED_UTF8_RE matches become byte 0xA0.
  static func restoreByteA0(_ bytes: [UInt8]) -> [UInt8] {
    // A_GRAVE_WORD_RE = b"\xc3 (?! |quele|quela|quilo|s )": Portuguese "à" standing alone as a word.
    let exceptions: [[UInt8]] = [" ", "quele", "quela", "quilo", "s "].map { Array($0.utf8) }
    var graved = [UInt8]()
    graved.reserveCapacity(bytes.count + 8)
    var i = 0
    while i < bytes.count {
      if bytes[i] == 0xC3 && i + 1 < bytes.count && bytes[i + 1] == 0x20
          && !exceptions.contains(where: { bytes[(i + 2)...].starts(with: $0) }) {
        graved += [0xC3, 0xA0, 0x20]
        i += 2
      } else {
        graved.append(bytes[i])
        i += 1
      }
    }
    var out = graved
    i = 0
    while i < out.count {
      let length = alteredUTF8Length(out, at: i)
      if length == 0 { i += 1; continue }
      for k in i..<(i + length) where out[k] == 0x20 { out[k] = 0xA0 }
      i += length
    }
    return out
  }

  /// Length of the chardata.LOSSY_UTF8_RE match at `i`, or 0: UTF-8 sequences with bytes lost to U+FFFD
  /// (which the sloppy codecs encode as 0x1A) or to '?'.
  private static func lossyUTF8Length(_ b: [UInt8], at i: Int) -> Int {
    let n = b.count
    func isIn(_ k: Int, _ ranges: [ClosedRange<UInt8>]) -> Bool { k < n && ranges.contains { $0.contains(b[k]) } }
    let sub: ClosedRange<UInt8> = 0x1A...0x1A, question: ClosedRange<UInt8> = 0x3F...0x3F
    let cont: ClosedRange<UInt8> = 0x80...0xBF
    let lost = [sub, question], lostOrCont = [sub, question, cont], subOrCont = [sub, cont]
    if isIn(i, [0xC2...0xDF]) && isIn(i + 1, [sub]) { return 2 }
    if isIn(i, [0xC2...0xC3]) && isIn(i + 1, [question]) { return 2 }
    if isIn(i, [0xED...0xED]) && isIn(i + 1, [0xA0...0xAF])
        && isIn(i + 3, [0xED...0xED]) && isIn(i + 4, [0xB0...0xBF]) {
      if isIn(i + 2, lost) && isIn(i + 5, lostOrCont) { return 6 }
      if isIn(i + 2, lostOrCont) && isIn(i + 5, lost) { return 6 }
    }
    if isIn(i, [0xE0...0xEF]) {
      if isIn(i + 1, lost) && isIn(i + 2, subOrCont) { return 3 }
      if isIn(i + 1, subOrCont) && isIn(i + 2, lost) { return 3 }
    }
    if isIn(i, [0xF0...0xF4]) {
      if isIn(i + 1, lost) && isIn(i + 2, subOrCont) && isIn(i + 3, subOrCont) { return 4 }
      if isIn(i + 1, subOrCont) && isIn(i + 2, lost) && isIn(i + 3, subOrCont) { return 4 }
      if isIn(i + 1, subOrCont) && isIn(i + 2, subOrCont) && isIn(i + 3, lost) { return 4 }
    }
    return b[i] == 0x1A ? 1 : 0
  }

  /// ftfy replace_lossy_sequences: each LOSSY_UTF8_RE match becomes the UTF-8 of U+FFFD.
  static func replaceLossySequences(_ bytes: [UInt8]) -> [UInt8] {
    guard bytes.contains(0x1A) || bytes.contains(0x3F) else { return bytes }
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
      let length = lossyUTF8Length(bytes, at: i)
      if length == 0 { out.append(bytes[i]); i += 1; continue }
      out += [0xEF, 0xBF, 0xBD]
      i += length
    }
    return out
  }

  /// bytes.decode("utf-8") (strict: no overlong forms, surrogates or code points above U+10FFFF), or with
  /// `allowsVariants` ftfy's "utf-8-variants": also CESU-8 surrogate pairs and Java's C0 80 for U+0000.
  /// nil where Python raises UnicodeDecodeError.
  static func decodeUTF8(_ bytes: [UInt8], allowsVariants: Bool) -> Scalars? {
    var out = Scalars()
    out.reserveCapacity(bytes.count)
    let n = bytes.count
    func cont(_ k: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> UInt32? {
      k < n && range.contains(bytes[k]) ? UInt32(bytes[k] & 0x3F) : nil
    }
    // utf-8-variants finds these sequences with `re` patterns ending in `(\x80|$)`, and `$` also matches before
    // a final "\n": that newline is then taken as the last byte of the sequence (ftfy 6.3.1 does this).
    func endsInNewline(_ k: Int) -> Bool { k == n - 1 && bytes[k] == 0x0A }
    var i = 0
    while i < n {
      let lead = bytes[i]
      var value: UInt32
      var length: Int
      if lead < 0x80 {
        value = UInt32(lead); length = 1
      } else if allowsVariants && lead == 0xC0 && i + 1 < n && (bytes[i + 1] == 0x80 || endsInNewline(i + 1)) {
        value = 0; length = 2
      } else if allowsVariants && lead == 0xED, let high = cont(i + 1, 0xA0...0xAF), let x = cont(i + 2),
                i + 3 < n && bytes[i + 3] == 0xED, let low = cont(i + 4, 0xB0...0xBF),
                let y = cont(i + 5) ?? (endsInNewline(i + 5) ? 0x0A : nil) {
        // 11101101 1010abcd 10efghij 11101101 1011klmn 10opqrst -> 0x10000 + abcdefghijklmnopqrst
        value = 0x10000 + ((high & 0x0F) << 16) + (x << 10) + ((low & 0x0F) << 6) + y; length = 6
      } else {
        switch lead {
        case 0xC2...0xDF:
          guard let a = cont(i + 1) else { return nil }
          value = (UInt32(lead & 0x1F) << 6) | a; length = 2
        case 0xE0...0xEF:
          let second: ClosedRange<UInt8> = lead == 0xE0 ? 0xA0...0xBF : lead == 0xED ? 0x80...0x9F : 0x80...0xBF
          guard let a = cont(i + 1, second), let b = cont(i + 2) else { return nil }
          value = (UInt32(lead & 0x0F) << 12) | (a << 6) | b; length = 3
        case 0xF0...0xF4:
          let second: ClosedRange<UInt8> = lead == 0xF0 ? 0x90...0xBF : lead == 0xF4 ? 0x80...0x8F : 0x80...0xBF
          guard let a = cont(i + 1, second), let b = cont(i + 2), let c = cont(i + 3) else { return nil }
          value = (UInt32(lead & 0x07) << 18) | (a << 12) | (b << 6) | c; length = 4
        default:
          return nil
        }
      }
      out.append(Unicode.Scalar(value)!)
      i += length
    }
    return out
  }

  // MARK: Embedded mojibake (ftfy decode_inconsistent_utf8)

  /// Length of the chardata.UTF8_DETECTOR_RE match at `i`, or 0: one or more letters that look like the
  /// start of a UTF-8 sequence read in a Latin-1-like codec, each followed by its continuation letters, not
  /// preceded by a strict continuation letter. The first alternative that matches is taken, as `re` does.
  private static func utf8MojibakeLength(_ text: Scalars, _ categories: [MojibakeCategory], at i: Int) -> Int {
    typealias C = MojibakeCategory
    if i > 0 && categories[i - 1].contains(.utf8ContinuationStrict) { return 0 }
    func continues(_ start: Int, _ length: Int) -> Bool {
      start + length <= text.count
        && (start..<(start + length)).allSatisfy { categories[$0].contains(.utf8Continuation) }
    }
    var end = i
    while end < text.count {
      let here = categories[end]
      if here.contains(.utf8FirstOf2) && continues(end + 1, 1) { end += 2 }
      else if here.contains(.utf8FirstOf3) && continues(end + 1, 2) { end += 3 }
      else if here.contains(.utf8FirstOf4) && continues(end + 1, 3) { end += 4 }
      else { break }
    }
    return end - i
  }

  private static func mojibakeCategories(_ text: Scalars) -> [MojibakeCategory] {
    let table = mojibake.categories
    return text.map { $0.value < 0x10000 ? table[Int($0.value)] : [] }
  }

  static func containsUTF8Mojibake(_ text: Scalars) -> Bool {
    let categories = mojibakeCategories(text)
    return text.indices.contains { utf8MojibakeLength(text, categories, at: $0) > 0 }
  }

  /// ftfy decode_inconsistent_utf8: each UTF8_DETECTOR_RE match shorter than the text that is itself bad
  /// is repaired with fix_encoding on its own.
  static func decodeInconsistentUTF8(_ text: Scalars) -> Scalars {
    let categories = mojibakeCategories(text)
    var out = Scalars()
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      let length = utf8MojibakeLength(text, categories, at: i)
      if length == 0 { out.append(text[i]); i += 1; continue }
      let piece = Array(text[i..<(i + length)])
      out += length < text.count && isBad(piece) ? fixEncoding(piece) : piece
      i += length
    }
    return out
  }

  // MARK: - html.unescape

  /// Python's html.unescape: `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` replaced by the
  /// character it names; unknown names fall back to their longest known prefix ("&amplifier" -> "&lifier").
  static func htmlUnescape(_ text: Scalars) -> Scalars {
    guard text.contains("&") else { return text }
    var out = Scalars()
    out.reserveCapacity(text.count)
    var i = 0
    while i < text.count {
      guard text[i] == "&" else { out.append(text[i]); i += 1; continue }
      let next = i + 1
      if next < text.count && text[next] == "#" {
        let isHex = next + 1 < text.count && (text[next + 1] == "x" || text[next + 1] == "X")
        let digitsStart = next + (isHex ? 2 : 1)
        var end = digitsStart
        var number: UInt32 = 0  // saturates above U+10FFFF: every such number decodes to U+FFFD
        while end < text.count && (isHex ? isASCIIHexDigit(text[end]) : isASCIIDigit(text[end])) {
          number = min(number * (isHex ? 16 : 10) + hexValue(text[end]), 0x11_0000)
          end += 1
        }
        if end == digitsStart {
          // "&#" not followed by digits: no alternative matches at this '&'. ("&#x" without hex digits
          // also fails; the decimal alternative cannot match "x" either.)
          out.append("&"); i += 1; continue
        }
        if end < text.count && text[end] == ";" { end += 1 }
        out += characterReference(number)
        i = end
        continue
      }
      var nameEnd = next
      while nameEnd < text.count && nameEnd - next < 32 {
        switch text[nameEnd] {
        case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": break
        default: nameEnd += 1; continue
        }
        break
      }
      guard nameEnd > next else { out.append("&"); i += 1; continue }
      if nameEnd < text.count && text[nameEnd] == ";" { nameEnd += 1 }
      out += namedReference(text[next..<nameEnd])
      i = nameEnd
    }
    return out
  }

  private static func hexValue(_ c: Unicode.Scalar) -> UInt32 {
    switch c.value {
    case 0x30...0x39: return c.value - 0x30
    case 0x41...0x46: return c.value - 0x41 + 10
    default: return c.value - 0x61 + 10
    }
  }

  /// html._replace_charref for a numeric reference.
  private static func characterReference(_ number: UInt32) -> Scalars {
    if let remapped = tables.invalidCharrefs[number] { return remapped }
    if (0xD800...0xDFFF).contains(number) || number > 0x10FFFF { return ["\u{FFFD}"] }
    switch number {
    case 0x01...0x08, 0x0B, 0x0E...0x1F, 0x7F...0x9F, 0xFDD0...0xFDEF: return []
    default:
      if number & 0xFFFE == 0xFFFE { return [] }  // U+xFFFE and U+xFFFF in every plane
      return [Unicode.Scalar(number)!]
    }
  }

  /// html._replace_charref for a name (with its ';' if it had one).
  private static func namedReference(_ name: ArraySlice<Unicode.Scalar>) -> Scalars {
    if let value = entity(name, in: tables.html5) { return value }
    if name.count > 2 {
      for length in stride(from: name.count - 1, through: 2, by: -1) {
        let prefixEnd = name.startIndex + length
        if let value = entity(name[name.startIndex..<prefixEnd], in: tables.html5) {
          return value + name[prefixEnd...]
        }
      }
    }
    return ["&"] + name
  }

  // MARK: - strip, whitespace collapse, lower

  /// `" ".join(text.split()).strip()`: runs of Python whitespace become one space, none at the ends.
  static func collapseWhitespace(_ text: Scalars) -> Scalars {
    var out = Scalars()
    out.reserveCapacity(text.count)
    var pendingSpace = false
    for c in text {
      if isPythonSpace(c) {
        pendingSpace = !out.isEmpty
      } else {
        if pendingSpace { out.append(" "); pendingSpace = false }
        out.append(c)
      }
    }
    return out
  }

  /// Python str.lower: full lowercase mappings, and capital sigma becomes final sigma (ς) at the end of a
  /// word (preceded by a cased letter, not followed by one, case-ignorable characters skipped).
  static func pythonLower(_ text: Scalars) -> Scalars {
    var out = Scalars()
    out.reserveCapacity(text.count)
    for (index, c) in text.enumerated() {
      if c.isASCII {
        out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 0x20)! : c)
      } else if c.value == 0x3A3 {
        out.append(isFinalSigma(text, at: index) ? "\u{3C2}" : "\u{3C3}")
      } else {
        out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
      }
    }
    return out
  }

  private static func isFinalSigma(_ text: Scalars, at index: Int) -> Bool {
    var before = index - 1
    while before >= 0 && text[before].properties.isCaseIgnorable { before -= 1 }
    guard before >= 0 && text[before].properties.isCased else { return false }
    var after = index + 1
    while after < text.count && text[after].properties.isCaseIgnorable { after += 1 }
    return after == text.count || !text[after].properties.isCased
  }
}
