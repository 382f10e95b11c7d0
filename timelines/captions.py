"""Captions from the voice-over timing, per deliverable.

The voice stage knows when every sentence is spoken (Piper speaks sentence by sentence, so
the times are measured, not guessed). Captions follow them: one cue per sentence, a
sentence too long for one caption split at its clause breaks with the time shared out by
characters, lines broken to similar lengths. The same cues become an SRT, a WebVTT placed
inside the channel's safe area, and, for channels that burn captions in, one RGBA PNG per
cue overlaid by ffmpeg: drawn with Pillow so the picture does not depend on which fonts
libass finds on the rendering machine.

Text is cut between units, not at every space: punctuation set apart by spaces (French
"« Bonjour ! »") stays with its word, so no caption or line starts with a closing quote;
Chinese and Japanese, written without spaces, break between characters (never before
」 。 or a small kana) and end sentences at 。！？; a Spanish ¿ ¡ opens a clause. Captions
show what was written: emoji the voice does not read stay in the SRT and WebVTT, and are
left out of burned-in captions, with a warning, where the font has no glyph for them.
"""

from __future__ import annotations

import functools
import itertools
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg
from PIL import Image, ImageDraw, ImageFont

from studio.brief import Brief
from studio.context import StageEnv
from studio.errors import StageError
from studio.specs import CaptionRules, ChannelSpec
from studio.store import atomic_output, atomic_write_text
from studio.textbreak import CLOSERS, OPENERS, TRAILING_PUNCT
from studio.textbreak import is_cjk as _is_cjk
from studio.textbreak import split_token as _split_token

CODE_VERSION = "captions.2"
STAGE = "captions"

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),  # Fedora/Arch layout
)
MIN_FONT_SCALE = 0.6  # a line may shrink to 60% of the spec's size before we give up
MIN_FONT_PX = 8  # below this nothing is legible whatever the spec says
BOX_RGBA = (0, 0, 0, 150)  # ~60% black: text stays legible on white, the picture shows through
TEXT_RGB = (255, 255, 255)
STROKE_RGB = (0, 0, 0)
STROKE = 0.06  # outline width, of the font size
PAD_X = 0.35  # box padding, of the font size
PAD_Y = 0.18
LINE_PITCH = 1.15  # baseline to baseline, of the font size
# ``enable`` compares frame times in floating point: a frame that starts exactly on a cue
# boundary could land either side. Shifting both ends a little earlier makes the window
# [start, end) for every frame (0.1 ms is far below both a frame and SRT's 1 ms precision).
ENABLE_EPS = 1e-4

# Held captions end this long before the next one starts, so the eye sees one caption
# replaced by the next (two frames at 30 fps; subtitle guides ask for two frames or more).
MIN_GAP = 2 / 30
# Reading speed and time on screen are judged, and reported, to this many decimals, so a
# warning never reads "17.0 characters/s, over the 17 allowed" for float noise.
REPORT_DECIMALS = 2

