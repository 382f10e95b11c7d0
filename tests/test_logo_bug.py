"""The logo bug (issue 13): the brand's logo small in a corner of the safe area on every
video deliverable until the end card, measured from the encoded file (frames decoded by
ffmpeg, the logo found by normalised cross-correlation); copy wins where they meet; a
style pack without one keeps the keys it had."""

from __future__ import annotations

import hashlib
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from studio.brand import BrandKit, LogoBug
from studio.brief import Brief
from studio.specs import Catalog
from tests.ocr import find_logo, find_template, grey, make_logo_png

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "launch.yaml"
SHIPPED = Path(__file__).resolve().parent.parent / "studio" / "data"
SPEC = "youtube-1080p"
W, H, FPS = 640, 360, 30
BEAT = 1.5  # s; three beats, 135 frames
CARD = 1.0  # s of end card: from 3.5 s (frame 105)
BEATS = 3




def _catalog(root: Path, bug: dict[str, Any] | None) -> Catalog:
    styles = root / "styles"
    styles.mkdir(parents=True, exist_ok=True)
    style = yaml.safe_load((SHIPPED / "styles" / "golden-hour.yaml").read_text())
    style["name"] = "bug-test"
    style["finishing"]["lut"] = str((SHIPPED / "luts" / "golden-hour.cube").resolve())
    style["brand"] = {"schema": "BrandKit.1",
                      "logo": {"path": str(make_logo_png(root / "logo.png")),
                               "rights": {"owner": "Studio tests", "licence": "CC0-1.0", "source": "tests"}}}
    if bug is not None:
        style["brand"]["logo_bug"] = bug
    (styles / "bug-test.yaml").write_text(yaml.safe_dump(style))
    return Catalog(styles_dir=styles)


def _brief(supers: dict[str, str] | None = None, end_card: bool = True) -> Brief:
    d = yaml.safe_load(EXAMPLE.read_text())
    d["beats"] = [{k: v for k, v in dict(b, duration=BEAT).items() if k != "supers"} for b in d["beats"][:BEATS]]
    d.update(hero_beat=None, channels=[SPEC], style_pack="bug-test", captions=False)
    d.pop("copy", None)
    if supers is not None:
        d["beats"][0]["supers"] = supers
    if end_card:
        d["end_card"] = {"duration": CARD, "copy": {"headline": "Aurora keeps it cold"}}
    else:
        d.pop("end_card", None)
    return Brief.model_validate(d)


