"""Captions from the voice-over: cues, SRT and WebVTT files, reading-speed checks, and
burn-in overlays that stay inside the channel's safe area.

Cue times come from the voice lines as the edit places them, sentence by sentence (Piper
renders one chunk per sentence, so a sentence's start and end are real, not estimated).
A sentence longer than the spec allows on screen (``max_lines`` × ``max_chars_per_line``)
is split at a clause or word boundary, its time shared in proportion to characters.

Burn-in does not depend on libass or system fonts being configured: each cue is drawn
once with Pillow (DejaVu Sans Bold when present, Pillow's bundled font otherwise) into a
PNG sized to its text, and the conform composites it in its one encode pass
(``overlay`` enabled between the cue's times). Every pixel of the PNG lies inside the
safe rectangle; its bounding box is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from studio.errors import StageError
from studio.specs import CaptionRules, ChannelSpec
from studio.store import atomic_output, atomic_write_text

CODE_VERSION = "captions.1"
FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                   "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf")
MIN_FONT_PX = 14
BOX_ALPHA = 160  # the caption's backing box: legible on any picture


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Line:
    beat: str
    text: str
    start: float
    end: float
    sentences: tuple[Sentence, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Line:
        sents = tuple(Sentence(str(s["text"]), float(s["start"]), float(s["end"]))
                      for s in d.get("sentences") or [])
        if not sents:
            sents = (Sentence(str(d["text"]), float(d["start"]), float(d["end"])),)
        return cls(str(d["beat"]), str(d["text"]), float(d["start"]), float(d["end"]), sents)


@dataclass(frozen=True)
class Cue:
    index: int
    start: float
    end: float
    lines: tuple[str, ...]
    beat: str

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def cps(self) -> float:
        return len(self.text) / max(self.end - self.start, 1e-6)


@dataclass(frozen=True)
class Overlay:
    path: Path
    x: int
    y: int
    start: float
    end: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the visible pixels, in frame pixels


# ---------------------------------------------------------------------------- cutting


def _break_lines(words: list[str], width: int, beat: str) -> list[str]:
    """Greedy lines of at most ``width`` characters, never breaking a word."""
    lines: list[str] = []
    cur = ""
    for w in words:
        if len(w) > width:
            raise StageError(f"the word {w!r} is longer than a caption line ({width} characters)",
                             stage="captions", shot=beat, field="narration",
                             fix="shorten or hyphenate the word, or raise captions.max_chars_per_line")
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= width:
            cur += " " + w
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines


def _balance(text: str, width: int, beat: str) -> tuple[str, ...]:
    """Two lines of similar length (the break that minimises the longer line), or one."""
    words = text.split()
    if len(text) <= width:
        return (text,)
    best: tuple[int, tuple[str, ...]] | None = None
    for i in range(1, len(words)):
        a, b = " ".join(words[:i]), " ".join(words[i:])
        if len(a) <= width and len(b) <= width:
            score = max(len(a), len(b))
            if best is None or score < best[0]:
                best = (score, (a, b))
    if best is None:
        return tuple(_break_lines(words, width, beat))
    return best[1]


def _chunks(text: str, limit: int, width: int, beat: str) -> list[str]:
    """Split a sentence into pieces of at most ``limit`` characters that each fit the
    line layout: at clause punctuation when possible, else at word boundaries."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text]
    clauses = [c for c in re.split(r"(?<=[,;:—–])\s+", text) if c]
    pieces: list[str] = []
    cur = ""
    for clause in clauses:
        for word in clause.split():
            _break_lines([word], width, beat)  # a word longer than a line is an error
        cand = f"{cur} {clause}".strip()
        if len(cand) <= limit:
            cur = cand
            continue
        if cur:
            pieces.append(cur)
        cur = ""
        # the clause alone may be too long: by words
        for word in clause.split():
            cand = f"{cur} {word}".strip()
            if len(cand) <= limit:
                cur = cand
            else:
                pieces.append(cur)
                cur = word
    if cur:
        pieces.append(cur)
    return pieces


