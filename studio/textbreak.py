"""Where a line of text may break, by the writing system's rules: shared by captions
(``timelines.captions``) and the layouts that set copy on stills and supers (``studio.layout``).

Latin-script text breaks at spaces; the punctuation a space sets apart (French
"« Bonjour ! »") is kept with its word by each caller. Chinese and Japanese, written
without spaces, break between characters, following the basic kinsoku rules (JIS X 4051):
no line starts with closing punctuation, a small kana, the long vowel mark or an iteration
mark, and none ends with an opening bracket. Korean is written with spaces between words,
so Hangul breaks between characters only where a caller asks for it (copy run together
without spaces).
"""

from __future__ import annotations

import unicodedata

# Punctuation that closes what it follows: it stays with the word before it and never
# starts a caption or a line. Straight quotes close or open by their count in the text.
CLOSERS = "\"'”’»›)]）］」』】〉》"
# Punctuation that opens what follows: it stays with the word after it.
OPENERS = "\"'“‘«‹([（［「『【〈《¿¡"
# Sentence and clause punctuation, which French sets after a space ("Vraiment ?").
TRAILING_PUNCT = ".,;:!?…。！？、，；：%‰"
# Japanese characters that may not start a line (small kana, the long vowel mark,
# iteration marks): they stay with the character before them.
CJK_NONSTARTERS = frozenset("ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿー々ゝゞヽヾ")

# Kinsoku (JIS X 4051 classes 1-7 and the small kana): what may not start a line, beyond
# the sets above: the full-width full stop, the katakana middle dot, the two-dot leader,
# the remaining closing brackets, hyphens and the wave dash, doubled marks, 〻.
NO_LINE_START = (frozenset(CLOSERS + TRAILING_PUNCT) | CJK_NONSTARTERS
                 | frozenset("．・‥〕｝〙〗〟｠‐゠〜～‼⁇⁈⁉〻｡､･｣"))
# What may not end a line: the opening brackets.
NO_LINE_END = frozenset(OPENERS) | frozenset("〔｛〘〖〝｟｢")


def is_cjk(ch: str, *, hangul: bool = False) -> bool:
    """A Chinese or Japanese character: written without spaces, a line may break between
    any two. (Korean is written with spaces, so Hangul is not, unless ``hangul``.)"""
    name = unicodedata.name(ch, "")
    if hangul and name.startswith("HANGUL SYLLABLE"):
        return True
    return name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA",
                            "KATAKANA", "BOPOMOFO", "HALFWIDTH KATAKANA"))


def split_token(token: str, *, hangul: bool = False) -> list[str]:
    """A whitespace-free token as units: CJK characters one each (small kana and closing
    punctuation with the character before, opening punctuation with the one after), any
    other run (Latin words, numbers, "3.5", "iPhone") whole. ``hangul``: Hangul syllables
    count as CJK characters (Korean run together without spaces)."""
    units: list[str] = []
    cur, kind = "", ""  # kind of ``cur``: "" (empty or openers only), "cjk" or "other"
    for ch in token:
        if is_cjk(ch, hangul=hangul) and ch not in CJK_NONSTARTERS:
            if kind:
                units.append(cur)
                cur = ""
            cur, kind = cur + ch, "cjk"
        elif ch in CLOSERS or ch in TRAILING_PUNCT or ch in CJK_NONSTARTERS:
            cur += ch
        else:  # an opener, or anything else: after CJK it starts a new unit
            if kind == "cjk":
                units.append(cur)
                cur, kind = "", ""
            cur += ch
            if ch not in OPENERS:
                kind = "other"
    if cur:
        units.append(cur)
    return units


def kinsoku(units: list[str]) -> list[str]:
    """The units of one token (:func:`split_token`, no space between them) with those the
    kinsoku rules keep together joined: a unit that starts with a character no line may
    start with (``NO_LINE_START``) joins the one before, and one that ends with an opening
    bracket (``NO_LINE_END``) takes the one after."""
    out: list[str] = []
    for unit in units:
        if out and (unit[0] in NO_LINE_START or out[-1][-1] in NO_LINE_END):
            out[-1] += unit
        else:
            out.append(unit)
    return out
