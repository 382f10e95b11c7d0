"""Layouts: copy, call to action and logo placed in a channel's safe area, sized to fit,
checked for contrast, and rendered as an RGBA layer.

A layout (``studio/data/layouts/*.yaml``, schema ``Layout.1``) names regions for the
headline, subline, call to action, legal line and logo as fractions of the safe rectangle
or of the beat's copy space. ``fit`` sets each piece of copy in its region at the largest
size of the brand's type scale that fits, broken into lines by the language's rules (at
spaces, never inside a word; Chinese and Japanese between characters, by the kinsoku rules
of ``studio.textbreak``; never clipped), headlines and sublines in lines of even length,
keeps the logo's clear space free of text, measures each text's
WCAG contrast against the picture under it and adds a scrim where it fails. The result,
a ``Placement``, is plain data (JSON) that ``render`` draws, the same bytes every time.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from studio import documents, textbreak
from studio.brand import BrandKit, Copy, TypeRange, logo_image, logo_size
from studio.errors import StudioError
from studio.specs import NAME_RE
from studio.store import sha256_file

# How copy is set (line breaking, sizing, scrims): part of every still's and video's key, so
# a change here makes the deliverables that show copy again. 2: balanced lines, CJK kinsoku.
CODE_VERSION = "layout.2"

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, end exclusive
TEXT_ROLES = ("headline", "subline", "cta", "legal")

# WCAG 2.x success criterion 1.4.3 (AA): 4.5:1 for body text, 3:1 for large text, which
# is 18 pt (24 CSS px) regular or 14 pt (18.66 px) bold.
AA_BODY = 4.5
AA_LARGE = 3.0
LARGE_PX = 24.0
LARGE_BOLD_PX = 18.66
# A scrim is made a little stronger than the bare threshold: glyph edges are antialiased
# and the composite rounds to 8 bits, so the measured ratio must not land just under it.
SCRIM_MARGIN = 0.3
# "Worst case" under a text box: the ratio that 95% of the pixels beat (a few stray
# pixels of the opposite tone do not make a scrim; a bright band under the words does).
WORST_PERCENTILE = 5.0
CONTRAST_SAMPLES = 40_000  # pixels measured per box at most (a regular grid over it)
SCRIM_PAD = 0.35  # scrim margin round the text, of the font size
SCRIM_RADIUS = 0.25  # corner radius, of the font size
BUTTON_PAD_X = 0.8  # call-to-action button padding, of the font size
BUTTON_PAD_Y = 0.45
BUTTON_RADIUS = 0.35

# Punctuation that stays on its word's line: French sets a space before ! ? ; : » and
# after «, and that space must never become a line break; nor may one before a CJK
# closing mark or after a CJK opening bracket (straight quotes open or close: left alone).
_CLOSING = set("!?;:»)]}%…,.") | (textbreak.NO_LINE_START - set("\"'"))
_OPENING = set("«([{¿¡") | (textbreak.NO_LINE_END - set("\"'"))
# Roles set in lines of even length (a headline's last word is never left alone on its
# line; a call to action that must break does so evenly); a legal line fills its lines
# like a paragraph.
_BALANCED = ("headline", "subline", "cta")
# Glyph presence is the same at any size; this one is large enough to tell shapes apart.
_GLYPH_PROBE_PX = 32
# A code point of plane 16's private use area: no text font maps it, so it draws as the
# font's "missing glyph" (.notdef) box, which any character the font lacks draws too.
_NO_GLYPH = "\U0010fffd"
# Line breaks happen at ordinary spaces only: a no-break space (U+00A0, U+202F) holds.
_BREAK = re.compile(r"[ \t\r\n]+")


# ---------------------------------------------------------------- layout documents


class Region(BaseModel):
    model_config = ConfigDict(extra="forbid")
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 as fractions of `within`")
    within: Literal["safe", "copy"] = "safe"
    align: Literal["left", "centre", "right"] = "left"
    valign: Literal["top", "middle", "bottom"] = "top"
    max_lines: int = Field(3, ge=1, le=8)

    @field_validator("box")
    @classmethod
    def _box(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = v
        if not all(0.0 <= c <= 1.0 for c in v):
            raise ValueError("box corners are fractions between 0 and 1")
        if x0 >= x1 or y0 >= y1:
            raise ValueError("box is x0, y0, x1, y1 with x0 < x1 and y0 < y1")
        return v


class Regions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headline: Region | None = None
    subline: Region | None = None
    cta: Region | None = None
    legal: Region | None = None
    logo: Region | None = None


class Layout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field("Layout.1", alias="schema")
    name: str = Field(pattern=NAME_RE)
    title: str = Field(min_length=1, max_length=200)
    copy_space: tuple[float, float, float, float] | None = Field(
        None, description="the copy space when the beat gives none: x0, y0, x1, y1 of the safe area")
    type_factor: float = Field(
        1.0, gt=0.2, le=5, description="multiplies the brand's type scale: a 728x90 strip sets its "
                                       "headline at a third of its height, not a seventh")
    omit: list[Literal["subline"]] = Field(
        [], description="copy this layout leaves out on purpose (recorded in the placement)")
    regions: Regions

    @field_validator("copy_space")
    @classmethod
    def _space(cls, v: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if v is not None:
            Region._box(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> Layout:
        if self.regions.headline is None:
            raise ValueError("a layout needs at least a headline region")
        for role in (*TEXT_ROLES, "logo"):
            r = getattr(self.regions, role)
            if r is not None and r.within == "copy" and self.copy_space is None:
                raise ValueError(f"regions.{role} is placed within the copy space, so the layout needs "
                                 "a default copy_space")
            if role in self.omit and r is not None:
                raise ValueError(f"{role} is both omitted and given a region")
        return self


def load_layout(path: str | Path) -> Layout:
    """One layout file; errors name the file and the field."""
    return documents.load(path, Layout, "Layout")


def layouts(folder: Path | None = None) -> dict[str, Layout]:
    """The shipped layouts, then ``folder``'s (a file with a shipped name replaces it)."""
    found: dict[str, Layout] = {}
    pkg = resources.files("studio") / "data" / "layouts"
    paths = [Path(str(e)) for e in sorted(pkg.iterdir(), key=lambda e: e.name)]
    if folder is not None:
        if not Path(folder).is_dir():
            raise StudioError("is not a folder", fix="create it or unset the setting", source=str(folder))
        paths += sorted(Path(folder).iterdir())
    for p in paths:
        if p.suffix in (".yaml", ".yml", ".json"):
            lay = load_layout(p)
            if lay.name != p.stem:
                raise StudioError(f"is named {lay.name!r} inside but {p.stem!r} on disk", field="name",
                                  source=str(p), fix="make the file name and the name field agree")
            found[lay.name] = lay
    return found


