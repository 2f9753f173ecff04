#!/usr/bin/env python3
"""Writes cases.json: texts and their open_clip.tokenize ids, the referee for CLIPTokenizer.

Pinned: open_clip_torch 3.3.0, ftfy 6.3.1, regex 2026.11.19, Python 3.11 (unicodedata 14.0.0).
Run:    /opt/torchenv/bin/python generate_tokenizer_cases.py            # writes cases.json here
        /opt/torchenv/bin/python generate_tokenizer_cases.py --tables Sources/TextCleaning/TextCleaningTables.swift
The second form regenerates the Python data tables the Swift cleaner uses (HTML5 entities, ftfy's extra
upper-case entities, ftfy's width and ligature maps, Windows-1252 for C1 controls, html.unescape's remaps,
the single-byte codecs and character classes of ftfy's mojibake repair).
Every case records `ids` (context 77); some also `short`: {"16": ids at context 16, ...}. The Swift tests assert
every case exactly.
"""
import html
import html.entities
import json
import os
import random
import re
import sys

import ftfy
import ftfy.chardata
import open_clip



def mojibake(text, encoding="sloppy-windows-1252", times=1):
    """`text` as UTF-8 bytes read in `encoding`, `times` over: the damage ftfy's fix_encoding undoes."""
    for _ in range(times):
        text = text.encode("utf-8").decode(encoding)
    return text


