"""Letterboxing: a spec's active picture (2.39:1 inside 1920x1080) is conformed with black
bars, and captions burn in inside it. Checked from the outside: ffmpeg's cropdetect and
the decoded luma plane of the deliverable, not the filter graph we asked for."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from studio.specs import Catalog, ChannelSpec
from timelines.captions import Cue, render_overlays, vtt_settings
from timelines.conform import ConformClip, conform_video, probe

SCOPE = "cinema-scope-1080p24"
RATE = Fraction(24000, 1001)
M = 480  # master side: small and square, like the 1920x1920 masters scaled down
FRAMES = 24
# Limited-range black is Y 16. x264 at the spec's CRF leaves the bars at 16 exactly except
# where a macroblock straddles the picture's edge (138 is not a multiple of 16): the rows
# next to the edge may pick up a little ringing, so they are judged on their mean.
BLACK_MAX = 18
EDGE_ROWS = 16


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mid-grey with moving noise (so nothing in the picture is black), BT.709 limited,
    as the camera stage writes masters."""
    out = tmp_path_factory.mktemp("letterbox") / "grey.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=c=0x8a7f74:s={M}x{M}:r={RATE.numerator}/{RATE.denominator},noise=alls=24:allf=t",
         "-frames:v", str(FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12",
         "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
         "-color_trc", "bt709", str(out)], check=True)
    return out


def _clip(path: Path) -> ConformClip:
    return ConformClip(path=path, start_frame=0, frames=FRAMES, rate=RATE, width=M, height=M,
                       focus=(0.5, 0.5), name="grey")


