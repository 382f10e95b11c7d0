"""Which layout sets a brief's copy on each channel, and whether every text fits it, checked
before any work starts (issue 13).

``layout_name`` picks the layout: ``brief.layouts[channel]`` when the brief names one
(stills and video supers), else a default by the channel's shape; the end card always uses
``brief.end_card.layout``. ``copy_problems`` fits every text a channel will show, for every
locale, without a picture (contrast needs the rendered frame; length does not), and
returns each overrun as a StudioError naming the field as the brief writes it
(``copy.headline``, ``beats[2].supers.headline``, ``end_card.copy.cta``), the channel, the
locale when the brief ships in several, and the layout's overrun figures.

The brand kit is the style pack's ``brand``; a pack without one gets ``BrandKit()``: the
DejaVu Sans Bold default font, the default colours and no logo. A brief with copy is then
still delivered with readable, checked copy, and adding a brand to the pack later changes
only the copy's look (and the keys of the deliverables that show copy)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ImageFont

from studio.brand import BrandKit, Copy
from studio.brief import Beat, Brief, CopyText
from studio.errors import StudioError
from studio.layout import CODE_VERSION as LAYOUT_VERSION
from studio.layout import Layout, layouts
from studio.prompts import compose
from studio.specs import Catalog, ChannelSpec, StylePack
from studio.store import sha256_file

Rect = tuple[int, int, int, int]

WIDE_RATIO = 4.0  # width/height from which a still is a strip (728x90, 970x90, 320x50)
STILL_WIDE = "banner-strip"
STILL_DEFAULT = "copy-top"
STILL_SIDE = "hero-left-copy-right"
VIDEO_SUPERS = "lower-third"
FIX_LAYOUTS = "`studio layouts` lists them"

# Burned-in captions run through the whole spot along the safe area's bottom, so a video's
# supers and end card copy are set above the highest a caption can reach, with a gap of
# 1% of the frame. The caption box's geometry is timelines/captions.py's (its font, outline,
# padding and line pitch, as fractions of the type size); kept equal to it here so that
# `studio plan` fits the copy in the area the conform will use, without importing a stage
# (tests/test_copy_stills.py checks both the figures and a rendered caption against it).
CAPTION_GAP = 0.01
CAPTION_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
                 Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"))
CAPTION_MIN_PX = 8
CAPTION_STROKE = 0.06
CAPTION_PAD_Y = 0.18
CAPTION_LINE_PITCH = 1.15


def brand_kit(style: StylePack) -> BrandKit:
    """The style pack's brand kit, or the default one (DejaVu Sans Bold, no logo)."""
    return style.brand if style.brand is not None else BrandKit()


def brand_inputs(brand: BrandKit, style_file: Path | None, texts: list[dict[str, str]]) -> dict[str, Any]:
    """What a deliverable's copy was set with, as its record keeps it: each piece of copy
    (field and text), the font file and its licence, the logo file and its rights, each
    file by its sha256 (the same bytes the deliverable's key holds)."""
    font = brand.font_file(style_file)
    logo = brand.logo_file(style_file)
    font_rec: dict[str, Any] = {"file": font.name, "sha256": sha256_file(font), "licence": brand.font.licence}
    if brand.font.terms is not None:  # the ledger's terms (studio.rights.font_record), when the kit gives them
        font_rec["terms"] = brand.font.terms.model_dump(mode="json", exclude_none=True)
    return {
        "copy": texts,
        "font": font_rec,
        "logo": None if logo is None or brand.logo is None else {
            "file": logo.name, "sha256": sha256_file(logo), "rights": brand.logo.rights.model_dump(mode="json")},
    }


def copy_side(beat: Beat) -> str:
    """Where the beat keeps room for text: its ``copy_space``, else what its composition
    says ("copy space right"), else "none" (studio.prompts.compose, which the keyframe's
    prompt and framing use too)."""
    return compose(beat).copy_space


def layout_name(brief: Brief, spec: ChannelSpec, role: str) -> str:
    """The layout that sets ``role``'s copy ("still", "supers" or "end_card") on ``spec``."""
    if role == "end_card":
        if brief.end_card is None:
            raise ValueError("the brief has no end card")
        return brief.end_card.layout
    if role not in ("still", "supers"):
        raise ValueError(f"unknown copy role {role!r}")
    if spec.name in brief.layouts:
        return brief.layouts[spec.name]
    if role == "supers":
        return VIDEO_SUPERS
    if spec.width >= WIDE_RATIO * spec.height:
        return STILL_WIDE
    # A beat that keeps a side free (subject on the other side) gets the copy stacked in
    # that side, off the subject, when the frame is at least square. Measured with the demo
    # brief's copy (no picture): hero-left-copy-right sets the headline at 79 px in three
    # lines in 1080x1080 (copy-top: 95 px, but across the top, where the subject's head may
    # be) and at 20 px in 300x250 (copy-top: 24 px). A portrait frame's half column is too
    # narrow for a headline, so it keeps copy-top, whose copy space follows the beat's
    # (top or bottom) anyway.
    if copy_side(brief.still_beat(spec.name)) in ("left", "right") and spec.width >= spec.height:
        return STILL_SIDE
    return STILL_DEFAULT