def get_layout(name: str, folder: Path | None = None, field: str = "layout") -> Layout:
    known = layouts(folder)
    try:
        return known[name]
    except KeyError:
        raise StudioError(f"unknown layout {name!r}", field=field,
                          fix="use one of: " + ", ".join(sorted(known))) from None


# ---------------------------------------------------------------- contrast (WCAG 2.x)


def hex_rgb(value: str) -> tuple[int, int, int]:
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of 8-bit sRGB values (last axis R, G, B)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722


def contrast(lum_a: np.ndarray | float, lum_b: np.ndarray | float) -> np.ndarray | float:
    hi, lo = np.maximum(lum_a, lum_b), np.minimum(lum_a, lum_b)
    return (hi + 0.05) / (lo + 0.05)


def worst_ratio(text_rgb: tuple[int, int, int], pixels: np.ndarray) -> float:
    """The contrast that 95% of ``pixels`` (N x 3, 8-bit sRGB) reach against the text."""
    ratios = contrast(float(luminance(np.array(text_rgb))), luminance(pixels))
    return float(np.percentile(ratios, WORST_PERCENTILE))


def _sample(picture: np.ndarray, box: Rect) -> np.ndarray:
    x0, y0, x1, y1 = box
    area = picture[y0:y1, x0:x1, :3]
    step = max(1, math.ceil(math.sqrt(area.shape[0] * area.shape[1] / CONTRAST_SAMPLES)))
    return area[::step, ::step].reshape(-1, 3)


def _scrim_for(text_rgb: tuple[int, int, int], pixels: np.ndarray, need: float) -> tuple[tuple[int, int, int], int, float]:
    """The scrim colour (black or white, whichever is further from the text) and the
    least opacity (0-255) at which the composite under the text reaches ``need``; with
    the ratio measured then. Compositing towards the scrim colour only moves each pixel
    away from the text, so the ratio grows with opacity: a bisection finds the least."""
    lt = float(luminance(np.array(text_rgb)))
    colour = (0, 0, 0) if contrast(lt, 0.0) >= contrast(lt, 1.0) else (255, 255, 255)
    base = pixels.astype(np.float64)
    target = np.array(colour, dtype=np.float64)

    def measured(alpha: int) -> float:
        # Pillow's alpha_composite over an opaque picture, rounded to 8 bits.
        mixed = np.round(base + (target - base) * (alpha / 255.0))
        return worst_ratio(text_rgb, mixed)

    lo, hi = 0, 255
    while lo < hi:
        mid = (lo + hi) // 2
        if measured(mid) >= need:
            hi = mid
        else:
            lo = mid + 1
    return colour, lo, measured(lo)


# ---------------------------------------------------------------- placement (plain data)


@dataclasses.dataclass
class Line:
    text: str
    x: int  # pen position: left end of the baseline
    y: int  # baseline
    width: int


@dataclasses.dataclass
class Scrim:
    box: list[int]
    rgba: list[int]
    radius: int


@dataclasses.dataclass
class Button:
    box: list[int]
    colour: str
    radius: int