CASES = [
    # Plain prompts and class names.
    "a photo of a dog.",
    "a photo of a cat.",
    "A Photo Of A DOG.",
    "a centered satellite photo of annual crop land.",
    "a photo of a Boeing 737-200, a type of aircraft.",
    "a photo of a 2012 Chevrolet Silverado 1500 Hybrid Crew Cab.",
    "a photo of a bald_eagle.",
    "american_pit_bull_terrier",
    "yellow-headed blackbird",
    "great_white_shark-2",
    "Ford F-450 Super Duty Crew Cab 2012",
    "a photo of a person doing push_ups.",
    "itap of a {}.",
    # Accents, NFC vs NFD, other scripts.
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "cafe\u0301 cre\u0300me bru\u0302le\u0301e",
    "Cr\u00e8me Br\u00fbl\u00e9e \u00c9CLAIR",
    "na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe",
    "\u0130stanbul \u0049\u0307",
    "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3 \u03a3",
    "\u0432\u043e\u0434\u043a\u0430 \u041c\u041e\u0421\u041a\u0412\u0410",
    "\u732b\u306e\u5199\u771f \u72d7",
    "\ud55c\uad6d\uc5b4 \u1112\u1161\u11ab",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    # Emoji, ZWJ sequences, flags, variation selectors.
    "a photo of a \U0001F436 dog",
    "\U0001F468\u200D\U0001F469\u200D\U0001F467 family",
    "\U0001F1EB\U0001F1F7 flag \U0001F3F4\U000E0067\U000E0062\U000E0077\U000E006C\U000E0073\U000E007F",
    "\u2764\ufe0f love \U0001F44D\U0001F3FD",
    # HTML entities, single and double escaped.
    "salt &amp; pepper",
    "&lt;start_of_text&gt; &lt;b&gt;bold&lt;/b&gt;",
    "rock &#39;n&#39; roll &quot;live&quot;",
    "fish &amp;amp; chips &amp;lt;3",
    "caf&eacute; &EACUTE; &Eacute; &#233; &#xE9; &#XE9;",
    "&amplifier &notit; &ampx &copy2024 &nbsp;x",
    "&#0; &#128; &#x80; &#150; &#55296; &#1114112; &#99999999999999999999;",
    "&#65&#66 &#x41x &#; &#x; & amp; &;",
    "BUNDESSTRA&SZLIG;E P&EACUTE;REZ &ntilde; &Ntilde; &NTILDE; &nTILDE;",
    "&Jscr;ohn &HilbertSpace;ancock &checkmark;",
    "x < y &amp; z",
    "first line &amp; more\nsecond <b> &amp; line\nthird &amp;",
    # Quotes and contractions.
    "don't I'm you're we've they'll he'd it's",
    "don\u2019t I\u2019m you\u2019re we\u2019ve they\u2019ll he\u2019d it\u2019s",
    "\u201cquoted\u201d \u2018single\u2019 \u201alow\u201b \u02bcmodifier",
    "DON'T I'M IT'S",
    "rock 'n' roll '' 's 'S ''s x''s",
    "\u017f \u2019\u017f '\u017f",
    # Control characters, line breaks, whitespace.
    "a\x00b\x07c\td\r\ne\rf\x0bg\x0ch",
    "line one\u2028line two\u2029line three\x85four",
    "\x1b[36;44mcolored\x1b[0m text",
    "\ufeffbom \u206ashape \ufff9anchor\ufffc obj",
    "non\u00a0breaking\u00a0space \u202fnarrow \u3000ideographic",
    "  leading and trailing  \t\n ",
    "a\x1cb\x1dc\x1ed\x1fe",
    "zero\u200bwidth joiner\u200dnon\u200cjoiner",
    # Full-width, half-width, ligatures.
    "\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33",
    "\uff41\uff42\uff43\uff11\uff12\uff13\uff01\uff1f",
    "\uff35\uff80\uff70\uff9d",
    "\ufb01sh \ufb02ower \ufb00 \ufb03 \ufb04 \ufb05 \ufb06 \u0132 \u01c4 \u01c9 \u0149",
    # Numbers and punctuation.
    "3.14 1,000 1000000 0.5% $20 \u00bd \u00b2 \u2163 \u0663",
    "!!! ??? ... --- *** ()[]{} <=> @#$%^&*",
    "well... okay?! (really)",
    "e-mail: someone@example.com, url: https://example.com/a_b?c=d",
    # Special-token literals.
    "<start_of_text>",
    "<start_of_text> a photo <end_of_text>",
    "<START_OF_TEXT> <End_Of_Text> <start_of_text",
    "<\u017ftart_of_text>",
    # Mojibake (ftfy fix_encoding): UTF-8 read as a single-byte codec, once or more.
    "sÃ³ cafÃ© naÃ¯ve",
    "â€œquotedâ€\x9d donâ€™t",
    "voilÃ le travail",                                # restore_byte_a0: "Ã " was "Ã\xa0"
    "Ã\xa0 bientôt",
    "\x80 euro \x96 dash \x93quote\x94",                # Latin-1 C1 controls meant as Windows-1252
    mojibake("café crème brûlée", times=2),            # double-encoded
    mojibake("a photo of a Pokémon", times=3),
    mojibake("“smart” ‘single’ — dash – en … ellipsis"),
    "café and " + mojibake("café") + " in one line",     # decode_inconsistent_utf8: good and bad mixed
    "lâ€™Ã©tÃ© TÃ©lÃ©phone Ã  vendre",
    mojibake("привет мир", "sloppy-windows-1251"),
    mojibake("Ελληνικά", "sloppy-windows-1253"),
    mojibake("żółć", "iso-8859-2"),
    mojibake("café crème", "macroman"),
    mojibake("café", "cp437"),
    mojibake("ひらがな 😀 smile"),
    # replace_lossy_sequences: bytes lost to U+FFFD or '?'.
    "â€œ like this â€\ufffd the â€œbestâ€? price",
    "&macr;\\_(ã\x83\x84)_/&macr; âœ” No problems",      # HTML entities and mojibake in one text
    "x í\xa0½í¸\x8a ok",                               # CESU-8 emoji (utf-8-variants)
    "x í\xa0½í¸\nnext line",                            # ...whose last byte ftfy takes from the "\n" ($ in re)
    "À\x80 null",                                      # Java's C0 80 for U+0000
    "Ã¨ is not an error here",                         # ftfy repairs this one anyway
    # Odd-looking text that is not mojibake: ftfy leaves it alone.
    "ÆØÅ æøå ¡Hola! ¿Qué tal? PÉREZ Ñandú",
    "It costs £5 or €6, 25°C, Ø 5 mm × 3, 1° × 2², Σ Ω µ ° ±",
    "(╯°□°)╯︵ ┻━┻ ├── src └── main",
    "café Ã",
    "ν\xa0½νΈ",
    "naÃ¯ve na√Øve",                                   # only the Windows-1252 half is repaired
    # Edge cases.
    "",
    "   ",
    "\t\n\r ",
    "a",
    "A",
    ".",
    "'",
    "\u00e9",
]

