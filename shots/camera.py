"""Camera moves: a selected keyframe becomes a shot master clip.

Frames are made in Python and streamed to ffmpeg's stdin as raw 4:2:0 video, one frame at
a time (never the whole clip in memory). Why this path and not a pure ffmpeg graph:

* ``zoompan`` works on whole pixels, so slow moves judder; the only smooth ffmpeg
  alternative for zoom/pan is ``perspective`` with per-frame expressions, and it cannot
  do the depth-layered parallax move at all.
* Measured on this 2-core machine, 1920×1920 × 120 frames, push-in, libx264 veryfast
  CRF 12, interleaved runs: ``loop,perspective=interpolation=cubic:eval=frame``
  23.0 / 23.1 s wall (28.1 / 25.8 CPU-s); Python RGB frames piped as rgb24 16.6 /
  33.3 s (25.8 / 24.1 CPU-s); Python Y'CbCr planes piped as yuv420p (this module)
  22.7 / 19.5 s (26.2 / 27.4 CPU-s). A tie within this host's noise: the CRF 12
  encode of a 1920×1920 frame is most of the cost (frame generation is ≈ 0.1 s of
  one core per frame, the encoder uses both). This path was kept because it also
  renders parallax, so every move shares one resampler and one encoder setup. Planes
  rather than RGB: half the bytes through the pipe and no colour conversion left
  for ffmpeg (whose default RGB→YUV matrix is BT.601, not 709).

Resampling is ``PIL.Image.resize`` with a fractional ``box``: a separable bicubic filter
over a sub-pixel source window, so the move is smooth at any speed. The keyframe is
converted once to BT.709 limited-range Y'CbCr; resampling is linear, so doing it on
Y'CbCr planes gives the same picture as doing it on R'G'B'.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFilter

from studio.errors import StageError
from studio.lut import LUT_PIX_FMT, apply_lut, load_cube, lut3d_filter
from studio.store import atomic_output

CODE_VERSION = "camera.1"

MOVES = ("push-in", "pull-out", "pan-left", "pan-right", "parallax", "static")
EASING = "cosine ease-in-out"

PUSH_AMOUNT = 0.10  # push-in / pull-out: 10% zoom over the shot
PAN_AMOUNT = 0.07  # pans travel 7% of the keyframe's width
PARALLAX_NEAR = 0.04  # the nearest depth layer travels 4% of the width...
PARALLAX_FAR = 0.01  # ...the farthest 1%
PARALLAX_PUSH = 0.04  # plus a slight push-in so the move reads as a dolly
MAX_LAYERS = 3  # 2..4 depth layers; fewer when the depth map has few distinct levels
CHROMA_PAD = 4  # edge-replicated margin so chroma windows may start half a pixel out


def tightest_zoom(move: str) -> float:
    """How far ``move`` zooms into its keyframe at its tightest frame (1 = the whole
    keyframe), as ``_views`` plans it for a master the size of the keyframe. That frame
    shows 1/zoom of the keyframe's width and height, upscaled: for a master to hold N
    pixels of real detail in every frame, its keyframe needs N * zoom."""
    if move in ("push-in", "pull-out"):
        return 1 + PUSH_AMOUNT
    if move in ("pan-left", "pan-right"):
        return 1 / (1 - PAN_AMOUNT)  # zoomed in so the window can travel PAN_AMOUNT
    if move == "parallax":
        # in far enough that the nearest layer's travel stays inside, then the slight push
        return (1 + PARALLAX_PUSH) / (1 - PARALLAX_NEAR)
    return 1.0


# The margin a keyframe needs over a channel's native size whatever the shot's move.
MOVE_MARGIN = max(tightest_zoom(m) for m in MOVES)


@dataclass(frozen=True)
class _View:
    """Which part of the keyframe one output frame shows: centre and zoom (>= 1)."""

    cx: float
    cy: float
    zoom: float


def _ease(t: float) -> float:
    # Cosine ease-in-out: zero velocity at both ends, so cuts into and out of the shot
    # do not start or stop with a jolt.
    return 0.5 - 0.5 * math.cos(math.pi * min(max(t, 0.0), 1.0))


# ---------------------------------------------------------------------------- pixels


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any PIL image as HxWx3 float32 in [0, 1] (16-bit PNGs keep their precision)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")  # RGBA, P, L, LA, CMYK: alpha is dropped
    return np.asarray(im, dtype=np.float32) / 255.0


def _rgb_to_ycbcr709(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R'G'B' in [0, 1] to BT.709 limited-range Y'CbCr, as float32 code values."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    cb = (b - y) / 1.8556
    cr = (r - y) / 1.5748
    return 16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr


def _plane(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def _pad(im: Image.Image, pad: int) -> Image.Image:
    """Edge-replicate ``pad`` pixels around a plane."""
    a = np.pad(np.asarray(im), pad, mode="edge")
    return Image.fromarray(a)


def _load_depth(depth: Path, size: tuple[int, int], shot: str) -> np.ndarray:
    """Depth map as HxW float32 in [0, 1], 1 = nearest, resized to the keyframe."""
    try:
        with Image.open(depth) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float32) / 65535.0
            elif im.mode == "F":
                a = np.asarray(im, dtype=np.float32)
            else:
                a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise StageError(
            f"cannot read depth map {depth}: {e}",
            fix="write the depth map as an 8- or 16-bit grayscale PNG",
            stage="clips",
            shot=shot or None,
        ) from e
    a = np.clip(a, 0.0, 1.0)
    if a.shape[::-1] != size:
        a = np.asarray(Image.fromarray(a).resize(size, Image.BILINEAR), dtype=np.float32)
    return a


def _push_pull_fill(planes: list[np.ndarray], valid: np.ndarray) -> list[np.ndarray]:
    """Fill pixels where ``valid`` is 0 with a smooth extrapolation of the valid ones
    (push-pull: average down a pyramid, then blend back up). Used to paint what lies
    behind a nearer depth layer, so a layer that slides away reveals plausible
    background instead of a copy of itself."""
    w = valid.astype(np.float32)
    stack = np.stack(planes, axis=0).astype(np.float32) * w
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    cur_c, cur_w = stack, w
    while min(cur_w.shape) > 1:
        levels.append((cur_c, cur_w))
        h, wd = cur_w.shape
        h2, w2 = (h + 1) // 2 * 2, (wd + 1) // 2 * 2
        c = np.pad(cur_c, ((0, 0), (0, h2 - h), (0, w2 - wd)), mode="edge")
        ww = np.pad(cur_w, ((0, h2 - h), (0, w2 - wd)), mode="edge")
        cur_c = c.reshape(c.shape[0], h2 // 2, 2, w2 // 2, 2).sum(axis=(2, 4))
        cur_w = ww.reshape(h2 // 2, 2, w2 // 2, 2).sum(axis=(1, 3))
    # coarsest level: normalised colour (any weight at all gives the global mean)
    filled = cur_c / np.maximum(cur_w, 1e-6)
    for c, ww in reversed(levels):
        h, wd = ww.shape
        up = np.stack(
            [
                np.asarray(Image.fromarray(p).resize((wd, h), Image.BILINEAR))
                for p in filled
            ]
        )
        alpha = np.clip(ww, 0.0, 1.0)
        filled = c / np.maximum(ww, 1e-6) * alpha + up * (1.0 - alpha)
    return [filled[i] for i in range(filled.shape[0])]


@dataclass
class _Layer:
    """One depth layer as 8-bit planes: Y at full size, Cb/Cr at full size (padded, so
    they are resampled straight to 4:2:0), and its alpha (None = opaque background)."""

    y: Image.Image
    cb: Image.Image
    cr: Image.Image
    alpha: Image.Image | None
    alpha_c: Image.Image | None
    shift: float  # fraction of the width this layer travels over the shot


# ---------------------------------------------------------------------------- geometry


class _Renderer:
    """Renders one output frame (as yuv420p bytes) for a view of the keyframe's layers."""

    def __init__(self, layers: list[_Layer], src_w: int, src_h: int, out_w: int, out_h: int):
        self.layers = layers
        self.sw, self.sh = src_w, src_h
        self.ow, self.oh = out_w, out_h

    def _box(self, v: _View, dx: float, chroma: bool) -> tuple[float, float, float, float]:
        # Source window for this frame. The moves are planned to stay inside the
        # keyframe; the clamps only absorb float error (PIL refuses a box a hair
        # outside the image).
        w, h = self.ow / v.zoom, self.oh / v.zoom
        x0 = min(max(v.cx + dx - w / 2, 0.0), self.sw - w)
        y0 = min(max(v.cy - h / 2, 0.0), self.sh - h)
        if not chroma:
            return (x0, y0, min(x0 + w, float(self.sw)), min(y0 + h, float(self.sh)))
        # 4:2:0 as H.264 expects it ("left" siting): a chroma sample sits on the even
        # luma column and halfway between two luma rows. Resampling the full-size
        # chroma to half size centres samples between columns, so move the window
        # half an output pixel left. Chroma planes carry a padded margin for this.
        s = w / self.ow
        x0c = x0 - 0.5 * s + CHROMA_PAD
        y0c = y0 + CHROMA_PAD
        return (x0c, y0c, x0c + w, y0c + h)

    def frame(self, view: _View, progress: float) -> bytes:
        cw, ch = self.ow // 2, self.oh // 2
        out_y = out_cb = out_cr = None
        for layer in self.layers:
            dx = layer.shift * self.sw * (progress - 0.5)
            box = self._box(view, dx, chroma=False)
            cbox = self._box(view, dx, chroma=True)
            y = layer.y.resize((self.ow, self.oh), Image.BICUBIC, box=box)
            cb = layer.cb.resize((cw, ch), Image.BICUBIC, box=cbox)
            cr = layer.cr.resize((cw, ch), Image.BICUBIC, box=cbox)
            if out_y is None or out_cb is None or out_cr is None or layer.alpha is None:
                out_y, out_cb, out_cr = y, cb, cr
                continue
            assert layer.alpha_c is not None
            a = layer.alpha.resize((self.ow, self.oh), Image.BILINEAR, box=box)
            ac = layer.alpha_c.resize((cw, ch), Image.BILINEAR, box=cbox)
            out_y = Image.composite(y, out_y, a)
            out_cb = Image.composite(cb, out_cb, ac)
            out_cr = Image.composite(cr, out_cr, ac)
        assert out_y is not None and out_cb is not None and out_cr is not None
        return out_y.tobytes() + out_cb.tobytes() + out_cr.tobytes()


