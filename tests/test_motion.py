"""Overlay motion (issue 13): "scale" grows a super or the logo bug into place about its
centre while it fades in, per frame at the output rate, in the conform's one encode; the
brand kit's ``motion`` picks fade, slide or scale for the supers and the logo bug.

The conform is driven directly with synthetic clips (flat grey masters, a white block as
the overlay) and the overlay measured in the decoded frames: no full render."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from studio.brief import Brief
from studio.specs import Catalog
from tests.ocr import make_logo_png

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "launch.yaml"
SHIPPED = Path(__file__).resolve().parent.parent / "studio" / "data"
SPEC = "youtube-1080p"
W, H = 320, 180
# The overlay: an odd-sized white block (the graphics' PNGs are cropped to what they draw,
# so odd sizes are usual) at an even corner, centred on (160.5, 90.5).
OW, OH, OX, OY = 161, 81, 80, 50
START, END, FADE_IN, FADE_OUT = 0.8, 1.8, 0.4, 0.2  # s; the cut between the masters is at 1.0 s


def _grey_master(path: Path, level: int, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=0x{level:02x}{level:02x}{level:02x}:size=320x180:rate=30:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def _gray_frames(video: Path) -> np.ndarray:
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True)
    return np.frombuffer(res.stdout, np.uint8).reshape(-1, H, W).astype(int)


def _bbox(frame: np.ndarray, grey: float) -> tuple[int, int, int, int] | None:
    """The overlay's drawn extent (x0, y0, x1, y1), ends exclusive: where the frame is
    brighter than the bare picture by half the overlay's step at its present opacity or
    more (an edge at half height: the encoder's ringing round the block stays below it);
    None where it draws nothing."""
    step = frame.max() - grey
    if step < 8:
        return None
    ys, xs = np.nonzero(frame > grey + step / 2)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _conform(tmp_path: Path, fps: str, motion: str, segmented: bool, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    from studio.store import Store
    from timelines.conform import ConformClip, VideoJob, conform_videos

    masters = [_grey_master(tmp_path / f"m{i}.mp4", 60, 1.0) for i in range(2)]
    clips = [ConformClip(m, 0, 30, Fraction(30), W, H, (0.5, 0.5), f"c{i}") for i, m in enumerate(masters)]
    spec = Catalog().spec(SPEC).model_copy(update={"name": "motion", "width": W, "height": H, "fps": fps})
    png = tmp_path / "white.png"
    Image.new("RGBA", (OW, OH), (255, 255, 255, 255)).save(png)
    ov = SimpleNamespace(path=png, x=OX, y=OY, start=START, end=END, fade_in=FADE_IN, fade_out=FADE_OUT,
                         motion=motion)
    out = tmp_path / f"{name}.mp4"
    (rec,) = conform_videos(clips, [VideoJob(spec, out, overlays=[ov])], preset="veryfast",
                            store=Store(tmp_path / "store") if segmented else None)
    return _gray_frames(out), rec


@pytest.mark.parametrize("fps", ["30", "25"])
def test_scale_grows_the_overlay_about_its_centre_alike_in_one_graph_and_in_segments(
        tmp_path: Path, fps: str) -> None:
    """motion scale, the overlay fading in over 0.4 s from 0.8 s, across the cut at 1.0 s
    where the segmented conform starts a new segment: its drawn extent in each decoded
    frame grows from about 0.85 of its size to full size over the ramp's frames at the
    output rate, about the same centre, and is full size after; the one-graph and the
    segmented conform give the same frames."""
    from timelines.conform import SCALE_FROM

    rate = int(fps)
    one, _ = _conform(tmp_path, fps, "scale", False, "one")
    seg, rec = _conform(tmp_path, fps, "scale", True, "seg")
    assert len(rec["segments"]) == 2  # the cut at 1.0 s splits the ramp
    assert one.shape == seg.shape == (2 * rate, H, W)
    grey = float(one[: round(START * rate) - 1].mean())
    first, ramp = round(START * rate), round(FADE_IN * rate)  # the overlay's first frame, the ramp's frames
    cut = rate  # the second segment's first frame
    assert first < cut < first + ramp
    boxes = [_bbox(f, grey) for f in one]
    assert all(b is None for b in boxes[:first + 1]), boxes[:first + 1]  # before it, and its first (alpha 0) frame
    # Over the ramp: the width and height it draws, against the eased scale it should
    # have at that frame (1 - (1 - SCALE_FROM)(1 - k/ramp)^2); the sides step by 2 px
    # each (even insets), edges at low opacity may read a pixel in.
    sizes = []
    for k in range(1, ramp + 1):
        b = boxes[first + k]
        assert b is not None, (k, boxes[first:first + ramp + 1])
        w, h = b[2] - b[0], b[3] - b[1]
        s = 1 - (1 - SCALE_FROM) * (1 - k / ramp) ** 2
        assert abs(w - OW * s) <= 4 and abs(h - OH * s) <= 4, (k, b, s)
        # about its own centre, (160.5, 90.5)
        assert abs((b[0] + b[2]) / 2 - (OX + OW / 2)) <= 1 and abs((b[1] + b[3]) / 2 - (OY + OH / 2)) <= 1, (k, b)
        sizes.append((w, h))
    # Strictly growing from its start through the middle to the end of the ramp, and
    # visibly smaller at the start (not a fade in at full size).
    mid = ramp // 2
    assert sizes[0][0] < sizes[mid - 1][0] < sizes[-1][0] and sizes[0][1] < sizes[mid - 1][1] < sizes[-1][1], sizes
    assert sizes[0][0] <= OW * 0.9, sizes  # (the height's 4 px steps are coarse at 81 px)
    # Never shrinking frame to frame, full size at the ramp's end and until it fades out
    # (it fades out as fade does: no shrinking).
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    last = round(END * rate) - 1
    assert all(b == (OX, OY, OX + OW, OY + OH) for b in boxes[first + ramp:last]), boxes[first + ramp:last + 1]
    assert boxes[last + 1] is None
    # The segmented conform: the same extent in every frame, the segment that starts
    # mid-ramp included (it continues the ramp rather than starting it again), and the
    # same picture within the encoder's noise (an edge at low opacity may read a pixel
    # either way).
    for i, (f, b) in enumerate(zip(seg, boxes, strict=True)):
        s = _bbox(f, grey)
        assert (s is None) == (b is None), (i, s, b)
        assert s is None or b is None or max(abs(p - q) for p, q in zip(s, b, strict=True)) <= 1, (i, s, b)
    # Mean level difference round the overlay per frame: a few tenths (the encoder's edges);
    # a ramp started again at the cut would differ by several levels over its frames.
    area = (slice(None), slice(OY - 4, OY + OH + 4), slice(OX - 4, OX + OW + 4))
    diff = np.abs(one[area] - seg[area]).reshape(len(one), -1).mean(axis=1)
    assert diff.max() < 1.0, np.round(diff, 2).tolist()


def test_scale_is_a_motion_of_its_own_in_segment_keys_and_refused_when_unknown(tmp_path: Path) -> None:
    """A segment with a scaling overlay is keyed apart from the same overlay fading (and
    fade's key is what it was: no scale_from in it); an unknown motion is refused."""
    from studio.errors import StageError
    from timelines.conform import _motion_key, _Segment, overlay_motion

    spec = Catalog().spec(SPEC)
    seg = _Segment(1, SimpleNamespace(), 30, 30, Fraction(0))
    ov = SimpleNamespace(path=tmp_path / "o.png", x=0, y=0, start=0.8, end=1.8, fade_in=0.4, fade_out=0.2)
    fade, scale = (_motion_key(SimpleNamespace(**vars(ov), motion=m), seg, spec) for m in ("fade", "scale"))
    assert fade == {"motion": "fade", "fade_in": 0.4, "fade_out": 0.2, "origin": -0.2, "span": 1.0}
    assert scale["motion"] == "scale" and scale["origin"] == -0.2 and "scale_from" in scale
    assert overlay_motion(SimpleNamespace(**vars(ov), motion="scale")) == ("scale", 0.4, 0.2)
    with pytest.raises(StageError) as err:
        overlay_motion(SimpleNamespace(**vars(ov), motion="spin"))
    assert "use motion none, fade, slide, scale" in str(err.value)


def _example() -> dict[str, Any]:
    d = yaml.safe_load(EXAMPLE.read_text())
    d.pop("end_card", None)
    d["beats"] = [{k: v for k, v in b.items() if k != "supers"} for b in d["beats"]]
    return d


def _catalog(root: Path, motion: str | None) -> Catalog:
    """The shipped golden-hour pack as 'motion-test', its brand kit with a logo, a logo
    bug and ``motion`` (left out: the kit's default)."""
    styles = root / f"styles-{motion}"
    styles.mkdir()
    style = yaml.safe_load((SHIPPED / "styles" / "golden-hour.yaml").read_text())
    style["name"] = "motion-test"
    style["finishing"]["lut"] = str((SHIPPED / "luts" / "golden-hour.cube").resolve())
    style["brand"] = {"schema": "BrandKit.1",
                      "logo": {"path": str(make_logo_png(root / "logo.png")),
                               "rights": {"owner": "Studio tests", "licence": "CC0-1.0", "source": "tests"}},
                      "logo_bug": {"corner": "top-left"}}
    if motion is not None:
        style["brand"]["motion"] = motion
    (styles / "motion-test.yaml").write_text(yaml.safe_dump(style))
    return Catalog(styles_dir=styles)


def test_the_brands_motion_reaches_the_supers_and_the_logo_bug_and_their_key(tmp_path: Path) -> None:
    """brand.motion: the supers and the logo bug move as the brand chooses, the end card
    still fades (the spot ends on it); the graphics' share of the deliverable's key
    changes with it, and a kit that does not choose keeps the key it had."""
    from pydantic import ValidationError

    from studio.brand import BrandKit
    from timelines.conform import ConformClip
    from timelines.graphics import build_graphics, graphics_recipe

    d = _example()
    d["beats"] = [dict(b, duration=2.0) for b in d["beats"][:2]]
    d["beats"][1]["supers"] = {"headline": "Cold"}
    d.update(hero_beat=None, channels=[SPEC], style_pack="motion-test", end_card={"duration": 1.0,
                                                                                   "copy": {"headline": "Aurora"}})
    brief = Brief.model_validate(d)
    m = _grey_master(tmp_path / "m.mp4", 90, 2.0)
    clips = [ConformClip(m, 0, 60, Fraction(30), W, H, (0.5, 0.5), b.id) for b in brief.beats]
    spec = Catalog().spec(SPEC).model_copy(update={"width": 640, "height": 360})  # room for the logo's minimum
    recipes = {}
    for motion in (None, "fade", "slide", "scale"):
        catalog = _catalog(tmp_path, motion)
        shown = build_graphics(brief, spec, clips, catalog, tmp_path / f"g-{motion}")
        kinds = {(g.kind, g.motion) for g in shown}
        want = motion or "fade"
        assert kinds == {("super", want), ("logo_bug", want), ("end_card", "fade")}, kinds
        # and the deliverable's record says so
        assert all(g.record()["motion"] == g.motion for g in shown)
        recipes[motion] = graphics_recipe(brief, spec, catalog)
    assert recipes[None] == recipes["fade"]  # the default: the key a kit without the field had
    assert recipes[None]["motion"]["kind"] == "fade" and "motion" not in recipes[None]["brand"]
    assert recipes["scale"]["motion"]["kind"] == "scale" and recipes["slide"]["motion"]["kind"] == "slide"
    assert len({yaml.safe_dump(r) for r in recipes.values()}) == 3  # fade (either way), slide, scale
    with pytest.raises(ValidationError, match="motion"):
        BrandKit.model_validate({"motion": "spin"})
