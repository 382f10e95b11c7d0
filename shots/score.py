"""The explained heuristic scorer: how well a keyframe candidate serves its brief.

Three components, each 0..1, and one sentence that says why:

* ``palette``: palette adherence. Every sampled pixel's distance (CIE76 delta E in L*a*b*)
  to its nearest style-pack colour, averaged, mapped linearly so 0 is a perfect match and
  ``PALETTE_DE_ZERO`` (a clearly different colour, on average) scores 0.
* ``copy_contrast``: can text be set in ``composition.copy_rect``? The WCAG contrast ratio
  between the region's mean colour and ``text_color`` (full marks at ``CONTRAST_FULL``:1,
  the AA level for normal text), combined with how calm the region is (lightness spread
  and edge energy). 1.0 when the beat asks for no copy space.
* ``safe_clearance``: is the detail where the platforms will not cover it? For each
  channel, the crop that the reframer will take (``studio.framing.crop_box``) is split
  into its safe area and the margin outside it (under platform UI); the score is the edge
  density inside the safe area over the sum of both densities, so a uniformly busy frame
  scores 0.5 whatever the margin size, clean margins score 1 and busy margins with a calm
  centre score near 0. Averaged over channels.

The image is sampled, never averaged, down to a few hundred pixels first (nearest
neighbour): averaging would turn pixel noise into a flat grey that looks calm and, for
some palettes, on-palette. That also makes a 1920x1920 frame cost a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from shots.backends.procedural import contrast_ratio, hex_to_rgb, relative_luminance, srgb_to_lab
from studio.framing import crop_box
from studio.specs import ChannelSpec

CODE_VERSION = "score.1"

# How the total weighs the components (they sum to 1). Palette first: a candidate in the
# wrong colours is off-brand however well composed; copy space next, because unreadable
# text sinks an ad; safe clearance last, since reframing can partly rescue it.
WEIGHTS: dict[str, float] = {"palette": 0.4, "copy_contrast": 0.35, "safe_clearance": 0.25}

PALETTE_SAMPLE = 128  # longest side of the palette sample, pixels
DETAIL_SAMPLE = 320  # longest side of the sample for contrast, calm and edges
PALETTE_DE_ZERO = 40.0  # mean delta E (CIE76) at which palette adherence reaches 0
CONTRAST_FULL = 4.5  # WCAG AA for normal text: full marks from here
CALM_STD_ZERO = 0.25  # L*/100 standard deviation at which calmness reaches 0
CALM_EDGE_ZERO = 4.0  # mean |grad L*| per sample pixel at which calmness reaches 0


@dataclass(frozen=True)
class Score:
    total: float  # 0..1, higher is better
    components: dict[str, float]  # each 0..1
    reason: str  # one human sentence explaining the score, with the numbers


def _check(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {a.shape}")
    return a


def _sample(image: np.ndarray, longest: int) -> np.ndarray:
    """Nearest-neighbour sample at pixel centres, about ``longest`` px on the long side,
    as float RGB in 0..1. Sampling comes first so a large frame is never converted whole."""
    h, w = image.shape[:2]
    s = min(1.0, longest / max(h, w))
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    ys = ((np.arange(nh) + 0.5) * (h / nh)).astype(np.intp)
    xs = ((np.arange(nw) + 0.5) * (w / nw)).astype(np.intp)
    px = image[ys[:, None], xs[None, :]]
    px = np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px[..., :3]
    if px.dtype == np.uint8:
        return px.astype(np.float64) / 255.0
    return np.clip(px.astype(np.float64), 0.0, 1.0)


def _palette_lab(prompt: dict[str, Any]) -> np.ndarray | None:
    cols = []
    for h in prompt.get("palette") or []:
        try:
            cols.append(hex_to_rgb(h))
        except ValueError:
            continue
    if not cols:
        return None
    return srgb_to_lab(np.array(cols, dtype=np.float64) / 255.0)


def _palette_score(image: np.ndarray, prompt: dict[str, Any]) -> tuple[float, float | None]:
    pal = _palette_lab(prompt)
    if pal is None:
        return 1.0, None
    lab = srgb_to_lab(_sample(image, PALETTE_SAMPLE)).reshape(-1, 3)
    d = np.sqrt(((lab[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    mean_de = float(d.mean())
    return float(np.clip(1.0 - mean_de / PALETTE_DE_ZERO, 0.0, 1.0)), mean_de


def _grad(lightness: np.ndarray) -> np.ndarray:
    """|grad L*| per sample pixel (forward differences, same shape as the input)."""
    gx = np.zeros_like(lightness)
    gy = np.zeros_like(lightness)
    gx[:, :-1] = np.diff(lightness, axis=1)
    gy[:-1, :] = np.diff(lightness, axis=0)
    return np.sqrt(gx * gx + gy * gy)


def _copy_score(
    detail: np.ndarray, lightness: np.ndarray, grad: np.ndarray, prompt: dict[str, Any]
) -> tuple[float, str]:
    comp = prompt.get("composition") or {}
    rect = comp.get("copy_rect")
    if (comp.get("copy_space") or "none") == "none" or rect is None:
        return 1.0, "no copy space requested"
    h, w = lightness.shape
    x0, y0, x1, y1 = (float(v) for v in rect)
    c0, c1 = sorted((int(math.floor(x0 * w)), int(math.ceil(x1 * w))))
    r0, r1 = sorted((int(math.floor(y0 * h)), int(math.ceil(y1 * h))))
    c0, r0 = max(0, c0), max(0, r0)
    c1, r1 = min(w, max(c1, c0 + 1)), min(h, max(r1, r0 + 1))
    region = detail[r0:r1, c0:c1].reshape(-1, 3)
    text = str(prompt.get("text_color") or "#ffffff").lower()
    try:
        text_lum = float(relative_luminance(np.array(hex_to_rgb(text)) / 255.0))
    except ValueError:
        text, text_lum = "#ffffff", 1.0
    ratio = contrast_ratio(float(relative_luminance(region.mean(axis=0))), text_lum)
    contrast = float(np.clip((ratio - 1.0) / (CONTRAST_FULL - 1.0), 0.0, 1.0))
    spread = float(lightness[r0:r1, c0:c1].std()) / 100.0
    # edges inside the region only: the row/column that steps over its border is excluded
    g = grad[r0:max(r0 + 1, r1 - 1), c0:max(c0 + 1, c1 - 1)]
    edge = float(g.mean())
    calm = min(1.0 - min(spread / CALM_STD_ZERO, 1.0), 1.0 - min(edge / CALM_EDGE_ZERO, 1.0))
    word = "calm" if calm >= 0.8 else ("fairly calm" if calm >= 0.5 else "busy")
    score = math.sqrt(contrast * max(calm, 0.0))
    return score, f"{ratio:.1f}:1 vs {text}, {word}"


def _safe_score(
    grad: np.ndarray, src_w: int, src_h: int, prompt: dict[str, Any], channels: list[ChannelSpec]
) -> tuple[float, str]:
    if not channels:
        return 1.0, "no channels"
    comp = prompt.get("composition") or {}
    focus = comp.get("focus") or (0.5, 0.5)
    fx, fy = float(focus[0]), float(focus[1])
    h, w = grad.shape
    # integral image: any rectangle's energy in four lookups
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = grad.cumsum(axis=0).cumsum(axis=1)
    sx, sy = w / src_w, h / src_h

    def rect_sum(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
        a0, a1 = int(np.clip(round(x0 * sx), 0, w)), int(np.clip(round(x1 * sx), 0, w))
        b0, b1 = int(np.clip(round(y0 * sy), 0, h)), int(np.clip(round(y1 * sy), 0, h))
        if a1 <= a0 or b1 <= b0:
            return 0.0, 0.0
        e = ii[b1, a1] - ii[b0, a1] - ii[b1, a0] + ii[b0, a0]
        return float(e), float((a1 - a0) * (b1 - b0))

    per: list[tuple[float, str]] = []
    for spec in channels:
        crop = crop_box(src_w, src_h, spec, (fx, fy))
        sx0, sy0, sx1, sy1 = spec.safe_area.rect(crop.w, crop.h)
        e_crop, a_crop = rect_sum(crop.x, crop.y, crop.x + crop.w, crop.y + crop.h)
        e_safe, a_safe = rect_sum(crop.x + sx0, crop.y + sy0, crop.x + sx1, crop.y + sy1)
        e_out, a_out = max(e_crop - e_safe, 0.0), a_crop - a_safe
        if a_out <= 0 or a_safe <= 0:
            per.append((1.0, spec.name))  # no margin under UI (or nothing safe to compare)
            continue
        d_in, d_out = e_safe / a_safe, e_out / a_out
        if d_in + d_out < 1e-9:
            per.append((1.0, spec.name))  # a blank frame has nothing under the UI
            continue
        per.append((d_in / (d_in + d_out), spec.name))
    score = float(np.mean([p for p, _ in per]))
    n = len(per)
    note = f"over {n} channel{'s' if n != 1 else ''}"
    if n > 1:
        worst = min(per)
        note += f" (weakest {worst[1]} {worst[0]:.2f})"
    return score, note


def score_keyframe(image: np.ndarray, prompt: dict[str, Any], channels: list[ChannelSpec]) -> Score:
    """Score one keyframe against its prompt record (``PromptRecord.canonical()``) and the
    channels it will be cut for."""
    image = _check(image)
    src_h, src_w = image.shape[:2]
    palette, mean_de = _palette_score(image, prompt)
    detail = _sample(image, DETAIL_SAMPLE)
    lightness = srgb_to_lab(detail)[..., 0]
    grad = _grad(lightness)
    copy, copy_note = _copy_score(detail, lightness, grad, prompt)
    safe, safe_note = _safe_score(grad, src_w, src_h, prompt, channels)
    components = {"palette": palette, "copy_contrast": copy, "safe_clearance": safe}
    components = {k: round(float(np.clip(v, 0.0, 1.0)), 4) for k, v in components.items()}
    total = sum(WEIGHTS[k] * components[k] for k in WEIGHTS) / sum(WEIGHTS.values())
    pal_note = f" (mean dE {mean_de:.1f})" if mean_de is not None else " (no palette given)"
    reason = (
        f"total {total:.2f}: palette {components['palette']:.2f}{pal_note}, "
        f"copy-space contrast {components['copy_contrast']:.2f} ({copy_note}), "
        f"safe-area clearance {components['safe_clearance']:.2f} {safe_note}"
    )
    return Score(total=round(float(total), 4), components=components, reason=reason)


def rank(scores: list[Score]) -> list[int]:
    """Indices of ``scores``, best first; equal totals keep their original order."""

    def key(i: int) -> tuple[float, int]:
        t = scores[i].total
        return (-t if t == t else math.inf, i)  # a NaN total sorts last

    return sorted(range(len(scores)), key=key)