@dataclasses.dataclass
class TextBox:
    role: str
    field: str
    text: str
    size_px: int
    colour: str
    region: list[int]
    box: list[int]  # the lines' extent (ascender to descender, first to last pixel column)
    lines: list[Line]
    large: bool
    required_ratio: float
    ratio_before: float | None  # measured against the picture (or the button); None: no picture
    ratio_after: float | None
    scrim: Scrim | None = None
    button: Button | None = None


@dataclasses.dataclass
class LogoBox:
    path: str
    sha256: str  # the file drawn, so a record says which logo (and a changed logo re-renders)
    box: list[int]
    clear_box: list[int]  # the logo plus its clear space: no text inside


@dataclasses.dataclass
class Placement:
    layout: str
    channel: str
    width: int
    height: int
    safe_rect: list[int]
    copy_rect: list[int] | None
    font: str
    font_sha256: str
    texts: list[TextBox]
    logo: LogoBox | None
    omitted: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Placement:
        texts = []
        for t in d["texts"]:
            t = dict(t)
            t["lines"] = [Line(**ln) for ln in t["lines"]]
            t["scrim"] = Scrim(**t["scrim"]) if t.get("scrim") else None
            t["button"] = Button(**t["button"]) if t.get("button") else None
            texts.append(TextBox(**t))
        logo = LogoBox(**d["logo"]) if d.get("logo") else None
        return cls(**{**d, "texts": texts, "logo": logo})


# ---------------------------------------------------------------- text setting


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    # The basic layout engine, not Raqm: Raqm is present on some installs and not others,
    # and would change widths (so line breaks) from machine to machine.
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _is_bold(path: str) -> bool:
    style = _font(path, 12).getname()[1] or ""
    return any(w in style.lower() for w in ("bold", "black", "heavy"))


@lru_cache(maxsize=8192)
def _ink(font_path: str, text: str) -> tuple[tuple[int, ...], bytes]:
    """How ``text`` comes out in the font: its box and its pixels."""
    font = _font(font_path, _GLYPH_PROBE_PX)
    box = tuple(int(v) for v in font.getbbox(text))
    im = Image.new("L", (max(1, box[2] - box[0]), max(1, box[3] - box[1])))
    ImageDraw.Draw(im).text((-box[0], -box[1]), text, font=font, fill=255)
    return box, im.tobytes()


def missing_glyphs(text: str, font_path: str) -> str:
    """The characters of ``text`` the font has no glyph for, each once, in order (Chinese
    or Japanese in a Latin font such as DejaVu). FreeType draws those as the font's
    missing-glyph box and Pillow has no per-character query, so each is drawn and compared
    with that box (the check ``timelines.captions.undrawable`` makes for captions)."""
    notdef = _ink(font_path, _NO_GLYPH)
    return "".join(ch for ch in dict.fromkeys(text)
                   if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")
                   and _ink(font_path, ch) == notdef)


def _no_glyphs(role: str, text: str, font_path: str, channel: str) -> StudioError:
    missing = missing_glyphs(text, font_path)
    listed = ", ".join(f"{ch} (U+{ord(ch):04X})" for ch in missing[:8])
    if len(missing) > 8:
        listed += f" and {len(missing) - 8} more"
    family, style = _font(font_path, _GLYPH_PROBE_PX).getname()
    noun = {"cta": "call to action", "legal": "legal line"}.get(role, role)
    cjk = any(textbreak.is_cjk(ch, hangul=True) for ch in missing)
    example = (" (for Chinese, Japanese or Korean: Noto Sans CJK, Debian's fonts-noto-cjk, SIL Open Font "
               "Licence)") if cjk else ""
    return StudioError(
        f"the brand font {family} {style} ({font_path}) has no glyph for {listed} in the {noun} in channel "
        f"{channel}: it would draw empty boxes", field=f"copy.{role}", stage="layout",
        fix=f"give the brand a font that covers them in brand.font.path{example}, with its licence in "
            "brand.font.licence")


def _pieces(text: str) -> list[tuple[str, bool]]:
    """The pieces a line may break between, each with whether it is glued to the one before
    (no space between them: Chinese and Japanese characters). Words, with French
    punctuation («, », !, ?, :, ;) glued to its word by the space that stands between them;
    text written without spaces split between characters (``studio.textbreak``: a closing
    mark or small kana stays with the character before, an opening bracket with the one
    after)."""
    words = [w for w in _BREAK.split(text.strip()) if w]
    # Korean sets spaces between words, which then stay whole; Korean copy run together
    # without any breaks between its syllables.
    hangul = len(words) == 1 and any(unicodedata.name(ch, "").startswith("HANGUL SYLLABLE") for ch in words[0])
    out: list[tuple[str, bool]] = []
    pending_open = ""
    for word in words:
        first, *rest = textbreak.kinsoku(textbreak.split_token(word, hangul=hangul))
        # A token that starts with closing punctuation ("!" in "Vite !", "。" after a space
        # in CJK text, which split_token keeps with the character after it) joins the word
        # before: no line starts with it.
        closing = all(ch in _CLOSING for ch in first) or (
            first[0] in _CLOSING and any(textbreak.is_cjk(ch, hangul=hangul) for ch in first))
        if out and not pending_open and closing:
            out[-1] = (f"{out[-1][0]} {first}", out[-1][1])
        elif not rest and all(ch in _OPENING for ch in first):
            pending_open += first + " "
            continue
        else:
            out.append((pending_open + first, False))
            pending_open = ""
        out.extend((piece, True) for piece in rest)
    if pending_open:
        if out:
            out[-1] = (f"{out[-1][0]} {pending_open.strip()}", out[-1][1])
        else:
            out.append((pending_open.strip(), False))
    return out