def luma(path: Path, w: int, h: int) -> np.ndarray:
    """Every frame's Y plane as coded (no range or matrix conversion)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True).stdout
    frame = w * h * 3 // 2
    data = np.frombuffer(raw, np.uint8).reshape(-1, frame)
    return data[:, : w * h].reshape(-1, h, w).astype(np.float32)


def cropdetect(path: Path) -> tuple[int, int, int, int]:
    """ffmpeg's own verdict on the non-black area: w, h, x, y."""
    err = subprocess.run(["ffmpeg", "-v", "info", "-i", str(path), "-vf",
                          "cropdetect=limit=24:round=2:reset=0", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    found = re.findall(r"crop=(\d+):(\d+):(\d+):(\d+)", err)
    assert found, err[-2000:]
    w, h, x, y = (int(v) for v in found[-1])
    return w, h, x, y


# ------------------------------------------------------------------ the spec


def test_active_picture_geometry(catalog: Catalog) -> None:
    spec = catalog.spec(SCOPE)
    assert (spec.width, spec.height, spec.rate) == (1920, 1080, RATE)
    assert spec.active_size == (1920, 804)  # 1920 / 2.39 = 803.3: even, equal bars
    assert spec.active_rect() == (0, 138, 1920, 942)
    assert abs(1920 / 804 - 2.39) < 0.01
    x0, y0, x1, y1 = spec.safe_rect()  # 5% of the active picture, inside it
    assert (x0, y0, x1, y1) == (96, 138 + 40, 1824, 942 - 40)
    # A frame without active_aspect is all picture, as before.
    yt = catalog.spec("youtube-1080p")
    assert yt.active_rect() == (0, 0, 1920, 1080)
    assert yt.safe_rect() == yt.safe_area.rect(1920, 1080)
    # Narrower than the frame: pillarbox.
    pillar = yt.model_copy(update={"active_aspect": "4:3"})
    assert pillar.active_rect() == (240, 0, 1680, 1080)


def _spec(**extra: object) -> ChannelSpec:
    return ChannelSpec.model_validate({"schema": "ChannelSpec.1", "name": "x", "title": "x",
                                       "kind": "video", "width": 1920, "height": 1080, "crf": 20,
                                       **extra})


@pytest.mark.parametrize("extra, words", [
    ({"active_aspect": "wide"}, "is not an aspect ratio"),
    ({"active_aspect": "0:1"}, "is outside 1:10 to 10:1"),
    ({"active_aspect": "12:1"}, "is outside 1:10 to 10:1"),
    ({"width": 64, "height": 64, "active_aspect": "9:1"}, "it needs at least 16 pixels each way"),
    ({"kind": "still", "codec": "png", "crf": None, "active_aspect": "2.39:1"},
     "active_aspect (letterboxing) is for video specs"),
])
def test_bad_active_aspect_refused(extra: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        _spec(**extra)


# ------------------------------------------------------------------ the conform


def test_letterboxed_conform_has_black_bars(catalog: Catalog, master: Path, tmp_path: Path) -> None:
    spec = catalog.spec(SCOPE)
    # nordic-cool lifts its blacks (a matte look) and grain speckles: the bars must still
    # come out true black, so the matte goes on after the finishing.
    style = catalog.style("nordic-cool")
    lut = catalog.lut_path(style)
    out = tmp_path / "scope.mp4"
    rec = conform_video([_clip(master)], spec, out, preset="ultrafast", lut=lut, grain=0.2)

    info = probe(out)
    assert (info["width"], info["height"], info["fps"]) == (1920, 1080, RATE)
    # The reframe cut the master to the active picture's aspect, not the frame's.
    crop = rec["crops"][0]
    assert abs(crop["h"] - crop["w"] * 804 / 1920) <= 2, crop  # even sizes: within 2 px

    assert cropdetect(out) == (1920, 804, 0, 138)

    y = luma(out, 1920, 1080)
    assert len(y) == FRAMES
    top, picture, bottom = y[:, :138], y[:, 138:942], y[:, 942:]
    for bar in (top[:, : 138 - EDGE_ROWS], bottom[:, EDGE_ROWS:]):
        assert bar.max() <= BLACK_MAX, bar.max()
    for bar in (top, bottom):
        assert bar.mean() <= 16.5, bar.mean()
    # Every row of the active picture is picture, its first and last rows included.
    rows = picture.mean(axis=(0, 2))
    assert rows.min() > 60, (rows.argmin(), rows.min())


def test_captions_burn_in_inside_the_active_picture(catalog: Catalog, master: Path,
                                                     tmp_path: Path) -> None:
    spec = catalog.spec(SCOPE).model_copy(update={"captions_burn_in": True})
    cues = [Cue(1, 0.0, 0.5, ("Scope, with the bars", "left alone."), "b1"),
            Cue(2, 0.5, 1.0, ("One more line",), "b1")]
    overlays = render_overlays(cues, spec, tmp_path / "caps")
    ax0, ay0, ax1, ay1 = spec.active_rect()
    sx0, sy0, sx1, sy1 = spec.safe_rect()
    for ov in overlays:
        x0, y0, x1, y1 = ov.box
        assert sx0 <= x0 and sy0 <= y0 and x1 <= sx1 and y1 <= sy1, (ov.box, spec.safe_rect())
        assert y1 <= ay1 - 40  # above the bottom bar, by the safe margin
    # WebVTT puts the caption's bottom on the same line: the active picture's safe edge.
    line = float(re.search(r"line:([\d.]+)%", vtt_settings(spec))[1])
    assert line == pytest.approx(100 * sy1 / spec.height, abs=100 / spec.height)  # within a pixel
    assert line < 100 * ay1 / spec.height

    out = tmp_path / "captioned.mp4"
    conform_video([_clip(master)], spec, out, preset="ultrafast", overlays=overlays)
    y = luma(out, 1920, 1080)
    # White caption text (Y near 235) against mid-grey: where it landed, measured.
    for i, t in ((6, 0.25), (18, 0.75)):
        assert abs(i / float(RATE) - t) < 0.05
        bright = np.argwhere(y[i] > 200)
        assert len(bright) > 200, "no caption text found"
        rows, cols = bright[:, 0], bright[:, 1]
        assert ay0 <= rows.min() and rows.max() < ay1, (rows.min(), rows.max())
        assert sy0 <= rows.min() and rows.max() < sy1 and sx0 <= cols.min() and cols.max() < sx1
        assert y[i, : 138 - EDGE_ROWS].max() <= BLACK_MAX and y[i, 942 + EDGE_ROWS:].max() <= BLACK_MAX