def _views(move: str, frames: int, sw: int, sh: int, ow: int, oh: int,
           min_zoom: float) -> tuple[list[_View], dict[str, Any]]:
    """The per-frame views of a move and the figures recorded for it."""
    # Smallest zoom at which the output window fits inside the keyframe (an odd-sized
    # keyframe loses at most one pixel per axis to the even output).
    fit = max(ow / sw, oh / sh)
    base = max(1.0, fit, min_zoom)
    cx, cy = sw / 2, sh / 2
    n = max(frames - 1, 1)
    eased = [_ease(i / n) for i in range(frames)]
    params: dict[str, Any] = {}
    if move in ("push-in", "pull-out", "parallax"):
        amount = PARALLAX_PUSH if move == "parallax" else PUSH_AMOUNT
        z0, z1 = base, base * (1 + amount)
        if move == "pull-out":
            z0, z1 = z1, z0
        views = [_View(cx, cy, z0 + (z1 - z0) * e) for e in eased]
        params.update(amplitude=amount, zoom=[round(z0, 4), round(z1, 4)])
    elif move in ("pan-left", "pan-right"):
        # Zoom in just enough that the window can travel PAN_AMOUNT of the width
        # without showing the keyframe's edge.
        travel = PAN_AMOUNT * sw
        zoom = max(base, ow / (sw - travel))
        start, end = cx + travel / 2, cx - travel / 2  # pan-left: the view moves left
        if move == "pan-right":
            start, end = end, start
        views = [_View(start + (end - start) * e, cy, zoom) for e in eased]
        params.update(amplitude=PAN_AMOUNT, zoom=[round(zoom, 4), round(zoom, 4)],
                      pan_px=[round(start - cx, 2), round(end - cx, 2)])
    else:  # static
        views = [_View(cx, cy, base) for _ in eased]
        params.update(amplitude=0.0, zoom=[round(base, 4), round(base, 4)])
    return views, params


