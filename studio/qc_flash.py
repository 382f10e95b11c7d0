"""Photosensitive flash screen, measured by our own code (``studio.qc``'s ``flash`` and
``red_flash`` checks).

What the standards say, and how it is read here:

- ITU-R BT.1702 and WCAG 2.x (2.3.1, "Three Flashes or Below Threshold") define a *general
  flash* as a pair of opposing changes in relative luminance of 10% or more of the maximum
  relative luminance (1.0), where the relative luminance of the darker image is below 0.80
  (BT.1702 says 20 cd/m² and 160 cd/m² on a 200 cd/m² display: the same fractions).
  "A pair of opposing changes" is an increase followed by a decrease, or the reverse.
- A *red flash* is a pair of opposing transitions involving a saturated red. WCAG's
  Understanding document gives the working definition used by PEAT and the Trace Center:
  a pixel is saturated red where R/(R+G+B) ≥ 0.8, its red value is (R − G − B) × 320 (0 when
  negative), and a transition is a change of that value of more than 20. BT.1702 adds that
  the transition to or from saturated red is harmful irrespective of luminance.
- A sequence fails when there are **more than three flashes in any one-second period** and
  the **combined area of the flashes occurring concurrently is more than 25%** of the
  screen (BT.1702 counts the displayed screen area; WCAG counts any 10° visual field, about
  a quarter of a 1024×768 screen at a typical distance; the screen rule is used here, as
  the issue asks). Three flashes are six transitions, so a cell fails a window with seven or
  more transitions (3.5 flashes > 3); this matches the Harding-style counting of
  transitions and keeps a 3.5 Hz flash a failure, which counting whole pairs would miss.

Implementation. The picture is measured on a grid of cells (each the mean *linear* relative
luminance of its pixels, BT.709/sRGB primaries, the WCAG sRGB linearisation). Each cell's
luminance (and its red value) goes through a hysteresis tracker: a transition is counted
when the signal has moved by at least the threshold away from its last extreme, in the
direction opposite to the last transition (so a slow fade is one transition, and noise
below the threshold none); the darker-below-0.80 condition is checked on the two ends of
the swing. A window of one second fails where the cells with seven or more transitions in
it cover more than 25% of the grid. Not covered: BT.1702's regular spatial patterns, and
the "extended" rules some national guidance adds; certification needs an approved tool
(Harding, or a similar analyser)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LUMA_DELTA = 0.10  # 10% of maximum relative luminance
DARK_LIMIT = 0.80  # the darker image must be below this
RED_RATIO = 0.80  # R / (R + G + B) for a saturated red
RED_SCALE = 320.0  # (R - G - B) x 320, as in WCAG's Understanding 2.3.1
RED_DELTA = 20.0  # a red transition changes the red value by more than this
MAX_TRANSITIONS = 6  # three flashes a second; seven transitions fail
AREA_LIMIT = 0.25  # of the screen

# WCAG's sRGB linearisation (its relative luminance definition).
_LIN = np.where(np.arange(256) / 255 <= 0.04045, np.arange(256) / 255 / 12.92,
                ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_rgb(rgb8: np.ndarray) -> np.ndarray:
    """8-bit R'G'B' to linear light in [0, 1] (lookup table, float32)."""
    return _LIN[rgb8]


def cell_means(plane: np.ndarray, cell: int) -> np.ndarray:
    """Mean over ``cell``×``cell`` blocks of a (frames, H, W) array, flattened to
    (frames, cells). Edges that do not fill a block are dropped (at most cell-1 pixels)."""
    n, h, w = plane.shape
    gh, gw = h // cell, w // cell
    p = plane[:, : gh * cell, : gw * cell].reshape(n, gh, cell, gw, cell)
    return p.mean(axis=(2, 4)).reshape(n, gh * gw)