def units(text: str) -> list[str]:
    """The pieces a line may break between (see ``_pieces``), without the spacing."""
    return [piece for piece, _ in _pieces(text)]


def _join(line: str, piece: str, glued: bool) -> str:
    return piece if not line else f"{line}{piece}" if glued else f"{line} {piece}"


def _line(pieces: list[tuple[str, bool]], i: int, j: int) -> str:
    """``pieces[i:j]`` as one line of text."""
    line = ""
    for piece, glued in pieces[i:j]:
        line = _join(line, piece, glued)
    return line


def _greedy_starts(pieces: list[tuple[str, bool]], ink_width: Callable[[str], int], width: int,
                   backward: bool = False) -> list[int]:
    """Where each line starts when each is filled as far as it goes: from the first piece
    on (the fewest lines, each line's end as late as it can be), or ``backward`` from the
    last piece (each line's start as early as the lines after it allow). A piece wider than
    ``width`` stays whole on its own line."""
    n = len(pieces)
    starts: list[int] = []
    line = ""
    order = range(n - 1, -1, -1) if backward else range(n)
    for i in order:
        piece, glued = pieces[i]
        if line:
            if backward:  # the space (or none) before the line's first piece
                joined = f"{piece}{line}" if pieces[i + 1][1] else f"{piece} {line}"
            else:
                joined = _join(line, piece, glued)
            if ink_width(joined) <= width:
                line = joined
                continue
            starts.append(i + 1 if backward else i)
        line = piece
    return [0, *sorted(starts)]


def _greedy_lines(pieces: list[tuple[str, bool]], ink_width: Callable[[str], int], width: int) -> list[str]:
    """Each line filled as far as it goes: the fewest lines."""
    starts = _greedy_starts(pieces, ink_width, width)
    return [_line(pieces, i, j) for i, j in zip(starts, [*starts[1:], len(pieces)], strict=True)]


def _balanced_lines(pieces: list[tuple[str, bool]], ink_width: Callable[[str], int], width: int) -> list[str]:
    """The fewest lines, and among those the most even: the least sum of squared slack
    (``width`` less each line's ink width, the last line included, so no word is left
    alone on it). In any breaking into the fewest lines, line k starts no later than
    greedy filling from the front starts it, and no earlier than greedy filling from the
    back does: only the starts between are tried (a few per line, so fitting stays about
    as fast as greedy). Costs are whole pixels, compared exactly, the earlier start kept
    on a tie: the same breaks every time."""
    n = len(pieces)
    ahead = _greedy_starts(pieces, ink_width, width)
    behind = _greedy_starts(pieces, ink_width, width, backward=True)
    greedy = [_line(pieces, i, j) for i, j in zip(ahead, [*ahead[1:], n], strict=True)]
    if len(behind) != len(ahead) or any(b > a for a, b in zip(ahead, behind, strict=True)):
        return greedy  # widths that shrink as text is added (kerning): keep greedy's lines
    spans = [range(b, a + 1) for a, b in zip(ahead, behind, strict=True)] + [range(n, n + 1)]
    # best[k][j]: (cost, start of line k - 1) for lines 0..k-1 set from pieces[:j]
    best: list[dict[int, tuple[int, int]]] = [{0: (0, 0)}]
    for k in range(1, len(spans)):
        row: dict[int, tuple[int, int]] = {}
        for j in spans[k]:
            for i, (cost, _) in best[k - 1].items():
                if i >= j:
                    continue
                w = ink_width(_line(pieces, i, j))
                if w > width and j - i > 1:
                    continue
                cand = (cost + max(width - w, 0) ** 2, i)
                if j not in row or cand[0] < row[j][0]:
                    row[j] = cand
        best.append(row)
    if n not in best[-1]:
        return greedy
    starts = [n]
    for k in range(len(spans) - 1, 0, -1):
        starts.append(best[k][starts[-1]][1])
    starts.reverse()
    return [_line(pieces, i, j) for i, j in itertools.pairwise(starts)]


