"""Supers and the end card of every video deliverable, as overlay images the conform
burns in during its one encode pass (issue 13).

Each beat's ``supers`` is set with the channel's supers layout (``studio.copyfit``) over
the beat's own picture: frames of the edit where the super shows, reframed to the
channel, so contrast is measured and scrims added on what the text really goes over.
A super is shown from its beat's start for the beat and at least its reading time
(``reading_seconds``), running on into the next beat when the beat is short, never into
the next super or the end card; the legal line at least the channel's
``legal_min_seconds``. The end card covers the last ``end_card.duration`` seconds: the
brand's primary colour with the copy and logo, or the copy over the picture. A brand kit
with a ``logo_bug`` puts its logo small in a corner of the safe area from the first frame
to the end card (hidden while a super it would touch shows: copy wins).

The images are cropped to what they draw, written once under their sha256 (the conform's
segment keys hash them: a changed super re-encodes only the segments it shows in), and
fade in and out in the conform's graph (``timelines.conform.overlay_motion``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
from PIL import Image

from studio import copyfit, layout
from studio.brand import BrandKit, Copy, logo_image, logo_size
from studio.brief import Brief
from studio.errors import StageError, StudioError
from studio.framing import crop_box
from studio.specs import Catalog, ChannelSpec
from studio.store import atomic_write_bytes, sha256_file
from timelines.conform import ConformClip

CODE_VERSION = "graphics.2"  # 2: supers above the highest a caption can reach
STAGE = "conform"

# Reading time: words at 3 a second (a common subtitling and broadcast rule of thumb for
# on-screen text) plus half a second to find the text once it appears.
WORDS_PER_SECOND = 3.0
READING_LEAD = 0.5
SUPER_FADE = 0.25  # s, in and out
CARD_FADE = 0.5  # s, in (the spot ends on it: no fade out)
MOTION = "fade"  # the end card's (the spot ends on it); supers and the logo bug: the brand's motion
CONTRAST_FRAMES = 3  # picture frames a super's contrast is measured on: its start, middle, end


def reading_seconds(copy: Copy) -> float:
    """How long ``copy`` must stay on screen to be read: every text it shows."""
    words = sum(len(t.split()) for t in (copy.headline, copy.subline, copy.cta, copy.legal) if t)
    return words / WORDS_PER_SECOND + READING_LEAD


def _need(copy: Copy, legal_min: float | None) -> tuple[float, str]:
    need = reading_seconds(copy)
    why = f"{need:.1f} s to read"
    if copy.legal and legal_min is not None and legal_min > need:
        need, why = legal_min, f"{legal_min:.1f} s for its legal line (the channel's legal_min_seconds)"
    return need, why


@dataclass(frozen=True)
class Window:
    """Where beat ``index``'s super is on screen, in seconds of the edit."""

    index: int
    beat: str
    start: float
    end: float


# A super cut shorter than its reading time by an editor is still shown (with a warning)
# when it has at least this long; under it, it would only flash, so it is left out.
MIN_SHOWN = 0.5


def super_windows(brief: Brief, beats: Sequence[tuple[str, float, float]], total: float,
                  legal_min: float | None = None, channel: str | None = None
                  ) -> tuple[list[Window], list[StudioError]]:
    """Each super's time on screen, from ``beats`` ((id, start, end) in the edit, seconds)
    and the spot's ``total`` length; a super that cannot be held long enough is a problem
    naming ``beats[i].supers``. A super holds from its beat's start to the later of its
    beat's end and its reading time (every locale's), but stops at the next super and at
    the end card."""
    where = f" in {channel}" if channel else ""
    card = brief.end_card.duration if brief.end_card is not None else 0.0
    card_start = max(0.0, total - card)
    times = {b: (s, e) for b, s, e in beats}
    # In the edit's order: an editor may have moved beats, and "the next super" is the one
    # that follows on screen, not in the brief.
    shown = sorted(((i, b) for i, b in enumerate(brief.beats) if b.supers is not None and b.id in times),
                   key=lambda ib: times[ib[1].id][0])
    windows: list[Window] = []
    problems: list[StudioError] = []
    for n, (i, beat) in enumerate(shown):
        assert beat.supers is not None
        start, end = times[beat.id]
        limit, before = card_start, "the end card" if brief.end_card is not None else "the spot's end"
        if n + 1 < len(shown):
            nxt_i, nxt = shown[n + 1]
            if times[nxt.id][0] < limit:
                limit, before = times[nxt.id][0], f"the next super, beats[{nxt_i}] ({nxt.id}),"
        need, why = max((_need(beat.supers.for_locale(loc), legal_min) for loc in brief.all_locales),
                        key=lambda x: x[0])
        end = min(max(end, start + need), limit)
        if end - start + 1e-6 < need:
            words = math.floor((limit - start - READING_LEAD) * WORDS_PER_SECOND)
            # Under two words there is no super to shorten to: say what makes room instead.
            fix = (f"shorten the supers to about {words} words, lengthen the beat, or move some of the copy to "
                   "another beat" if words >= 2 else
                   f"lengthen the beat, or move the copy to another beat ({before.rstrip(',')} leaves no time to "
                   "read it)")
            problems.append(StudioError(
                f"needs {why}{where} but has {max(0.0, end - start):.1f} s between its beat's start at "
                f"{start:.1f} s and {before} at {limit:.1f} s",
                field=f"beats[{i}].supers", shot=beat.id,
                fix=fix))
            if end - start < MIN_SHOWN:
                continue
        windows.append(Window(i, beat.id, start, end))
    return windows, problems


