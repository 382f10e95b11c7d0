"""The procedural keyframe backend: the product's embedded default, no weights needed.

It paints a designed, flat-illustration keyframe from the prompt record alone:

* a **scene template** picked from keywords in the environment/subject/mood (skyline,
  ocean, layered hills, studio plinth, starfield, or abstract paper waves),
* a **subject** (rounded product, human silhouette, or glowing orb/sphere) centred on
  ``composition.focus`` and ``subject_scale`` of the frame height tall,
* the **copy space** (``composition.copy_rect``) kept calm and in a tone that contrasts
  with the style pack's ``text_color``,
* every colour from the style pack palette: the background is built as one scalar *tone*
  field that is mapped through a gradient ramp of the palette (sorted dark to light), and
  accents and the subject are shaded between palette colours.
* **reference images**, when the brief names some, lead: their dominant colours (median
  cut, settled by k-means) replace the style palette (a style colour stays as an anchor
  when the copy area would otherwise lose its contrast), the subject moves toward their
  busy region, and their calm side becomes the copy space when the brief asks for none
  (``apply_references``). What was taken is recorded in the keyframe's params.

Determinism: all randomness comes from ``np.random.default_rng(seed)`` (split into
independent streams with ``spawn``), nothing reads global state, nothing is threaded, and
every operation on a full-resolution array is an exactly rounded one (``+ - * /``, ``sqrt``,
``floor``, min/max, clip). The transcendental functions (sin, exp, power, ...), whose SIMD
implementations differ between CPUs, only run in float64 on small arrays (1-D profiles, star
kernels, coarse grids that are then upsampled) and are rounded to float32 afterwards, so
the same inputs give the same bytes on any machine. (Checked: identical hashes on two
different CPUs with numpy 2.4/Pillow 11 and numpy 2.5/Pillow 12.) A reference is decoded by
Pillow and reduced with its integer box filter; its analysis is plain float64 arithmetic
(no transcendental functions) on at most 256 x 256 pixels. (A JPEG reference decodes through libjpeg, whose
output is the same for the same library build.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL import __version__ as PIL_VERSION

from shots.backends import Keyframe

F32 = np.float32
LUT_SIZE = 4096
# A record without a palette still has to render something tasteful (dusk blues to cream).
DEFAULT_PALETTE = ["#12151f", "#2b3a55", "#6c7a96", "#d9a37f", "#f4efe6"]
# Contrast the copy area is pushed to against text_color: above WCAG AA (4.5:1) with
# headroom for the overlays and grain that finishing adds later.
COPY_CONTRAST = 6.0


# --------------------------------------------------------------------------------------
# colour helpers (shared with shots.score)
# --------------------------------------------------------------------------------------
def hex_to_rgb(value: str) -> tuple[int, int, int]:
    """``"#e07a5f"`` (or ``"e07a5f"``, ``"#e75"``) -> ``(224, 122, 95)``."""
    s = str(value).strip().lstrip("#")
    if len(s) == 3:
        s = "".join(ch * 2 for ch in s)
    if len(s) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in s):
        raise ValueError(f"not a #rrggbb colour: {value!r}")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


def srgb_to_linear(rgb01: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb01, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def relative_luminance(rgb01: np.ndarray) -> np.ndarray:
    """WCAG 2 relative luminance of sRGB colours in 0..1 (last axis = RGB)."""
    lin = srgb_to_linear(rgb01)
    return 0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]


def contrast_ratio(lum_a: float, lum_b: float) -> float:
    """WCAG contrast ratio of two relative luminances (1..21)."""
    hi, lo = max(lum_a, lum_b), min(lum_a, lum_b)
    return (hi + 0.05) / (lo + 0.05)


def srgb_to_lab(rgb01: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours in 0..1 (last axis = RGB)."""
    lin = srgb_to_linear(rgb01)
    r, g, b = lin[..., 0], lin[..., 1], lin[..., 2]
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: np.ndarray) -> np.ndarray:
        return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)

    fx, fy, fz = f(x), f(y), f(z)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