@dataclasses.dataclass
class _Set:
    lines: list[str]
    widths: list[int]
    lefts: list[int]  # ink left of each line from its pen position (<= 0 moves the pen right)
    height: int  # first line's top to last line's bottom
    top: int  # baseline of line one below the block's top
    pitch: int
    width: int
    widest_unit: tuple[str, int]


def _set_text(text: str, font_path: str, size: int, width: int, *, balanced: bool = False) -> _Set:
    """Line breaking at ``size`` into ``width`` px: greedy (each line as full as it goes),
    or ``balanced`` (as few lines, as even as possible). A piece wider than ``width`` stays
    whole on its own line: the caller sees it in ``widest_unit``."""
    font = _font(font_path, size)
    ascent, descent = font.getmetrics()

    def extent(s: str) -> tuple[int, int, int, int]:
        return font.getbbox(s, anchor="ls")

    def ink_width(s: str) -> int:
        left, _, right, _ = extent(s)
        return right - min(left, 0)

    pieces = _pieces(text)
    lines = (_balanced_lines if balanced else _greedy_lines)(pieces, ink_width, width)
    boxes = [extent(s) for s in lines]
    widest = max((piece for piece, _ in pieces), key=ink_width)
    top = max(ascent, *(-b[1] for b in boxes))
    bottom = max(descent, *(b[3] for b in boxes))
    pitch = ascent + descent
    return _Set(lines=lines, widths=[b[2] - min(b[0], 0) for b in boxes], lefts=[min(b[0], 0) for b in boxes],
                height=top + (len(lines) - 1) * pitch + bottom, top=top, pitch=pitch,
                width=max(b[2] - min(b[0], 0) for b in boxes), widest_unit=(widest, ink_width(widest)))


def _fits(s: _Set, width: int, height: int, max_lines: int) -> bool:
    return s.width <= width and s.height <= height and len(s.lines) <= max_lines


def _sizes(scale: TypeRange, safe_h: int, factor: float, floor_px: int) -> tuple[int, int]:
    lo = max(floor_px, math.ceil(scale.min * factor * safe_h))
    hi = max(lo, math.floor(scale.max * factor * safe_h))
    return lo, hi


def _region_px(region: Region, frame: Rect) -> Rect:
    fx0, fy0, fx1, fy1 = frame
    w, h = fx1 - fx0, fy1 - fy0
    x0, y0, x1, y1 = region.box
    return (fx0 + round(x0 * w), fy0 + round(y0 * h), fx0 + round(x1 * w), fy0 + round(y1 * h))


def _intersect(a: Rect, b: Rect) -> Rect | None:
    r = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return r if r[0] < r[2] and r[1] < r[3] else None


def _avoid(region: Rect, keep_out: Rect | None) -> Rect:
    """The largest part of ``region`` on one side of ``keep_out`` (the logo's clear space)."""
    if keep_out is None or _intersect(region, keep_out) is None:
        return region
    rx0, ry0, rx1, ry1 = region
    cx0, cy0, cx1, cy1 = keep_out
    parts = [(rx0, ry0, cx0, ry1), (cx1, ry0, rx1, ry1), (rx0, ry0, rx1, cy0), (rx0, cy1, rx1, ry1)]
    parts = [p for p in parts if p[2] > p[0] and p[3] > p[1]]
    if not parts:
        return (rx0, ry0, rx0, ry0)
    return max(parts, key=lambda p: (p[2] - p[0]) * (p[3] - p[1]))


def _overrun(role: str, layout: Layout, channel: str, need: int, have: int, detail: str) -> StudioError:
    pct = math.ceil((need / max(have, 1) - 1) * 100)
    noun = {"cta": "call to action", "legal": "legal line"}.get(role, role)
    return StudioError(
        f"does not fit layout {layout.name} in channel {channel} even at the type scale's smallest "
        f"size: needs {need} px, the region has {have} px: {pct}% too long ({detail})",
        field=f"copy.{role}", stage="layout",
        fix=f"shorten the {noun} for {channel} or pick another layout")