LONG = [
    "a photo of a dog. " * 30,
    "supercalifragilisticexpialidocious " * 12,
    " ".join(str(i) for i in range(100)),
    "\u732b" * 100,
    "x" * 500,
]

# Random texts (seeded) mixing the pieces above with code points from many blocks, to catch what the
# hand-written cases miss.
WORDS = ["dog", "Photo", "don't", "IT'S", "it\u2019s", "3.14", "1,000", "_", "-", "&amp;", "&lt;", "&#39;",
         "&eacute;", "&amp;amp;", "&EACUTE;", "&#x1F600;", "&notin", "<", ">", "<start_of_text>", "<end_of_text>",
         "'s", "'S", "''", "\u017f", "\u03a3", "\u039f\u03a3", "\x1b[31m", "\r\n", "\ufb01"]
BLOCKS = [(0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x45F),
          (0x600, 0x669), (0x900, 0x970), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2150, 0x218F), (0x3000, 0x30FF),
          (0x4E00, 0x4E80), (0xAC00, 0xAC40), (0xFB00, 0xFB06), (0xFE00, 0xFE0F), (0xFF01, 0xFFEE),
          (0x1D400, 0x1D4FF), (0x1F300, 0x1F6FF), (0xE0020, 0xE007F), (0x0, 0x1F), (0x7F, 0x9F)]
SEPARATORS = [" ", " ", " ", "", "\t", "\n", "\u00a0", "  "]


def random_texts(count, seed=1234):
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.4:
                parts.append(rng.choice(WORDS))
            else:
                low, high = rng.choice(BLOCKS)
                chars = (chr(rng.randint(low, high)) for _ in range(rng.randint(1, 4)))
                parts.append("".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF))
            parts.append(rng.choice(SEPARATORS))
        texts.append("".join(parts))
    return texts


CONTEXT16 = {"a photo of a dog.", "a photo of a 2012 Chevrolet Silverado 1500 Hybrid Crew Cab.",
             "supercalifragilisticexpialidocious " * 12, "", "\u732b" * 100,
             "a centered satellite photo of annual crop land."}


def hexes(text):
    return " ".join(format(ord(ch), "X") for ch in text)


# The strict codec fix_encoding uses for Latin-1 text with C1 controls; not a CHARMAP_ENCODING.
STRICT_WINDOWS_1252 = "windows-1252"


def single_byte_codecs():
    rows = []
    for encoding in ftfy.chardata.CHARMAP_ENCODINGS + [STRICT_WINDOWS_1252]:
        decoded = bytes(range(256)).decode(encoding, errors="replace")
        assert len(decoded) == 256
        if encoding == STRICT_WINDOWS_1252:
            undefined = [b for b in range(256) if decoded[b] == "\ufffd"]
            assert undefined == [0x81, 0x8D, 0x8F, 0x90, 0x9D], undefined
        else:
            # Swift inverts the table to encode, so it must be one-to-one and agree with Python's encoder.
            assert len(set(decoded)) == 256, encoding
            assert all(ch.encode(encoding) == bytes([b]) for b, ch in enumerate(decoded)), encoding
            # possible_encoding's regex is "bytes 00-19, 1B-7F as ASCII, plus what 80-FF and 1A decode to".
            high = bytes(list(range(0x80, 0x100)) + [0x1A]).decode(encoding)
            allowed = set(chr(c) for c in range(0x80) if c != 0x1A) | set(high)
            assert allowed == set(decoded), encoding
        rows.append((encoding, decoded))
    return rows


