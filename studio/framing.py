"""Framing: which part of a shot master a channel sees (the crop geometry the review,
the scorer and the conform share).

Never stretch: a channel of another aspect gets the largest crop of its aspect that puts
the shot's focus point at the centre of the channel's safe area, clamped to the frame.
A letterboxed (or pillarboxed) channel's aspect is its active picture's
(``ChannelSpec.active_aspect``, 2.39:1 inside 1920x1080): the conform scales the crop to
the active size and pads the rest of the frame black; the safe area is a fraction of the
active picture, so the crop's geometry is the same as for a frame of that aspect.
If clamping pushes the focus out of the safe area, the crop tightens (zooms in) up to
``MAX_ZOOM`` until the focus is back inside.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.specs import ChannelSpec

MAX_ZOOM = 1.35


@dataclass(frozen=True)
class Crop:
    x: int
    y: int
    w: int
    h: int
    zoom: float
    focus_in_safe: bool

    def as_fractions(self, src_w: int, src_h: int) -> tuple[float, float, float, float]:
        return (self.x / src_w, self.y / src_h, (self.x + self.w) / src_w, (self.y + self.h) / src_h)


def _even(v: float) -> int:
    return max(2, int(v) // 2 * 2)


def crop_box(src_w: int, src_h: int, spec: ChannelSpec, focus: tuple[float, float]) -> Crop:
    active_w, active_h = spec.active_size
    aspect = active_w / active_h
    if src_w / src_h > aspect:
        base_h = src_h
        base_w = base_h * aspect
    else:
        base_w = src_w
        base_h = base_w / aspect
    s = spec.safe_area
    cx = (s.left + 1 - s.right) / 2
    cy = (s.top + 1 - s.bottom) / 2
    fx, fy = focus[0] * src_w, focus[1] * src_h
    best: Crop | None = None
    zoom = 1.0
    while zoom <= MAX_ZOOM + 1e-9:
        w, h = _even(base_w / zoom), _even(base_h / zoom)
        x = min(max(fx - cx * w, 0), src_w - w)
        y = min(max(fy - cy * h, 0), src_h - h)
        u, v = (fx - x) / w, (fy - y) / h
        inside = s.left <= u <= 1 - s.right and s.top <= v <= 1 - s.bottom
        crop = Crop(int(round(x)), int(round(y)), w, h, round(zoom, 3), inside)
        if best is None:
            best = crop
        if inside:
            return crop
        zoom += 0.05
    assert best is not None
    return best