# Where a caption may be split or a line broken, best first: after a sentence or clause
# end (Latin, CJK full-width), after a comma, before a conjunction or a Spanish ¿ ¡ clause;
# anything else is a plain word break.
STRONG_PUNCT = (".", "!", "?", "…", "。", "！", "？")
CLAUSE_PUNCT = (";", ":", "—", "–", "；", "：")
COMMAS = (",", "，", "、")
CONJUNCTIONS = frozenset({
    "and", "but", "or", "nor", "so", "yet", "because", "which", "that", "who", "whom",
    "whose", "when", "while", "where", "if", "then", "though", "although", "until",
    "unless", "since", "as", "after", "before",
})


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Sentence:
    """One sentence as spoken: seconds on the edit timeline."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Line:
    """One beat's voice-over as the voice stage placed it on the edit timeline."""

    beat: str
    text: str
    start: float
    end: float
    sentences: tuple[Sentence, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Line:
        """A line from the voice stage's record ({"beat", "text", "start", "end",
        "sentences": [{"text", "start", "end"}, ...]})."""
        beat = str(d.get("beat", "?"))

        def bad(what: str, field: str) -> StageError:
            return StageError(what, fix="re-run the voice stage for this beat", stage=STAGE,
                              shot=beat, field=field)

        def seconds(obj: Mapping[str, Any], key: str, field: str) -> float:
            try:
                value = float(obj[key])
            except (KeyError, TypeError, ValueError):
                raise bad(f"no usable {key!r} time in the voice record ({obj.get(key)!r})",
                          field) from None
            if not math.isfinite(value) or value < 0:
                raise bad(f"{key} time {value} is not a time on the edit", field)
            return value

        start, end = seconds(d, "start", "start"), seconds(d, "end", "end")
        if end < start:
            raise bad(f"speech ends at {end:.3f} s, before it starts at {start:.3f} s", "end")
        sentences = []
        for i, s in enumerate(d.get("sentences") or ()):
            where = f"sentences[{i}]"
            s_start = seconds(s, "start", f"{where}.start")
            s_end = seconds(s, "end", f"{where}.end")
            if s_end < s_start:
                raise bad(f"sentence ends at {s_end:.3f} s, before it starts at {s_start:.3f} s",
                          where)
            sentences.append(Sentence(str(s.get("text", "")), s_start, s_end))
        return cls(beat=beat, text=str(d.get("text", "")), start=start, end=end,
                   sentences=tuple(sentences))


@dataclass(frozen=True)
class Cue:
    """One caption on screen from ``start`` to ``end`` (seconds, end exclusive)."""

    index: int  # 1-based, in time order
    start: float
    end: float
    lines: tuple[str, ...]
    beat: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def chars(self) -> int:
        # Reading speed counts what is read (letters, spaces, punctuation), not line breaks.
        return sum(len(line) for line in self.lines)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def cps(self) -> float:
        """Reading speed, characters per second."""
        return self.chars / self.duration if self.duration > 0 else math.inf


# ---------------------------------------------------------------------------- cutting


class _Word(str):
    """A unit a caption is never broken inside: a word with the punctuation that belongs to
    it ("« Bonjour »" in French spacing), or one CJK character with its punctuation.
    ``glued``: no space before it (CJK text has none between words)."""

    glued: bool

    def __new__(cls, text: str, glued: bool = False) -> _Word:
        word = super().__new__(cls, text)
        word.glued = glued
        return word


def _wide(ch: str) -> bool:
    """CJK text or its full-width punctuation: no space between two of these."""
    return _is_cjk(ch) or (unicodedata.east_asian_width(ch) in ("W", "F")
                           and unicodedata.category(ch).startswith("P"))


def _words(text: str) -> list[_Word]:
    """``text`` as the units captions are cut at. Punctuation set apart by spaces (French
    "« Bonjour ! »", a lone "—" excepted) joins the word it belongs to, so no caption or
    line starts with a closing quote or ends with an opening one."""
    raw: list[tuple[str, bool]] = []  # unit, glued
    for token in text.split():
        raw.extend((u, i > 0) for i, u in enumerate(_split_token(token)))
    words: list[_Word] = []
    quotes = 0  # straight double quotes so far: odd means the next one closes
    pending = ""  # opening punctuation waiting for its word
    for unit, glued in raw:
        closing = all(c in CLOSERS or c in TRAILING_PUNCT for c in unit) and (
            "\"" not in unit or quotes % 2 == 1)
        opening = not closing and all(c in OPENERS for c in unit)
        quotes += unit.count("\"")
        if not glued and closing and words:
            words[-1] = _Word(f"{words[-1]} {unit}", words[-1].glued)
        elif not glued and opening:
            pending = f"{pending}{unit} "
        elif pending:
            words.append(_Word(pending + unit, False))
            pending = ""
        else:
            words.append(_Word(unit, glued))
    if pending:  # opening punctuation at the very end: keep it, with the word before
        if words:
            words[-1] = _Word(f"{words[-1]} {pending.strip()}", words[-1].glued)
        else:
            words.append(_Word(pending.strip()))
    return words


def _glued(word: str) -> bool:
    return getattr(word, "glued", False)


def _join(words: Sequence[str]) -> str:
    """The text of ``words`` as it reads: a space between words, none before a glued one."""
    return "".join(w if i == 0 or _glued(w) else f" {w}" for i, w in enumerate(words))


def _join_texts(texts: Sequence[str]) -> str:
    """Sentences joined into one caption: with a space, except between CJK sentences."""
    out = ""
    for t in (t.strip() for t in texts):
        if not t:
            continue
        out += t if not out or (_wide(out[-1]) and _wide(t[0])) else f" {t}"
    return out


def _break_penalty(words: Sequence[str], after: int) -> int:
    """How bad a break between ``words[after - 1]`` and ``words[after]`` reads."""
    # Closing quotes after the full stop either way round (French « », German » «).
    left = words[after - 1].rstrip(CLOSERS + "«‹ ")
    if left.endswith(STRONG_PUNCT):
        return 0
    if left.endswith(CLAUSE_PUNCT):
        return 1
    # A Spanish question or exclamation opens its own clause: "si llueve ¿vienes?"
    right = words[after].lstrip(OPENERS.replace("¿", "").replace("¡", "") + "»› ")
    if right.startswith(("¿", "¡")):
        return 1
    if left.endswith(COMMAS):
        return 2
    if right.lower().strip(OPENERS + " ") in CONJUNCTIONS:
        return 3
    return 6


def _n_lines_greedy(words: Sequence[str], width: int) -> int:
    """The fewest lines ``words`` fill at ``width`` characters (greedy is optimal for that)."""
    lines, used = 1, -1
    for w in words:
        add = len(w) if used < 0 or _glued(w) else 1 + len(w)
        if used < 0 or used + add <= width:
            used = max(used, 0) + add
        else:
            lines, used = lines + 1, len(w)
    return lines


def _fits(words: Sequence[str], rules: CaptionRules) -> bool:
    return _n_lines_greedy(words, rules.max_chars_per_line) <= rules.max_lines


def break_lines(words: Sequence[str], rules: CaptionRules) -> tuple[str, ...]:
    """Lay ``words`` out in as few lines as possible, the lines as even as possible: among
    the layouts with that many lines, the shortest longest line, then the better break
    (after punctuation, before a conjunction), then the shorter top line (the eye finds the
    start of a bottom-heavy caption faster). Words are never broken."""
    width = rules.max_chars_per_line
    text = _join(words)
    if len(text) <= width:
        return (text,)
    n = _n_lines_greedy(words, width)
    best: tuple[tuple[int, int, int], tuple[str, ...]] | None = None
    for cuts in itertools.combinations(range(1, len(words)), n - 1):
        bounds = (0, *cuts, len(words))
        lines = tuple(_join(words[a:b]) for a, b in itertools.pairwise(bounds))
        longest = max(len(line) for line in lines)
        if longest > width:
            continue
        key = (longest, sum(_break_penalty(words, c) for c in cuts), len(lines[0]))
        if best is None or key < best[0]:
            best = (key, lines)
    assert best is not None  # greedy found a layout with n lines, so one exists
    return best[1]


def _split(words: list[str], rules: CaptionRules) -> list[list[str]]:
    """Cut a sentence into the fewest captions that each fit ``max_lines`` lines, at the
    best-reading breaks, into pieces of similar length."""
    cap = rules.max_lines * rules.max_chars_per_line
    n = len(words)
    # best[j]: (captions, cost, previous cut) for words[:j]
    best: list[tuple[int, float, int] | None] = [None] * (n + 1)
    best[0] = (0, 0.0, 0)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            chunk = words[i:j]
            if len(_join(chunk)) > cap:
                break  # longer chunks only get longer
            prev = best[i]
            if prev is None or not _fits(chunk, rules):
                continue
            # Squared length rewards even pieces; the break penalty dominates it, so a
            # comma is preferred over an even split.
            cost = prev[1] + (len(_join(chunk)) / cap) ** 2 * 4
            if j < n:
                cost += _break_penalty(words, j)
            cand = (prev[0] + 1, cost, i)
            if best[j] is None or cand[:2] < best[j][:2]:  # type: ignore[index]
                best[j] = cand
    chunks: list[list[str]] = []
    j = n
    while j > 0:
        entry = best[j]
        assert entry is not None  # every word fits a line (checked before), so a cut exists
        chunks.append(words[entry[2]:j])
        j = entry[2]
    return chunks[::-1]


# What the voice stage leaves out of the text it speaks (emoji, pictographs, their
# modifiers and joiners): unicode categories, and the variation selectors and keycap mark.
_UNSPOKEN_CATEGORIES = frozenset({"So", "Sk", "Cs", "Co", "Cn", "Cf"})
_UNSPOKEN_CHARS = frozenset("\ufe0e\ufe0f\u20e3")


def _unspoken(ch: str) -> bool:
    return ch.isspace() or ch in _UNSPOKEN_CHARS or unicodedata.category(ch) in _UNSPOKEN_CATEGORIES


def _find_spoken(src: str, want: Sequence[str], pos: int) -> tuple[int, int] | None:
    """Where the characters ``want`` lie in ``src`` from ``pos`` on, in order, with only
    unspoken characters (spaces, emoji) between them: (start, end) or None."""
    for p in range(pos, len(src)):
        if src[p] != want[0]:
            continue
        i, q = 1, p + 1
        while i < len(want) and q < len(src):
            if src[q] == want[i]:
                i += 1
            elif not _unspoken(src[q]):
                break
            q += 1
        if i == len(want):
            return p, q
    return None


def _restore_unspoken(text: str, sentences: Sequence[Sentence]) -> list[Sentence]:
    """The sentences with what the voice left out of them (emoji, symbols) put back from
    the line's written ``text``: inside a sentence where it was, between sentences with the
    one before (the first also takes what leads the line). Captions show what was written,
    not what was read aloud. A sentence not found in ``text`` (the line edited since)
    leaves all of them as the voice gave them."""
    src = unicodedata.normalize("NFC", text)
    spans: list[tuple[int, int] | None] = []
    pos = 0
    for s in sentences:
        want = [c for c in unicodedata.normalize("NFC", s.text) if not c.isspace()]
        span = _find_spoken(src, want, pos) if want else None
        if want and span is None:
            return list(sentences)
        spans.append(span)
        pos = span[1] if span else pos
    found = [k for k, span in enumerate(spans) if span is not None]
    out = list(sentences)
    for n, k in enumerate(found):
        a, b = spans[k]  # type: ignore[misc]
        if n == 0 and all(_unspoken(c) for c in src[:a]):
            a = 0
        nxt = spans[found[n + 1]][0] if n + 1 < len(found) else len(src)  # type: ignore[index]
        if all(_unspoken(c) for c in src[b:nxt]):
            b = nxt
        out[k] = Sentence(" ".join(src[a:b].split()), sentences[k].start, sentences[k].end)
    return out


def _reattach_closers(sentences: Sequence[Sentence]) -> list[Sentence]:
    """Closing quotes and brackets a sentence split left at the start of the next sentence
    ("« Il pleut. » Elle part." split after the full stop) moved back to the sentence they
    close; French sets a space before » and ›."""
    out: list[Sentence] = []
    quotes = 0  # straight double quotes so far: odd means the next one closes
    for s in sentences:
        text = s.text.strip()
        n = 0
        while n < len(text) and (text[n] in CLOSERS or text[n] in TRAILING_PUNCT):
            n += 1
        # Only punctuation set apart ("» Elle") or CJK's: "’Tis" and "'90s" start with
        # an apostrophe, and a straight quote closes only after an odd number of them.
        if (out and n and text[0] in CLOSERS and (n == len(text) or text[n].isspace()
                                                  or _wide(text[0]))
                and (text[0] != "\"" or quotes % 2 == 1)):
            run, text = text[:n], text[n:].strip()
            prev = out[-1]
            sep = " " if run[0] in "»›" else ""
            out[-1] = Sentence(prev.text.rstrip() + sep + run, prev.start, prev.end)
        quotes += s.text.count("\"")
        if text:
            out.append(Sentence(text, s.start, s.end))
    return out


def _join_short(sentences: Sequence[Sentence], rules: CaptionRules, until: float) -> list[Sentence]:
    """A sentence too short to read on its own ("Aurora.") shares a caption with its
    neighbour in the same line, as a subtitler would join it, when the two fit one
    caption and the pause between them is shorter than a caption's minimum time: the next sentence first, else the one before. Time to read counts up to the
    next sentence's start, or ``until`` (the next line or the end) for the last: a cue is
    held into the pause after it."""
    groups = [[s] for s in sentences if _words(s.text)]

    def text(g: list[Sentence]) -> str:
        return _join_texts([s.text for s in g])

    def short(k: int) -> bool:
        g = groups[k]
        room = groups[k + 1][0].start - MIN_GAP if k + 1 < len(groups) else until
        return room - g[0].start < max(rules.min_duration, len(text(g)) / rules.max_cps)

    def joinable(a: list[Sentence], b: list[Sentence]) -> bool:
        # Across a long pause the two are separate thoughts: hold the short one instead.
        return b[0].start - a[-1].end < rules.min_duration and _fits(_words(text(a + b)), rules)

    k = 0
    while k < len(groups):
        if short(k):
            if k + 1 < len(groups) and joinable(groups[k], groups[k + 1]):
                groups[k] += groups.pop(k + 1)
                continue
            if k > 0 and joinable(groups[k - 1], groups[k]):
                groups[k - 1] += groups.pop(k)
                k -= 1
                continue
        k += 1
    return [Sentence(text(g), g[0].start, g[-1].end) for g in groups]


def build_cues(lines: Sequence[Line], rules: CaptionRules, *, total: float,
               spec_name: str | None = None) -> list[Cue]:
    """Cues for the whole edit (``total`` seconds long) from the voice lines.

    One cue per sentence (a sentence too short to read joins its neighbour when the two
    fit one caption); a sentence longer than ``max_lines × max_chars_per_line`` is
    split into consecutive cues, its time shared in proportion to their characters. Cues
    never overlap and never run past ``total``. A cue shown too briefly to read at
    ``max_cps`` or shorter than ``min_duration`` is held into the silence after it, up to
    MIN_GAP before the next cue and never past ``total`` (a split sentence is held as a
    whole, so all its pieces get the time); one still too fast or too short is left as it
    is and reported by :func:`check_reading`.

    The text is what was written: emoji the voice did not read are put back from the
    line's text, and closing quotes a sentence split left at the start of the next
    sentence go back to the one they close."""
    field = f"{spec_name}.captions" if spec_name else "captions"
    width = rules.max_chars_per_line
    pieces: list[tuple[float, float, list[str], str]] = []  # start, end, words, beat
    ordered = sorted(lines, key=lambda ln: ln.start)
    for i, line in enumerate(ordered):
        until = min(ordered[i + 1].start, total) if i + 1 < len(ordered) else total
        spoken = line.sentences or (Sentence(line.text, line.start, line.end),)
        sentences = _join_short(_reattach_closers(_restore_unspoken(line.text, spoken)), rules,
                                until)
        for j, s in enumerate(sentences):
            words = _words(s.text)
            if not words:
                continue
            for w in words:
                if len(w) > width:
                    raise StageError(
                        f"the word {w!r} has {len(w)} characters, more than the {width} "
                        "a caption line holds",
                        fix="shorten or hyphenate it in the narration, or raise "
                            "captions.max_chars_per_line in the spec",
                        stage=STAGE, shot=line.beat, field=f"{field}.max_chars_per_line")
            chunks = [words] if _fits(words, rules) else _split(words, rules)
            sizes = [len(_join(c)) for c in chunks]
            whole = sum(sizes)
            # Spoken faster than it can be read: shown into the pause after it, as far as
            # MIN_GAP before the next sentence (the end of the edit for the last one), the
            # pieces sharing the longer time. Holding only its last piece would leave the
            # others too fast to read.
            if j + 1 < len(sentences):
                room = sentences[j + 1].start - MIN_GAP
            else:
                room = until - MIN_GAP if until < total else total
            s_end = max(s.end, min(s.start + whole / rules.max_cps, room))
            # Cumulative boundaries, so the pieces tile the sentence exactly.
            done = 0
            for chunk, size in zip(chunks, sizes, strict=True):
                a = s.start + (s_end - s.start) * done / whole
                done += size
                b = s.start + (s_end - s.start) * done / whole
                pieces.append((a, b, chunk, line.beat))
    pieces.sort(key=lambda p: p[0])

    cues: list[Cue] = []
    for k, (start, end, words, beat) in enumerate(pieces):
        nxt = pieces[k + 1][0] if k + 1 < len(pieces) else total
        limit = min(nxt, total)
        if start >= total:
            raise StageError(
                f"speech at {start:.3f} s starts after the edit ends ({total:.3f} s)",
                fix="re-run the voice stage so the narration fits its beat",
                stage=STAGE, shot=beat, field=field)
        end = min(end, limit)
        # Held into the silence after it (up to MIN_GAP before the next cue, never past
        # the end) until it has been up min_duration and long enough to read at max_cps.
        need = max(rules.min_duration, len(_join(words)) / rules.max_cps)
        if end - start < need:
            hold = min(nxt - MIN_GAP, total) if k + 1 < len(pieces) else total
            end = max(end, min(start + need, hold))
        if end <= start:
            raise StageError(
                f"caption {k + 1} ({_join(words)!r}) gets no time on screen: the next "
                f"one starts at {nxt:.3f} s, with it",
                fix="re-run the voice stage: its sentences overlap",
                stage=STAGE, shot=beat, field=field)
        cues.append(Cue(k + 1, start, end, break_lines(words, rules), beat))
    return cues


# ---------------------------------------------------------------------------- checking


def _snippet(cue: Cue, limit: int = 16) -> str:
    text = " ".join(cue.lines)
    if len(text) <= limit + 4:
        return text
    cut = text[:limit + 1]
    head = cut.rsplit(" ", 1)[0] if " " in cut else text[:limit]
    return head.rstrip(",;:") + "..."


def check_reading(cues: Sequence[Cue], rules: CaptionRules, spec_name: str, *,
                  strict: bool = False) -> list[str]:
    """Warnings, one line each, for captions read too fast, shown too briefly or set too
    wide; with ``strict``, a :class:`StageError` for the first one instead."""
    problems: list[tuple[Cue, str, str]] = []  # cue, what, fix
    for cue in cues:
        quoted = f"caption {cue.index} '{_snippet(cue)}'"
        # Judged on the figure the message shows (REPORT_DECIMALS), so it never says
        # "17.0 characters/s, over the 17 allowed": a cue held to exactly the limit reads
        # at 17.00000000000006 in floating point.
        cps = round(cue.cps, REPORT_DECIMALS)
        if cps > rules.max_cps:
            shown = f"{cue.cps:.1f}" if round(cue.cps, 1) > rules.max_cps else f"{cps:.2f}"
            problems.append((cue, f"{quoted} reads at {shown} characters/s, over the "
                                  f"{rules.max_cps:g} allowed",
                             "shorten the narration or lengthen the beat"))
        if round(cue.duration, REPORT_DECIMALS) < rules.min_duration:
            problems.append((cue, f"{quoted} is on screen {cue.duration:.2f} s, under the "
                                  f"{rules.min_duration:g} s minimum",
                             "leave a pause after the sentence or join it to the next one"))
        if len(cue.lines) > rules.max_lines:
            problems.append((cue, f"{quoted} has {len(cue.lines)} lines, over the "
                                  f"{rules.max_lines} allowed", "rebuild the captions"))
        for n, text in enumerate(cue.lines, 1):
            if len(text) > rules.max_chars_per_line:
                problems.append((cue, f"{quoted} line {n} has {len(text)} characters, over "
                                      f"the {rules.max_chars_per_line} allowed",
                                 "rebuild the captions"))
    if strict and problems:
        cue, what, fix = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StageError(what + more, fix=fix, stage=STAGE, shot=cue.beat, field=spec_name)
    return [f"{spec_name}: beat {cue.beat}, {what}: {fix}" for cue, what, fix in problems]


def check_glyphs(cues: Sequence[Cue], spec_name: str, *, font_path: str | None = None) -> list[str]:
    """Warnings, one line per caption, for characters (most emoji) the burn-in font cannot
    draw: :func:`render_overlays` leaves them out of the picture rather than draw empty
    boxes; the SRT and WebVTT keep them (players draw them with their own fonts)."""
    out: list[str] = []
    for cue in cues:
        missing = undrawable("".join(cue.lines), font_path)
        if not missing:
            continue
        font = _font(font_path, GLYPH_PROBE_PX)
        name = " ".join(font.getname()) if isinstance(font, ImageFont.FreeTypeFont) else "default"
        listed = ", ".join(f"{ch} ({unicodedata.name(ch, f'U+{ord(ch):04X}').lower()})"
                           for ch in missing)
        them = "it" if len(missing) == 1 else "them"
        out.append(f"{spec_name}: beat {cue.beat}, caption {cue.index} '{_snippet(cue)}' has "
                   f"{listed}, which the caption font ({name}) cannot draw; the burned-in "
                   f"caption leaves {them} out (the SRT and WebVTT keep {them}): write {them} "
                   f"in words, or leave {them} out of the narration for channels that burn "
                   "captions in")
    return out


# ---------------------------------------------------------------------------- files


def _stamp(t: float, sep: str) -> str:
    ms = max(0, round(t * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_text(cues: Sequence[Cue]) -> str:
    blocks = [f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{c.text}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def write_srt(cues: Sequence[Cue], path: Path) -> None:
    """SubRip: 1-based numbers, HH:MM:SS,mmm, cues separated by a blank line, UTF-8."""
    atomic_write_text(path, srt_text(cues))


def _pct(x: float) -> str:
    return f"{x * 100:.2f}".rstrip("0").rstrip(".") + "%"


def vtt_settings(spec: ChannelSpec) -> str:
    """Cue settings that put the caption's bottom on the safe area's bottom edge, centred
    in it and no wider than it (players honour these; the frame size does not matter).
    The safe area lies inside the active picture, so a letterboxed channel's captions sit
    above the bottom bar, not on it."""
    s = spec.safe_area
    x0, y0, x1, y1 = spec.active_rect()
    left = (x0 + s.left * (x1 - x0)) / spec.width
    right = (x1 - s.right * (x1 - x0)) / spec.width
    bottom = (y1 - s.bottom * (y1 - y0)) / spec.height
    return (f"line:{_pct(bottom)},end position:{_pct((left + right) / 2)},"
            f"center size:{_pct(right - left)} align:center")


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: a bare & or < would start an entity or a tag.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_text(cues: Sequence[Cue], spec: ChannelSpec | None = None) -> str:
    settings = f" {vtt_settings(spec)}" if spec is not None else ""
    blocks = ["WEBVTT\n"]
    for i, c in enumerate(cues, 1):
        body = "\n".join(_vtt_escape(line) for line in c.lines)
        blocks.append(f"{i}\n{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}{settings}\n{body}\n")
    return "\n".join(blocks)


def write_vtt(cues: Sequence[Cue], path: Path, *, spec: ChannelSpec | None = None) -> None:
    """WebVTT: "WEBVTT" header, HH:MM:SS.mmm, with ``spec`` cue settings that keep the
    caption inside its safe area."""
    atomic_write_text(path, vtt_text(cues, spec))


# ---------------------------------------------------------------------------- burn-in


@dataclass(frozen=True)
class Overlay:
    """One caption image and where it goes: top-left ``x, y`` in the frame, on screen
    from ``start`` to ``end``; ``box`` is the frame rectangle (x0, y0, x1, y1, end
    exclusive) its visible pixels cover."""

    path: Path
    x: int
    y: int
    start: float
    end: float
    box: tuple[int, int, int, int]


def _font(font_path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if font_path is not None:
        try:
            return ImageFont.truetype(font_path, size)
        except OSError as e:
            raise StageError(f"cannot load the caption font {font_path}: {e}",
                             fix="give a TrueType/OpenType font file", stage=STAGE) from e
    for cand in FONT_CANDIDATES:
        if cand.is_file():
            return ImageFont.truetype(str(cand), size)
    # Pillow's bundled font (FreeType build): legible, if plainer.
    return ImageFont.load_default(size=size)


# Glyph presence is the same at any size; this one is large enough to tell shapes apart.
GLYPH_PROBE_PX = 32
# A code point of plane 16's private use area: no text font maps it, so it comes out as
# the font's "missing glyph" box.
_NO_GLYPH = "\U0010fffd"
# Joiners and selectors that only make sense attached to an emoji.
_EMOJI_JOINERS = frozenset("\u200d\ufe0e\ufe0f\u20e3")


@functools.lru_cache(maxsize=4096)
def _ink(font_path: str | None, text: str) -> tuple[tuple[int, ...], bytes]:
    """How ``text`` comes out in the caption font: its box and its pixels."""
    font = _font(font_path, GLYPH_PROBE_PX)
    box = tuple(int(v) for v in font.getbbox(text))
    im = Image.new("L", (max(1, box[2] - box[0]), max(1, box[3] - box[1])))
    ImageDraw.Draw(im).text((-box[0], -box[1]), text, font=font, fill=255)
    return box, im.tobytes()


def undrawable(text: str, font_path: str | None = None) -> str:
    """The characters of ``text`` the caption font has no glyph for (emoji, for DejaVu
    Sans, except a few emoticons), each once. FreeType draws those as the font's "missing"
    box; Pillow has no per-character query, so each is drawn and compared with that box."""
    missing = _ink(font_path, _NO_GLYPH)
    return "".join(ch for ch in dict.fromkeys(text)
                   if not ch.isspace() and unicodedata.category(ch) not in ("Mn", "Me", "Cf", "Cc")
                   and _ink(font_path, ch) == missing)


def _drawable(lines: Sequence[str], font_path: str | None) -> tuple[str, ...]:
    """``lines`` without the characters the font cannot draw (a row of empty boxes reads
    as a fault; :func:`check_glyphs` reports them), and without lines left empty."""
    missing = set(undrawable("".join(lines), font_path))
    if not missing:
        return tuple(lines)
    missing |= _EMOJI_JOINERS
    kept = (" ".join("".join(c for c in line if c not in missing).split()) for line in lines)
    return tuple(line for line in kept if line)


@dataclass(frozen=True)
class _Layout:
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    stroke: int
    width: int
    height: int
    origins: tuple[tuple[float, float], ...]  # per line: left-baseline point in the image


def _layout(lines: Sequence[str], font_path: str | None, size: int) -> _Layout:
    font = _font(font_path, size)
    stroke = max(1, round(size * STROKE))
    pitch = size * LINE_PITCH
    boxes = [font.getbbox(line, anchor="ls", stroke_width=stroke) for line in lines]
    # Union of the glyph boxes with baselines ``pitch`` apart, so accents and descenders
    # stay inside the backing box whatever the text.
    top = min(b[1] + i * pitch for i, b in enumerate(boxes))
    bottom = max(b[3] + i * pitch for i, b in enumerate(boxes))
    widest = max(b[2] - b[0] for b in boxes)
    pad_x, pad_y = round(size * PAD_X), round(size * PAD_Y)
    width = math.ceil(widest) + 2 * pad_x
    height = math.ceil(bottom - top) + 2 * pad_y
    origins = tuple(((width - (b[2] - b[0])) / 2 - b[0], pad_y - top + i * pitch)
                    for i, b in enumerate(boxes))
    return _Layout(font, stroke, width, height, origins)


def _draw(layout: _Layout, lines: Sequence[str]) -> Image.Image:
    im = Image.new("RGBA", (layout.width, layout.height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    radius = max(1, round(min(layout.width, layout.height) * 0.12))
    draw.rounded_rectangle((0, 0, layout.width - 1, layout.height - 1), radius=radius,
                           fill=BOX_RGBA)
    for (x, y), text in zip(layout.origins, lines, strict=True):
        draw.text((x, y), text, font=layout.font, fill=TEXT_RGB + (255,), anchor="ls",
                  stroke_width=layout.stroke, stroke_fill=STROKE_RGB + (255,))
    return im


def _even_up(v: int) -> int:
    return v + (v & 1)


def _even_down(v: int) -> int:
    return v - (v & 1)


def _place(w: int, h: int, safe: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """Top-left for a ``w × h`` image centred horizontally with its bottom on the safe
    area's bottom, or None if it does not fit. Coordinates are even: in 4:2:0 ffmpeg's
    overlay rounds odd ones down, which would move the caption off its reported box (and
    possibly out of the safe area)."""
    x0, y0, x1, y1 = safe
    lo_x, hi_x = _even_up(x0), _even_down(x1 - w)
    y = _even_down(y1 - h)
    if lo_x > hi_x or y < _even_up(y0):
        return None
    x = min(max(_even_down(x0 + (x1 - x0 - w) // 2), lo_x), hi_x)
    return x, y


def render_overlays(cues: Sequence[Cue], spec: ChannelSpec, out_dir: Path, *,
                    font_path: str | None = None) -> list[Overlay]:
    """One RGBA PNG per cue in ``out_dir``: white text with a dark outline on a
    translucent dark box, the font ``captions.font_size`` of the frame height tall,
    centred, the block's bottom on the safe area's bottom. A caption too wide for the safe
    area is set smaller, down to MIN_FONT_SCALE of that; beyond, an error. Characters the
    font cannot draw (most emoji) are left out of the picture (:func:`check_glyphs` says
    which); a cue with nothing left to draw gets no overlay."""
    out_dir = Path(out_dir)
    safe = spec.safe_rect()  # inside the active picture: never on a letterbox bar
    target = max(MIN_FONT_PX, round(spec.captions.font_size * spec.height))
    floor = max(MIN_FONT_PX, math.ceil(target * MIN_FONT_SCALE))
    overlays: list[Overlay] = []
    for cue in cues:
        lines = _drawable(cue.lines, font_path)
        if not lines:
            continue
        placed: tuple[_Layout, tuple[int, int]] | None = None
        layout = _layout(lines, font_path, target)
        for size in range(target, floor - 1, -1):
            layout = _layout(lines, font_path, size) if size != target else layout
            pos = _place(layout.width, layout.height, safe)
            if pos is not None:
                placed = (layout, pos)
                break
        if placed is None:
            raise StageError(
                f"caption {cue.index} '{_snippet(cue)}' is {layout.width}x{layout.height} px "
                f"even at {floor} px type, larger than the "
                f"{safe[2] - safe[0]}x{safe[3] - safe[1]} px safe area",
                fix="lower captions.max_chars_per_line or captions.font_size in the spec, "
                    "or shorten the narration",
                stage=STAGE, shot=cue.beat, field=spec.name)
        layout, (x, y) = placed
        im = _draw(layout, lines)
        bbox = im.getchannel("A").getbbox()
        assert bbox is not None  # the box is drawn over the whole image
        path = out_dir / f"caption-{cue.index:04d}.png"
        with atomic_output(path) as tmp:
            im.save(tmp, format="PNG")
        box = (x + bbox[0], y + bbox[1], x + bbox[2], y + bbox[3])
        overlays.append(Overlay(path, x, y, cue.start, cue.end, box))
    return overlays


def enable_expr(start: float, end: float) -> str:
    """ffmpeg timeline expression for frames with start <= t < end. Half-open (not
    ``between``, which includes both ends) so back-to-back captions never share a frame."""
    return f"gte(t,{start - ENABLE_EPS:.4f})*lt(t,{end - ENABLE_EPS:.4f})"


def burn_in(video: Any, overlays: Sequence[Overlay]) -> Any:
    """``video`` (a typed-ffmpeg video stream, ideally already in the delivery's 4:2:0
    format) with every caption image laid over it in its time window.

    Each PNG is a plain one-frame image input; ``eof_action=repeat`` keeps that frame after
    the input ends, and with no looping input the output ends when the main video does, so
    the frame count is the main video's."""
    for ov in overlays:
        # Convert the caption to YUV with the delivery's BT.709 matrix ourselves: the
        # converter ffmpeg would insert writes BT.601 (harmless for white on black, wrong
        # for any coloured caption).
        img = (ffmpeg.input(str(ov.path)).video
               .scale(out_color_matrix="bt709", out_range="tv")
               .format(pix_fmts="yuva420p"))
        video = video.overlay(img, x=ov.x, y=ov.y, eof_action="repeat", repeatlast=True,
                              enable=enable_expr(ov.start, ov.end))
    return video


@dataclass
class CaptionsInputs:
    brief: Brief
    video_specs: list[ChannelSpec]
    sound: dict[str, Any]  # the mix's placed lines (where the edit has them) and its duration


@dataclass
class CaptionsOutputs:
    captions: dict[str, dict[str, Any]]  # by spec: files, cues, burn-in overlays


def captions_stage(env: StageEnv, inputs: CaptionsInputs) -> CaptionsOutputs:
    """Stage ``captions``: SRT and WebVTT for every video deliverable, cut from the voice
    lines where the edit places them; reading speed checked against each spec; caption
    images rendered for the specs that burn captions in (the conform composites them in
    its one encode pass)."""
    placed = inputs.sound.get("placed_lines", [])
    out: dict[str, dict[str, Any]] = {}
    if not inputs.brief.captions or not placed:
        return CaptionsOutputs(captions=out)
    lines = [Line.from_dict(x) for x in placed]
    total = float(inputs.sound.get("mix", {}).get("duration") or max(x["end"] for x in placed))
    for spec in inputs.video_specs:
        cues = build_cues(lines, spec.captions, total=total, spec_name=spec.name)
        warnings = check_reading(cues, spec.captions, spec.name)
        for w in warnings:
            env.warn(w)
        folder = env.work_dir / "deliverables" / spec.name
        stem = env.file_stem(spec.name)
        srt, vtt = folder / f"{stem}.srt", folder / f"{stem}.vtt"
        write_srt(cues, srt)
        write_vtt(cues, vtt, spec=spec)
        if spec.captions_burn_in:
            for w in check_glyphs(cues, spec.name):
                env.warn(w)
                warnings.append(w)
        overlays = (render_overlays(cues, spec, env.scratch_dir / "captions" / spec.name)
                    if spec.captions_burn_in else [])
        out[spec.name] = {
            "srt": str(srt.relative_to(env.work_dir)), "vtt": str(vtt.relative_to(env.work_dir)),
            "burned_in": bool(overlays), "cues": len(cues), "warnings": warnings,
            "boxes": [list(o.box) for o in overlays], "overlays": overlays, "code_version": CODE_VERSION,
        }
        env.reporter.advance("captions", spec=spec.name)
    return CaptionsOutputs(captions=out)


__all__ = [
    "CODE_VERSION",
    "MIN_GAP",
    "Cue",
    "Line",
    "Overlay",
    "Sentence",
    "break_lines",
    "build_cues",
    "burn_in",
    "captions_stage",
    "check_glyphs",
    "check_reading",
    "enable_expr",
    "render_overlays",
    "srt_text",
    "undrawable",
    "vtt_settings",
    "vtt_text",
    "write_srt",
    "write_vtt",
]