def build_cues(lines: list[Line], rules: CaptionRules, *, total: float) -> list[Cue]:
    """One cue per sentence (split when too long), times from the voice; no overlaps, none
    past ``total``; a cue shorter than ``rules.min_duration`` is held into the following
    silence where there is room."""
    width, limit = rules.max_chars_per_line, rules.max_chars_per_line * rules.max_lines
    raw: list[tuple[float, float, tuple[str, ...], str]] = []
    for line in sorted(lines, key=lambda x: x.start):
        for s in line.sentences:
            pieces = _chunks(s.text, limit, width, line.beat)
            n = sum(len(p) for p in pieces)
            t = s.start
            for p in pieces:
                d = (s.end - s.start) * len(p) / n
                layout = _balance(p, width, line.beat)
                if len(layout) > rules.max_lines:
                    raise StageError(f"caption {p[:30]!r}... needs {len(layout)} lines; the spec allows "
                                     f"{rules.max_lines}", stage="captions", shot=line.beat,
                                     field="captions.max_lines", fix="shorten the narration")
                raw.append((t, t + d, layout, line.beat))
                t += d
    cues: list[Cue] = []
    for i, (a, b, layout, beat) in enumerate(raw):
        nxt = raw[i + 1][0] if i + 1 < len(raw) else total
        a = max(a, cues[-1].end if cues else 0.0)
        b = min(b, nxt, total)
        if b - a < rules.min_duration:
            b = min(a + rules.min_duration, nxt, total)
        if b <= a:
            continue
        cues.append(Cue(len(cues) + 1, round(a, 3), round(b, 3), layout, beat))
    return cues


def check_reading(cues: list[Cue], rules: CaptionRules, spec_name: str, *, strict: bool = False) -> list[str]:
    """Warnings for cues read faster than the spec allows (or a StageError when strict)."""
    out = []
    for c in cues:
        if c.cps > rules.max_cps + 1e-6:
            shown = c.text if len(c.text) <= 24 else c.text[:21] + "..."
            msg = (f"{spec_name}: beat {c.beat}, caption {c.index} {shown!r} reads at {c.cps:.1f} "
                   f"characters/s, over the {rules.max_cps:g} allowed: shorten the narration or "
                   "lengthen the beat")
            if strict:
                raise StageError(msg, stage="captions", shot=c.beat, field=spec_name,
                                 fix="shorten the narration or lengthen the beat")
            out.append(msg)
    return out


# ---------------------------------------------------------------------------- files