# --------------------------------------------------------------------------------------
# small numeric helpers (exactly rounded ops only on 2-D arrays, see module docstring)
# --------------------------------------------------------------------------------------
def _ss(x: np.ndarray, e0: float, e1: float) -> np.ndarray:
    """Smoothstep from e0 to e1 (e1 may be below e0 for a falling edge)."""
    t = np.clip((x - e0) * (1.0 / (e1 - e0)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=F32)


def _upsample(small: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear upsampling of a smooth low-resolution field (Pillow, single-threaded C)."""
    if small.shape == (h, w):
        return small.astype(F32)
    im = Image.fromarray(np.ascontiguousarray(small, dtype=F32))
    return np.array(im.resize((w, h), Image.Resampling.BILINEAR), dtype=F32)


def _noise1d(rng: np.random.Generator, x: np.ndarray, octaves: list[tuple[float, float]]) -> np.ndarray:
    """Smooth 1-D noise in about [-1, 1]: a sum of sines with random phases.
    ``octaves`` is (frequency in cycles per frame height, amplitude)."""
    out = np.zeros(x.shape, dtype=np.float64)
    total = 0.0
    for freq, amp in octaves:
        f = freq * rng.uniform(0.8, 1.25)
        out += amp * np.sin(2 * math.pi * f * x + rng.uniform(0, 2 * math.pi))
        total += amp
    return out / max(total, 1e-9)


def _value_noise(rng: np.random.Generator, hs: int, ws: int, cells: int) -> np.ndarray:
    """Smooth 2-D noise in 0..1 on a small grid (for nebulae): a random lattice, bicubic."""
    lattice = rng.random((cells + 2, cells + 2))
    im = Image.fromarray(lattice.astype(F32))
    return np.array(im.resize((ws, hs), Image.Resampling.BICUBIC), dtype=F32).clip(0, 1)


# --------------------------------------------------------------------------------------
# palette
# --------------------------------------------------------------------------------------
def _ramp_lut(colors: np.ndarray, size: int = LUT_SIZE, plateau: float = 0.6) -> np.ndarray:
    """A gradient map through ``colors`` (k, 3). Each segment is eased (part smoothstep) so
    the ramp lingers on the palette colours themselves and moves briskly between them:
    that is what makes a gradient map read as *this* palette rather than its blends."""
    m = len(colors) - 1
    t = np.linspace(0.0, 1.0, size) * m
    seg = np.minimum(t.astype(int), m - 1)
    s = t - seg
    s = s + plateau * (s * s * (3 - 2 * s) - s)
    c = colors.astype(np.float64)
    return (c[seg] + (c[seg + 1] - c[seg]) * s[:, None]).astype(F32)


class _Palette:
    """The style pack palette, sorted dark to light, with the roles the painter needs."""

    def __init__(self, hexes: list[str]) -> None:
        seen: list[tuple[int, int, int]] = []
        for h in hexes:
            try:
                rgb = hex_to_rgb(h)
            except ValueError:
                continue
            if rgb not in seen:
                seen.append(rgb)
        if not seen:
            seen = [hex_to_rgb(h) for h in DEFAULT_PALETTE]
        if len(seen) == 1:
            # One colour cannot make a ramp; a deep shade of it is the least surprising partner.
            r, g, b = seen[0]
            seen.append((int(r * 0.25), int(g * 0.25), int(b * 0.25)))
        rgb = np.array(seen, dtype=np.float64) / 255.0
        lab = srgb_to_lab(rgb)
        order = np.argsort(lab[:, 0], kind="stable")
        self.rgb = rgb[order].astype(F32)
        self.lab = lab[order]
        self.lum = relative_luminance(self.rgb)
        self.chroma = np.hypot(self.lab[:, 1], self.lab[:, 2])
        self.hue = np.degrees(np.arctan2(self.lab[:, 2], self.lab[:, 1]))
        self.n = len(self.rgb)
        # The main ramp walks the palette dark to light, but skips a colour that would be a
        # big detour in colour space (neon-night's cyan between pink and white would drag a
        # grey seam through every sky). Skipped colours become accents.
        ramp = list(range(self.n))
        while len(ramp) > 3:
            worst, worst_ratio = -1, 1.5
            for k in range(1, len(ramp) - 1):
                a, b, c = (self.lab[ramp[k - 1]], self.lab[ramp[k]], self.lab[ramp[k + 1]])
                direct = float(np.linalg.norm(c - a)) + 1e-6
                ratio = (float(np.linalg.norm(b - a)) + float(np.linalg.norm(c - b))) / direct
                if ratio > worst_ratio:
                    worst, worst_ratio = k, ratio
            if worst < 0:
                break
            ramp.pop(worst)
        self.ramp = ramp
        self.off_ramp = [i for i in range(self.n) if i not in ramp]
        self.lut = _ramp_lut(self.rgb[ramp])
        self.lut_lum = relative_luminance(self.lut)

    def tone_of(self, index: int) -> float:
        """Position of palette colour ``index`` on the main ramp (nearest ramp colour)."""
        if index in self.ramp:
            return self.ramp.index(index) / (len(self.ramp) - 1)
        d = [float(np.linalg.norm(self.lab[index] - self.lab[j])) for j in self.ramp]
        return int(np.argmin(d)) / (len(self.ramp) - 1)

    def tone_limit(self, text_lum: float, ratio: float, dark: bool) -> float:
        """The lightest tone (dark=True) or darkest tone (dark=False) on the ramp that still
        gives ``ratio``:1 contrast against text of luminance ``text_lum``."""
        lums = self.lut_lum
        if dark:
            ok = (text_lum + 0.05) / (lums + 0.05) >= ratio
            if not ok[0]:
                return 0.0
            bad = np.flatnonzero(~ok)
            last = (bad[0] - 1) if len(bad) else len(lums) - 1
            return float(last) / (len(lums) - 1)
        ok = (lums + 0.05) / (text_lum + 0.05) >= ratio
        if not ok[-1]:
            return 1.0
        bad = np.flatnonzero(~ok)
        first = (bad[-1] + 1) if len(bad) else 0
        return float(first) / (len(lums) - 1)

    def warm(self, i: int) -> bool:
        return self.chroma[i] > 12 and -40 <= self.hue[i] <= 110

    def cool(self, i: int) -> bool:
        return self.chroma[i] > 8 and (self.hue[i] >= 150 or self.hue[i] <= -60)

    def hex(self, i: int) -> str:
        r, g, b = (int(round(v * 255)) for v in self.rgb[i])
        return f"#{r:02x}{g:02x}{b:02x}"


def _mini_lut(colors: list[np.ndarray], size: int = 512) -> np.ndarray:
    return _ramp_lut(np.array(colors, dtype=np.float64), size=size, plateau=0.45)


def _apply_lut(lut: np.ndarray, t: np.ndarray) -> np.ndarray:
    n = len(lut) - 1
    idx = np.clip(t * float(n) + 0.5, 0, n).astype(np.intp)
    return np.take(lut, idx, axis=0)


# --------------------------------------------------------------------------------------
# prompt reading
# --------------------------------------------------------------------------------------
_SCENE_WORDS: dict[str, str] = {
    "skyline": r"\b(city|cities|street|streets|skyline|urban|downtown|rooftops?|buildings?|"
    r"skyscrapers?|metropolis|avenue|town|alley|bridge)\b",
    "ocean": r"\b(ocean|sea|seaside|beach|coast|coastal|shore|lake|waves?|surf|harbou?r|bay|"
    r"water|river|island|pier)\b",
    "hills": r"\b(mountains?|forest|woods|trees?|field|fields|hills?|meadow|valley|countryside|"
    r"trail|park|desert|dunes?|landscape|nature|outdoors?|farm|peaks?|alpine)\b",
    "studio": r"\b(studio|packshot|table|tabletop|plinth|pedestal|podium|backdrop|counter|shelf|"
    r"display|product shot|seamless)\b",
    "starfield": r"\b(space|stars?|starry|galaxy|cosmos|cosmic|nebula|universe|night sky|planets?|"
    r"orbit|astronaut|milky way)\b",
}
_SCENE_PRIORITY = ["skyline", "ocean", "hills", "studio", "starfield"]

_PRODUCT_WORDS = {
    "bottle": r"\b(bottles?|perfume|fragrance|wine|serum|flask|soda bottle|water bottle)\b",
    "can": r"\b(cans?|soda|energy drink|tin)\b",
    "phone": r"\b(phones?|smartphones?|mobile|tablet|device|app|screen)\b",
    "jar": r"\b(jars?|cups?|mugs?|candle|pot|cream|coffee)\b",
    "product": r"\b(products?|package|packaging|pack|box|cosmetics?|drink|beverage|gadget|item)\b",
}
_PERSON_WORDS = (
    r"\b(person|people|runners?|running|woman|women|man|men|girl|boy|character|athletes?|dancers?|"
    r"dancing|hikers?|skater|figure|child|kid|human|model|travell?er|walker|walking|jogger|"
    r"cyclist|player|hero|she|he|someone|friends?|couple|crowd)\b"
)
_MOOD_WORDS = {
    "calm": r"\b(calm|serene|peaceful|quiet|tranquil|gentle|soft|relaxed|minimal|still|airy|clean)\b",
    "energetic": r"\b(energetic|energy|dynamic|vibrant|exciting|bold|powerful|fast|action|"
    r"electric|upbeat|playful|saturated)\b",
    "dramatic": r"\b(dramatic|epic|intense|cinematic|moody|mysterious|high contrast)\b",
    "warm": r"\b(warm|golden|sunset|sunrise|cozy|cosy|amber|optimistic)\b",
    "cool": r"\b(cool|cold|icy|winter|frost|frosty|nordic|overcast|muted)\b",
    "dark": r"\b(dark|night|midnight|noir|shadowy|gloomy|after dark)\b",
}
_NIGHT_WORDS = r"\b(night|midnight|evening|after dark|nocturnal|moonlit|moon)\b"


def _text(prompt: dict[str, Any], key: str) -> str:
    v = prompt.get(key) or ""
    if isinstance(v, list):
        v = ", ".join(str(x) for x in v)
    return str(v).lower()


def pick_scene(prompt: dict[str, Any]) -> tuple[str, str]:
    """(template, variant) from keywords: the environment counts most, then the subject,
    then the mood."""
    env, subj, mood = _text(prompt, "environment"), _text(prompt, "subject"), _text(prompt, "mood")
    best, best_score = "abstract", 0.0
    for name in _SCENE_PRIORITY:
        pat = _SCENE_WORDS[name]
        score = 3 * len(re.findall(pat, env)) + 2 * len(re.findall(pat, subj)) + len(re.findall(pat, mood))
        if score > best_score:
            best, best_score = name, score
    words = f"{env} {subj}"
    variant = ""
    if best == "hills":
        if re.search(r"\b(mountains?|peaks?|alpine|summit|ridge)\b", words):
            variant = "peaks"
        elif re.search(r"\b(forest|woods|trees?|pines?)\b", words):
            variant = "forest"
        elif re.search(r"\b(desert|dunes?|sand)\b", words):
            variant = "dunes"
        else:
            variant = "rolling"
    elif best == "ocean":
        variant = "lake" if re.search(r"\b(lake|pond|river|calm water)\b", words) else "sea"
        if re.search(r"\b(beach|shore|sand|coast)\b", words):
            variant += "+beach"
    return best, variant


def pick_subject(prompt: dict[str, Any]) -> tuple[str, str]:
    """(shape, detail): ("product", bottle|can|phone|jar|any), ("person", pose hint) or
    ("orb", "")."""
    subj = _text(prompt, "subject")
    for kind in ("bottle", "can", "phone", "jar", "product"):
        if re.search(_PRODUCT_WORDS[kind], subj):
            return "product", ("any" if kind == "product" else kind)
    if re.search(_PERSON_WORDS, subj) or prompt.get("characters"):
        if re.search(r"\b(run|runs|runner|runners|running|sprint|jog|jogger|athlete)", subj):
            return "person", "running"
        if re.search(r"\b(danc|jump|celebrat|cheer|victory|triumph)", subj):
            return "person", "arms-up"
        if re.search(r"\b(walk|hik|travel|stroll|wander)", subj):
            return "person", "walking"
        return "person", "any"
    return "orb", ""


def _moods(prompt: dict[str, Any]) -> set[str]:
    text = " ".join(_text(prompt, k) for k in ("mood", "environment", "style_tokens"))
    found = {name for name, pat in _MOOD_WORDS.items() if re.search(pat, text)}
    if re.search(_NIGHT_WORDS, text):
        found.add("night")
    return found


# --------------------------------------------------------------------------------------
# the painter
# --------------------------------------------------------------------------------------
@dataclass
class _Box:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def sl(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0


class _Painter:
    def __init__(self, prompt: dict[str, Any], seed: int, width: int, height: int) -> None:
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"keyframe size must be at least 1x1, not {width}x{height}")
        self.w, self.h = W, H = int(width), int(height)
        root = np.random.default_rng(int(seed) % 2**64)
        # Independent streams: changing how many buildings fit a wider frame must not
        # change the subject's pose or the lighting.
        self.r_plan, self.r_scene, self.r_subject, self.r_detail = root.spawn(4)
        self.pal = _Palette(list(prompt.get("palette") or []))
        try:
            text_rgb = np.array(hex_to_rgb(prompt.get("text_color") or "#ffffff")) / 255.0
        except ValueError:
            text_rgb = np.ones(3)
        self.text_lum = float(relative_luminance(text_rgb))
        # Light lettering needs a dark picture where it goes, and the whole picture reads as
        # one designed piece when its key agrees with the copy area.
        self.dark_key = self.text_lum >= 0.35
        self.scene, self.variant = pick_scene(prompt)
        self.shape, self.detail = pick_subject(prompt)
        self.moods = _moods(prompt)
        if self.scene == "starfield":
            self.moods.add("night")
        self.night = "night" in self.moods and self.dark_key

        comp = prompt.get("composition") or {}
        focus = comp.get("focus") or (0.5, 0.5)
        self.fx = float(np.clip(float(focus[0]), 0.0, 1.0)) * W
        self.fy = float(np.clip(float(focus[1]), 0.0, 1.0)) * H
        self.scale = float(np.clip(float(comp.get("subject_scale") or 0.3), 0.02, 1.0))
        self.copy = str(comp.get("copy_space") or "none")
        rect = comp.get("copy_rect")
        self.rect: tuple[float, float, float, float] | None = None
        if rect is not None and self.copy != "none":
            x0, y0, x1, y1 = (float(v) for v in rect)
            self.rect = (min(x0, x1) * W, min(y0, y1) * H, max(x0, x1) * W, max(y0, y1) * H)

        self.ys = (np.arange(H, dtype=F32) + 0.5)[:, None]
        self.xs = (np.arange(W, dtype=F32) + 0.5)[None, :]
        self.px = H / 1080.0  # one "design pixel" of a 1080-high frame, for line widths
        self.layers = 0
        self.floor_t: float | None = None  # tone of the nearest ground, set by the scene
        self._plan()

    # -- planning: every random decision about the picture, no pixels ------------------
    def _plan(self) -> None:
        r, H, pal = self.r_plan, self.h, self.pal
        # Accent colours: the most chromatic mid colours; the mood says warm or cool, and
        # the seed picks between the two best so candidates differ in hue.
        mids = list(range(1, pal.n - 1)) if pal.n >= 4 else list(range(pal.n))

        def key(i: int) -> tuple[int, float]:
            pref = 0
            if "warm" in self.moods and not pal.warm(i):
                pref = 1
            if "cool" in self.moods and "warm" not in self.moods and not pal.cool(i):
                pref = 1
            return pref, -float(pal.chroma[i])

        ranked = sorted(mids, key=key)
        if len(ranked) > 1 and r.random() < 0.35:
            ranked[0], ranked[1] = ranked[1], ranked[0]
        self.accent = ranked[0]
        self.accent2 = ranked[1] if len(ranked) > 1 else ranked[0]
        # Off-ramp colours (e.g. neon cyan) are the most striking accents available.
        if pal.off_ramp and r.random() < 0.6:
            self.accent2 = self.accent
            self.accent = pal.off_ramp[int(r.integers(len(pal.off_ramp)))]
        self.darkest, self.lightest = 0, pal.n - 1

        # Subject size: subject_scale of the frame height, shrunk if it would run into the
        # copy area (the copy area wins: it is where the message goes).
        size = self.scale * H
        half_w = {"orb": 0.5, "person": 0.3, "product": 0.22}[self.shape] * size
        half_h = 0.5 * size
        fit = 1.0
        if self.rect is not None:
            x0, y0, x1, y1 = self.rect
            # below the subject there is usually a ground line or table edge: more room
            margin = (0.05 if self.copy == "bottom" else 0.03) * H
            if self.copy == "left":
                fit = (self.fx - x1 - margin) / half_w
            elif self.copy == "right":
                fit = (x0 - self.fx - margin) / half_w
            elif self.copy == "top":
                fit = (self.fy - y1 - margin) / half_h
            elif self.copy == "bottom":
                fit = (y0 - self.fy - margin) / half_h
        self.size = size * float(np.clip(fit, 0.45, 1.0))

        # Where the ground and the horizon sit.
        if self.shape == "orb":
            self.ground = None
            hz = self.fy + 0.5 * self.size + r.uniform(0.04, 0.12) * H
        else:
            self.ground = self.fy + 0.5 * self.size
            hz = self.ground - r.uniform(0.05, 0.13) * H
        self.horizon = float(np.clip(hz, 0.42 * H, 0.88 * H))
        if self.scene == "starfield":
            self.horizon = float(np.clip(max(hz, 0.8 * H), 0.0, 0.95 * H))

        # The light: the orb is its own light; otherwise a low sun behind the subject, on the
        # side away from the copy (text sits in the calm shade, not in the glare).
        side = {"left": 1.0, "right": -1.0}.get(self.copy, 1.0 if r.random() < 0.5 else -1.0)
        if self.shape == "orb":
            self.light = (self.fx, self.fy)
        else:
            lx = self.fx + side * r.uniform(0.02, 0.16) * H
            ly = self.fy - self.size * r.uniform(0.05, 0.3)
            self.light = (lx, ly)
        self.sun_r = r.uniform(0.07, 0.13) * H
        if self.shape != "orb":
            # the sun sits above the horizon (so the landscape does not swallow it) and
            # below a copy area at the top
            lo = self.horizon - 0.55 * self.sun_r
            hi = 0.1 * H
            if self.copy == "top" and self.rect is not None:
                hi = self.rect[3] + 0.1 * H + self.sun_r
            self.light = (self.light[0], float(np.clip(self.light[1], min(hi, lo), lo)))
        if "energetic" in self.moods or "dramatic" in self.moods:
            self.rays = r.random() < 0.75
        else:
            self.rays = r.random() < 0.2 and "calm" not in self.moods

        # Tone plan (0 = darkest palette colour, 1 = lightest).
        if self.dark_key:
            self.t_top = r.uniform(0.0, 0.1)
            self.t_hz = r.uniform(0.58, 0.74)
            if self.night:
                self.t_hz = r.uniform(0.32, 0.45)
            if "dark" in self.moods or "dramatic" in self.moods:
                self.t_hz -= 0.06
        else:
            self.t_top = r.uniform(0.62, 0.76)
            self.t_hz = r.uniform(0.92, 1.0)
            if self.rect is not None:
                lo = self.pal.tone_limit(self.text_lum, COPY_CONTRAST, False)
                self.t_top = max(self.t_top, min(lo + 0.03, 0.95))
        if self.scene == "starfield":
            self.t_top, self.t_hz = r.uniform(0.0, 0.04), r.uniform(0.18, 0.3)

    # -- canvas helpers ----------------------------------------------------------------
    def _box(self, cx: float, cy: float, rx: float, ry: float) -> _Box:
        return _Box(
            max(0, int(math.floor(cy - ry))), min(self.h, int(math.ceil(cy + ry)) + 1),
            max(0, int(math.floor(cx - rx))), min(self.w, int(math.ceil(cx + rx)) + 1),
        )

    def _grid(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Pixel-centre coordinates of a coarse grid (for smooth fields) and its step."""
        step = max(1, min(8, self.h // 96, self.w // 96))
        hs, ws = -(-self.h // step), -(-self.w // step)
        ys = ((np.arange(hs) + 0.5) * (self.h / hs))[:, None]
        xs = ((np.arange(ws) + 0.5) * (self.w / ws))[None, :]
        return ys, xs, step

    def _paint_rgb(self, box: _Box, alpha: np.ndarray, color: np.ndarray, depth: Any = None) -> None:
        reg = self.rgb[box.sl]
        tmp = np.subtract(color, reg, dtype=F32)  # one temporary instead of two
        tmp *= alpha[..., None]
        reg += tmp
        if depth is not None:
            d = self.D[box.sl]
            d += alpha * (depth - d)

    def _ridge(self, h: np.ndarray, tone: float, depth: float, *, soft: float = 1.0,
               rim: float = 0.0, rim_w: float = 1.0, shadow: float = 0.0, clear: bool = True) -> None:
        """Fill everything below the ridge line ``h`` (px, one value per column) with a
        tone, in tone space: one layer of the landscape. ``rim`` lightens a band under the
        ridge (haze caught by the light), ``shadow`` darkens a soft band above it (the cast
        shadow of a paper-cut layer)."""
        h = np.asarray(h, dtype=np.float64)
        if clear:
            h = self._clear_subject(self._clear_copy(h), -0.2)
        h = _f32(h)
        reach = max(soft, 0.06 * self.h if shadow else 0.0)
        top = max(0, int(math.floor(float(h.min()) - reach - 2)))
        if top >= self.h:
            return
        dist = self.ys[top:] - h[None, :]
        T, D = self.T[top:], self.D[top:]
        if shadow:
            # darkens the layers behind before this one covers them
            T -= shadow * _ss(dist, -0.05 * self.h, 0.0)
        a = np.clip(dist * (1.0 / soft) + 0.5, 0.0, 1.0)
        if rim:
            tone_f = tone + rim * np.clip(1.0 - dist * (1.0 / rim_w), 0.0, 1.0)
            T += a * (tone_f - T)
        else:
            T += a * (tone - T)
        D += a * (depth - D)
        self.layers += 1

    def _clear_copy(self, h: np.ndarray) -> np.ndarray:
        """Bend a ridge line out of the copy area: below it, or (for copy at the bottom)
        above it, so the text sits on open sky or on a flat foreground, not on an edge."""
        if self.rect is None:
            return h
        x0, y0, x1, y1 = self._rect_ext()
        # a wide ramp: the land slopes away under the copy instead of dropping off a cliff
        f = 0.3 * self.h
        x = (np.arange(self.w) + 0.5)
        wx = _ss(x, x0 - f, x0) * _ss(x, x1 + f, x1)
        m = 0.05 * self.h
        target = np.minimum(h, y0 - m) if self.copy == "bottom" else np.maximum(h, y1 + m)
        return h + wx * (target - h)

    def _clear_subject(self, h: np.ndarray, below: float) -> np.ndarray:
        """Dip a ridge line behind a person or product so it stands against the sky
        (a silhouette reads only against something lighter): the ridge stays below
        ``below`` of the subject's height from its centre (-0.2: the shoulders)."""
        if self.shape == "orb":
            return h
        half = (0.3 if self.shape == "person" else 0.25) * self.size + 0.04 * self.h
        f = 0.15 * self.h
        x = np.arange(self.w) + 0.5
        wx = _ss(x, self.fx - half - f, self.fx - half) * _ss(x, self.fx + half + f, self.fx + half)
        return h + wx * (np.maximum(h, self.fy + below * self.size) - h)

    def _rect_ext(self) -> tuple[float, float, float, float]:
        """The copy rectangle, run out to the frame edge on its own side."""
        assert self.rect is not None
        x0, y0, x1, y1 = self.rect
        if self.copy == "left":
            x0 = 0.0
        elif self.copy == "right":
            x1 = float(self.w)
        elif self.copy == "top":
            y0 = 0.0
        elif self.copy == "bottom":
            y1 = float(self.h)
        return x0, y0, x1, y1

    # -- the picture -------------------------------------------------------------------
    def render(self) -> Keyframe:
        H, W = self.h, self.w
        if self.scene != "studio":
            self._sky()
        scene = {
            "skyline": self._skyline, "ocean": self._ocean, "hills": self._hills,
            "studio": self._studio, "starfield": self._starfield, "abstract": self._abstract,
        }[self.scene]
        overlays = scene()
        self._contact_shadow()
        self._vignette()
        scrim = self._scrim()
        np.clip(self.T, 0.0, 1.0, out=self.T)
        self.rgb = _apply_lut(self.pal.lut, self.T)
        for paint in overlays:
            paint()
        if scrim is not None:
            # accents painted after the tone pass must not creep back into the copy area
            box, w, calm_rgb = scrim
            reg = self.rgb[box.sl]
            reg += w[..., None] * (calm_rgb - reg)
        subject = {"orb": self._orb, "person": self._person, "product": self._product}[self.shape]
        shape = subject()
        image = self._quantise()
        depth = np.clip(self.D, 0.0, 1.0).astype(F32)
        params = {
            "scene": self.scene + (f"/{self.variant}" if self.variant else ""),
            "subject_shape": shape,
            "layers": self.layers,
            "key": "dark" if self.dark_key else "light",
            "accent": self.pal.hex(self.accent),
            "light": [round(self.light[0] / W, 4), round(self.light[1] / H, 4)],
            "subject_scale_used": round(self.size / H, 4),
        }
        return Keyframe(image=image, depth=depth, params=params)

    def _quantise(self) -> np.ndarray:
        # An ordered (Bayer) dither of half a code value keeps wide gradients free of bands
        # without adding any noise a viewer could see.
        bayer = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]],
                          dtype=F32) + 0.5) / 16.0
        tile = np.tile(bayer, (-(-self.h // 4), -(-self.w // 4)))[: self.h, : self.w]
        out = self.rgb
        out *= 255.0
        out += tile[..., None]
        np.clip(out, 0.0, 255.0, out=out)
        return out.astype(np.uint8)

    # -- sky ----------------------------------------------------------------------------
    def _sky(self) -> None:
        H, W, r = self.h, self.w, self.r_scene
        hz = self.horizon
        v = np.clip((np.arange(H) + 0.5) / hz, 0.0, 1.3)
        col = self.t_top + (self.t_hz - self.t_top) * v ** 1.7
        # below the horizon (where nothing else covers it) the sky tone settles back a bit
        col = np.where(v > 1.0, self.t_hz - (v - 1.0) * 0.6, col)
        ys, xs, _ = self._grid()
        lx, ly = self.light
        glow = np.zeros((ys.shape[0], xs.shape[1]))
        if self.scene != "starfield":
            amp = 0.3 if self.dark_key else 0.12
            if self.shape == "orb":
                rad = max(self.size * 0.9, 0.2 * H)
            else:
                rad = self.sun_r * 2.6
            d2 = ((xs - lx) ** 2 + ((ys - ly) * 1.35) ** 2) / (rad * rad)
            glow += amp / (1.0 + d2) ** 1.5
            # a wide, flat warmth along the horizon under the light
            glow += 0.5 * amp * np.exp(-(((xs - lx) / (0.9 * W + 0.5 * H)) ** 2)) * np.exp(
                -(((ys - hz) / (0.18 * H)) ** 2))
        if self.rays and self.scene not in ("starfield", "studio"):
            ang = np.arctan2(ys - ly, xs - lx)
            n_rays = int(r.integers(9, 16))
            phase = r.uniform(0, 2 * math.pi)
            streak = np.clip(np.sin(ang * n_rays + phase) * 1.6 - 0.5, 0.0, 1.0) ** 2
            dist = np.hypot(xs - lx, ys - ly) / H
            glow += 0.08 * streak * np.clip(dist * 6.0, 0.0, 1.0) / (1.0 + (dist / 0.45) ** 2)
        self.T = _f32(col)[:, None] + _upsample(glow.astype(F32), W, H)
        dcol = _f32(0.1 + 0.12 * np.clip(v, 0.0, 1.0))
        self.D = np.repeat(dcol[:, None], W, axis=1)
        self.sky_col = _f32(col)
        self.layers += 1
        # a sun disc behind a subject that is not itself the light
        if self.shape != "orb" and self.scene not in ("studio", "starfield"):
            if self.night:
                self._disc(lx, ly, self.sun_r * 0.75, min(1.0, self.t_hz + 0.5), moon=r.random() < 0.3)
            else:
                self._disc(lx, ly, self.sun_r, 1.0)
        if self.scene != "starfield" and r.random() < (0.35 if "calm" in self.moods else 0.7):
            self._clouds(r)

    def _clouds(self, r: np.random.Generator) -> None:
        """Long, thin cloud banks low in the sky, silhouetted against the glow (dark key)
        or catching the light (light key)."""
        H, W = self.h, self.w
        for _ in range(int(r.integers(2, 6))):
            rx = r.uniform(0.12, 0.4) * max(W, H)
            ry = r.uniform(0.006, 0.018) * H
            cx = r.uniform(-0.1, 1.1) * W
            cy = self.horizon - r.uniform(0.04, 0.35) * H
            box = self._box(cx, cy, rx, ry * 1.6)
            if box.empty or ry < 0.5:
                continue
            u = (self.xs[:, box.x0:box.x1] - cx) * (1.0 / rx)
            v = (self.ys[box.y0:box.y1] - cy) * (1.0 / ry)
            # flat-bottomed: squash the lower half
            v = np.where(v > 0, v * 1.8, v)
            a = np.clip((1.0 - u * u - v * v) * 3.0, 0.0, 1.0) * r.uniform(0.5, 0.9)
            T = self.T[box.sl]
            if self.dark_key:
                T -= a * 0.3 * T
            else:
                T += a * (1.0 - T) * 0.5

    def _disc(self, cx: float, cy: float, rad: float, tone: float, moon: bool = False) -> None:
        box = self._box(cx, cy, rad + 2, rad + 2)
        if box.empty:
            return
        ys, xs = self.ys[box.y0:box.y1], self.xs[:, box.x0:box.x1]
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        a = np.clip(rad - d + 0.5, 0.0, 1.0)
        if moon:
            # a crescent: the disc minus an offset disc
            d2 = np.sqrt((xs - cx - 0.35 * rad) ** 2 + (ys - cy + 0.2 * rad) ** 2)
            a = a * (1.0 - np.clip(rad * 0.95 - d2 + 0.5, 0.0, 1.0))
        T = self.T[box.sl]
        tone_f = tone - 0.12 * (d * (1.0 / rad)) ** 2 if not moon else tone
        T += a * (np.minimum(tone_f, 1.0) - T)

    # -- scenes: each paints its layers in tone space and returns RGB overlay painters ----
    def _layer_tones(self, n: int) -> list[float]:
        """Far to near. Dark key: far layers sit in the haze of the horizon, near ones go to
        the darkest colour. Light key: mid tones, with a light foreground when the copy is
        at the bottom (dark text needs it)."""
        if self.dark_key:
            far, near = self.t_hz - 0.2, 0.02
            if self.night:
                far = max(self.t_hz - 0.12, 0.12)
        else:
            far, near = 0.72, 0.28
        tones = [far + (near - far) * (i + 1) / n for i in range(n)]
        if not self.dark_key and self.copy == "bottom":
            tones[-1] = 0.92
        self.floor_t = tones[-1]
        return tones

    def _skyline(self) -> list[Any]:
        H, W, r = self.h, self.w, self.r_scene
        rows = 3
        tones = self._layer_tones(rows + 1)
        base = self.horizon
        lit_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]] = []
        cols = np.arange(W) + 0.5
        for i in range(rows):
            near = i / max(rows - 1, 1)
            tallest = (0.36 - 0.14 * near) * H
            widths, heights = [], []
            start = -r.uniform(0, 0.05) * H
            x = start
            while x < W:
                bw = r.uniform(0.03, 0.08) * H * (1.0 + 0.6 * near)
                widths.append(bw)
                heights.append(tallest * r.uniform(0.2, 1.0) ** 1.3)
                x += bw
            edges = start + np.concatenate([[0.0], np.cumsum(widths)])
            wid, hgt = np.asarray(widths), np.asarray(heights)
            if self.rect is not None and self.copy != "bottom":
                # towers under the copy area are kept low-rise, building by building, so
                # roofs stay flat and the text sits on open sky (or, when the horizon runs
                # through the copy area, on the haze that the scrim lays over them)
                fe = 0.06 * H
                x0, _, x1, y1 = self._rect_ext()
                hit = (edges[1:] > x0 - fe) & (edges[:-1] < x1 + fe)
                limit = max(base - (y1 + 0.05 * H), 0.25 * tallest)
                hgt = np.where(hit, np.minimum(hgt, limit * r.uniform(0.4, 1.0, len(hgt))), hgt)
            if self.shape != "orb":
                # keep the head and shoulders of the subject against the sky
                half = 0.3 * self.size + 0.02 * H
                hit = (edges[1:] > self.fx - half) & (edges[:-1] < self.fx + half)
                hgt = np.where(hit, np.minimum(hgt, max(base - (self.fy - 0.2 * self.size), 0.0)), hgt)
            bid = np.clip(np.searchsorted(edges, cols, side="right") - 1, 0, len(hgt) - 1)
            top = base - hgt[bid]
            # stepped crowns and spires on the taller towers
            lx = (cols - edges[bid]) / wid[bid]
            crown = (hgt[bid] > 0.55 * tallest) & (np.abs(lx - 0.5) < 0.22)
            top = np.where(crown, top - 0.02 * H * (1 + near), top)
            spire = (hgt[bid] > 0.8 * tallest) & (np.abs(lx - 0.5) < max(0.012, 1.0 / max(wid[bid].min(), 1.0)))
            top = np.where(spire, top - 0.05 * H, top)
            top = top + 0.035 * H * near  # nearer rows stand lower in the frame
            depth = 0.32 + 0.12 * i
            self._ridge(top, tones[i], depth, rim=0.06 if self.dark_key else 0.03,
                        rim_w=0.008 * H, clear=False)
            if i >= 1:
                lit_rows.append((top, edges, bid.astype(np.intp), depth, near))
        overlays: list[Any] = []
        if self.dark_key and H >= 160:
            overlays.append(lambda: self._windows(lit_rows))
        if self.ground is not None:
            # a rooftop or promenade edge for the subject to stand on
            gy = np.full(W, self.ground + 0.003 * H)
            self._ridge(gy, tones[-1], 0.76, rim=0.05 if self.dark_key else 0.08,
                        rim_w=0.005 * H, clear=False)
        if self.night:
            overlays.append(lambda: self._stars(count=160, ymax=self.horizon - 0.3 * H))
        return overlays

    def _windows(self, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]]) -> None:
        """Lit windows near the crowns of the nearer towers: sparse, in two warm palette
        colours, fading into the haze lower down; only where that building is visible.
        A few hundred small rectangles: a loop over them beats a full-frame mask."""
        H, W, r = self.h, self.w, self.r_detail
        light, warm = self.pal.rgb[self.lightest], self.pal.rgb[self.accent]
        for top, edges, _bid, depth, near in rows:
            ww, wh = 0.007 * H * (1 + near), 0.011 * H * (1 + near)
            if ww < 1.5:
                continue
            band, pad = 0.16 * H, 0.008 * H
            for b in range(len(edges) - 1):
                bx0, bx1 = edges[b] + pad, edges[b + 1] - pad
                if bx1 <= 0 or bx0 >= W or bx1 - bx0 < ww:
                    continue
                c0 = int(np.clip(edges[b] + 0.5 * (edges[b + 1] - edges[b]), 0, W - 1))
                roof = float(top[c0]) + 0.014 * H
                ncol = int((bx1 - bx0 + ww) // (2 * ww))
                nrow = int(band // (2 * wh))
                lit = r.random((nrow, ncol)) < 0.28
                col = light if r.random() < 0.35 else warm
                for fy, fx in zip(*np.nonzero(lit), strict=True):
                    y0 = int(roof + fy * 2 * wh)
                    x0 = int(bx0 + fx * 2 * ww)
                    y1, x1 = min(H, int(y0 + wh)), min(W, int(x0 + ww))
                    if y0 >= H or x0 >= W or y1 <= max(y0, 0) or x1 <= max(x0, 0):
                        continue
                    y0, x0 = max(y0, 0), max(x0, 0)
                    seen = np.abs(self.D[y0:y1, x0:x1] - depth) < 1e-3
                    a = (seen * (0.9 * (1.0 - fy * 2 * wh / band))).astype(F32)
                    reg = self.rgb[y0:y1, x0:x1]
                    reg += a[..., None] * (col - reg)

    def _ocean(self) -> list[Any]:
        H, W, r = self.h, self.w, self.r_scene
        hz = self.horizon
        y0 = int(min(H, max(0, math.floor(hz))))
        tones = self._layer_tones(3)
        # a far headland on one side, for scale
        if r.random() < 0.7:
            x = (np.arange(W) + 0.5) / H
            side = 0 if r.random() < 0.5 else W / H
            land = np.clip(1.0 - np.abs(x - side) / r.uniform(0.25, 0.5), 0.0, 1.0) ** 1.5
            h = hz - (land * r.uniform(0.03, 0.08) + 0.008 * _noise1d(r, x, [(6, 1), (17, 0.4)]) * land) * H
            h = np.where(land > 0, h, hz + 2)
            self._ridge(h, tones[0], 0.3)
        sea_top = self.t_hz - (0.1 if self.dark_key else 0.08)
        sea_bot = 0.04 if self.dark_key else 0.5
        self.floor_t = 0.5 * (sea_top + sea_bot)
        if y0 < H:
            yc = np.arange(y0, H) + 0.5
            v = np.clip((yc - hz) / max(H - hz, 1.0), 0.0, 1.0)
            sea = _f32(sea_top + (sea_bot - sea_top) * v ** 0.6)[:, None]
            ys = self.ys[y0:]
            calm = "calm" in self.moods or self.variant.startswith("lake")
            # Waves evenly spaced in depth are spaced (y - horizon)^2 apart on screen: the
            # wave index is A / (y - horizon). Each wave is a thin crest line broken into
            # dashes whose length shrinks with distance.
            A = r.uniform(2.6, 3.6) * H * (1.4 if calm else 1.0)
            wob = _f32(0.12 * _noise1d(r, self.xs[0] / H, [(1.5, 1), (4, 0.4)]))[None, :]
            f = A / (ys - hz + 0.012 * H) + wob
            idx = np.floor(f)
            frac = f - idx
            crest = _ss(frac, 0.0, 0.06) * _ss(frac, 0.3, 0.16)
            vv = _f32(v)[:, None]
            seed_x = r.uniform(0, 1)
            g = self.xs * (1.0 / H) * (2.5 + 30.0 * (1.0 - vv)) + idx * 0.618034 + seed_x
            tri = np.abs(2.0 * (g - np.floor(g)) - 1.0)
            dash = _ss(tri, 0.35 if calm else 0.5, 0.2 if calm else 0.3)
            # crests fade in past the horizon (they would alias) and out again low in the
            # frame, where platform UI sits over vertical video
            near_fade = _ss(ys - hz, 0.01 * H, 0.06 * H) * (1.0 - 0.8 * _ss(ys, 0.72 * H, 0.95 * H))
            self.crests = (y0, crest * dash * near_fade)
            amp = (0.05 if calm else 0.08) * (1.0 if self.dark_key else -0.6)
            T = sea + crest * dash * near_fade * amp
            # the light's path on the water, broken up by the crests
            lx = self.light[0]
            spread = (0.03 + 0.22 * vv) * H
            q = (self.xs - lx) / spread
            path = 1.0 / (1.0 + q * q) ** 2
            glow = path * (0.12 + 0.88 * crest * near_fade) * ((0.4 if self.dark_key else 0.15) * (1.0 - 0.6 * vv))
            self.T[y0:] = T + glow
            self.D[y0:] = 0.28 + 0.45 * vv
            self.layers += 1
        if "beach" in self.variant or self.ground is not None:
            x = (np.arange(W) + 0.5) / H
            gy = self.ground if self.ground is not None else hz + 0.22 * H
            h = gy + 0.04 * _noise1d(r, x, [(0.8, 1), (2.1, 0.3)]) * H
            if self.ground is not None:
                h = h - (h[int(np.clip(self.fx, 0, W - 1))] - self.ground)
            sand = tones[1] if self.dark_key else 0.85
            self._ridge(h, sand, 0.74, rim=0.06, rim_w=0.01 * H)
            self.floor_t = sand
        overlays: list[Any] = []
        if y0 < H and self.dark_key and self.r_detail.random() < 0.6:
            overlays.append(self._crest_tint)
        if self.night:
            overlays.append(lambda: self._stars(count=120, ymax=hz - 0.2 * H))
        return overlays

    def _crest_tint(self) -> None:
        # some wave crests catch an accent colour (neon signs, a last band of sky)
        y0, crest = self.crests
        self._paint_rgb(_Box(y0, self.h, 0, self.w), (crest * 0.45).astype(F32), self.pal.rgb[self.accent])

    def _hills(self) -> list[Any]:
        H, W, r = self.h, self.w, self.r_scene
        n = 3 if "calm" in self.moods else (5 if "energetic" in self.moods else 4)
        n = int(np.clip(n + r.integers(-1, 2), 3, 6))
        tones = self._layer_tones(n)
        x = (np.arange(W) + 0.5) / H
        hz = self.horizon
        gy = self.ground if self.ground is not None else hz + 0.2 * H
        gy = min(gy, H * 0.97)
        energy = 1.3 if "energetic" in self.moods else (0.7 if "calm" in self.moods else 1.0)
        energy *= r.uniform(0.75, 1.35)
        for i in range(n):
            near = i / max(n - 1, 1)
            base = hz + (gy - hz) * near - 0.02 * H
            if self.variant == "peaks":
                ridged = 1.0 - np.abs(_noise1d(r, x, [(1.2, 1.0), (2.9, 0.45), (7.0, 0.15)]))
                amp = (0.22 - 0.14 * near) * H * energy
                h = base - amp * ridged ** 2
            elif self.variant == "dunes":
                s = _noise1d(r, x, [(0.9, 1.0), (2.0, 0.25)])
                h = base - (0.05 + 0.04 * s) * H * energy
            else:
                s = _noise1d(r, x, [(0.7, 1.0), (1.9, 0.35), (4.5, 0.08)])
                h = base - (0.05 + (0.06 - 0.02 * near) * s) * H * energy
            if self.variant == "forest" and i >= n - 3 and i < n - 1 + (self.ground is None):
                h = h - self._trees(x, near) * H
            if i == n - 1 and self.ground is not None:
                # the subject stands on the nearest ridge
                k = int(np.clip(self.fx, 0, W - 1))
                h = h - (h[k] - self.ground - 0.003 * H)
            shadow = 0.04 if self.variant in ("rolling", "dunes") else 0.0
            self._ridge(h, tones[i], 0.3 + 0.45 * near, rim=0.05 if i < n - 1 else 0.03,
                        rim_w=(0.01 + 0.02 * (1 - near)) * H, shadow=shadow)
        return [lambda: self._stars(count=120, ymax=hz - 0.28 * H)] if self.night else []

    def _trees(self, x: np.ndarray, near: float) -> np.ndarray:
        """Conifer silhouettes along a ridge, as a height profile (fractions of H)."""
        r = self.r_scene
        out = np.zeros_like(x)
        for stagger in (0.0, 0.5):
            pitch = r.uniform(0.018, 0.03) * (1 + near)
            cell = np.floor(x / pitch + stagger)
            heights = r.uniform(0.02, 0.07, size=int(cell.max() - cell.min()) + 2) * (1 + 0.8 * near)
            hh = heights[(cell - cell.min()).astype(int)]
            centre = (cell + 0.5 - stagger) * pitch
            width = hh * 0.38
            out = np.maximum(out, hh * np.clip(1.0 - np.abs(x - centre) / np.maximum(width, 1e-6), 0.0, 1.0))
        return out

    def _studio(self) -> list[Any]:
        H, W, r = self.h, self.w, self.r_scene
        floor_y = (self.ground if self.ground is not None else self.horizon) + r.uniform(0.02, 0.06) * H
        # backdrop: a seamless sweep, lit by a soft spot behind the subject
        ys, xs, _ = self._grid()
        cx = self.fx + r.uniform(-0.5, 0.5) * self.size
        cy = self.fy - r.uniform(0.0, 0.4) * self.size
        rad = max(self.size * r.uniform(1.0, 1.8), 0.25 * H)
        spot = 1.0 / (1.0 + (((xs - cx) ** 2 + (ys - cy) ** 2) / (rad * rad))) ** 1.2
        if self.dark_key:
            back, lit = r.uniform(0.08, 0.18), r.uniform(0.42, 0.58)
        else:
            back, lit = r.uniform(0.6, 0.72), r.uniform(0.9, 1.0)
        sweep = np.clip((ys - floor_y) / (0.25 * H), 0.0, 1.0)
        field = back + (lit - back) * spot - sweep * (0.08 if self.dark_key else -0.03)
        self.T = _upsample(field.astype(F32), W, H)
        piece = ["none", "disc", "arch"][int(r.integers(3))]
        if piece != "none":
            # a set piece behind the subject, as in a product render: a disc or an arch
            pr = self.size * r.uniform(0.55, 0.9)
            pcy = self.fy - r.uniform(0.0, 0.25) * self.size
            box = self._box(self.fx, pcy, pr + 2, (pr if piece == "disc" else H) + 2)
            box.y1 = min(box.y1, int(floor_y))
            if not box.empty:
                xs_b, ys_b = self.xs[:, box.x0:box.x1] - self.fx, self.ys[box.y0:box.y1] - pcy
                if piece == "disc":
                    sd = np.sqrt(xs_b * xs_b + ys_b * ys_b) - pr
                else:
                    sd = np.where(ys_b < 0, np.sqrt(xs_b * xs_b + ys_b * ys_b) - pr, np.abs(xs_b) - pr)
                a = np.clip(0.5 - sd, 0.0, 1.0)
                tone = (lit + r.uniform(-0.22, -0.08)) if self.dark_key else (back - r.uniform(0.08, 0.2))
                T = self.T[box.sl]
                T += a * (tone - 0.06 * ys_b / max(pr, 1.0) - T)
                self.layers += 1
        self.sky_col = _f32(np.full(H, back))
        self.D = np.repeat(_f32(0.15 + 0.5 * np.clip((np.arange(H) + 0.5 - floor_y) / (H - floor_y + 1), 0, 1))[:, None], W, axis=1)
        self.layers += 2
        self.floor_t = None
        if self.shape == "person":
            return []
        top_y = self.ground if self.ground is not None else self.fy + 0.5 * self.size
        if self.copy == "bottom" or r.random() < 0.25:
            # a table edge across the frame: its front is a broad calm face (room for copy)
            face = 0.06 if self.dark_key else 0.86
            surface = 0.26 if self.dark_key else 0.97
            depth_y = r.uniform(0.025, 0.05) * H
            if self.rect is not None and self.copy == "bottom":
                depth_y = float(np.clip(self.rect[1] - 0.036 * H - top_y, 0.008 * H, depth_y))
            self._ridge(np.full(W, top_y - 0.3 * depth_y), surface, 0.7, clear=False, rim=0.05,
                        rim_w=0.006 * H)
            self._ridge(np.full(W, top_y + depth_y), face, 0.74, clear=False, rim=0.06, rim_w=0.004 * H)
            self.floor_t = face
            self.horizon = top_y + depth_y
            return []
        # a cylindrical plinth the subject stands on
        half = {"product": 0.34, "orb": 0.42}.get(self.shape, 0.3) * self.size * r.uniform(1.0, 1.35)
        ry = half * 0.16
        box = _Box(max(0, int(top_y - ry - 2)), H, max(0, int(self.fx - half - 2)), min(W, int(self.fx + half + 3)))
        if box.empty:
            return []
        ys_b, xs_b = self.ys[box.y0:box.y1], self.xs[:, box.x0:box.x1]
        nx = (xs_b - self.fx) * (1.0 / half)
        a_side = np.clip((1.0 - np.abs(nx)) * half + 0.5, 0.0, 1.0) * np.clip(ys_b - top_y + 0.5, 0.0, 1.0)
        e = np.sqrt(nx * nx + ((ys_b - top_y) * (1.0 / ry)) ** 2)
        a_top = np.clip((1.0 - e) * ry + 0.5, 0.0, 1.0)
        a = np.maximum(a_side, a_top)
        side = -1.0 if self.light[0] < self.fx else 1.0
        body_t = (0.14 if self.dark_key else 0.5) + 0.12 * np.clip(nx * side, -1.0, 1.0)
        body_t = body_t - 0.1 * np.clip((ys_b - top_y) / (0.35 * H), 0.0, 1.0)
        tone = np.where(a_top > 0.5, (0.32 if self.dark_key else 0.82) - 0.06 * nx * side, body_t)
        T, D = self.T[box.sl], self.D[box.sl]
        T += a * (tone - T)
        D += a * (0.74 - D)
        self.layers += 1
        return []

    def _starfield(self) -> list[Any]:
        H, W, r = self.h, self.w, self.r_scene
        ys, xs, _ = self._grid()
        hs, ws = ys.shape[0], xs.shape[1]
        cloud = _value_noise(r, hs, ws, 5) * 0.6 + _value_noise(r, hs, ws, 11) * 0.4
        band_angle = r.uniform(-0.6, 0.6)
        d = ((ys - H / 2) * math.cos(band_angle) - (xs - W / 2) * math.sin(band_angle)) / H
        band = 1.0 / (1.0 + (d / 0.22) ** 2)
        neb = np.clip(cloud * band * 1.6 - 0.35, 0.0, 1.0)
        self.T += _upsample((0.3 * neb).astype(F32), W, H)
        self.nebula = neb
        overlays: list[Any] = [self._nebula_tint, lambda: self._stars(count=420, ymax=H)]
        if r.random() < 0.6:
            # the curve of a planet along the bottom of the frame
            R = r.uniform(1.2, 2.2) * W
            cx = W * r.uniform(0.2, 0.8)
            cy = self.horizon + R
            x = np.arange(W) + 0.5
            h = cy - np.sqrt(np.maximum(R * R - (x - cx) ** 2, 0.0))
            self._ridge(h, 0.06, 0.6, rim=0.45, rim_w=0.006 * H, soft=1.0)
        return overlays

    def _nebula_tint(self) -> None:
        # colour in the clouds comes from the accents, at low opacity
        H, W = self.h, self.w
        small = (self.nebula * 0.45).astype(F32)
        rows = np.flatnonzero(small.max(axis=1) > 0.004)
        if not len(rows):
            return
        a = _upsample(small, W, H)
        # only the band of rows the clouds reach
        y0 = max(0, int(rows[0] * H / small.shape[0]) - 2)
        y1 = min(H, int((rows[-1] + 1) * H / small.shape[0]) + 2)
        box = _Box(y0, y1, 0, W)
        self._paint_rgb(box, a[y0:y1], self.pal.rgb[self.accent])

    def _abstract(self) -> list[Any]:
        """Layered paper waves with soft cast shadows, rising across the frame."""
        H, W, r = self.h, self.w, self.r_scene
        n = 4 if "calm" in self.moods else (6 if "energetic" in self.moods else 5)
        x = (np.arange(W) + 0.5) / H
        tilt = r.uniform(-0.18, 0.18)
        start = self.horizon - 0.12 * H
        span = (0.98 * H - start)
        tones = self._layer_tones(n)
        if r.random() < 0.5:
            # alternate light and dark layers instead of a plain recession
            tones = [t if k % 2 else min(1.0, t + 0.25) for k, t in enumerate(tones)]
        for i in range(n):
            near = i / max(n - 1, 1)
            s = _noise1d(r, x, [(0.6, 1.0), (1.4, 0.4)])
            h = start + span * near * 0.85 + (0.06 * s + tilt * (x - x.mean())) * H
            self._ridge(h, tones[i], 0.3 + 0.45 * near, shadow=0.07, rim=0.04, rim_w=0.012 * H)
        return [self._bokeh]

    def _bokeh(self) -> None:
        H, W, r = self.h, self.w, self.r_detail
        n = int(r.integers(8, 16))
        for _ in range(n):
            rad = r.uniform(0.015, 0.06) * H
            cx, cy = r.uniform(0, W), r.uniform(0, self.horizon)
            box = self._box(cx, cy, rad + 2, rad + 2)
            if box.empty:
                continue
            d = np.sqrt((self.xs[:, box.x0:box.x1] - cx) ** 2 + (self.ys[box.y0:box.y1] - cy) ** 2)
            a = np.clip((rad - d) * (1.0 / max(rad * 0.15, 1.0)), 0.0, 1.0) * r.uniform(0.08, 0.22)
            use_accent = self.dark_key and r.random() < 0.6
            col = self.pal.rgb[self.accent if use_accent else self.lightest]
            self._paint_rgb(box, a.astype(F32) * (1.0 if self.dark_key else 1.8), col)

    def _stars(self, count: int, ymax: float) -> None:
        H, W, r = self.h, self.w, self.r_detail
        ymax = float(np.clip(ymax, 0, H))
        if ymax < 4:
            return
        n = int(count * (W / H) * (ymax / H) * (0.5 if "calm" in self.moods else 1.0)) + 1
        sx = r.uniform(0, W, n)
        sy = ymax * r.random(n) ** 1.3
        mag = r.random(n) ** 3
        sigma = np.maximum(0.45, (0.5 + 1.4 * mag) * self.px)
        k = int(min(7, math.ceil(3 * float(sigma.max()))))
        off = np.arange(-k, k + 1)
        ix = np.floor(sx)[:, None, None] + off[None, None, :]
        iy = np.floor(sy)[:, None, None] + off[None, :, None]
        dx = ix + 0.5 - sx[:, None, None]
        dy = iy + 0.5 - sy[:, None, None]
        wgt = (0.35 + 0.65 * mag)[:, None, None] * np.exp(-(dx * dx + dy * dy) / (2 * sigma[:, None, None] ** 2))
        ix = np.broadcast_to(ix, wgt.shape).ravel().astype(np.intp)
        iy = np.broadcast_to(iy, wgt.shape).ravel().astype(np.intp)
        wgt = wgt.ravel()
        ok = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (wgt > 0.01)
        # accumulate the star kernels sparsely and touch only the pixels they cover
        flat = iy[ok] * W + ix[ok]
        uniq, inv = np.unique(flat, return_inverse=True)
        a = np.clip(np.bincount(inv, weights=wgt[ok]), 0.0, 1.0).astype(F32)[:, None]
        px = self.rgb.reshape(-1, 3)
        px[uniq] += a * (self.pal.rgb[self.lightest] - px[uniq])

    # -- finishing passes in tone space ------------------------------------------------
    def _contact_shadow(self) -> None:
        if self.ground is None:
            return
        rx = {"product": 0.3, "person": 0.22}.get(self.shape, 0.3) * self.size
        ry = max(0.035 * self.size, 1.5)
        box = self._box(self.fx, self.ground, rx * 1.6, ry * 2.5)
        if box.empty:
            return
        d2 = ((self.xs[:, box.x0:box.x1] - self.fx) / rx) ** 2 + ((self.ys[box.y0:box.y1] - self.ground) / ry) ** 2
        T = self.T[box.sl]
        T -= (0.12 if self.dark_key else 0.22) / (1.0 + d2 * d2) * np.clip(T, 0.0, 1.0)

    def _vignette(self) -> None:
        ys, xs, _ = self._grid()
        nx = (xs - self.w / 2) / (0.5 * self.w)
        ny = (ys - self.h / 2) / (0.5 * self.h)
        r2 = nx * nx + ny * ny
        k = 0.16 if self.dark_key else 0.08
        if "dramatic" in self.moods or "dark" in self.moods:
            k *= 1.6
        v = k * np.clip((r2 - 0.35) / 1.4, 0.0, 1.0) ** 1.5
        self.T -= _upsample(v.astype(F32), self.w, self.h)

    def _scrim(self) -> tuple[_Box, np.ndarray, np.ndarray] | None:
        """Calm the copy area. The target is the scene itself, heavily blurred (it reads as
        depth of field, so the picture still runs behind the text) and clamped to a tone
        with ``COPY_CONTRAST`` against the text colour. Two blends: a wide one-way one (dark
        key: only darkens; light key: only lightens) that eases the surroundings, so it looks
        like shade or haze rather than a box, and a full one inside the rectangle."""
        if self.rect is None:
            return None
        H = self.h
        x0, y0, x1, y1 = self._rect_ext()
        feather = max(0.2 * H, 2.0)
        box = self._box((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 + feather, (y1 - y0) / 2 + feather)
        if box.empty:
            return None
        ys, xs = self.ys[box.y0:box.y1], self.xs[:, box.x0:box.x1]
        dx = np.maximum(np.maximum(x0 - xs, xs - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - ys, ys - y1), 0.0)
        dist = np.sqrt(dx * dx + dy * dy)
        wide = 1.0 - _ss(dist, 0.0, feather)
        core = 1.0 - _ss(dist, 0.0, max(0.1 * H, 1.0))
        limit = self.pal.tone_limit(self.text_lum, COPY_CONTRAST, self.dark_key)
        # settle on a palette colour itself rather than on a blend between two
        m = len(self.pal.ramp) - 1
        snapped = (math.floor(limit * m + 1e-6) if self.dark_key else math.ceil(limit * m - 1e-6)) / m
        if (self.dark_key and snapped > 0.5 / m) or (not self.dark_key and snapped < 1 - 0.5 / m):
            limit = snapped
        T, D = self.T[box.sl], self.D[box.sl]
        bh, bw = T.shape
        step = max(1, int(0.07 * H))
        small = Image.fromarray(np.ascontiguousarray(T)).resize(
            (max(1, bw // step), max(1, bh // step)), Image.Resampling.BOX)
        blurred = np.array(small.resize((bw, bh), Image.Resampling.BICUBIC), dtype=F32)
        # pull the tones on the wrong side of the copy area's own mean towards it (the
        # bright ones under light text, the dark ones under dark text): calmer, and the
        # scene's shadows stay as deep as they were
        inner = blurred[core > 0.99]
        centre = float(inner.mean()) if inner.size else float(blurred.mean())
        pulled = centre + 0.6 * (blurred - centre)
        blurred = np.minimum(blurred, pulled) if self.dark_key else np.maximum(blurred, pulled)
        if self.dark_key:
            calm = np.minimum(blurred, limit)
            T += wide * (np.minimum(T, calm) - T)
        else:
            calm = np.maximum(blurred, limit)
            T += wide * (np.maximum(T, calm) - T)
        # 0.9, not 1: distant shapes stay as faint ghosts in the haze, which reads as air
        # rather than a pasted panel, and is still far too faint to fight the lettering
        core *= 0.9
        T += core * (calm - T)
        D += core * (0.15 - D)
        calm_rgb = _apply_lut(self.pal.lut, np.clip(calm, 0.0, 1.0))
        return box, core.astype(F32), calm_rgb

    # -- subjects: painted in RGB on top, with depth -----------------------------------
    def _orb(self) -> str:
        H, r = self.h, self.r_subject
        R = self.size / 2
        cx, cy = self.fx, self.fy
        box = self._box(cx, cy, R + 2, R + 2)
        if box.empty or R < 0.5:
            return "orb"
        ys, xs = self.ys[box.y0:box.y1], self.xs[:, box.x0:box.x1]
        dx, dy = (xs - cx) * (1.0 / R), (ys - cy) * (1.0 / R)
        r2 = dx * dx + dy * dy
        rr = np.sqrt(r2)
        alpha = np.clip((1.0 - rr) * R + 0.5, 0.0, 1.0)
        z = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
        pal = self.pal
        kind = "orb"
        if self.dark_key and self.scene != "starfield":
            # a sun: lightest at the top, down the palette's warm end to the bottom, with a
            # touch of limb darkening
            t = 1.0 - r.uniform(0.3, 0.6) * (dy + 1.0) * 0.5 - 0.08 * r2
            color = _apply_lut(pal.lut, np.clip(t, 0.0, 1.0))
            if r.random() < (0.7 if ("energetic" in self.moods or "night" in self.moods) else 0.35):
                # retro stripes cut through the lower half
                kind = "orb/striped"
                period = 0.11
                f = (dy - 0.05) / period
                gap = np.clip((dy - 0.05) * 0.55, 0.0, 0.5)
                frac = f - np.floor(f)
                cut = np.clip((gap - frac) * period * R + 0.5, 0.0, 1.0) * (dy > 0.05)
                alpha = alpha * (1.0 - cut)
            else:
                kind = "orb/sun"
        else:
            # a matte sphere lit from the light: a planet in space, a hero ball in daylight
            lx, ly = (self.w * (0.15 if cx > self.w / 2 else 0.85), cy - 0.6 * H) if self.scene == "starfield" else (
                cx + r.uniform(-1, 1) * R * 2, cy - R * r.uniform(1.5, 3))
            L = np.array([lx - cx, ly - cy, R * (0.6 if self.scene == "starfield" else 1.8)])
            L = L / np.linalg.norm(L)
            lam = np.clip(dx * L[0] + dy * L[1] + z * L[2], 0.0, 1.0)
            shade = lam if self.scene == "starfield" else 0.25 + 0.75 * lam
            dark_c, light_c = pal.rgb[self.darkest], pal.rgb[self.lightest]
            lut = _mini_lut([dark_c, pal.rgb[self.accent], light_c])
            spec = np.clip((lam - 0.93) * 14.0, 0.0, 1.0) * 0.7
            color = _apply_lut(lut, np.clip(shade * 0.85 + spec * 0.15, 0.0, 1.0))
            color += spec[..., None] * (light_c - color)
            kind = "orb/planet" if self.scene == "starfield" else "orb/sphere"
            if self.scene == "starfield":
                # atmosphere: a thin rim of accent on the lit limb
                rim = np.clip(1.0 - np.abs(rr - 1.0) * R / max(0.02 * R, 1.0), 0.0, 1.0)
                rim *= np.clip(dx * L[0] + dy * L[1] + 0.3, 0.0, 1.0)
                self._paint_rgb(box, rim.astype(F32) * 0.9, pal.rgb[self.accent2])
        self._paint_rgb(box, alpha, color, depth=0.9 + 0.1 * z)
        if kind == "orb/planet" and r.random() < 0.5:
            self._ring(cx, cy, R)
            kind = "orb/ringed"
        return kind

    def _ring(self, cx: float, cy: float, R: float) -> None:
        r = self.r_subject
        tilt = r.uniform(-0.35, 0.35)
        ca, sa = math.cos(tilt), math.sin(tilt)
        rx, ry = 1.9 * R, 0.32 * R
        box = self._box(cx, cy, rx + 2, rx * abs(sa) + ry + 2)
        if box.empty:
            return
        xs, ys = self.xs[:, box.x0:box.x1] - cx, self.ys[box.y0:box.y1] - cy
        u = xs * ca + ys * sa
        v = -xs * sa + ys * ca
        e = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        band = np.clip(1.0 - np.abs(e - 0.82) / 0.14, 0.0, 1.0)
        band = np.clip(band * 3.0, 0.0, 1.0) * 0.85
        # the far half of the ring passes behind the planet
        behind = (v < 0) & ((xs * xs + ys * ys) < R * R)
        band = np.where(behind, 0.0, band).astype(F32)
        self._paint_rgb(box, band, self.pal.rgb[self.accent2], depth=0.92)

    def _person(self) -> str:
        r, H = self.r_subject, self.h
        pose = self.detail
        if pose == "any":
            choices = ["standing", "walking", "arms-up"]
            if "energetic" in self.moods:
                choices = ["arms-up", "running", "walking"]
            elif "calm" in self.moods:
                choices = ["standing", "walking"]
            pose = choices[int(r.integers(len(choices)))]
        facing = 1.0 if r.random() < 0.5 else -1.0
        if self.copy == "left":
            facing = -1.0  # look into the copy space
        elif self.copy == "right":
            facing = 1.0
        j = self._joints(pose, facing)
        jit = r.uniform(-0.01, 0.01, size=(len(j), 2))
        for k, name in enumerate(sorted(j)):
            if name.startswith(("l_", "r_")):
                j[name] = (j[name][0] + jit[k, 0], j[name][1] + jit[k, 1])
        hair = r.random()
        if hair < 0.4:  # a ponytail or bun, for variety between candidates
            hx, hy = j["head"]
            j["hair"] = (hx - 0.055 * facing, hy + (0.03 if hair < 0.2 else -0.02))
        hs = self.size
        # body units -> pixels: the figure (head top to feet) is centred on the focus
        ox, oy = self.fx, self.fy - 0.5 * hs

        def P(name: str) -> tuple[float, float]:
            x, y = j[name]
            return ox + x * hs, oy + y * hs

        # (from, to, radius at from, radius at to): tapered limbs meet without knobbly joints
        caps: list[tuple[str, str, float, float]] = [
            ("head", "head", 0.053, 0.053), ("neck_t", "neck", 0.028, 0.031), ("l_sh", "r_sh", 0.036, 0.036),
            ("chest", "waist", 0.074, 0.06), ("waist", "pelvis", 0.06, 0.062), ("l_hip", "r_hip", 0.05, 0.05),
            ("l_sh", "l_el", 0.034, 0.026), ("l_el", "l_ha", 0.026, 0.019),
            ("r_sh", "r_el", 0.034, 0.026), ("r_el", "r_ha", 0.026, 0.019),
            ("l_hip", "l_kn", 0.05, 0.032), ("l_kn", "l_ft", 0.032, 0.02),
            ("r_hip", "r_kn", 0.05, 0.032), ("r_kn", "r_ft", 0.032, 0.02),
            ("l_ft", "l_toe", 0.02, 0.016), ("r_ft", "r_toe", 0.02, 0.016),
        ]
        if "hair" in j:
            rad = 0.03 if hair < 0.2 else 0.036
            caps.append(("head", "hair", rad, rad))
        pts = [P(n) for n in j]
        rmax = 0.08 * hs
        box = _Box(max(0, int(min(p[1] for p in pts) - rmax - 3)), min(H, int(max(p[1] for p in pts) + rmax + 4)),
                   max(0, int(min(p[0] for p in pts) - rmax - 3)), min(self.w, int(max(p[0] for p in pts) + rmax + 4)))
        if box.empty or hs < 4:
            return f"person/{pose}"
        sdf = np.full((box.y1 - box.y0, box.x1 - box.x0), 1e4, dtype=F32)
        k_px = 0.022 * hs
        for a, b, ra, rb in caps:
            (ax, ay), (bx, by) = P(a), P(b)
            # each capsule only touches its own neighbourhood: cheap, and exact where it
            # matters (the edge, the rim band and the smooth joins)
            pad = max(ra, rb) * hs + k_px + 4
            sub = _Box(max(box.y0, int(min(ay, by) - pad)), min(box.y1, int(max(ay, by) + pad) + 1),
                       max(box.x0, int(min(ax, bx) - pad)), min(box.x1, int(max(ax, bx) + pad) + 1))
            if sub.empty:
                continue
            d = self._capsule_sdf(sub, ax, ay, bx, by, ra * hs, rb * hs)
            local = sdf[sub.y0 - box.y0:sub.y1 - box.y0, sub.x0 - box.x0:sub.x1 - box.x0]
            local[...] = _smin(local, d, k_px)
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)
        pal = self.pal
        body = pal.rgb[self.darkest]
        # a rim of light on the edges that face the light (a backlit silhouette)
        gy, gx = np.gradient(sdf)
        norm = np.sqrt(gx * gx + gy * gy) + 1e-6
        Lx, Ly = self.light[0] - self.fx, self.light[1] - self.fy
        Ln = math.hypot(Lx, Ly) + 1e-6
        facing_l = np.clip((gx * (Lx / Ln) + gy * (Ly / Ln)) / norm * 1.4, 0.0, 1.0)
        rim_w = max(0.01 * hs, 1.0)
        rim = _ss(sdf, -rim_w, -0.25 * rim_w) * alpha * facing_l
        depth = 0.9 + 0.1 * np.clip(-sdf / (0.04 * hs), 0.0, 1.0)
        self._paint_rgb(box, alpha, body, depth=depth)
        rim_t = 0.9 if self.dark_key else 0.55
        rim_c = pal.lut[int(rim_t * (len(pal.lut) - 1))]
        self._paint_rgb(box, (rim * 0.95).astype(F32), rim_c)
        return f"person/{pose}"

    @staticmethod
    def _joints(pose: str, f: float) -> dict[str, tuple[float, float]]:
        """Joint positions in body units (x right, y down; head top 0, soles 1); ``f`` is
        the facing direction (+1 right)."""
        j: dict[str, tuple[float, float]] = {
            "head": (0.0, 0.063), "neck_t": (0.0, 0.11), "neck": (0.0, 0.17),
            "chest": (0.0, 0.235), "waist": (0.0, 0.36), "pelvis": (0.0, 0.45),
            "l_sh": (-0.088, 0.195), "r_sh": (0.088, 0.195), "l_hip": (-0.042, 0.49), "r_hip": (0.042, 0.49),
        }
        if pose == "running":
            # leaning into the stride, seen from the side
            j.update({
                "head": (0.075 * f, 0.07), "neck_t": (0.065 * f, 0.115), "neck": (0.05 * f, 0.17),
                "chest": (0.04 * f, 0.24), "waist": (0.02 * f, 0.34), "pelvis": (0.0, 0.44),
                "l_sh": (0.04 * f - 0.035, 0.2), "r_sh": (0.04 * f + 0.035, 0.2),
                "l_hip": (-0.02, 0.48), "r_hip": (0.02, 0.48),
                "l_el": (0.14 * f, 0.3), "l_ha": (0.2 * f, 0.22),
                "r_el": (-0.1 * f, 0.33), "r_ha": (-0.16 * f, 0.27),
                "l_kn": (0.16 * f, 0.63), "l_ft": (0.1 * f, 0.8), "l_toe": (0.15 * f, 0.83),
                "r_kn": (-0.05 * f, 0.72), "r_ft": (-0.2 * f, 0.9), "r_toe": (-0.15 * f, 0.975),
            })
        elif pose == "walking":
            j.update({
                "l_sh": (-0.06, 0.195), "r_sh": (0.06, 0.195), "l_hip": (-0.03, 0.49), "r_hip": (0.03, 0.49),
                "l_el": (0.05 * f, 0.34), "l_ha": (0.11 * f, 0.46),
                "r_el": (-0.06 * f, 0.34), "r_ha": (-0.11 * f, 0.45),
                "l_kn": (0.08 * f, 0.73), "l_ft": (0.13 * f, 0.955), "l_toe": (0.185 * f, 0.985),
                "r_kn": (-0.03 * f, 0.74), "r_ft": (-0.12 * f, 0.95), "r_toe": (-0.075 * f, 0.99),
            })
        elif pose == "arms-up":
            j.update({
                "l_el": (-0.16, 0.1), "l_ha": (-0.21, -0.02), "r_el": (0.16, 0.1), "r_ha": (0.21, -0.02),
                "l_kn": (-0.075, 0.74), "l_ft": (-0.1, 0.965), "l_toe": (-0.14, 0.985),
                "r_kn": (0.075, 0.74), "r_ft": (0.1, 0.965), "r_toe": (0.14, 0.985),
            })
        else:  # standing, one hand on the hip
            j.update({
                "l_el": (-0.12, 0.34), "l_ha": (-0.125, 0.48), "r_el": (0.16, 0.33), "r_ha": (0.065, 0.45),
                "l_kn": (-0.05, 0.74), "l_ft": (-0.055, 0.965), "l_toe": (-0.055 + 0.045 * f, 0.985),
                "r_kn": (0.05, 0.74), "r_ft": (0.065, 0.965), "r_toe": (0.065 + 0.045 * f, 0.985),
            })
        return j

    def _circle_sdf(self, box: _Box, cx: float, cy: float, rad: float) -> np.ndarray:
        ys, xs = self.ys[box.y0:box.y1], self.xs[:, box.x0:box.x1]
        return np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - rad

    def _capsule_sdf(self, box: _Box, ax: float, ay: float, bx: float, by: float,
                     ra: float, rb: float) -> np.ndarray:
        """Distance to a capsule whose radius tapers from ``ra`` to ``rb`` (close enough
        to exact for gentle tapers)."""
        ys, xs = self.ys[box.y0:box.y1] - ay, self.xs[:, box.x0:box.x1] - ax
        vx, vy = bx - ax, by - ay
        vv = vx * vx + vy * vy + 1e-9
        h = np.clip(xs * (vx / vv) + ys * (vy / vv), 0.0, 1.0)
        dx, dy = xs - h * vx, ys - h * vy
        return np.sqrt(dx * dx + dy * dy) - (ra + (rb - ra) * h)

    def _product(self) -> str:
        r, H, pal = self.r_subject, self.h, self.pal
        kind = self.detail
        if kind == "any":
            kind = ["bottle", "can", "jar"][int(r.integers(3))]
        hs = self.size
        if kind == "phone":
            return self._phone(hs)
        # A surface of revolution: half-width (in body heights) along the height.
        if kind == "bottle":
            R = r.uniform(0.15, 0.19)
            neck = r.uniform(0.045, 0.06)
            shoulder = r.uniform(0.28, 0.4)
            knots = [(0.0, neck * 0.95), (0.1, neck * 0.95), (0.1, neck), (0.22, neck),
                     (shoulder, R), (0.97, R), (1.0, R * 0.9)]
            cap_end, label = 0.1, (r.uniform(0.5, 0.58), r.uniform(0.76, 0.86))
        elif kind == "can":
            R = r.uniform(0.25, 0.28)
            knots = [(0.0, R * 0.8), (0.05, R * 0.84), (0.09, R), (0.93, R), (1.0, R * 0.82)]
            cap_end, label = 0.04, (r.uniform(0.3, 0.4), r.uniform(0.6, 0.72))
        else:  # jar
            R = r.uniform(0.33, 0.4)
            knots = [(0.0, R * 0.92), (0.2, R * 0.92), (0.2, R * 0.85), (0.27, R), (0.95, R), (1.0, R * 0.9)]
            cap_end, label = 0.2, (r.uniform(0.42, 0.5), r.uniform(0.75, 0.82))
        ky, kr = zip(*knots, strict=True)
        top = self.fy - 0.5 * hs
        box = _Box(max(0, int(top) - 1), min(H, int(top + hs) + 2),
                   max(0, int(self.fx - R * hs) - 2), min(self.w, int(self.fx + R * hs) + 3))
        if box.empty or hs < 4:
            return f"product/{kind}"
        yn = (np.arange(box.y0, box.y1) + 0.5 - top) / hs
        half = np.interp(yn, ky, kr) * hs
        # vertical coverage gives the lid and base an anti-aliased edge too
        vcov = np.clip((yn * hs) + 0.5, 0, 1) * np.clip((1.0 - yn) * hs + 0.5, 0, 1)
        xs = self.xs[:, box.x0:box.x1] - self.fx
        half_c = _f32(half)[:, None]
        alpha = np.clip(half_c - np.abs(xs) + 0.5, 0.0, 1.0) * _f32(vcov)[:, None]
        nx = np.clip(xs / np.maximum(half_c, 1e-3), -1.0, 1.0)
        nz = np.sqrt(np.clip(1.0 - nx * nx, 0.0, 1.0))
        lx = 1.0 if self.light[0] >= self.fx else -1.0
        lam = np.clip(nx * (0.55 * lx) + nz * 0.83, 0.0, 1.0)
        # materials by row: cap, body, label
        mat = np.ones(len(yn), dtype=np.intp)
        mat[yn < cap_end] = 0
        mat[(yn > label[0]) & (yn < label[1])] = 2
        dark, light = pal.rgb[self.darkest], pal.rgb[self.lightest]
        acc, acc2 = pal.rgb[self.accent], pal.rgb[self.accent2]
        mid = pal.rgb[min(1, pal.n - 1)]
        body_c = acc if self.dark_key else acc
        luts = np.stack([
            _mini_lut([dark, mid, light]),          # cap
            _mini_lut([dark, body_c, light]),       # body
            _mini_lut([dark, acc2, light]),         # label
        ])
        shade = np.clip(0.12 + 0.78 * lam, 0.0, 1.0)
        idx = (shade * (luts.shape[1] - 1) + 0.5).astype(np.intp)
        color = luts[mat[:, None], idx]
        # a crisp specular stripe and a softer rim on the shadow side: glossy, not plastic
        spec = np.clip(1.0 - np.abs(nx - 0.45 * lx) / 0.07, 0.0, 1.0) ** 2 * 0.85
        spec *= (mat != 0)[:, None]
        color += spec[..., None] * (light - color)
        rim = np.clip((np.abs(nx) - 0.86) / 0.14, 0.0, 1.0) * (nx * lx < 0) * 0.5
        color += rim[..., None] * (pal.rgb[self.accent2] - color)
        depth = 0.9 + 0.1 * nz
        self._paint_rgb(box, alpha.astype(F32), color, depth=depth)
        return f"product/{kind}"

    def _phone(self, hs: float) -> str:
        pal = self.pal
        hw, hh, rc = 0.245 * hs, 0.5 * hs, 0.07 * hs
        box = self._box(self.fx, self.fy, hw + 2, hh + 2)
        if box.empty or hs < 4:
            return "product/phone"
        xs, ys = self.xs[:, box.x0:box.x1] - self.fx, self.ys[box.y0:box.y1] - self.fy
        sd = _rounded_rect(xs, ys, hw, hh, rc)
        alpha = np.clip(0.5 - sd, 0.0, 1.0)
        bez = 0.028 * hs
        sd_in = _rounded_rect(xs, ys, hw - bez, hh - bez, rc - bez * 0.8)
        screen = np.clip(0.5 - sd_in, 0.0, 1.0)
        # the screen: a diagonal gradient between two accents with a soft glow
        u = np.clip((xs / hw + ys / hh) * 0.25 + 0.5, 0.0, 1.0)
        lut = _mini_lut([pal.rgb[self.accent2], pal.rgb[self.accent], pal.rgb[self.lightest]])
        glow = 1.0 / (1.0 + ((xs * xs + (ys + 0.15 * hs) ** 2) / (0.2 * hs) ** 2))
        col = _apply_lut(lut, np.clip(u * 0.7 + glow * 0.35, 0.0, 1.0))
        frame = pal.rgb[self.darkest]
        color = frame + screen[..., None] * (col - frame)
        # glass reflection: a soft diagonal band
        band = np.clip(1.0 - np.abs((xs / hw) * 0.8 - (ys / hh) - 0.35) / 0.18, 0.0, 1.0) * 0.18 * screen
        color += band[..., None] * (pal.rgb[self.lightest] - color)
        edge = np.clip(1.0 - np.abs(sd + 0.004 * hs) / max(0.004 * hs, 0.7), 0.0, 1.0) * 0.7
        color += edge[..., None] * (pal.rgb[self.lightest] - color)
        self._paint_rgb(box, alpha.astype(F32), color, depth=0.95)
        return "product/phone"


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: joins limbs to the body without creases."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(k - np.abs(a - b), 0.0, None) * (1.0 / k)
    return np.minimum(a, b) - h * h * (k * 0.25)


def _rounded_rect(x: np.ndarray, y: np.ndarray, hw: float, hh: float, rc: float) -> np.ndarray:
    rc = max(rc, 0.0)
    qx = np.abs(x) - (hw - rc)
    qy = np.abs(y) - (hh - rc)
    ox, oy = np.maximum(qx, 0.0), np.maximum(qy, 0.0)
    return np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0.0) - rc


# --------------------------------------------------------------------------------------
# references: palette and layout taken from an image
# --------------------------------------------------------------------------------------
REF_GRID = 256  # a reference is reduced to at most this many pixels on its long side
LAYOUT_GRID = 48  # ... and its busyness averaged onto at most this many cells a side
REF_COLOURS = 5  # colours taken from the references
MIN_SHARE = 0.02  # a colour covering less of the reference than this is noise, not palette
MERGE_DIST = 24.0  # two colours closer than this (RGB, 0-255) are one
# The channel crops are framed on the prompt record's focus before any keyframe exists
# (studio.prompts, shots.contact, timelines.conform), so a reference may move the subject
# only this far (fraction of the frame) from it: a 9:16 cut of the square master still
# holds the subject.
MAX_FOCUS_SHIFT = 0.15
CALM_RATIO = 0.6  # a side is calm when its busyness is at most this much of the opposite side's
_SIDES = ("left", "right", "top", "bottom")
_OPPOSITE_SIDE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(v) for v in np.clip(np.floor(np.asarray(rgb, dtype=np.float64) + 0.5), 0, 255))
    return f"#{r:02x}{g:02x}{b:02x}"


def _load_reference(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The reference as an RGBA uint8 array at most REF_GRID on its long side, and what
    it is. Its header is checked before a pixel is decoded (the brief check did it too;
    this guards a store file reached another way, e.g. ``studio regenerate``)."""
    from PIL import ImageOps

    from studio.assets import MAX_IMAGE_PIXELS, NotAnImage, OverLimit, read_image_header
    from studio.errors import StudioError

    try:
        info = read_image_header(path, max_pixels=max(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or 0),
                                 max_bytes=2**63)
        with Image.open(path, formats=[info.format]) as im:
            if info.format == "JPEG":
                im.draft("RGB", (REF_GRID, REF_GRID))  # decode at 1/2..1/8 scale: cheap
            img = ImageOps.exif_transpose(im)
            if img.mode.startswith("I;16"):
                img = Image.fromarray((np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8))
            img = img.convert("RGBA")
    except (NotAnImage, OverLimit) as e:
        raise StudioError(f"reference image {path.name} {e}", fix="check the reference images the brief names",
                          field="reference_images") from None
    except OSError as e:  # truncated or corrupt pixel data past a good header
        raise StudioError(f"reference image {path.name} cannot be decoded ({e})",
                          fix="re-export it as PNG, JPEG or WebP", field="reference_images") from None
    factor = max(1, -(-max(img.size) // REF_GRID))
    if factor > 1:
        img = img.reduce(factor)  # integer box average: exact, the same everywhere
    return np.asarray(img, dtype=np.uint8), {"format": info.format, "size": [info.width, info.height]}


def _median_cut(px: np.ndarray, k: int) -> list[np.ndarray]:
    """Split the pixels (N x 3, integers) into up to ``k`` boxes, each time halving (at
    the median) the box with the widest channel range times its population."""
    boxes = [px]
    while len(boxes) < k:
        best, best_key = -1, 0
        for i, b in enumerate(boxes):
            if len(b) < 2:
                continue
            key = int((b.max(axis=0) - b.min(axis=0)).max()) * len(b)
            if key > best_key:
                best, best_key = i, key
        if best < 0:
            break
        b = boxes.pop(best)
        ch = int(np.argmax(b.max(axis=0) - b.min(axis=0)))
        b = b[np.argsort(b[:, ch], kind="stable")]
        mid = len(b) // 2
        boxes[best:best] = [b[:mid], b[mid:]]
    return boxes


def _merge_colours(colours: list[tuple[np.ndarray, float]], limit: int) -> list[tuple[np.ndarray, float]]:
    """Largest share first; a colour within MERGE_DIST of a kept one adds its share to it."""
    order = sorted(range(len(colours)), key=lambda i: (-colours[i][1], _hex(colours[i][0])))
    kept: list[list[Any]] = []
    for i in order:
        c, share = colours[i]
        for k in kept:
            d = c - k[0]
            if math.sqrt(float(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])) < MERGE_DIST:
                k[1] += share
                break
        else:
            kept.append([c, share])
    kept.sort(key=lambda k: (-k[1], _hex(k[0])))
    return [(k[0], float(k[1])) for k in kept[:limit]]


def reference_palette(rgba: np.ndarray, k: int = REF_COLOURS) -> list[tuple[np.ndarray, float]]:
    """Dominant colours (RGB 0-255) with the share of the opaque picture each covers:
    median cut for a deterministic start, then a few k-means passes to settle them."""
    opaque = rgba[..., 3] >= 128
    px = rgba[..., :3][opaque].astype(np.int64)
    if len(px) == 0:
        return []
    boxes = _median_cut(px, k + 1)
    centres = np.array([b.mean(axis=0) for b in boxes], dtype=np.float64)
    pxf = px.astype(np.float64)
    label = np.zeros(len(pxf), dtype=np.intp)
    for _ in range(6):
        d = ((pxf[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        label = np.argmin(d, axis=1)
        for j in range(len(centres)):
            members = pxf[label == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    counts = np.bincount(label, minlength=len(centres)).astype(np.float64) / len(pxf)
    colours = [(centres[j], float(counts[j])) for j in range(len(centres)) if counts[j] >= MIN_SHARE]
    return _merge_colours(colours, k)


def _block_mean(a: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Mean of ``a`` (H x W [x C]) over a gh x gw grid of near-equal blocks."""
    h, w = a.shape[:2]
    rows = (np.arange(h) * gh) // h
    cols = (np.arange(w) * gw) // w
    flat = a.reshape(h, w, -1).astype(np.float64)
    sums = np.zeros((gh, gw, flat.shape[2]), dtype=np.float64)
    np.add.at(sums, (rows[:, None], cols[None, :]), flat)
    counts = np.zeros((gh, gw), dtype=np.float64)
    np.add.at(counts, (rows[:, None], cols[None, :]), 1.0)
    out = sums / np.maximum(counts, 1.0)[..., None]
    return out if a.ndim == 3 else out[..., 0]


def reference_layout(rgba: np.ndarray) -> dict[str, Any]:
    """Where the reference is busy (its subject) and where it is calm (room for copy).

    Busyness per cell is local contrast (colour edges, measured at the analysis size and
    averaged per cell, so fine texture counts) plus how far the cell's colour stands out
    from the picture's mean (a frequency-tuned saliency). The focus is the busyness-
    weighted centre of the busiest 15 % of cells; the calm side is the third of the frame
    (left, right, top or bottom) with the least busyness, if it is clearly calmer than
    the opposite third."""
    h, w = rgba.shape[:2]
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    rgb = rgba[..., :3].astype(np.float64) / 255.0
    if alpha.sum() <= 0:
        return {"focus": None, "calm_side": None, "busyness": None}
    mean = (rgb * alpha[..., None]).sum(axis=(0, 1)) / alpha.sum()
    # transparent pixels read as the mean colour: no edges, nothing standing out
    rgb = mean + alpha[..., None] * (rgb - mean)
    edge = np.zeros((h, w), dtype=np.float64)
    edge[:, :-1] += np.abs(np.diff(rgb, axis=1)).sum(axis=2)
    edge[:-1, :] += np.abs(np.diff(rgb, axis=0)).sum(axis=2)
    gh = max(1, round(LAYOUT_GRID * h / max(h, w)))
    gw = max(1, round(LAYOUT_GRID * w / max(h, w)))
    e = _block_mean(edge, gh, gw)
    c = _block_mean(rgb, gh, gw) - mean
    d = np.sqrt((c * c).sum(axis=2))
    if e.max() < 1e-3 and d.max() < 1e-3:
        return {"focus": None, "calm_side": None, "busyness": None}  # a flat colour: no layout
    s = e / max(float(e.max()), 1e-9) + d / max(float(d.max()), 1e-9)
    threshold = float(np.sort(s, axis=None)[int(0.85 * (s.size - 1))])
    wgt = np.where(s >= threshold, s, 0.0)
    ys = (np.arange(gh) + 0.5) / gh
    xs = (np.arange(gw) + 0.5) / gw
    total = float(wgt.sum())
    fx = float((wgt.sum(axis=0) * xs).sum() / total)
    fy = float((wgt.sum(axis=1) * ys).sum() / total)
    third_w, third_h = max(1, gw // 3), max(1, gh // 3)
    busy = {
        "left": float(s[:, :third_w].mean()), "right": float(s[:, gw - third_w:].mean()),
        "top": float(s[:third_h, :].mean()), "bottom": float(s[gh - third_h:, :].mean()),
    }
    calm = min(_SIDES, key=lambda k: busy[k])  # ties: the first in _SIDES
    if busy[calm] > CALM_RATIO * busy[_OPPOSITE_SIDE[calm]]:
        calm = None
    return {"focus": [round(fx, 4), round(fy, 4)], "calm_side": calm,
            "busyness": {k: round(v, 4) for k, v in busy.items()}}


def analyse_reference(path: Path) -> dict[str, Any]:
    """Everything the painter takes from one reference image, as recorded."""
    from studio.store import sha256_file

    rgba, info = _load_reference(path)
    palette = reference_palette(rgba)
    return {
        "sha256": sha256_file(path), **info,
        "palette": [_hex(c) for c, _ in palette],
        "shares": [round(share, 4) for _, share in palette],
        **reference_layout(rgba),
    }


def _copy_rect(copy: str, focus: tuple[float, float], scale: float) -> list[float] | None:
    """The copy rectangle for a side and a focus: the same rule as studio.prompts.compose."""
    gap = max(0.14, scale * 0.45 + 0.04)
    rect = {
        "left": (0.06, 0.3, max(0.2, focus[0] - gap), 0.7),
        "right": (min(0.8, focus[0] + gap), 0.3, 0.94, 0.7),
        "top": (0.25, 0.24, 0.75, max(0.3, focus[1] - gap)),
        "bottom": (0.25, min(0.7, focus[1] + gap), 0.75, 0.76),
    }.get(copy)
    return [round(v, 4) for v in rect] if rect else None


def apply_references(prompt: dict[str, Any], refs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prompt record as the painter should see it with these references, and what
    was taken from them (recorded in the keyframe's params).

    * **Palette**: the references' dominant colours (each reference counting equally)
      replace the style pack's; the style colour with the best contrast against the text
      colour is kept as an anchor when no reference colour gives the copy area its contrast.
    * **Focus**: the subject moves toward the references' busy region, at most
      MAX_FOCUS_SHIFT, and never toward a copy space the brief asked for.
    * **Copy space**: when the brief asked for none, the references' calm side becomes one
      (if the subject is not on it); a copy space the brief asked for stands.
    """
    pooled = [(np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64), share / len(refs))
              for r in refs for h, share in zip(r["palette"], r["shares"], strict=True)]
    colours = [_hex(c) for c, _ in _merge_colours(pooled, REF_COLOURS)]
    use: dict[str, Any] = {"palette": colours, "style_anchors": []}
    out = dict(prompt)
    if colours:
        try:
            text_rgb = np.array(hex_to_rgb(prompt.get("text_color") or "#ffffff")) / 255.0
        except ValueError:
            text_rgb = np.ones(3)
        text_lum = float(relative_luminance(text_rgb))

        def contrast(hx: str) -> float:
            return contrast_ratio(float(relative_luminance(np.array(hex_to_rgb(hx)) / 255.0)), text_lum)

        if max(contrast(c) for c in colours) < COPY_CONTRAST:
            style = [h for h in (prompt.get("palette") or DEFAULT_PALETTE) if _valid_hex(h)]
            if style:
                anchor = max(style, key=contrast)
                use["style_anchors"] = [anchor]
                colours = [*colours, anchor]
        out["palette"] = colours
    comp = dict(prompt.get("composition") or {})
    brief_focus = [float(v) for v in (comp.get("focus") or (0.5, 0.5))]
    copy = str(comp.get("copy_space") or "none")
    focuses = [r["focus"] for r in refs if r.get("focus") is not None]
    focus = list(brief_focus)
    ref_focus = None
    if focuses:
        ref_focus = [round(sum(f[i] for f in focuses) / len(focuses), 4) for i in (0, 1)]
        for i in (0, 1):
            shift = float(np.clip(ref_focus[i] - brief_focus[i], -MAX_FOCUS_SHIFT, MAX_FOCUS_SHIFT))
            focus[i] = float(np.clip(brief_focus[i] + shift, 0.05, 0.95))
        # the subject may move away from the brief's copy space, never into it
        if copy == "left":
            focus[0] = max(focus[0], brief_focus[0])
        elif copy == "right":
            focus[0] = min(focus[0], brief_focus[0])
        elif copy == "top":
            focus[1] = max(focus[1], brief_focus[1])
        elif copy == "bottom":
            focus[1] = min(focus[1], brief_focus[1])
        focus = [round(v, 4) for v in focus]
    copy_from = "brief" if copy != "none" else "none"
    if copy == "none":
        busy = [r["busyness"] for r in refs if r.get("busyness")]
        if busy:
            mean_busy = {k: sum(b[k] for b in busy) / len(busy) for k in _SIDES}
            calm = min(_SIDES, key=lambda k: mean_busy[k])
            axis, low = (0, calm == "left") if calm in ("left", "right") else (1, calm == "top")
            subject_clear = focus[axis] >= 0.5 if low else focus[axis] <= 0.5
            if mean_busy[calm] <= CALM_RATIO * mean_busy[_OPPOSITE_SIDE[calm]] and subject_clear:
                copy, copy_from = calm, "reference"
                comp["copy_space"] = copy
    if copy != "none":
        comp["copy_rect"] = _copy_rect(copy, (focus[0], focus[1]), float(comp.get("subject_scale") or 0.3)) \
            if copy_from == "reference" else comp.get("copy_rect")
    comp["focus"] = focus
    out["composition"] = comp
    use.update({"focus": focus, "focus_brief": [round(v, 4) for v in brief_focus], "focus_reference": ref_focus,
                "copy_space": copy, "copy_space_from": copy_from})
    return out, use


def _valid_hex(value: str) -> bool:
    try:
        hex_to_rgb(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------
class ProceduralBackend:
    """Paints designed, palette-true keyframes with numpy; no weights, no GPU."""

    name = "procedural"
    code_version = "procedural.1"

    def __init__(self) -> None:
        # reference analyses by file sha256: a warm actor analyses each reference once
        self._refs: dict[str, dict[str, Any]] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model_id": "procedural",
            "weights_sha256": None,
            "device": "cpu",
            "dtype": "uint8",
            "library_versions": {"numpy": np.__version__, "pillow": PIL_VERSION},
        }

    def _analyse(self, path: Path) -> dict[str, Any]:
        from studio.store import sha256_file

        sha = sha256_file(path)
        if sha not in self._refs:
            self._refs[sha] = analyse_reference(path)
        return self._refs[sha]

    def generate(self, prompt: dict[str, Any], seed: int, width: int, height: int,
                 references: list[Path] | None = None) -> Keyframe:
        """One keyframe. With ``references`` (files, in the prompt record's order) their
        palette and layout lead (see ``apply_references``); what was taken is recorded in
        ``params["references"]`` and ``params["reference_use"]``."""
        if not references:
            return _Painter(prompt, seed, width, height).render()
        refs = [self._analyse(Path(r)) for r in references]
        painted, use = apply_references(prompt, refs)
        kf = _Painter(painted, seed, width, height).render()
        kf.params["references"] = [dict(r) for r in refs]
        kf.params["reference_use"] = use
        return kf