def mojibake_categories():
    import ftfy.badness
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    rows = []
    for name, members in list(ftfy.badness.MOJIBAKE_CATEGORIES.items()) + list(ftfy.chardata.UTF8_CLUES.items()):
        rows.append((name, "".join(re.findall("[" + members + "]", every))))
    return rows


def write_tables(path):
    html5 = html.entities.html5
    extra = {k[1:]: v for k, v in ftfy.chardata.HTML_ENTITIES.items() if k[1:] not in html5}
    assert all(k.endswith(";") for k in extra)
    # ftfy's own entity table is html5 (names ending in ';') plus these; check that assumption.
    for k, v in ftfy.chardata.HTML_ENTITIES.items():
        assert (html5.get(k[1:]) if k[1:] in html5 else extra[k[1:]]) == v
    lines = ["// Generated by Tests/CLIPTests/Fixtures/tokenizer/generate_tokenizer_cases.py --tables; do not edit.",
             "// Python data the text cleaner must match exactly, one entry a line: key, then code points in hex.",
             f"// Python {sys.version.split()[0]}, ftfy {ftfy.__version__}.",
             "// Shape letters: none (tables, not tensors).",
             "",
             "enum TextCleaningTables {"]

    def table(name, doc, rows):
        lines.append(f"  /// {doc}")
        lines.append(f"  static let {name} = \"\"\"")
        for key, value in rows:
            lines.append(f"    {key} {hexes(value)}".rstrip())
        lines.append("    \"\"\"")
        lines.append("")

    table("html5Entities", "html.entities.html5: entity name (with or without ';') -> text.",
          sorted(html5.items()))
    table("ftfyUppercaseEntities", "ftfy.chardata.HTML_ENTITIES entries not in html5 (upper-cased names).",
          sorted(extra.items()))
    table("widthMap", "ftfy.chardata.WIDTH_MAP: code point (hex) -> text.",
          sorted((format(k, "X"), v) for k, v in ftfy.chardata.WIDTH_MAP.items()))
    table("ligatures", "ftfy.chardata.LIGATURES: code point (hex) -> text.",
          sorted((format(k, "X"), v) for k, v in ftfy.chardata.LIGATURES.items()))
    table("sloppyWindows1252C1", "ftfy's sloppy-windows-1252 decoding of bytes 0x80-0x9F (hex) -> text.",
          [(format(b, "X"), bytes([b]).decode("sloppy-windows-1252")) for b in range(0x80, 0xA0)])
    table("htmlInvalidCharrefs", "html._invalid_charrefs: numeric reference (hex) -> text.",
          sorted((format(k, "X"), v) for k, v in html._invalid_charrefs.items()))
    table("singleByteCodecs", "Codecs fix_encoding tries (CHARMAP_ENCODINGS order), then strict windows-1252 "
          "(FFFD: undefined byte): name -> what bytes 00-FF decode to.",
          single_byte_codecs())
    table("mojibakeCategories", "ftfy.badness.MOJIBAKE_CATEGORIES, then ftfy.chardata.UTF8_CLUES: name -> "
          "every member (ranges expanded by Python's re).", mojibake_categories())
    lines[-1:] = ["}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("wrote", path)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tables":
        return write_tables(sys.argv[2])
    cases = []
    for text in CASES + LONG + random_texts(150):
        ids = open_clip.tokenize([text], context_length=77)[0].tolist()
        case = {"text": text, "ids": ids}
        if text in CONTEXT16:
            lengths = (16, 2, 1) if text == "a photo of a dog." else (16,)
            case["short"] = {str(n): open_clip.tokenize([text], context_length=n)[0].tolist() for n in lengths}
        cases.append(case)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")
    with open(out, "w") as f:
        # One case a line, so a regenerated file diffs case by case.
        header = json.dumps({"generator": "generate_tokenizer_cases.py", "open_clip": open_clip.__version__,
                             "ftfy": ftfy.__version__})
        f.write(header[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(case, ensure_ascii=True, separators=(",", ":")) for case in cases))
        f.write("\n]}\n")
    print("wrote", out, len(cases), "cases")


if __name__ == "__main__":
    main()