def _ts(t: float, sep: str) -> str:
    ms = round(t * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_srt(cues: list[Cue], path: Path) -> None:
    blocks = [f"{c.index}\n{_ts(c.start, ',')} --> {_ts(c.end, ',')}\n" + "\n".join(c.lines) for c in cues]
    atomic_write_text(path, "\n\n".join(blocks) + "\n")


def write_vtt(cues: list[Cue], path: Path, *, spec: ChannelSpec | None = None) -> None:
    """WebVTT; with ``spec``, cues sit at the bottom of its safe area (``line`` as a
    percentage of the frame height, ``position`` centred, ``size`` the safe width)."""
    settings = ""
    if spec is not None:
        sa = spec.safe_area
        line = round(100 * (1 - sa.bottom), 1)
        size = round(100 * (1 - sa.left - sa.right), 1)
        pos = round(100 * (sa.left + (1 - sa.left - sa.right) / 2), 1)
        settings = f" line:{line:g}% position:{pos:g}% size:{size:g}% align:center"
    blocks = [f"{c.index}\n{_ts(c.start, '.')} --> {_ts(c.end, '.')}{settings}\n" + "\n".join(c.lines)
              for c in cues]
    atomic_write_text(path, "WEBVTT\n\n" + "\n\n".join(blocks) + "\n")


# ---------------------------------------------------------------------------- burn-in


def _font(px: int, font_path: str | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for p in ([font_path] if font_path else []) + list(FONT_CANDIDATES):
        if p and Path(p).is_file():
            return ImageFont.truetype(p, px)
    return ImageFont.load_default(size=px)


def _layout(cue: Cue, px: int, font_path: str | None) -> tuple[Any, list[tuple[int, int, int, int]], int, int]:
    font = _font(px, font_path)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    boxes = [probe.textbbox((0, 0), ln, font=font, stroke_width=max(1, px // 12)) for ln in cue.lines]
    pad = max(4, px // 3)
    lead = round(px * 1.25)
    w = max(b[2] - b[0] for b in boxes) + 2 * pad
    h = lead * (len(cue.lines) - 1) + (boxes[-1][3] - boxes[-1][1]) + 2 * pad
    return font, boxes, w, h


def render_overlays(cues: list[Cue], spec: ChannelSpec, out_dir: Path, *,
                    font_path: str | None = None) -> list[Overlay]:
    """One RGBA PNG per cue: white text with an outline on a translucent box, centred
    horizontally in the safe area, its bottom on the safe area's bottom edge."""
    x0, y0, x1, y1 = spec.safe_area.rect(spec.width, spec.height)
    safe_w, safe_h = x1 - x0, y1 - y0
    out: list[Overlay] = []
    for cue in cues:
        px = max(MIN_FONT_PX, round(spec.captions.font_size * spec.height))
        while True:
            font, boxes, w, h = _layout(cue, px, font_path)
            if w <= safe_w and h <= safe_h:
                break
            if px <= MIN_FONT_PX:
                raise StageError(f"caption {cue.index} ({cue.text[:30]!r}) does not fit the safe area "
                                 f"({safe_w}×{safe_h} px) even at {px} px", stage="captions", shot=cue.beat,
                                 field=spec.name, fix="lower captions.max_chars_per_line or font_size in the spec")
            px -= 1
        img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=max(2, px // 4), fill=(0, 0, 0, BOX_ALPHA))
        pad = max(4, px // 3)
        lead = round(px * 1.25)
        for i, (ln, b) in enumerate(zip(cue.lines, boxes, strict=True)):
            lw = b[2] - b[0]
            draw.text(((w - lw) // 2 - b[0], pad + i * lead - b[1]), ln, font=font, fill=(255, 255, 255, 255),
                      stroke_width=max(1, px // 12), stroke_fill=(0, 0, 0, 255))
        x = x0 + (safe_w - w) // 2
        y = y1 - h
        bbox = img.getbbox() or (0, 0, w, h)
        path = out_dir / f"cue{cue.index:03d}.png"
        with atomic_output(path) as tmp:
            img.save(tmp, format="PNG")
        out.append(Overlay(path, x, y, cue.start, cue.end,
                           (x + bbox[0], y + bbox[1], x + bbox[2], y + bbox[3])))
    return out


def burn_in(video: Any, overlays: list[Overlay]) -> Any:
    """Composite the overlays onto a typed-ffmpeg video stream, each between its times."""
    import ffmpeg

    for ov in overlays:
        img = ffmpeg.input(str(ov.path)).video
        video = video.overlay(img, x=str(ov.x), y=str(ov.y), eof_action="repeat",
                              enable=f"between(t,{ov.start:.4f},{ov.end:.4f})")
    return video


# ---------------------------------------------------------------------------- stage


def captions_stage(ctx: Any) -> None:
    """Stage ``captions``: SRT and WebVTT for every video deliverable, cut from the voice
    lines where the edit has them; reading speed checked against each spec; overlays
    rendered for the specs that burn captions in (the conform composites them in its one
    encode pass)."""
    placed = ctx.sound.get("placed_lines", [])
    if not ctx.brief.captions or not placed:
        return
    lines = [Line.from_dict(x) for x in placed]
    total = float(ctx.sound.get("mix", {}).get("duration") or max(x["end"] for x in placed))
    for spec in ctx.video_specs:
        cues = build_cues(lines, spec.captions, total=total)
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
            "boxes": [list(o.box) for o in overlays], "overlays": overlays,
            "code_version": CODE_VERSION,
        }
        ctx.reporter.advance("captions", spec=spec.name)