# The graphics in the edit: a video track of its own above the picture, one title clip per
# super and one for the end card, so an editor moves, trims, drops or swaps them in the
# NLE and the conform of the edited timeline sets them where the editor left them.
GRAPHICS_TRACK = "graphics"
TITLE_KIND = "Text"  # the generator kind: FCP7's Text generator; FCPXML writes a <title>


def copy_text(copy: Copy) -> str:
    """A title's text as an NLE shows it: the copy's lines, one per line."""
    return "\n".join(t for t in (copy.headline, copy.subline, copy.cta, copy.legal) if t)


def edit_titles(brief: Brief, beats: Sequence[tuple[str, float, float]], total: float,
                legal_min: float | None = None) -> list[dict[str, Any]]:
    """The supers and the end card as the edit lays them out, in the brief's pass locale:
    ``{"kind": "super"|"end_card", "beat", "field", "start", "end", "text"}``, in seconds of
    the edit (``super_windows``' times; the end card over the last ``duration`` seconds)."""
    locale = brief.pass_locale
    windows, _problems = super_windows(brief, beats, total, legal_min)
    out: list[dict[str, Any]] = []
    for w in windows:
        sup = brief.beats[w.index].supers
        assert sup is not None
        out.append({"kind": "super", "beat": w.beat, "field": f"beats[{w.index}].supers", "start": w.start,
                    "end": w.end, "text": copy_text(sup.for_locale(locale))})
    card = brief.end_card
    if card is not None:
        text = card.copy_ or brief.copy_
        assert text is not None  # the brief's own check
        out.append({"kind": "end_card", "beat": None, "field": "end_card.copy" if card.copy_ else "copy",
                    "start": max(0.0, total - card.duration), "end": total,
                    "text": copy_text(text.for_locale(locale))})
    return out


def title_name(kind: str, beat: str | None) -> str:
    """A title clip's name, which is also how an edited timeline says which copy it shows
    (NLEs keep clip names; most drop OTIO metadata): ``super <beat id>`` or ``end card``."""
    return f"super {beat}" if kind == "super" else "end card"


def title_clip(title: dict[str, Any], rate: Fraction, locale: str) -> otio.schema.Clip:
    """One title of ``edit_titles`` as an OTIO clip of the graphics track: a generator
    reference (no media: the conform draws it per channel) that FCP7 XML writes as a Text
    generator and FCPXML as a ``<title>``, its text and copy under ``metadata["studio"]``."""
    frames = round(title["end"] * rate) - round(title["start"] * rate)
    name = title_name(title["kind"], title["beat"])
    ref = otio.schema.GeneratorReference(name=name, generator_kind=TITLE_KIND, parameters={"text": title["text"]})
    # What the fcp_xml adapter turns into a <generatoritem> with a Text effect (its "str").
    ref.metadata["fcp_xml"] = {"effecttype": "generator", "mediatype": "video", "effectcategory": "Text",
                               "parameter": {"parameterid": "str", "name": "Text", "value": title["text"]}}
    clip = otio.schema.Clip(name=name, media_reference=ref, source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, float(rate)), otio.opentime.RationalTime(frames, float(rate))))
    clip.metadata["studio"] = {"kind": title["kind"], "beat": title["beat"], "field": title["field"],
                               "text": title["text"], "locale": locale}
    return clip


