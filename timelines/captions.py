"""Captions from the voice-over timing, per deliverable.

The voice stage knows when every sentence is spoken (Piper speaks sentence by sentence, so
the times are measured, not guessed). Captions follow them: one cue per sentence, a
sentence too long for one caption split at its clause breaks with the time shared out by
characters, lines broken to similar lengths. The same cues become an SRT, a WebVTT placed
inside the channel's safe area, and, for channels that burn captions in, one RGBA PNG per
cue overlaid by ffmpeg: drawn with Pillow so the picture does not depend on which fonts
libass finds on the rendering machine.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg
from PIL import Image, ImageDraw, ImageFont

from studio.errors import StageError
from studio.specs import CaptionRules, ChannelSpec
from studio.store import atomic_output, atomic_write_text

CODE_VERSION = "captions.1"
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

# Where a caption may be split or a line broken, best first: after a sentence or clause
# end, after a comma, before a conjunction; anything else is a plain word break.
STRONG_PUNCT = (".", "!", "?", "…")
CLAUSE_PUNCT = (";", ":", "—", "–")
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


def _words(text: str) -> list[str]:
    return text.split()


def _break_penalty(words: Sequence[str], after: int) -> int:
    """How bad a break between ``words[after - 1]`` and ``words[after]`` reads."""
    left = words[after - 1].rstrip("\"'”’)]")
    if left.endswith(STRONG_PUNCT):
        return 0
    if left.endswith(CLAUSE_PUNCT):
        return 1
    if left.endswith(","):
        return 2
    if words[after].lower().strip("\"'“‘([") in CONJUNCTIONS:
        return 3
    return 6


def _n_lines_greedy(words: Sequence[str], width: int) -> int:
    """The fewest lines ``words`` fill at ``width`` characters (greedy is optimal for that)."""
    lines, used = 1, -1
    for w in words:
        if used + 1 + len(w) <= width:
            used += 1 + len(w)
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
    text = " ".join(words)
    if len(text) <= width:
        return (text,)
    n = _n_lines_greedy(words, width)
    best: tuple[tuple[int, int, int], tuple[str, ...]] | None = None
    for cuts in itertools.combinations(range(1, len(words)), n - 1):
        bounds = (0, *cuts, len(words))
        lines = tuple(" ".join(words[a:b]) for a, b in itertools.pairwise(bounds))
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
            if len(" ".join(chunk)) > cap:
                break  # longer chunks only get longer
            prev = best[i]
            if prev is None or not _fits(chunk, rules):
                continue
            # Squared length rewards even pieces; the break penalty dominates it, so a
            # comma is preferred over an even split.
            cost = prev[1] + (len(" ".join(chunk)) / cap) ** 2 * 4
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


def _join_short(sentences: Sequence[Sentence], rules: CaptionRules, until: float) -> list[Sentence]:
    """A sentence too short to read on its own ("Aurora.") shares a caption with its
    neighbour in the same line, as a subtitler would join it, when the two fit one
    caption and the pause between them is shorter than a caption's minimum time: the next sentence first, else the one before. Time to read counts up to the
    next sentence's start, or ``until`` (the next line or the end) for the last: a cue is
    held into the pause after it."""
    groups = [[s] for s in sentences if _words(s.text)]

    def text(g: list[Sentence]) -> str:
        return " ".join(s.text.strip() for s in g)

    def short(k: int) -> bool:
        g = groups[k]
        room = groups[k + 1][0].start if k + 1 < len(groups) else until
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
    never overlap and never run past ``total``. A cue shorter than ``min_duration`` is held
    into the silence after it, as far as the next cue or the end allow; one still too short
    is left as it is and reported by :func:`check_reading`."""
    field = f"{spec_name}.captions" if spec_name else "captions"
    width = rules.max_chars_per_line
    pieces: list[tuple[float, float, list[str], str]] = []  # start, end, words, beat
    ordered = sorted(lines, key=lambda ln: ln.start)
    for i, line in enumerate(ordered):
        until = min(ordered[i + 1].start, total) if i + 1 < len(ordered) else total
        sentences = _join_short(line.sentences or (Sentence(line.text, line.start, line.end),), rules, until)
        for s in sentences:
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
            sizes = [len(" ".join(c)) for c in chunks]
            whole = sum(sizes)
            # Cumulative boundaries, so the pieces tile the sentence exactly.
            done = 0
            for chunk, size in zip(chunks, sizes, strict=True):
                a = s.start + (s.end - s.start) * done / whole
                done += size
                b = s.start + (s.end - s.start) * done / whole
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
        # Held into the silence after it (never past the next cue) until it has been up
        # min_duration and long enough to read at max_cps.
        need = max(rules.min_duration, len(" ".join(words)) / rules.max_cps)
        if end - start < need:
            end = min(start + need, limit)
        if end <= start:
            raise StageError(
                f"caption {k + 1} ({' '.join(words)!r}) gets no time on screen: the next "
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
        if cue.cps > rules.max_cps:
            problems.append((cue, f"{quoted} reads at {cue.cps:.1f} characters/s, over the "
                                  f"{rules.max_cps:g} allowed",
                             "shorten the narration or lengthen the beat"))
        if cue.duration + 1e-9 < rules.min_duration:
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
    in it and no wider than it (players honour these; the frame size does not matter)."""
    s = spec.safe_area
    return (f"line:{_pct(1 - s.bottom)},end position:{_pct(s.left + (1 - s.left - s.right) / 2)},"
            f"center size:{_pct(1 - s.left - s.right)} align:center")


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
    area is set smaller, down to MIN_FONT_SCALE of that; beyond, an error."""
    out_dir = Path(out_dir)
    safe = spec.safe_area.rect(spec.width, spec.height)
    target = max(MIN_FONT_PX, round(spec.captions.font_size * spec.height))
    floor = max(MIN_FONT_PX, math.ceil(target * MIN_FONT_SCALE))
    overlays: list[Overlay] = []
    for cue in cues:
        placed: tuple[_Layout, tuple[int, int]] | None = None
        layout = _layout(cue.lines, font_path, target)
        for size in range(target, floor - 1, -1):
            layout = _layout(cue.lines, font_path, size) if size != target else layout
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
        im = _draw(layout, cue.lines)
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


def captions_stage(ctx: Any) -> None:
    """Stage ``captions``: SRT and WebVTT for every video deliverable, cut from the voice
    lines where the edit places them; reading speed checked against each spec; caption
    images rendered for the specs that burn captions in (the conform composites them in
    its one encode pass)."""
    placed = ctx.sound.get("placed_lines", [])
    if not ctx.brief.captions or not placed:
        return
    lines = [Line.from_dict(x) for x in placed]
    total = float(ctx.sound.get("mix", {}).get("duration") or max(x["end"] for x in placed))
    for spec in ctx.video_specs:
        cues = build_cues(lines, spec.captions, total=total, spec_name=spec.name)
        warnings = check_reading(cues, spec.captions, spec.name)
        for w in warnings:
            ctx.warn(w)
        folder = ctx.work_dir / "deliverables" / spec.name
        stem = ctx.file_stem(spec.name)
        srt, vtt = folder / f"{stem}.srt", folder / f"{stem}.vtt"
        write_srt(cues, srt)
        write_vtt(cues, vtt, spec=spec)
        overlays = (render_overlays(cues, spec, ctx.work_dir / ".captions" / spec.name)
                    if spec.captions_burn_in else [])
        ctx.captions[spec.name] = {
            "srt": str(srt.relative_to(ctx.work_dir)), "vtt": str(vtt.relative_to(ctx.work_dir)),
            "burned_in": bool(overlays), "cues": len(cues), "warnings": warnings,
            "boxes": [list(o.box) for o in overlays], "overlays": overlays, "code_version": CODE_VERSION,
        }
        ctx.reporter.advance("captions", spec=spec.name)


__all__ = [
    "CODE_VERSION",
    "Cue",
    "Line",
    "Overlay",
    "Sentence",
    "break_lines",
    "build_cues",
    "burn_in",
    "captions_stage",
    "check_reading",
    "enable_expr",
    "render_overlays",
    "srt_text",
    "vtt_settings",
    "vtt_text",
    "write_srt",
    "write_vtt",
]