def copy_space(beat: Beat | None, spec: ChannelSpec, layout: Layout) -> Rect | None:
    """The beat's copy space in ``spec``'s frame pixels: the half of the safe area on the
    side the beat keeps free, or None (the layout's default) when it keeps none or the
    layout places nothing within the copy space."""
    regions = [getattr(layout.regions, r) for r in ("headline", "subline", "cta", "legal", "logo")]
    if beat is None or not any(r is not None and r.within == "copy" for r in regions):
        return None
    side = copy_side(beat)
    x0, y0, x1, y1 = spec.safe_rect()
    mx, my = (x0 + x1) // 2, (y0 + y1) // 2
    return {"left": (x0, y0, mx, y1), "right": (mx, y0, x1, y1),
            "top": (x0, y0, x1, my), "bottom": (x0, my, x1, y1)}.get(side)


def burns_captions(brief: Brief, spec: ChannelSpec) -> bool:
    """Whether ``spec``'s deliverable will carry burned-in captions: a video channel that
    burns them in, a brief with captions on and narration to caption."""
    return (spec.kind == "video" and spec.captions_burn_in and brief.captions
            and any(b.narrated for b in brief.beats))


def captions_reach(spec: ChannelSpec) -> int:
    """The highest top row a burned-in caption can have in ``spec``: a block of
    ``captions.max_lines`` lines at the spec's caption size, each line the caption font's
    ascent and descent plus its outline, padded, its bottom on the safe area's bottom (even,
    as timelines/captions.py places it). A caption set smaller to fit its width, or with
    fewer lines, sits lower."""
    size = max(CAPTION_MIN_PX, round(spec.captions.font_size * spec.height))
    font_file = next((f for f in CAPTION_FONTS if f.is_file()), None)
    if font_file is not None:
        ascent, descent = ImageFont.truetype(str(font_file), size).getmetrics()
    else:  # captions then use Pillow's bundled font: about DejaVu's proportions
        ascent, descent = math.ceil(0.93 * size), math.ceil(0.24 * size)
    stroke = max(1, round(size * CAPTION_STROKE))
    lines = spec.captions.max_lines
    height = (math.ceil(ascent + descent + 2 * stroke + (lines - 1) * size * CAPTION_LINE_PITCH)
              + 2 * round(size * CAPTION_PAD_Y))
    top = spec.safe_rect()[3] - height
    return top - (top & 1)


def video_copy_area(spec: ChannelSpec, captions_top: int | None) -> Rect:
    """Where a video's supers and end card copy may go: the safe area, above
    ``captions_top`` (the burned-in captions' highest top row) less CAPTION_GAP of the
    frame when the deliverable burns captions in. The plan's check (``copy_problems``)
    and the conform's fitting (timelines/graphics.py) both use it."""
    safe = spec.safe_rect()
    if captions_top is None:
        return safe
    bottom = min(safe[3], captions_top - math.ceil(CAPTION_GAP * spec.height))
    if bottom <= safe[1]:
        raise StudioError(f"burned-in captions leave no room for supers in {spec.name}", field=spec.name,
                          fix="lower captions.font_size in the spec or drop the supers")
    return safe[0], safe[1], safe[2], bottom


# What of a brand kit shows in videos only: a change to it makes no still again.
VIDEO_ONLY_BRAND = ("logo_bug", "motion")


@dataclass
class StillCopy:
    """What a still channel's conform needs to set the copy on its picture, and what its
    cache key is made from (``recipe``)."""

    locale: str
    copy: Copy
    layout: Layout
    layout_sha256: str
    brand: BrandKit
    style_file: Path | None
    copy_space: Rect | None

    def recipe(self) -> dict[str, Any]:
        """The copy's share of a deliverable's recipe: the texts, the layout file's content,
        the brand kit and the font's and logo's bytes (a font or logo file replaced under
        the same name makes the still again)."""
        font = self.brand.font_file(self.style_file)
        logo = self.brand.logo_file(self.style_file)
        return {"locale": self.locale, "copy": self.copy.model_dump(mode="json", exclude_none=True),
                "setting": LAYOUT_VERSION,
                "layout": {"name": self.layout.name, "sha256": self.layout_sha256},
                # The kit without its file paths (an action key holds content, not paths):
                # the files count by their bytes below.
                "brand": {k: v for k, v in self.brand.model_dump(
                    mode="json", by_alias=True, exclude={"logo": {"path"}, "font": {"path"}}).items()
                          if k not in VIDEO_ONLY_BRAND},
                "font_sha256": sha256_file(font), "logo_sha256": sha256_file(logo) if logo else None,
                "copy_space": list(self.copy_space) if self.copy_space else None}


