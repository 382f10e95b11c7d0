"""Camera moves, checked from the outside: ffprobe for the stream, ffmpeg-decoded pixels
for the motion (not the numbers render_move returns)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shots.camera import render_move
from studio.errors import StageError

SIZE = 256


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    data = json.loads(out)
    return {**data["streams"][0], "format": data["format"]}


def decode_gray(path: Path, w: int, h: int) -> np.ndarray:
    """Frames as R'G'B' (decoded by ffmpeg with the BT.709 matrix), averaged to one
    channel: comparable with the keyframe's own RGB mean."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf",
         "scale=in_color_matrix=bt709:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.float32).mean(-1)


def key_gray(path: Path, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if box is not None:
        im = im.resize(im.size, Image.BICUBIC, box=box)
    return np.asarray(im, dtype=np.float32).mean(-1)


def textured(w: int, h: int) -> np.ndarray:
    """Smooth but detailed: sinusoids of several frequencies and a few discs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 0.5 + 0.25 * np.sin(xx / 7.0) + 0.25 * np.sin(yy / 11.0 + xx / 29.0)
    g = 0.5 + 0.5 * np.sin((xx + yy) / 13.0)
    b = 0.5 + 0.5 * np.cos(yy / 5.0)
    img = np.stack([r, g, b], -1)
    for cx, cy in ((0.3, 0.3), (0.7, 0.6), (0.5, 0.8)):
        img[(xx - cx * w) ** 2 + (yy - cy * h) ** 2 < (0.06 * w) ** 2] = (1.0, 1.0, 0.2)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def keyframe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cam") / "key.png"
    Image.fromarray(textured(SIZE, SIZE)).save(p)
    return p


def hshift(a: np.ndarray, b: np.ndarray, rows: slice, cols: slice = slice(None),
           max_shift: int = 40) -> int:
    """Horizontal displacement of content from a to b (positive = moved right), by the
    best-matching integer shift of a band's column profile."""
    ra, rb = a[rows, cols].mean(0), b[rows, cols].mean(0)
    best, best_err = 0, float("inf")
    for s in range(-max_shift, max_shift + 1):
        if s >= 0:
            err = float(np.abs(ra[: len(ra) - s] - rb[s:]).mean())
        else:
            err = float(np.abs(ra[-s:] - rb[: len(rb) + s]).mean())
        if err < best_err:
            best, best_err = s, err
    return best


def test_exact_frames_rate_and_tags_ntsc(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "push.mp4"
    params = render_move(keyframe, out, move="push-in", rate=Fraction(30000, 1001), frames=37,
                         shot="s01")
    s = ffprobe(out)
    assert s["r_frame_rate"] == "30000/1001"
    assert int(s["nb_read_frames"]) == 37
    assert (s["width"], s["height"]) == (SIZE, SIZE)
    assert s["codec_name"] == "h264" and s["pix_fmt"] == "yuv420p"
    assert (s["color_space"], s["color_primaries"], s["color_transfer"]) == ("bt709",) * 3
    assert abs(float(s["format"]["duration"]) - 37 * 1001 / 30000) < 1001 / 30000
    assert params["rate"] == "30000/1001" and params["frames"] == 37
    assert params["move"] == "push-in" and params["fallback"] is None
    assert 0.08 <= params["amplitude"] <= 0.12
    assert not list(tmp_path.glob(".*tmp*")), "temp file left behind"


def test_odd_keyframe_gives_even_frame(tmp_path: Path) -> None:
    key = tmp_path / "odd.png"
    Image.fromarray(textured(201, 151)).save(key)
    out = tmp_path / "odd.mp4"
    render_move(key, out, move="pan-right", rate=Fraction(25), frames=5)
    s = ffprobe(out)
    assert (s["width"], s["height"]) == (200, 150)
    assert int(s["nb_read_frames"]) == 5 and s["r_frame_rate"] == "25/1"


def test_push_in_is_smooth_and_lands_on_the_zoomed_keyframe(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "push.mp4"
    render_move(keyframe, out, move="push-in", rate=Fraction(30), frames=30)
    f = decode_gray(out, SIZE, SIZE)
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    assert (diffs[3:-3] > 0.05).all(), "no motion in the middle of the move"
    # smooth: eased, so no frame-to-frame jump much larger than the typical step, and
    # the ends slower than the middle
    assert diffs.max() < 3.0 * np.median(diffs)
    assert diffs[0] < diffs[len(diffs) // 2] and diffs[-1] < diffs[len(diffs) // 2]
    key = key_gray(keyframe)
    assert np.abs(f[0] - key).mean() < 3.0  # starts on the whole keyframe
    # ends 10% in (the 8-12% band): the centre crop of the keyframe fits best
    errs = {}
    for z in (1.06, 1.08, 1.10, 1.12, 1.14):
        w = SIZE / z
        x0 = (SIZE - w) / 2
        ref = key_gray(keyframe, (x0, x0, x0 + w, x0 + w))
        errs[z] = float(np.abs(f[-1] - ref).mean())
    assert min(errs, key=lambda z: errs[z]) in (1.08, 1.10, 1.12)
    assert errs[1.10] < 3.0


def test_pull_out_reverses_push_in(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "pull.mp4"
    render_move(keyframe, out, move="pull-out", rate=Fraction(24), frames=12)
    f = decode_gray(out, SIZE, SIZE)
    key = key_gray(keyframe)
    assert np.abs(f[-1] - key).mean() < 3.0
    assert np.abs(f[0] - key).mean() > 5.0


@pytest.mark.parametrize("move,sign", [("pan-left", 1), ("pan-right", -1)])
def test_pans_travel_modestly_in_the_right_direction(keyframe: Path, tmp_path: Path, move: str,
                                                     sign: int) -> None:
    out = tmp_path / f"{move}.mp4"
    params = render_move(keyframe, out, move=move, rate=Fraction(30), frames=20)
    f = decode_gray(out, SIZE, SIZE)
    shift = hshift(f[0], f[-1], slice(0, SIZE))
    # pan-left: the view moves left, so the picture slides right; 6-8% of the width
    # (times the zoom that keeps the edge hidden)
    assert sign * shift > 0
    assert 0.06 * SIZE <= abs(shift) <= 0.085 * SIZE, shift
    assert 0.06 <= params["amplitude"] <= 0.08
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    assert (diffs[2:-2] > 0.05).all()


def test_static_holds_still(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "static.mp4"
    render_move(keyframe, out, move="static", rate=Fraction(30), frames=8)
    f = decode_gray(out, SIZE, SIZE)
    assert len(f) == 8
    assert np.abs(np.diff(f, axis=0)).mean() < 0.5


def test_parallax_moves_near_layer_more_than_far(tmp_path: Path) -> None:
    # Random vertical stripes everywhere (horizontal motion is measurable without
    # periodic ambiguity); a near disc low in the picture, far background above it.
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cols = np.random.default_rng(3).integers(30, 225, SIZE)
    cols = np.convolve(cols, np.ones(3) / 3, mode="same")  # a little smoothing: no aliasing
    stripes = np.broadcast_to(cols, (SIZE, SIZE)).astype(np.uint8)
    key = tmp_path / "key.png"
    Image.fromarray(np.stack([stripes] * 3, -1)).save(key)
    depth = np.full((SIZE, SIZE), 20, np.uint16)
    depth[(xx - 128) ** 2 + (yy - 170) ** 2 < 60**2] = 60000  # 16-bit depth map
    depth_png = tmp_path / "depth.png"
    Image.fromarray(depth).save(depth_png)
    out = tmp_path / "parallax.mp4"
    params = render_move(key, out, move="parallax", rate=Fraction(30), frames=24,
                         depth=depth_png)
    assert params["fallback"] is None and 2 <= params["layers"] <= 4
    f = decode_gray(out, SIZE, SIZE)
    far = hshift(f[0], f[-1], slice(10, 60))
    near = hshift(f[0], f[-1], slice(150, 190), slice(96, 160))
    # the camera trucks right: everything slides left, the near disc about 4x as far
    assert near < 0 and far <= 0
    assert abs(near) > abs(far) + 4, (near, far)
    assert 0.03 * SIZE <= abs(near) <= 0.05 * SIZE, near
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    assert (diffs[2:-2] > 0.05).all()


def test_parallax_without_depth_falls_back_to_push_in(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.mp4"
    params = render_move(keyframe, out, move="parallax", rate=Fraction(30), frames=10)
    assert params["fallback"] == "no depth map"
    assert params["move"] == "parallax" and params["rendered_as"] == "push-in"
    f = decode_gray(out, SIZE, SIZE)
    assert np.abs(f[0] - f[-1]).mean() > 2.0


def test_parallax_with_flat_depth_falls_back(keyframe: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(flat)
    params = render_move(keyframe, tmp_path / "p.mp4", move="parallax", rate=Fraction(30),
                         frames=4, depth=flat)
    assert params["fallback"] == "flat depth map"


def test_errors_name_stage_and_shot(keyframe: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError) as e:
        render_move(keyframe, tmp_path / "x.mp4", move="dolly-zoom", rate=Fraction(30),
                    frames=4, shot="s07")
    assert e.value.stage == "clips" and e.value.shot == "s07"
    with pytest.raises(StageError) as e:
        render_move(tmp_path / "missing.png", tmp_path / "x.mp4", move="static",
                    rate=Fraction(30), frames=4, shot="s07")
    assert "missing.png" in str(e.value)


def test_failed_encode_leaves_nothing(keyframe: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    with pytest.raises(StageError) as e:
        render_move(keyframe, out, move="push-in", rate=Fraction(30), frames=4,
                    preset="no-such-preset", shot="s03")
    assert e.value.stage == "clips" and e.value.shot == "s03"
    assert "ffmpeg" in str(e.value)
    assert list(tmp_path.iterdir()) == []