# ---------------------------------------------------------------------------- layers


def _flat_layer(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> _Layer:
    return _Layer(_plane(y), _pad(_plane(cb), CHROMA_PAD), _pad(_plane(cr), CHROMA_PAD),
                  None, None, 0.0)


def _depth_layers(y: np.ndarray, cb: np.ndarray, cr: np.ndarray,
                  depth: np.ndarray) -> list[_Layer] | None:
    """Split the keyframe into 2..MAX_LAYERS layers by depth; None if the map is flat."""
    # Evenly spaced depth levels between robust extremes (quantiles would put every
    # threshold inside a large background and miss a small near subject).
    lo, hi = (float(v) for v in np.quantile(depth, [0.005, 0.995]))
    if hi - lo < 0.05:
        return None
    thresholds = [lo + (hi - lo) * k / MAX_LAYERS for k in range(1, MAX_LAYERS)]
    # Merge layers that hold (almost) nothing, e.g. the middle of a two-level map.
    min_share = 0.005 * depth.size
    changed = True
    while changed and thresholds:
        changed = False
        edges = [-1.0, *thresholds, 2.0]
        for k in range(len(edges) - 1):
            count = int(((depth >= edges[k]) & (depth < edges[k + 1])).sum())
            if count < min_share:
                # drop the threshold on the nearer side (or the farther, for the last band)
                del thresholds[min(k, len(thresholds) - 1)]
                changed = True
                break
    if not thresholds:
        return None
    bounds = [-1.0, *thresholds, 2.0]
    feather = 0.5 * (hi - lo) / MAX_LAYERS
    means = [float(depth[(depth >= bounds[k]) & (depth < bounds[k + 1])].mean())
             for k in range(len(bounds) - 1)]
    span = max(means[-1] - means[0], 1e-6)
    layers: list[_Layer] = []
    for k in range(len(bounds) - 1):
        band = (depth >= bounds[k]) & (depth < bounds[k + 1])
        # Erode the band a little so anti-aliased edge pixels (half foreground colour)
        # do not bleed into the fill behind the nearer layer.
        valid_im = Image.fromarray(band.astype(np.uint8) * 255).filter(
            ImageFilter.MinFilter(5))
        valid = np.asarray(valid_im) > 127
        if not valid.any():
            valid = band
        # Pixels this layer must invent: those nearer than the end of the next
        # layer's cross-fade (below). Within the cross-fade both layers keep real
        # pixels, so a continuous surface (a floor receding in depth) blends between
        # two shifted copies instead of tearing along the threshold.
        nearer = depth >= bounds[k + 1] + feather / 2
        if nearer.any():
            fy, fcb, fcr = _push_pull_fill([y, cb, cr], valid)
            # Keep the original pixels wherever this layer is itself visible.
            keep = ~nearer
            fy = np.where(keep, y, fy)
            fcb = np.where(keep, cb, fcb)
            fcr = np.where(keep, cr, fcr)
        else:
            fy, fcb, fcr = y, cb, cr
        shift = PARALLAX_FAR + (PARALLAX_NEAR - PARALLAX_FAR) * (means[k] - means[0]) / span
        layer = _flat_layer(fy, fcb, fcr)
        layer.shift = shift
        if k > 0:
            # Everything at or nearer than this layer, cross-faded over ``feather`` of
            # depth (a depth step, i.e. an object's edge, stays sharp) and anti-aliased
            # by a small blur.
            ramp = np.clip((depth - bounds[k]) / feather + 0.5, 0.0, 1.0)
            ramp = ramp * ramp * (3 - 2 * ramp)
            mask = Image.fromarray(np.rint(ramp * 255).astype(np.uint8))
            mask = mask.filter(ImageFilter.GaussianBlur(1.2))
            layer.alpha = mask
            layer.alpha_c = _pad(mask, CHROMA_PAD)
        layers.append(layer)
    return layers


# ---------------------------------------------------------------------------- encode


def _drain(pipe: IO[bytes], tail: deque[str]) -> None:
    # Read ffmpeg's stderr on a thread so a chatty ffmpeg never blocks on a full pipe
    # while we block writing frames to its stdin.
    for line in iter(pipe.readline, b""):
        tail.append(line.decode("utf-8", "replace").rstrip())


def check_timing(rate: Fraction | str, frames: int, where: dict[str, Any]) -> Fraction:
    """A shot master's rate and length, checked before any work; returns the rate."""
    rate = Fraction(rate)
    if rate <= 0:
        raise StageError(f"frame rate {rate} is not positive", fix="pass e.g. 30000/1001", **where)
    if frames < 1:
        raise StageError(f"a clip needs at least one frame, not {frames}",
                         fix="check the shot's duration", **where)
    return rate


def master_output_args(rate: Fraction, frames: int, crf: int, preset: str, out: Path) -> list[str]:
    """The encoder half of every shot-master command (camera moves and video models):
    H.264 4:2:0, exact rate, one-second closed GOPs (masters are trimmed anywhere),
    BT.709 tags, written to ``out``."""
    rate_s = f"{rate.numerator}/{rate.denominator}"
    gop = max(1, round(rate))
    return [
        "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-g", str(gop), "-flags", "+cgop", "-x264-params", "open_gop=0",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv",
        "-r", rate_s, "-an", "-movflags", "+faststart",
        str(out),
    ]  # fmt: skip


def grade_master(src: Path, out: Path, lut: Path, *, rate: Fraction, frames: int, crf: int,
                 preset: str, shot: str = "") -> dict[str, Any]:
    """A video model's master graded with ``lut`` in one ffmpeg pass: BT.709 limited-range
    Y'CbCr to 16-bit planar RGB (zimg), ``lut3d`` tetrahedral, back, re-encoded as every
    master is (master_output_args). Once per shot, in the clips stage: the deliverables
    then cut graded frames and apply no LUT of their own. Returns the grade's record."""
    where: dict[str, Any] = {"stage": "clips", "shot": shot or None}
    cube = load_cube(lut, stage="clips")  # refuses a malformed cube before ffmpeg starts
    tail: deque[str] = deque(maxlen=20)
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as d:
        # lut3d reads the cube by name from the working folder: a style pack's path may hold
        # characters a filter graph would need escaped (':', ',', quotes).
        name = "grade.cube"
        shutil.copyfile(lut, Path(d) / name)
        vf = ",".join([
            "zscale=matrixin=709:rangein=limited:range=full:chromalin=center",
            f"format={LUT_PIX_FMT}", lut3d_filter(name),
            "zscale=filter=bicubic:matrix=709:rangein=full:range=limited:chromal=center",
            "format=yuv420p",
        ])
        with atomic_output(out) as tmp:
            cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-i", str(Path(src).resolve()), "-vf", vf,
                   *master_output_args(rate, frames, crf, preset, Path(tmp).resolve())]
            try:
                res = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
            except OSError as e:
                raise StageError(f"cannot start ffmpeg: {e}", fix="install ffmpeg", **where) from e
            tail.extend(res.stderr.splitlines())
            if res.returncode != 0:
                raise StageError(
                    f"ffmpeg failed grading the clip (exit {res.returncode}): "
                    + (" | ".join(list(tail)[-5:]) or "no message"),
                    fix="check the LUT and the clip model's output", **where)
    return {"lut": str(lut), "lut_sha256": cube.sha256, "applied_to": "master",
            "interp": "tetrahedral", "filter": vf}