def layout_sha256(layout: Layout) -> str:
    """The layout's content (its parsed document, so a comment or key order changes nothing)."""
    doc = layout.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def still_copies(brief: Brief, spec: ChannelSpec, catalog: Catalog) -> list[StillCopy]:
    """One StillCopy per locale the brief ships in for a still channel, none without copy."""
    if brief.copy_ is None:
        return []
    style = catalog.style(brief.style_pack)
    layout = layouts()[layout_name(brief, spec, "still")]
    space = copy_space(brief.still_beat(spec.name), spec, layout)
    return [StillCopy(locale=loc, copy=brief.copy_.for_locale(loc), layout=layout,
                      layout_sha256=layout_sha256(layout), brand=brand_kit(style),
                      style_file=catalog.style_paths.get(style.name), copy_space=space)
            for loc in brief.all_locales]


def _shown(brief: Brief, spec: ChannelSpec) -> list[tuple[str, str, CopyText, Beat | None]]:
    """(field path, role, copy, beat) for every copy ``spec`` shows."""
    if spec.kind == "still":
        return [("copy", "still", brief.copy_, brief.still_beat(spec.name))] if brief.copy_ else []
    out: list[tuple[str, str, CopyText, Beat | None]] = [
        (f"beats[{i}].supers", "supers", b.supers, b) for i, b in enumerate(brief.beats) if b.supers is not None]
    card = brief.end_card
    if card is not None:
        if card.copy_ is not None:
            out.append(("end_card.copy", "end_card", card.copy_, None))
        elif brief.copy_ is not None:
            out.append(("copy", "end_card", brief.copy_, None))
    return out


def copy_problems(brief: Brief, specs: list[ChannelSpec], catalog: Catalog,
                  source: str | None = None) -> list[StudioError]:
    """Every text each channel in ``specs`` shows, fitted in every locale (without a
    picture); each overrun, unknown layout or misplaced ``layouts`` key as one error."""
    from studio.layout import fit

    errors: list[StudioError] = []
    known = layouts()
    names = ", ".join(sorted(known))
    for channel, name in brief.layouts.items():
        if channel not in brief.channels:
            errors.append(StudioError(
                f"{channel!r} is not one of the brief's channels ({', '.join(brief.channels)})",
                fix=f"add it to channels or remove it from layouts ({FIX_LAYOUTS})", field=f"layouts.{channel}",
                source=source))
        if name not in known:
            errors.append(StudioError(f"unknown layout {name!r}", fix=f"use one of: {names} ({FIX_LAYOUTS})",
                                      field=f"layouts.{channel}", source=source))
    if brief.end_card is not None and brief.end_card.layout not in known:
        errors.append(StudioError(f"unknown layout {brief.end_card.layout!r}",
                                  fix=f"use one of: {names} ({FIX_LAYOUTS})", field="end_card.layout",
                                  source=source))
    try:
        style = catalog.style(brief.style_pack)
    except StudioError:
        return []  # brief_problems reports the unknown style pack
    brand = brand_kit(style)
    style_file = catalog.style_paths.get(style.name)
    locales = brief.all_locales
    seen: set[str] = set()
    for spec in specs:
        area = spec.safe_rect()
        if spec.kind == "video" and burns_captions(brief, spec) and _shown(brief, spec):
            try:
                area = video_copy_area(spec, captions_reach(spec))
            except StudioError as e:
                e.source = source
                errors.append(e)
                continue
        for path, role, text, beat in _shown(brief, spec):
            layout = known.get(layout_name(brief, spec, role))
            if layout is None:
                continue  # an unknown layout, reported above
            space = copy_space(beat, spec, layout)
            for loc in locales:
                try:
                    fit(layout, text.for_locale(loc), brand, spec.width, spec.height, area, space,
                        channel=spec.name, style_file=style_file)
                except StudioError as e:
                    if e.field and e.field.startswith("copy."):
                        e.field = f"{path}.{e.field.removeprefix('copy.')}"
                    if len(locales) > 1:
                        e.what = f"{e.what} (locale {loc})"
                    e.stage = None  # a brief check, before any stage runs
                    # A brand problem (a missing logo, a logo too small for a layout) is the
                    # style pack's to fix: its file is named, not the brief's.
                    brand_problem = bool(e.field and e.field.startswith("brand."))
                    e.source = str(style_file) if brand_problem and style_file else source
                    line = e.line()
                    if line not in seen:  # a brand problem (a missing logo) once, not per channel
                        seen.add(line)
                        errors.append(e)
    return errors