def _place_text(role: str, text: str, region: Rect, reg: Region, layout: Layout, channel: str, font_path: str,
                sizes: tuple[int, int], pad: tuple[float, float]) -> tuple[int, _Set, Rect]:
    """The largest size in ``sizes`` at which ``text`` fits ``region`` (less ``pad`` x/y of
    the size on each side, a button's), its lines, and the block's rectangle. A call to
    action stays on one line at the largest size where it can; headlines and sublines are
    set in even lines at the size found."""
    rw, rh = region[2] - region[0], region[3] - region[1]

    def room(size: int) -> tuple[int, int]:
        return rw - 2 * round(pad[0] * size), rh - 2 * round(pad[1] * size)

    def attempt(size: int, max_lines: int) -> _Set | None:
        w, h = room(size)
        if w <= 0 or h <= 0:
            return None
        s = _set_text(text, font_path, size, w)
        return s if _fits(s, w, h, max_lines) else None

    lo, hi = sizes
    best: tuple[int, _Set] | None = None
    # Larger text wraps into more lines, so fitting is nearly but not strictly monotonic:
    # bisect, then the found size is checked for real (attempt) before it is used. The
    # size is found with greedy breaking, which gives the fewest lines: even lines come as
    # many, so they fit wherever greedy ones do, and are worked out once, at that size.
    for limit in ((1, reg.max_lines) if role == "cta" and reg.max_lines > 1 else (reg.max_lines,)):
        a, b = lo, hi
        while a <= b:
            mid = (a + b) // 2
            s = attempt(mid, limit)
            if s is not None:
                best = (mid, s)
                a = mid + 1
            else:
                b = mid - 1
        if best is not None:
            break
    if best is None:
        w, h = room(lo)
        s = _set_text(text, font_path, lo, max(w, 1))
        unit, unit_w = s.widest_unit
        if unit_w > w:
            raise _overrun(role, layout, channel, unit_w + (rw - w), rw,
                           f"across: the word {unit!r} at {lo} px is wider than the region and is never broken")
        # Height of max_lines lines: the region may be taller than the layout lets the text run.
        bottom = s.height - s.top - (len(s.lines) - 1) * s.pitch
        allowed = min(h, s.top + (reg.max_lines - 1) * s.pitch + bottom)
        limit = f", at most {reg.max_lines} line{'s' if reg.max_lines > 1 else ''}" if allowed < h else ""
        raise _overrun(role, layout, channel, s.height + (rh - h), allowed + (rh - h),
                       f"high: {len(s.lines)} lines at {lo} px{limit}")
    size, s = best
    w, h = room(size)
    if role in _BALANCED and len(s.lines) > 1:
        even = _set_text(text, font_path, size, w, balanced=True)
        if _fits(even, w, h, len(s.lines)):  # never more lines than greedy's (so it fits)
            s = even
    px, py = round(pad[0] * size), round(pad[1] * size)
    inner = (region[0] + px, region[1] + py, region[2] - px, region[3] - py)
    bw = s.width
    x0 = {"left": inner[0], "centre": inner[0] + (w - bw) // 2, "right": inner[2] - bw}[reg.align]
    y0 = {"top": inner[1], "middle": inner[1] + (h - s.height) // 2, "bottom": inner[3] - s.height}[reg.valign]
    return size, s, (x0, y0, x0 + bw, y0 + s.height)


def _lines(s: _Set, block: Rect, align: str) -> list[Line]:
    out = []
    for i, (text, width, left) in enumerate(zip(s.lines, s.widths, s.lefts, strict=True)):
        lx = {"left": block[0], "centre": block[0] + (s.width - width) // 2, "right": block[2] - width}[align]
        out.append(Line(text=text, x=lx - left, y=block[1] + s.top + i * s.pitch, width=width))
    return out


# ---------------------------------------------------------------- fit


def fit(layout: Layout, copy: Copy, brand: BrandKit, width: int, height: int, safe_rect: Rect,
        copy_space: Rect | None = None, *, channel: str, background: Image.Image | None = None,
        style_file: Path | None = None) -> Placement:
    """Place ``copy`` and the brand's logo with ``layout`` in a ``width`` x ``height``
    frame. ``safe_rect`` is the channel's safe area and ``copy_space`` the beat's, both in
    frame pixels (``ChannelSpec.safe_rect()``; the layout's default copy space when None).
    ``background`` is the picture the layer goes over: contrast is measured on it and
    scrims added where it fails (without it nothing is measured). Raises StudioError
    naming the field, the channel and the overrun when the copy cannot fit."""
    sx0, sy0, sx1, sy1 = safe_rect
    if not (0 <= sx0 < sx1 <= width and 0 <= sy0 < sy1 <= height):
        raise ValueError(f"safe rectangle {safe_rect} is not inside {width}x{height}")
    safe: Rect = (sx0, sy0, sx1, sy1)
    sh = sy1 - sy0
    copy_rect: Rect | None = None
    if copy_space is not None:
        copy_rect = _intersect(tuple(int(v) for v in copy_space), safe)  # type: ignore[arg-type]
        if copy_rect is None:
            raise StudioError(f"the copy space {tuple(copy_space)} lies outside the safe area {safe} of {channel}",
                              field="copy_space", stage="layout", fix="move the copy space inside the picture")
    elif layout.copy_space is not None:
        copy_rect = _region_px(Region(box=layout.copy_space), safe)

    def frame(reg: Region) -> Rect:
        return copy_rect if reg.within == "copy" and copy_rect is not None else safe

    font_path = str(brand.font_file(style_file))
    picture = None
    if background is not None:
        bg = background.convert("RGB")
        if bg.size != (width, height):
            bg = bg.resize((width, height), Image.Resampling.LANCZOS)
        picture = np.asarray(bg)

    # The logo first: its clear space is taken out of the text regions.
    logo_box: LogoBox | None = None
    keep_out: Rect | None = None
    logo_path = brand.logo_file(style_file)
    reg = layout.regions.logo
    if logo_path is not None and reg is not None:
        region = _region_px(reg, frame(reg))
        lw, lh = logo_size(logo_path)  # an SVG's intrinsic size, a PNG's pixels
        c = brand.logo_clear_space
        rw, rh = region[2] - region[0], region[3] - region[1]
        # The logo plus its clear space on every side fits the region.
        h = math.floor(min(rh / (1 + 2 * c), rw / (lw / lh + 2 * c)))
        if h < brand.logo_min_height_px:
            raise StudioError(
                f"the logo region of layout {layout.name} in channel {channel} leaves the logo {h} px high "
                f"(with its clear space); the brand's minimum is {brand.logo_min_height_px} px",
                field="brand.logo", stage="layout",
                fix=f"pick another layout for {channel}, or lower brand.logo_min_height_px / logo_clear_space")
        w = max(1, round(h * lw / lh))
        clear = round(c * h)
        inner = (region[0] + clear, region[1] + clear, region[2] - clear, region[3] - clear)
        x = {"left": inner[0], "centre": inner[0] + (inner[2] - inner[0] - w) // 2, "right": inner[2] - w}[reg.align]
        y = {"top": inner[1], "middle": inner[1] + (inner[3] - inner[1] - h) // 2, "bottom": inner[3] - h}[reg.valign]
        keep_out = (x - clear, y - clear, x + w + clear, y + h + clear)
        logo_box = LogoBox(path=str(logo_path), sha256=sha256_file(logo_path), box=[x, y, x + w, y + h],
                           clear_box=list(keep_out))

    bold = _is_bold(font_path)
    scale = brand.type_scale
    colours = brand.colours
    texts: list[TextBox] = []
    omitted: list[str] = []
    for role in TEXT_ROLES:
        text = getattr(copy, role)
        reg = getattr(layout.regions, role)
        if text is None:
            continue
        if reg is None:
            if role in layout.omit:
                omitted.append(role)
                continue
            raise StudioError(f"layout {layout.name} has no place for the {role} in channel {channel}",
                              field=f"copy.{role}", stage="layout",
                              fix=f"pick a layout with a {role} region for {channel}, or leave the {role} out")
        region = _avoid(_region_px(reg, frame(reg)), keep_out)
        if region[2] <= region[0] or region[3] <= region[1]:
            raise StudioError(f"the logo's clear space covers the whole {role} region of layout {layout.name} "
                              f"in channel {channel}", field=f"copy.{role}", stage="layout",
                              fix="pick another layout, or lower brand.logo_clear_space")
        # Before any measuring: widths of missing-glyph boxes mean nothing.
        if missing_glyphs(text, font_path):
            raise _no_glyphs(role, text, font_path, channel)
        sizes = _sizes(getattr(scale, role), sh, layout.type_factor, scale.min_px)
        # A button's padding; other text keeps a scrim's margin from a side of the safe area
        # it would touch (a scrim stays inside the safe area: text on its edge would touch
        # the scrim's edge, and read worse for it).
        edge = region[0] <= safe[0] or region[2] >= safe[2]
        pad = (BUTTON_PAD_X, BUTTON_PAD_Y) if role == "cta" else (SCRIM_PAD if edge else 0.0, 0.0)
        size, s, block = _place_text(role, text, region, reg, layout, channel, font_path, sizes, pad)
        large = size >= (LARGE_BOLD_PX if bold else LARGE_PX)
        need = AA_LARGE if large else AA_BODY
        box = TextBox(role=role, field=f"copy.{role}", text=text, size_px=size,
                      colour=colours.cta_foreground if role == "cta" else colours.text,
                      region=list(region), box=list(block), lines=_lines(s, block, reg.align), large=large,
                      required_ratio=need, ratio_before=None, ratio_after=None)
        text_rgb = hex_rgb(box.colour)
        if role == "cta":
            px, py = round(BUTTON_PAD_X * size), round(BUTTON_PAD_Y * size)
            button = (block[0] - px, block[1] - py, block[2] + px, block[3] + py)
            box.button = Button(box=list(button), colour=colours.cta_background, radius=round(BUTTON_RADIUS * size))
            ratio = float(contrast(float(luminance(np.array(text_rgb))),
                                   float(luminance(np.array(hex_rgb(colours.cta_background))))))
            if ratio < need:
                raise StudioError(
                    f"the call to action's text on its button has {ratio:.2f}:1 contrast at {size} px in "
                    f"{channel}; WCAG AA needs {need}:1", field="brand.colours.cta_foreground", stage="layout",
                    fix="pick cta_foreground and cta_background further apart in lightness")
            box.ratio_before = box.ratio_after = round(ratio, 3)
        elif picture is not None:
            before = worst_ratio(text_rgb, _sample(picture, block))
            box.ratio_before = box.ratio_after = round(before, 3)
            if before < need:
                p = round(SCRIM_PAD * size)
                scrim = _intersect((block[0] - p, block[1] - p, block[2] + p, block[3] + p), safe)
                assert scrim is not None  # the block lies inside the safe area
                colour, alpha, after = _scrim_for(text_rgb, _sample(picture, block), need + SCRIM_MARGIN)
                box.scrim = Scrim(box=list(scrim), rgba=[*colour, alpha], radius=round(SCRIM_RADIUS * size))
                box.ratio_after = round(after, 3)
        texts.append(box)

    # Regions from the safe area and from the copy space may meet: text never overlaps text.
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            outer_a = a.button.box if a.button else a.box
            outer_b = b.button.box if b.button else b.box
            if _intersect(tuple(outer_a), tuple(outer_b)) is not None:  # type: ignore[arg-type]
                raise StudioError(f"layout {layout.name} puts the {a.role} and the {b.role} on top of each other "
                                  f"in channel {channel}", field=f"copy.{b.role}", stage="layout",
                                  fix="pick another layout or copy space for this channel")
    return Placement(layout=layout.name, channel=channel, width=width, height=height, safe_rect=list(safe),
                     copy_rect=list(copy_rect) if copy_rect else None, font=font_path,
                     font_sha256=sha256_file(font_path), texts=texts,
                     logo=logo_box, omitted=omitted)


# ---------------------------------------------------------------- render


def _paste_shape(layer: Image.Image, box: list[int], rgba: tuple[int, int, int, int], radius: int) -> None:
    x0, y0, x1, y1 = box
    shape = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    ImageDraw.Draw(shape).rounded_rectangle((0, 0, x1 - x0 - 1, y1 - y0 - 1), radius=radius, fill=rgba)
    layer.alpha_composite(shape, dest=(x0, y0))


def _paste_scrims(layer: Image.Image, scrims: list[Scrim]) -> None:
    """Scrims of one colour as one shape whose opacity is each pixel's strongest: where
    a headline's and a subline's scrims meet, the overlap is not darker than either (each
    text still has at least the opacity its contrast needed)."""
    by_colour: dict[tuple[int, ...], Image.Image] = {}
    for sc in scrims:
        mask = by_colour.setdefault(tuple(sc.rgba[:3]), Image.new("L", layer.size, 0))
        one = Image.new("L", layer.size, 0)
        x0, y0, x1, y1 = sc.box
        ImageDraw.Draw(one).rounded_rectangle((x0, y0, x1 - 1, y1 - 1), radius=sc.radius, fill=sc.rgba[3])
        by_colour[tuple(sc.rgba[:3])] = ImageChops.lighter(mask, one)
    for colour, mask in sorted(by_colour.items()):
        shape = Image.new("RGBA", layer.size, (*colour, 0))
        shape.putalpha(mask)
        layer.alpha_composite(shape)


def render(placement: Placement, background: Image.Image | None = None,
           size: tuple[int, int] | None = None) -> Image.Image:
    """The graphics layer (RGBA, transparent where nothing is drawn): scrims, the call to
    action's button, the logo and the text in the brand font. With ``background`` the
    layer comes composited over it. ``size`` must be the placement's (it was fitted there)."""
    want = (placement.width, placement.height)
    if size is not None and tuple(size) != want:
        raise ValueError(f"the placement was fitted for {want[0]}x{want[1]}, not {size[0]}x{size[1]}: fit again")
    layer = Image.new("RGBA", want, (0, 0, 0, 0))
    _paste_scrims(layer, [t.scrim for t in placement.texts if t.scrim is not None])
    for t in placement.texts:
        if t.button is not None:
            _paste_shape(layer, t.button.box, (*hex_rgb(t.button.colour), 255), t.button.radius)
    if placement.logo is not None:
        x0, y0, x1, y1 = placement.logo.box
        # an SVG drawn at the placed size itself, a PNG resized to it
        logo = logo_image(Path(placement.logo.path), x1 - x0, y1 - y0)
        layer.alpha_composite(logo, dest=(x0, y0))
    for t in placement.texts:
        font = _font(placement.font, t.size_px)
        x0, y0, x1, y1 = t.box
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(mask)
        for ln in t.lines:
            draw.text((ln.x - x0, ln.y - y0), ln.text, font=font, fill=255, anchor="ls")
        ink = Image.new("RGBA", mask.size, (*hex_rgb(t.colour), 0))
        ink.putalpha(mask)
        layer.alpha_composite(ink, dest=(x0, y0))
    if background is not None:
        return composite(background, layer)
    return layer


def composite(background: Image.Image, layer: Image.Image) -> Image.Image:
    """``layer`` over ``background`` (resized to the layer's size if it differs), RGBA."""
    bg = background.convert("RGBA")
    if bg.size != layer.size:
        bg = bg.resize(layer.size, Image.Resampling.LANCZOS)
    return Image.alpha_composite(bg, layer)