def frame_signals(rgb8: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, per frame: linear relative luminance and the WCAG red value, from
    (frames, H, W, 3) 8-bit RGB."""
    lin = linear_rgb(rgb8)
    r, g, b = lin[..., 0], lin[..., 1], lin[..., 2]
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    total = r + g + b
    saturated = r >= RED_RATIO * np.maximum(total, 1e-6)
    red = np.where(saturated & (total > 0), np.maximum(r - g - b, 0.0) * RED_SCALE, 0.0)
    return cell_means(lum, cell), cell_means(red.astype(np.float32), cell)


@dataclass
class _Tracker:
    """Hysteresis (zig-zag) transition counter over many cells at once."""

    threshold: float
    dark_limit: float  # the darker end must be below this (inf: no condition)
    direction: np.ndarray | None = None  # +1 rising, -1 falling, 0 not yet moved
    extreme: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def step(self, v: np.ndarray) -> np.ndarray:
        """Feed one frame's cell values; return the cells whose transition completed."""
        if self.direction is None:
            self.direction = np.zeros(v.shape, np.int8)
            self.extreme, self.low, self.high = v.copy(), v.copy(), v.copy()
            return np.zeros(v.shape, bool)
        d, ext, low, high = self.direction, self.extreme, self.low, self.high
        assert ext is not None and low is not None and high is not None
        rising, falling, still = d == 1, d == -1, d == 0
        ext = np.where(rising & (v > ext), v, ext)
        ext = np.where(falling & (v < ext), v, ext)
        low = np.where(still, np.minimum(low, v), low)
        high = np.where(still, np.maximum(high, v), high)
        down = rising & (ext - v >= self.threshold) & (v < self.dark_limit)
        up = falling & (v - ext >= self.threshold) & (ext < self.dark_limit)
        up0 = still & (v - low >= self.threshold) & (low < self.dark_limit)
        down0 = still & ~up0 & (high - v >= self.threshold) & (v < self.dark_limit)
        went_down, went_up = down | down0, up | up0
        moved = went_down | went_up
        self.direction = np.where(went_down, -1, np.where(went_up, 1, d)).astype(np.int8)
        self.extreme = np.where(moved, v, ext)
        self.low, self.high = low, high
        return moved


@dataclass
class FlashScreen:
    """Feed frames in order (``feed``); ``result`` gives the failing stretches."""

    rate: float
    cell: int = 8
    _lum: _Tracker = field(default_factory=lambda: _Tracker(LUMA_DELTA, DARK_LIMIT))
    _red: _Tracker = field(default_factory=lambda: _Tracker(RED_DELTA, float("inf")))
    _lum_hits: list[np.ndarray] = field(default_factory=list)
    _red_hits: list[np.ndarray] = field(default_factory=list)

    def feed(self, rgb8: np.ndarray) -> None:
        lum, red = frame_signals(rgb8, self.cell)
        for i in range(lum.shape[0]):
            self._lum_hits.append(self._lum.step(lum[i]))
            self._red_hits.append(self._red.step(red[i]))

    def result(self, kind: str) -> dict[str, object]:
        """``kind`` "general" or "red": the failing spans as frame ranges (first and last
        transition frame of the failing windows), the worst window's transitions per second
        (the highest count in the flashing area) and its area."""
        hits = self._lum_hits if kind == "general" else self._red_hits
        if not hits:
            return {"spans": [], "max_flashes_per_s": 0.0, "max_area": 0.0, "cells": 0}
        h = np.asarray(hits, dtype=np.int32)  # frames x cells
        n_frames, n_cells = h.shape
        window = max(1, round(self.rate))  # one second of frames
        cum = np.vstack([np.zeros((1, n_cells), np.int32), np.cumsum(h, axis=0)])
        ends = np.arange(n_frames)
        starts = np.maximum(ends - window + 1, 0)
        counts = cum[ends + 1] - cum[starts]  # transitions per cell in the window ending here
        failing = counts > MAX_TRANSITIONS
        area = failing.mean(axis=1)
        bad = area > AREA_LIMIT
        spans: list[tuple[int, int]] = []
        i = 0
        while i < n_frames:
            if not bad[i]:
                i += 1
                continue
            j = i
            while j + 1 < n_frames and bad[j + 1]:
                j += 1
            # The stretch runs from the first frame of the first failing window where the
            # failing cells change together over more than the area limit (the flash's own
            # first transition, not a stray change of the picture before it) to the last such
            # frame of the last failing window; without one, the first and last transition.
            first = _edge(h, failing[i], range(starts[i], i + 1))
            last = _edge(h, failing[j], range(j, starts[j] - 1, -1))
            spans.append((int(first), int(last)))
            i = j + 1
        worst = int(counts.max()) if counts.size else 0
        return {
            "spans": spans,
            "max_flashes_per_s": worst / 2,
            "max_area": round(float(area.max()), 4),
            "cells": n_cells,
        }


def _edge(h: np.ndarray, cells: np.ndarray, frames: range) -> int:
    """The first frame in ``frames`` (in its order) where ``cells`` transition over more
    than AREA_LIMIT of the screen, else the first where any of them does."""
    n_cells = h.shape[1]
    for f in frames:
        if h[f, cells].sum() > AREA_LIMIT * n_cells:
            return f
    return next(f for f in frames if h[f, cells].any())