def _master(path: Path, seconds: float) -> Path:
    """A busy picture (testsrc2: gradients, text, moving shapes), so the logo is matched
    against real structure, not a flat ground it would match anywhere."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate={FPS}:duration={seconds}", "-c:v", "libx264", "-preset",
                    "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def _frame(video: Path, n: int) -> Image.Image:
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return Image.fromarray(np.frombuffer(res.stdout[: W * H * 3], np.uint8).reshape(H, W, 3))


def _clips(master: Path, brief: Brief) -> list[Any]:
    from timelines.conform import ConformClip

    n = round(BEAT * FPS)
    return [ConformClip(master, i * n, n, Fraction(FPS), W, H, (0.5, 0.5), b.id) for i, b in enumerate(brief.beats)]


def test_the_logo_bug_sits_in_its_corner_of_the_safe_area_until_the_end_card(tmp_path: Path) -> None:
    from timelines.conform import VideoJob, conform_videos
    from timelines.graphics import build_graphics

    catalog = _catalog(tmp_path, {"height": 0.12})  # the default corner: top right
    brief = _brief(supers={"headline": "Cold at sunrise"})
    spec = Catalog().spec(SPEC).model_copy(update={"width": W, "height": H})
    master = _master(tmp_path / "m.mp4", BEATS * BEAT)
    clips = _clips(master, brief)
    shown = build_graphics(brief, spec, clips, catalog, tmp_path / "g")
    assert [g.kind for g in shown] == ["super", "logo_bug", "end_card"]
    sup, bug, card = shown
    # Up to the end card's start, opacity as the kit's default; not while beat 1's lower
    # third shows, which sets the kit's logo in that same corner (never two logos).
    assert (bug.start, bug.end) == (pytest.approx(sup.end), pytest.approx(BEATS * BEAT - CARD))
    assert bug.placement["hidden_for"] == ["beats[0].supers"] and bug.fade_in > 0
    assert bug.placement["opacity"] == 0.85 and bug.field == "brand.logo_bug"
    # In a corner no copy comes near, the bug is there from the first frame.
    left = build_graphics(brief, spec, clips, _catalog(tmp_path / "left", {"corner": "top-left"}), tmp_path / "gl")
    assert [(g.start, g.end, g.fade_in) for g in left if g.kind == "logo_bug"] == [
        (0.0, pytest.approx(BEATS * BEAT - CARD), 0.0)]
    out = tmp_path / "out.mp4"
    conform_videos(clips, [VideoJob(spec, out, overlays=shown)], preset="veryfast")

    # The logo at the size the bug draws it: 12% of the safe area's height.
    x0, y0, x1, y1 = spec.safe_rect()
    h = round(0.12 * (y1 - y0))
    with Image.open(tmp_path / "logo.png") as im:
        logo = im.convert("RGB").resize((round(240 * h / 120), h), Image.Resampling.LANCZOS)
    w = logo.width
    mid = _frame(out, 75)  # 2.5 s: mid-spot, after the super, before the end card
    x, y, score = find_logo(mid, logo)
    assert score > 0.9, (x, y, score)
    # In the top-right corner of the safe area (±2 px: even offsets for 4:2:0), inside it.
    assert abs((x + w) - x1) <= 2 and abs(y - y0) <= 2, (x, y, w, h, spec.safe_rect())
    assert x >= x0 and y >= y0 and x + w <= x1 and y + h <= y1

    # Gone in the end card's last second: no match where it was (the card's own, larger
    # logo elsewhere does not count), while the same place in a mid-spot frame matches.
    def here(frame: Image.Image) -> float:
        g = grey(frame)[max(0, y - 4): y + h + 4, max(0, x - 4): x + w + 4]
        return find_template(g, grey(logo))[2]

    assert here(mid) > 0.9
    for n in (106, 120, 134):
        assert here(_frame(out, n)) < 0.5, n


def test_a_bottom_bug_stays_above_captions_and_yields_to_a_super_it_would_touch(tmp_path: Path) -> None:
    """bottom-left, where the lower third goes: the bug hides while the super shows (copy
    wins; it fades out before and in after), and sits above the burned-in captions."""
    from timelines.captions import Cue, render_overlays
    from timelines.graphics import build_graphics

    catalog = _catalog(tmp_path, {"corner": "bottom-left", "height": 0.08, "opacity": 1.0})
    brief = _brief(supers={"headline": "Cold at sunrise", "legal": "Terms apply."}, end_card=False)
    spec = Catalog().spec("reels-9x16").model_copy(update={"width": 360, "height": 640})
    master = _master(tmp_path / "m.mp4", BEATS * BEAT)
    clips = _clips(master, brief)
    (cap,) = render_overlays([Cue(1, 0.0, 1.5, ("Every day starts", "somewhere new."), brief.beats[0].id)],
                             spec, tmp_path / "captions")
    top = cap.box[1]
    shown = build_graphics(brief, spec, clips, catalog, tmp_path / "g", captions_top=top)
    sup = next(g for g in shown if g.kind == "super")
    bugs = [g for g in shown if g.kind == "logo_bug"]
    # The super's pixels and the bug's (with its clear space) meet: the bug shows only after it.
    assert len(bugs) == 1 and bugs[0].start == pytest.approx(sup.end) and bugs[0].end == pytest.approx(BEATS * BEAT)
    assert bugs[0].fade_in > 0 and bugs[0].placement["hidden_for"] == [sup.field]
    x0, _, _, _ = spec.safe_rect()
    with Image.open(bugs[0].path) as im:
        bbox = im.getchannel("A").getbbox()
    assert bugs[0].x + bbox[0] >= x0 and bugs[0].y + bbox[3] <= top - 6

    # Without captions and super it is there from frame 0 to the end, in the bottom-left.
    (alone,) = build_graphics(_brief(end_card=False), spec, clips, catalog, tmp_path / "g2")
    assert (alone.kind, alone.start, alone.end, alone.fade_in) == ("logo_bug", 0.0, pytest.approx(BEATS * BEAT), 0.0)
    assert alone.box[3] <= spec.safe_rect()[3] and alone.box[0] >= x0


def test_a_pack_without_a_logo_bug_keeps_its_keys(tmp_path: Path) -> None:
    """The brand kit's dump (in the stills' and videos' recipes) is the one before logo_bug
    existed (hashes pinned from the kit as it was); the graphics recipe has no bug and a
    spot without supers or end card still has no graphics share; a bug changes the key,
    and so does moving it."""
    from timelines.graphics import graphics_recipe

    def h(kit: BrandKit) -> str:
        return hashlib.sha256(json.dumps(kit.model_dump(mode="json", by_alias=True), sort_keys=True).encode()
                              ).hexdigest()

    logo = {"path": "logo.png", "rights": {"owner": "o", "licence": "CC0-1.0", "source": "s"}}
    assert h(BrandKit()) == "5dda858d4a356f9501d0c2ecbca3c40a6cd527e74c6c575a328a9c2ef3073d3b"
    assert h(BrandKit(logo=logo)) == "1a08e27c7a90c19cec7e646a5a88c940105b8a3781fd6a210ec422ea7165fb89"
    assert "logo_bug" in BrandKit(logo=logo, logo_bug=LogoBug()).model_dump()
    with pytest.raises(ValueError, match="logo_bug needs a logo"):
        BrandKit(logo_bug=LogoBug())

    spec = Catalog().spec(SPEC)
    plain = _catalog(tmp_path / "a", None)
    assert graphics_recipe(_brief(end_card=False), spec, plain) is None
    doc = graphics_recipe(_brief(), spec, plain)
    assert doc is not None and "logo_bug" not in doc["brand"]
    from studio.layout import CODE_VERSION as SETTING

    assert doc["setting"] == SETTING
    with_bug = graphics_recipe(_brief(), spec, _catalog(tmp_path / "b", {"corner": "top-left"}))
    moved = graphics_recipe(_brief(), spec, _catalog(tmp_path / "c", {"corner": "bottom-right"}))
    assert with_bug is not None and moved is not None
    assert with_bug["brand"]["logo_bug"]["corner"] == "top-left"
    assert len({json.dumps(d, sort_keys=True) for d in (doc, with_bug, moved)}) == 3
    # A bug alone is graphics: the spot gets a graphics share of its key.
    assert graphics_recipe(_brief(end_card=False), spec, _catalog(tmp_path / "d", {})) is not None


def test_a_logo_bug_makes_no_still_again(tmp_path: Path) -> None:
    """The bug shows in videos only: adding or moving it leaves the stills' keys alone
    (the copy recipe holds the rest of the kit), while a change a still shows (its logo's
    clear space) changes them."""
    from studio.copyfit import still_copies

    spec = Catalog().spec("banner-300x250")
    d = yaml.safe_load(EXAMPLE.read_text())
    d.update(channels=[spec.name], style_pack="bug-test")
    brief = Brief.model_validate(d)

    def key(root: Path, bug: dict[str, Any] | None, clear: float | None = None) -> str:
        catalog = _catalog(root, bug)
        if clear is not None:
            path = catalog.style_paths["bug-test"]
            style = yaml.safe_load(path.read_text())
            style["brand"]["logo_clear_space"] = clear
            path.write_text(yaml.safe_dump(style))
            catalog = Catalog(styles_dir=path.parent)
        (copy,) = still_copies(brief, spec, catalog)
        return json.dumps(copy.recipe(), sort_keys=True)

    from studio.layout import CODE_VERSION as SETTING

    plain = key(tmp_path / "a", None)
    assert json.loads(plain)["setting"] == SETTING  # how copy is set: a new line breaker makes stills again
    assert key(tmp_path / "b", {"corner": "top-left"}) == plain
    assert key(tmp_path / "c", {"corner": "bottom-right", "opacity": 0.5}) == plain
    assert key(tmp_path / "d", None, clear=0.4) != plain


def test_an_svg_logo_makes_a_sharp_logo_bug(tmp_path: Path) -> None:
    """An SVG logo is drawn at the bug's own size (not a bitmap scaled): the overlay's pixels
    are the vector drawn at that size, at the bug's opacity."""
    from studio.vector import rasterize
    from timelines.graphics import build_graphics

    svg = tmp_path / "logo.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100" width="200" height="100">'
                   '<rect x="4" y="4" width="92" height="92" fill="#d7263d"/>'
                   '<circle cx="150" cy="50" r="44" fill="#1b998b"/></svg>')
    catalog = _catalog(tmp_path, {"height": 0.12, "opacity": 1.0})
    path = catalog.style_paths["bug-test"]
    style = yaml.safe_load(path.read_text())
    style["brand"]["logo"]["path"] = str(svg)
    path.write_text(yaml.safe_dump(style))
    catalog = Catalog(styles_dir=path.parent)
    brief = _brief(end_card=False)
    spec = Catalog().spec(SPEC).model_copy(update={"width": W, "height": H})
    clips = _clips(_master(tmp_path / "m.mp4", BEATS * BEAT), brief)
    (bug,) = [g for g in build_graphics(brief, spec, clips, catalog, tmp_path / "g") if g.kind == "logo_bug"]
    h = bug.placement["height_px"]
    w = 2 * h  # the SVG's 2:1
    sx0, sy0, sx1, _ = spec.safe_rect()
    x0, y0 = (sx1 - w) // 2 * 2, sy0 + sy0 % 2  # the default corner, top right, on even offsets
    x1, y1 = x0 + w, y0 + h
    drawn = rasterize(svg, w, h).getchannel("A").getbbox()
    assert drawn is not None
    # what the bug draws is the vector's own extent, where the corner puts it
    assert bug.placement["box"] == [x0 + drawn[0], y0 + drawn[1], x0 + drawn[2], y0 + drawn[3]], bug.placement
    # the overlay (cropped to what it draws) put back where it goes in the frame
    frame = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    with Image.open(bug.path) as im:
        frame.paste(im.convert("RGBA"), (bug.x, bug.y))
    got = np.asarray(frame.crop((x0, y0, x1, y1)), np.float64)
    want = np.asarray(rasterize(svg, w, h), np.float64)
    assert np.abs(got[..., 3] - want[..., 3]).mean() < 2.0  # the same shapes, at the same place
    inside = want[..., 3] > 250
    assert np.abs(got[inside][:, :3] - want[inside][:, :3]).mean() < 2.0  # in the same colours
