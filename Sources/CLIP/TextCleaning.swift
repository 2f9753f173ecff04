// Text cleaning in front of the CLIP tokenizer: open_clip's `_clean_lower` (open_clip/tokenizer.py 3.3.0) =
// ftfy.fix_text with its defaults (ftfy 6.3.1), Python's html.unescape twice, str.strip, whitespace collapse,
// str.lower. Everything works on code points ([Unicode.Scalar]), as Python strings do; Swift String equality
// would treat "é" and "e\u{301}" as equal, Python does not.
// Not ported: ftfy's mojibake repair (fix_encoding: the badness heuristic and codec search), so text like
// "cafÃ©" passes through as it is; fix_surrogates (a Swift String cannot hold a lone surrogate).
import Foundation

enum TextCleaning {
  typealias Scalars = [Unicode.Scalar]

  /// open_clip `_clean_lower`: whitespace_clean(basic_clean(text)).lower().
  static func cleanLower(_ text: String) -> Scalars {
    var scalars = fixText(Array(text.unicodeScalars))
    scalars = htmlUnescape(htmlUnescape(scalars))
    return pythonLower(collapseWhitespace(scalars))
  }

  // MARK: - Character classes (Python's definitions)

  /// Python str.isspace: bidirectional class WS, B or S, or category Zs.
  static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
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
      // fix_encoding would run here (not ported, see the file header).
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