def graphics_track(titles: Sequence[dict[str, Any]], rate: Fraction, locale: str) -> otio.schema.Track:
    """The titles on a video track of their own, each at its frame (gaps between)."""
    track = otio.schema.Track(name=GRAPHICS_TRACK, kind=otio.schema.TrackKind.Video)
    at = 0
    for t in sorted(titles, key=lambda x: x["start"]):
        start = round(t["start"] * rate)
        if start < at:
            continue  # overlapping titles do not happen (each stops at the next); never crash on one
        if start > at:
            track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(start - at, float(rate))))
        clip = title_clip(t, rate, locale)
        track.append(clip)
        at = start + int(clip.source_range.duration.value)
    return track


def read_titles(tl: otio.schema.Timeline) -> list[dict[str, Any]] | None:
    """The titles of an edit's graphics track, where an editor left them: ``{"kind",
    "beat", "start", "end", "name"}`` in seconds from the edit's start, disabled clips left
    out. A clip's name says what it shows (``super b02-trail`` shows b02-trail's super,
    whatever its metadata says: an editor swapped it). None when the edit has no graphics
    track (an edit made before there was one: the conform times them as before)."""
    for track in tl.video_tracks()[1:]:
        if not is_graphics_track(track):
            continue
        ours = [c for c in track.find_clips() if _title_of(c) is not None]
        out = []
        for clip in ours:
            kind, beat = _title_of(clip)  # type: ignore[misc]
            if not clip.enabled:
                continue
            rng = clip.range_in_parent()
            out.append({"kind": kind, "beat": beat, "name": clip.name, "start": rng.start_time.to_seconds(),
                        "end": rng.end_time_exclusive().to_seconds()})
        return sorted(out, key=lambda t: t["start"])
    return None


def is_graphics_track(track: otio.schema.Track) -> bool:
    """A video track of titles: named ``graphics``, or holding title clips only (an NLE's
    export renames tracks but keeps clip names)."""
    clips = list(track.find_clips())
    return track.name == GRAPHICS_TRACK or (bool(clips) and all(_title_of(c) is not None for c in clips))


def _title_of(clip: otio.schema.Clip) -> tuple[str, str | None] | None:
    name = (clip.name or "").strip()
    if name.lower().startswith("super "):
        return "super", name[len("super "):].strip()
    if name.lower() == "end card":
        return "end_card", None
    meta = clip.metadata.get("studio") or {}
    if meta.get("kind") in ("super", "end_card"):
        return str(meta["kind"]), meta.get("beat")
    return None


def supers_problems(brief: Brief, specs: Sequence[ChannelSpec] = (), source: str | None = None
                    ) -> list[StudioError]:
    """Plan-time check, before any work: every super can be held its reading time (and the
    legal line each video channel's legal_min_seconds) with the brief's beat durations.
    Without ``specs`` only the reading time is checked."""
    if not any(b.supers is not None for b in brief.beats):
        return []
    beats, t = [], 0.0
    for b in brief.beats:
        beats.append((b.id, t, t + b.duration))
        t += b.duration
    videos = [s for s in specs if s.kind == "video"] or [None]
    out: list[StudioError] = []
    seen: set[str] = set()
    for spec in videos:
        legal_min = spec.legal_min_seconds if spec is not None else None
        _, problems = super_windows(brief, beats, t, legal_min, spec.name if spec and legal_min else None)
        for e in problems:
            e.source = source
            if e.line() not in seen:
                seen.add(e.line())
                out.append(e)
    return out


# ---------------------------------------------------------------- overlays


@dataclass
class Graphic:
    """One overlay image for the conform (duck-typed like captions' Overlay, plus motion)
    and what it shows, for the deliverable's record."""

    path: Path
    x: int
    y: int
    start: float
    end: float
    box: tuple[int, int, int, int]  # frame rectangle its pixels cover
    kind: str  # "super", "logo_bug" or "end_card"
    field: str  # the brief's field: beats[2].supers, end_card.copy, copy
    sha256: str
    fade_in: float = SUPER_FADE
    fade_out: float = SUPER_FADE
    motion: str = MOTION
    beat: str | None = None
    placement: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "field": self.field, "beat": self.beat, "png": self.path.name,
                "sha256": self.sha256, "x": self.x, "y": self.y, "box": list(self.box),
                "start": round(self.start, 6), "end": round(self.end, 6), "fade_in": self.fade_in,
                "fade_out": self.fade_out, "motion": self.motion, "placement": self.placement}