def _encode_command(tmp: Path, w: int, h: int, rate: Fraction, frames: int, crf: int,
                    preset: str) -> list[str]:
    rate_s = f"{rate.numerator}/{rate.denominator}"
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-framerate", rate_s,
        "-color_range", "tv", "-colorspace", "bt709",
        "-color_primaries", "bt709", "-color_trc", "bt709",
        "-i", "pipe:0",
        *master_output_args(rate, frames, crf, preset, tmp),
    ]  # fmt: skip


def render_move(
    keyframe: Path,
    out: Path,
    *,
    move: str,
    rate: Fraction,
    frames: int,
    depth: Path | None = None,
    crf: int = 12,
    preset: str = "veryfast",
    shot: str = "",
    lut: Path | None = None,
) -> dict[str, Any]:
    """Render ``frames`` frames of ``move`` over ``keyframe`` into an H.264 master at
    ``out`` (same size as the keyframe, rounded down to even). Returns the parameters
    that describe the move, for the record.

    ``lut`` (the style pack's 3D .cube) grades the keyframe before the move, so the
    master carries the look and no deliverable has to apply it again: once per shot,
    on the still (depth layers are cut from the graded picture), not once per frame."""
    where: dict[str, Any] = {"stage": "clips", "shot": shot or None}
    if move not in MOVES:
        raise StageError(f"unknown camera move {move!r}", fix="use one of: " + ", ".join(MOVES),
                         field="camera", **where)
    rate = check_timing(rate, frames, where)
    try:
        with Image.open(keyframe) as im:
            im.load()
            rgb = _to_rgb_array(im)
    except (OSError, ValueError) as e:
        raise StageError(f"cannot read keyframe {keyframe}: {e}",
                         fix="regenerate or reselect the keyframe", **where) from e
    grade: dict[str, Any] | None = None
    if lut is not None:
        cube = load_cube(lut, stage="clips")
        rgb = apply_lut(cube, rgb)
        grade = {"lut": str(lut), "lut_sha256": cube.sha256, "applied_to": "keyframe",
                 "interp": "tetrahedral"}
    sh, sw = rgb.shape[:2]
    ow, oh = sw // 2 * 2, sh // 2 * 2
    if ow < 2 or oh < 2:
        raise StageError(f"keyframe {keyframe} is {sw}x{sh}, too small for video",
                         fix="use a keyframe at least 2x2 pixels", **where)
    y, cb, cr = _rgb_to_ycbcr709(rgb)
    del rgb

    params: dict[str, Any] = {"move": move, "grade": grade}
    layers: list[_Layer] | None = None
    min_zoom = 1.0
    views_move = move
    if move == "parallax":
        if depth is None:
            params["fallback"] = "no depth map"
        else:
            layers = _depth_layers(y, cb, cr, _load_depth(depth, (sw, sh), shot))
            if layers is None:
                params["fallback"] = "flat depth map"
        if layers is None:
            views_move = "push-in"
        else:
            # Each layer is displaced up to half its travel either side of centre: zoom
            # in until even the nearest layer's window stays inside the keyframe.
            max_shift = max(layer.shift for layer in layers)
            min_zoom = 1.0 / (1.0 - max_shift)
            params["layers"] = len(layers)
            params["layer_shift"] = [round(layer.shift, 4) for layer in layers]
    if layers is None:
        layers = [_flat_layer(y, cb, cr)]
    del y, cb, cr

    views, figures = _views(views_move, frames, sw, sh, ow, oh, min_zoom)
    params.update(figures)
    if views_move != move:
        params["rendered_as"] = views_move
    params.update(
        frames=frames, rate=f"{rate.numerator}/{rate.denominator}", width=ow, height=oh,
        easing=EASING if move != "static" else "none", crf=crf, preset=preset,
        code_version=CODE_VERSION,
    )
    if "fallback" not in params:
        params["fallback"] = None

    renderer = _Renderer(layers, sw, sh, ow, oh)
    n = max(frames - 1, 1)
    tail: deque[str] = deque(maxlen=20)
    with atomic_output(out) as tmp:
        cmd = _encode_command(tmp, ow, oh, rate, frames, crf, preset)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        except OSError as e:
            raise StageError(f"cannot start ffmpeg: {e}", fix="install ffmpeg", **where) from e
        assert proc.stdin is not None and proc.stderr is not None
        reader = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
        reader.start()
        broken = False
        try:
            last: tuple[_View, bytes] | None = None
            for i, view in enumerate(views):
                # A static shot (or a held end) repeats a view: reuse its bytes.
                if last is not None and last[0] == view and len(layers) == 1:
                    data = last[1]
                else:
                    data = renderer.frame(view, _ease(i / n))
                    last = (view, data)
                proc.stdin.write(data)
            proc.stdin.close()
        except BrokenPipeError:
            broken = True  # ffmpeg died; its stderr says why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        reader.join(timeout=5)
        if rc != 0 or broken:
            raise StageError(
                f"ffmpeg failed encoding the {move} clip (exit {rc}): "
                + (" | ".join(list(tail)[-5:]) or "no message"),
                fix="check the keyframe and the encoder settings (crf, preset)",
                **where,
            )
    return params