def beat_times(clips: Sequence[ConformClip]) -> list[tuple[str, float, float]]:
    """(beat id, start, end) in seconds of the edit, from the conform's clips (named by
    their beat; consecutive clips of one beat are one span), so an editor's retimed edit
    moves the supers with it."""
    out: list[tuple[str, float, float]] = []
    t = Fraction(0)
    for c in clips:
        end = t + Fraction(c.frames) / Fraction(c.rate)
        if out and out[-1][0] == c.name:
            out[-1] = (c.name, out[-1][1], float(end))
        else:
            out.append((c.name, float(t), float(end)))
        t = end
    return out


def beat_spans(cuts: Sequence[tuple[str, int]], rate: Fraction) -> list[tuple[str, float, float]]:
    """``beat_times`` of cuts given as (beat id, frames) at the edit ``rate``."""
    out: list[tuple[str, float, float]] = []
    at = 0
    for beat, frames in cuts:
        out.append((beat, float(Fraction(at) / rate), float(Fraction(at + frames) / rate)))
        at += frames
    return out


class FrameReader:
    """Frames of the edit's shot masters, read once each with ffmpeg (RGB); one reader
    serves every channel of a conform (they are reframed per channel from the same frame)."""

    def __init__(self, clips: Sequence[ConformClip]):
        self.clips = list(clips)
        self.memo: dict[tuple[int, int], Image.Image] = {}

    def _locate(self, t: float) -> tuple[int, int]:
        """(clip index, master frame) shown at edit time ``t`` (clamped into the edit)."""
        acc = Fraction(0)
        t_f = Fraction(t).limit_denominator(1_000_000)
        for n, c in enumerate(self.clips):
            length = Fraction(c.frames) / Fraction(c.rate)
            if t_f < acc + length or n == len(self.clips) - 1:
                k = min(c.frames - 1, max(0, math.floor((t_f - acc) * Fraction(c.rate))))
                return n, c.start_frame + k
            acc += length
        raise AssertionError("no clips")

    def at(self, t: float) -> tuple[ConformClip, Image.Image]:
        """The master frame shown at edit time ``t`` (clamped into the edit)."""
        n, frame = self._locate(t)
        return self.clips[n], self._read(n, frame)

    def prefetch(self, times: Sequence[float]) -> None:
        """Read the frames shown at ``times`` that are not read yet, one ffmpeg pass per
        master: each read decodes its file from the start, so a super's three contrast
        frames read one by one cost three decodes of the same frames (bench_graphics)."""
        want: dict[int, set[int]] = {}
        for t in times:
            n, frame = self._locate(t)
            if (n, frame) not in self.memo:
                want.setdefault(n, set()).add(frame)
        for n, frames in want.items():
            self._read_many(n, sorted(frames))

    def _read(self, n: int, frame: int) -> Image.Image:
        if (n, frame) not in self.memo:
            self._read_many(n, [frame])
        return self.memo[(n, frame)]

    def _read_many(self, n: int, frames: list[int]) -> None:
        c = self.clips[n]
        pick = "+".join(f"eq(n\\,{f})" for f in frames)
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(c.path), "-vf", f"select={pick}",
               "-fps_mode", "passthrough", "-frames:v", str(len(frames)), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=120, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise StageError(f"cannot read frame {frames[0]} of {c.path.name}: {e}", stage=STAGE, shot=c.name,
                             fix="re-render the shot's clip (stage clips)") from e
        size = c.width * c.height * 3
        for i, frame in enumerate(frames):
            if len(res.stdout) < (i + 1) * size:
                raise StageError(f"{c.path.name} has no frame {frame}", stage=STAGE, shot=c.name,
                                 fix="re-render the shot's clip (stage clips)")
            data = np.frombuffer(res.stdout[i * size:(i + 1) * size], np.uint8).reshape(c.height, c.width, 3)
            self.memo[(n, frame)] = Image.fromarray(data)

    def picture(self, t: float, spec: ChannelSpec) -> Image.Image:
        """The frame at ``t`` as the conform frames it for ``spec``: cropped round the
        focus, scaled to the active picture, on black bars where the spec letterboxes."""
        clip, im = self.at(t)
        crop = crop_box(clip.width, clip.height, spec, clip.focus)
        x, y = crop.x // 2 * 2, crop.y // 2 * 2
        pic = im.crop((x, y, x + crop.w, y + crop.h)).resize(spec.active_size, Image.Resampling.LANCZOS)
        frame = Image.new("RGB", (spec.width, spec.height), (0, 0, 0))
        ax, ay, _, _ = spec.active_rect()
        frame.paste(pic, (ax, ay))
        return frame


def _png(layer: Image.Image, out_dir: Path, full: bool = False) -> tuple[Path, int, int, tuple[int, int, int, int], str]:
    """The layer cropped to its drawn pixels (from even offsets: 4:2:0 overlays sit on the
    chroma grid), written once under its sha256. (path, x, y, box, sha256)."""
    bbox = layer.getchannel("A").getbbox()
    if bbox is None:
        raise AssertionError("an empty graphics layer")
    x0, y0 = (0, 0) if full else (bbox[0] // 2 * 2, bbox[1] // 2 * 2)
    x1, y1 = (layer.width, layer.height) if full else (bbox[2], bbox[3])
    buf = io.BytesIO()
    layer.crop((x0, y0, x1, y1)).save(buf, format="PNG", compress_level=6)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = Path(out_dir) / f"{sha}.png"
    if not path.is_file() or sha256_file(path) != sha:
        atomic_write_bytes(path, data)
    return path, x0, y0, (bbox[0], bbox[1], bbox[2], bbox[3]), sha


def _fit_worst(lay: layout.Layout, copy: Copy, brand: BrandKit, spec: ChannelSpec, space: Any,
               style_file: Path | None, pictures: list[Image.Image], field_name: str,
               safe: tuple[int, int, int, int] | None = None) -> layout.Placement:
    """The copy fitted over the worst of ``pictures``, pixel by pixel: each pixel as it
    is in the picture where it contrasts least with the brand's text colour. The contrast
    measured there, and the scrims added for it, hold on every picture, for every text
    (taking the one picture a text reads worst on would leave another text, over a part
    of the frame that is brighter in another picture, without the scrim it needs)."""
    ground = worst_picture(pictures, layout.hex_rgb(brand.colours.text))
    try:
        return layout.fit(lay, copy, brand, spec.width, spec.height, safe or spec.safe_rect(), space,
                          channel=spec.name, background=ground, style_file=style_file)
    except StudioError as e:
        if e.field and e.field.startswith("copy."):
            e.field = f"{field_name}.{e.field.removeprefix('copy.')}"
        raise


def worst_picture(pictures: Sequence[Image.Image], text_rgb: tuple[int, int, int]) -> Image.Image:
    """Per pixel, the picture's pixel with the least WCAG contrast against ``text_rgb``."""
    if len(pictures) == 1:
        return pictures[0]
    stack = np.stack([np.asarray(p.convert("RGB")) for p in pictures])  # n, h, w, 3 (uint8)
    lt = float(layout.luminance(np.array(text_rgb)))
    # WCAG luminance by table: each channel's linear value for its 8-bit code, weighted.
    codes = np.arange(256)
    lin = np.stack([layout.luminance(np.stack([codes * (k == 0), codes * (k == 1), codes * (k == 2)], axis=1))
                    for k in range(3)]).astype(np.float32)  # 3, 256: channel k's share of the luminance
    lum = lin[0][stack[..., 0]] + lin[1][stack[..., 1]] + lin[2][stack[..., 2]]  # n, h, w
    ratio = (np.maximum(lum, lt) + 0.05) / (np.minimum(lum, lt) + 0.05)
    pick = np.argmin(ratio, axis=0)  # h, w
    worst = np.take_along_axis(stack, pick[None, :, :, None], axis=0)[0]
    return Image.fromarray(np.ascontiguousarray(worst))


def _snap(t: float, rate: Fraction) -> float:
    """A time on the output frame grid (overlays switch on frame boundaries)."""
    return float(Fraction(math.floor(Fraction(t).limit_denominator(1_000_000) * rate + Fraction(1, 2))) / rate)


def _has_graphics(brief: Brief, brand: BrandKit) -> bool:
    return brief.end_card is not None or any(b.supers for b in brief.beats) or brand.logo_bug is not None


def _overlaps(a: Sequence[int], b: Sequence[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _drawn(g: Graphic) -> list[Sequence[int]]:
    """What a super draws, from its placement: each text's box and scrim, and the layout's
    logo with its clear space (the layer's bounding box is no use: a scrim's soft edge or a
    logo in the far corner stretches it over most of the frame)."""
    boxes: list[Sequence[int]] = []
    for t in g.placement.get("texts", []):
        boxes.append(t["box"])
        if t.get("scrim"):
            boxes.append(t["scrim"]["box"])
    logo = g.placement.get("logo")
    if logo:
        boxes.append(logo.get("clear_box") or logo["box"])
    return boxes or [g.box]


def _logo_bug(brand: BrandKit, spec: ChannelSpec, style_file: Path | None, out_dir: Path, bottom: int,
              until: float, supers: Sequence[Graphic], rate: Fraction) -> list[Graphic]:
    """The brand's logo small in its corner of the safe area from the spot's first frame
    to ``until`` (the end card's start, or the end), above ``bottom`` (the captions' top,
    less the gap, for a bottom corner). Copy wins over the bug: a super whose pixels come
    within the logo's clear space of it hides the bug while it shows (the bug fades out
    and back in round it), so no text is ever covered or crowded by the mark. A supers
    layout that sets the kit's logo in the bug's corner (lower-third does, top right)
    hides it too: the super's own logo stands in for it, never two logos at once."""
    bug = brand.logo_bug
    logo_path = brand.logo_file(style_file)
    assert bug is not None and logo_path is not None  # BrandKit's own check
    x0, y0, x1, y1 = spec.safe_rect()
    h = max(brand.logo_min_height_px, round(bug.height * (y1 - y0)))
    # A PNG resized, an SVG drawn at the size (studio.brand.logo_image).
    lw, lh = logo_size(logo_path)
    w = max(1, round(lw * h / lh))
    logo = logo_image(logo_path, w, h)
    if bug.opacity < 1:
        a = np.asarray(logo.getchannel("A"), np.float64) * bug.opacity
        logo.putalpha(Image.fromarray(np.round(a).astype(np.uint8)))
    # Even offsets (4:2:0 overlays sit on the chroma grid), rounded into the safe area.
    bottom = min(y1, bottom)
    x = x0 + x0 % 2 if bug.corner.endswith("left") else (x1 - w) // 2 * 2
    y = y0 + y0 % 2 if bug.corner.startswith("top") else (bottom - h) // 2 * 2
    if x < x0 or x + w > x1 or y < y0 or y + h > bottom:
        raise StageError(f"the logo bug ({w}x{h} px) does not fit the safe area of {spec.name}", stage=STAGE,
                         field="brand.logo_bug.height", fix="lower brand.logo_bug.height or logo_min_height_px")
    layer = Image.new("RGBA", (spec.width, spec.height), (0, 0, 0, 0))
    layer.alpha_composite(logo, dest=(x, y))
    path, px, py, box, sha = _png(layer, out_dir)
    clear = round(brand.logo_clear_space * h)
    keep = (box[0] - clear, box[1] - clear, box[2] + clear, box[3] + clear)
    # The times the bug shows: [0, until) less every colliding super's window.
    hits = [g for g in supers if any(_overlaps(keep, b) for b in _drawn(g))]
    spans = [(0.0, until)]
    for g in hits:
        spans = [piece for s, e in spans
                 for piece in ((s, min(e, g.start)), (max(s, g.end), e)) if piece[1] - piece[0] > 1 / float(rate)]
    placement = {"corner": bug.corner, "box": list(box), "height_px": h, "opacity": bug.opacity,
                 "logo_sha256": sha256_file(logo_path),
                 "hidden_for": [g.field for g in hits]}
    return [Graphic(path, px, py, s, e, box, "logo_bug", "brand.logo_bug", sha,
                    fade_in=SUPER_FADE if s > 0 else 0.0, fade_out=SUPER_FADE, motion=brand.motion,
                    placement=placement)
            for s, e in spans]


def build_graphics(brief: Brief, spec: ChannelSpec, clips: Sequence[ConformClip], catalog: Catalog,
                   out_dir: Path, locale: str | None = None, captions_top: int | None = None,
                   frames: FrameReader | None = None, warn: Callable[[str], None] | None = None,
                   titles: Sequence[dict[str, Any]] | None = None) -> list[Graphic]:
    """The supers and end card of ``spec``'s deliverable, in ``locale`` (default the
    brief's first), as overlay images in ``out_dir``. ``captions_top`` is the highest
    burned-in caption's top row: supers and the end card's copy are set above it (captions
    run through the whole spot; a lower third would sit on them). Raises StageError for a super that cannot be
    held its reading time in the edit as cut."""
    style = catalog.style(brief.style_pack)
    brand = copyfit.brand_kit(style)
    if spec.kind != "video" or not _has_graphics(brief, brand):
        return []
    locale = locale or brief.pass_locale
    style_file = catalog.style_paths.get(style.name)
    known = layout.layouts()
    rate = spec.rate
    total_exact = sum((Fraction(c.frames) / Fraction(c.rate) for c in clips), Fraction(0))
    total = float(Fraction(math.floor(total_exact * rate + Fraction(1, 2))) / rate)  # the conform's frame count
    frames = frames if frames is not None and frames.clips == list(clips) else FrameReader(clips)
    out: list[Graphic] = []
    # Above the captions by 1% of the frame: above the highest a caption of this channel can
    # reach (studio.copyfit.captions_reach), the area `studio plan` fitted the copy in, so a
    # super the plan passed fits here too; above the captions really drawn, should one reach
    # higher still (stacked accents taller than the font's ascent).
    reach = min(captions_top, copyfit.captions_reach(spec)) if captions_top is not None else None
    try:
        safe = copyfit.video_copy_area(spec, reach)
    except StudioError as e:
        raise StageError(e.what, fix=e.fix, stage=STAGE, field=e.field) from e
    card_span: tuple[float, float] | None = None
    if titles is None:
        windows, problems = super_windows(brief, beat_times(clips), total, spec.legal_min_seconds, spec.name)
        if brief.end_card is not None:
            card_span = (max(0.0, total - brief.end_card.duration), total)
    else:
        windows, problems, card_span = _edited_windows(brief, titles, total, spec, warn)
    if problems and warn is None:
        e = problems[0]
        raise StageError(e.what, fix=e.fix, stage=STAGE, field=e.field, shot=e.shot)
    # The plan refused a brief whose supers cannot be read; here only an editor's cut can
    # make one short, and the cut is the editor's decision: the super is held as long as the
    # cut allows (left out under MIN_SHOWN) and the run says so.
    for e in problems:
        shown_for = next((w.end - w.start for w in windows if w.beat == e.shot), 0.0)
        warn(f"{spec.name}: shot {e.shot}: {e.field}: {e.what}; as cut it is "
             + (f"shown for {shown_for:.1f} s" if shown_for else "left out") + f" ({e.fix})")
    def contrast_times(start: float, end: float) -> list[float]:
        return [min(start + (end - start) * k / (CONTRAST_FRAMES - 1), end - 1 / float(rate))
                for k in range(CONTRAST_FRAMES)]

    # Every picture the supers are fitted over, read in one pass per master.
    frames.prefetch([t for w in windows for t in contrast_times(_snap(w.start, rate), _snap(w.end, rate))])
    for w in windows:
        beat = brief.beats[w.index]
        assert beat.supers is not None
        start, end = _snap(w.start, rate), _snap(w.end, rate)
        if end <= start:
            continue
        lay = known[copyfit.layout_name(brief, spec, "supers")]
        space = copyfit.copy_space(beat, spec, lay)
        pictures = [frames.picture(t, spec) for t in contrast_times(start, end)]
        field_name = f"beats[{w.index}].supers"
        placement = _fit_worst(lay, beat.supers.for_locale(locale), brand, spec, space, style_file, pictures,
                               field_name, safe)
        path, x, y, box, sha = _png(layout.render(placement), out_dir)
        out.append(Graphic(path, x, y, start, end, box, "super", field_name, sha, beat=beat.id, motion=brand.motion,
                           placement=placement.to_dict()))
    card = brief.end_card if card_span is not None else None
    if brand.logo_bug is not None:
        until = _snap(card_span[0], rate) if card_span is not None else total
        out += _logo_bug(brand, spec, style_file, out_dir, safe[3], until, out, rate)
    if card is not None and card_span is not None:
        copy_text = card.copy_ or brief.copy_
        field_name = "end_card.copy" if card.copy_ is not None else "copy"
        assert copy_text is not None  # the brief's own check
        lay = known[copyfit.layout_name(brief, spec, "end_card")]
        start, card_end = _snap(card_span[0], rate), _snap(card_span[1], rate)
        copy = copy_text.for_locale(locale)
        if card.background == "brand":
            ground = Image.new("RGB", (spec.width, spec.height), layout.hex_rgb(brand.colours.primary))
            placement = _fit_worst(lay, copy, brand, spec, None, style_file, [ground], field_name, safe)
            layer = layout.render(placement, ground)
        else:
            pictures = [frames.picture(min(t, total - 1 / float(rate)), spec)
                        for t in (start, (start + card_end) / 2, card_end)]
            placement = _fit_worst(lay, copy, brand, spec, None, style_file, pictures, field_name, safe)
            layer = layout.render(placement)
        path, x, y, box, sha = _png(layer, out_dir, full=card.background == "brand")
        out.append(Graphic(path, x, y, start, card_end, box, "end_card", field_name, sha, fade_in=CARD_FADE,
                           fade_out=0.0 if card_end >= total else CARD_FADE, placement=placement.to_dict()))
    return out


def _edited_windows(brief: Brief, titles: Sequence[dict[str, Any]], total: float, spec: ChannelSpec,
                    warn: Callable[[str], None] | None
                    ) -> tuple[list[Window], list[StudioError], tuple[float, float] | None]:
    """The supers' windows and the end card's span where an edit's graphics track puts
    them (``read_titles``): the editor's timing and choice of copy, each super still held
    to its reading time or reported (a problem, shown as long as the edit has it). A title
    naming no super of the brief is left out with a warning."""
    index = {b.id: i for i, b in enumerate(brief.beats) if b.supers is not None}
    windows: list[Window] = []
    problems: list[StudioError] = []
    card: tuple[float, float] | None = None
    for t in titles:
        start, end = max(0.0, float(t["start"])), min(total, float(t["end"]))
        if end <= start:
            continue
        if t["kind"] == "end_card":
            if brief.end_card is None:
                if warn is not None:
                    warn(f"{spec.name}: the edit's graphics track has an end card but the brief has none; "
                         "left out (add end_card to the brief)")
            elif card is None:
                card = (start, end)
            continue
        i = index.get(str(t["beat"]))
        if i is None:
            if warn is not None:
                warn(f"{spec.name}: the edit's graphics track has {t['name']!r}, but no beat {t['beat']!r} "
                     "with supers is in the brief; left out (name the title 'super <beat id>' of a beat with supers)")
            continue
        sup = brief.beats[i].supers
        assert sup is not None
        need, why = max((_need(sup.for_locale(loc), spec.legal_min_seconds) for loc in brief.all_locales),
                        key=lambda x: x[0])
        if end - start + 1e-6 < need:
            problems.append(StudioError(
                f"needs {why} in {spec.name} but the edit's graphics track shows it for {end - start:.1f} s",
                field=f"beats[{i}].supers", shot=brief.beats[i].id,
                fix="lengthen its title on the graphics track, or shorten the super"))
            if end - start < MIN_SHOWN:
                continue
        windows.append(Window(i, brief.beats[i].id, start, end))
    return windows, problems, card


def graphics_recipe(brief: Brief, spec: ChannelSpec, catalog: Catalog) -> dict[str, Any] | None:
    """The graphics' share of a video deliverable's key, from the brief and the style pack
    (``studio plan`` computes it too): the locale's supers and end card copy, the layouts'
    content, the brand kit with the font's and logo's bytes, the motion. None when the
    spot shows none (the key then is what it was before graphics)."""
    style = catalog.style(brief.style_pack)
    brand = copyfit.brand_kit(style)
    if spec.kind != "video" or not _has_graphics(brief, brand):
        return None
    locale = brief.pass_locale
    style_file = catalog.style_paths.get(style.name)
    known = layout.layouts()
    sup = known[copyfit.layout_name(brief, spec, "supers")]
    doc: dict[str, Any] = {
        "code_version": CODE_VERSION, "setting": layout.CODE_VERSION, "locale": locale,
        "motion": {"kind": brand.motion, "super_fade": SUPER_FADE, "card_fade": CARD_FADE},
        "reading": [WORDS_PER_SECOND, READING_LEAD],
        "supers": [{"beat": b.id, "copy": b.supers.for_locale(locale).model_dump(mode="json", exclude_none=True),
                    "copy_space": copyfit.copy_side(b)} for b in brief.beats if b.supers is not None],
        "supers_layout": copyfit.layout_sha256(sup),
        "brand": brand.model_dump(mode="json", by_alias=True, exclude={"logo": {"path"}, "font": {"path"}}),
        "font_sha256": sha256_file(brand.font_file(style_file)),
        "logo_sha256": sha256_file(logo) if (logo := brand.logo_file(style_file)) else None,
    }
    card = brief.end_card
    if card is not None:
        copy_text = card.copy_ or brief.copy_
        assert copy_text is not None
        doc["end_card"] = {"duration": card.duration, "background": card.background,
                           "copy": copy_text.for_locale(locale).model_dump(mode="json", exclude_none=True),
                           "layout": copyfit.layout_sha256(known[card.layout])}
    return json.loads(json.dumps(doc))


__all__ = ["CODE_VERSION", "GRAPHICS_TRACK", "TITLE_KIND", "FrameReader", "Graphic", "Window", "beat_spans", "beat_times",
           "build_graphics", "copy_text", "edit_titles", "is_graphics_track", "graphics_recipe", "graphics_track", "read_titles",
           "reading_seconds", "super_windows", "supers_problems", "title_clip", "title_name"]
