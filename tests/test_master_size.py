"""Shot masters sized to the brief's channels: every channel's crop at native resolution
(plus the camera move's margin for video), no more; checked on the formula, on the
reframe's own crops, on the camera's recorded zooms, and on a real 9:16-only render."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from shots import camera
from studio import db
from studio.framing import crop_box
from studio.pipeline import master_size
from studio.specs import Catalog

CATALOG = Catalog()


def specs(*names: str) -> list:
    return [CATALOG.spec(n) for n in names]


def test_vertical_only_brief_gets_a_vertical_master() -> None:
    # 1080x1920 plus 10% for the push-in, rounded up to 16: not the old 1920x1920 square
    assert camera.MOVE_MARGIN == pytest.approx(1.10)
    assert master_size(specs("reels-9x16")) == (1200, 2112)


def test_horizontal_only_brief_gets_a_horizontal_master() -> None:
    assert master_size(specs("youtube-1080p")) == (2112, 1200)
    assert master_size(specs("youtube-1080p", "broadcast-ebu-1080p25")) == (2112, 1200)
    # banners fit inside the 16:9 master; they do not make it taller
    assert master_size(specs("youtube-1080p", "banner-300x250", "banner-728x90")) == (2112, 1200)


def test_mixed_brief_gets_the_union() -> None:
    assert master_size(specs("youtube-1080p", "reels-9x16")) == (2112, 2112)
    assert master_size(specs("reels-9x16", "feed-1x1")) == (1200, 2112)


def test_letterboxed_channel_needs_only_its_active_picture() -> None:
    # 2.39:1 inside 1920x1080: the picture is 1920x804, the bars are black padding
    spec = CATALOG.spec("cinema-scope-1080p24")
    assert spec.active_size[0] == 1920 and spec.active_size[1] < 1080
    assert master_size([spec]) == (2112, 896)
    assert master_size(specs("cinema-scope-1080p24", "youtube-1080p")) == (2112, 1200)


def test_still_only_brief_needs_no_move_margin() -> None:
    assert master_size(specs("banner-300x250", "banner-728x90")) == (736, 256)
    assert master_size(specs("social-still-1080")) == (1088, 1088)
    assert master_size(specs("banner-300x250")) == (304, 256)  # never under 256 a side


@pytest.mark.parametrize("names", [c for n in (1, 2, 3) for c in itertools.combinations(sorted(CATALOG.specs), n)])
def test_every_channel_crop_is_native_with_the_move_margin(names: tuple[str, ...]) -> None:
    """Whatever the mix of shipped specs, the reframe's crop of the master (centred focus,
    no tightening) holds the channel at native size, times the move margin for video."""
    chosen = specs(*names)
    w, h = master_size(chosen)
    for spec in chosen:
        crop = crop_box(w, h, spec, (0.5, 0.5))
        need = camera.MOVE_MARGIN if spec.kind == "video" else 1.0
        aw, ah = spec.active_size  # the picture inside a letterboxed frame
        assert crop.zoom == 1.0
        assert crop.w >= aw * need - 2 and crop.h >= ah * need - 2, (spec.name, (w, h), crop)
    # and it is the smallest such master (within the rounding to 16)
    widest = max(s.active_size[0] * (camera.MOVE_MARGIN if s.kind == "video" else 1) for s in chosen)
    tallest = max(s.active_size[1] * (camera.MOVE_MARGIN if s.kind == "video" else 1) for s in chosen)
    assert w < max(widest, 256) + 16 and h < max(tallest, 256) + 16


@pytest.mark.parametrize("move", camera.MOVES)
def test_move_margin_is_what_the_camera_zooms(move: str, tmp_path: Path) -> None:
    """tightest_zoom is the zoom render_move records at the move's tightest frame, so the
    margin follows the camera if its amounts change."""
    rng = np.random.default_rng(3)
    key = tmp_path / "key.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(key)
    depth = tmp_path / "depth.png"
    d = np.zeros((48, 64), dtype=np.uint8)
    d[12:36, 20:44] = 255  # a near square on a far background: two layers
    Image.fromarray(d).save(depth)
    params = camera.render_move(key, tmp_path / "m.mp4", move=move, rate=30, frames=3, depth=depth)
    assert max(params["zoom"]) == pytest.approx(camera.tightest_zoom(move), abs=1e-4)
    assert camera.tightest_zoom(move) <= camera.MOVE_MARGIN


def _probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height,r_frame_rate,nb_frames:format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return {**data["streams"][0], "duration": float(data["format"]["duration"])}


def test_vertical_only_render_makes_vertical_masters(settings, ray_session, tmp_path: Path) -> None:
    from studio.pipeline import render
    from studio.store import Store

    brief = {
        "schema": "Brief.1", "project": "mtest", "campaign": "vertical", "purpose": "master size check",
        "channels": ["reels-9x16"], "style_pack": "golden-hour", "candidates": 1, "handles": 2,
        "captions": False,  # the procedural bed: a silent spot cannot be mastered
        "beats": [{"id": "b01", "duration": 3, "subject": "a bottle on a rock", "camera": "push-in",
                   "composition": "medium shot, subject centered, copy space top"}],
    }
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(brief), encoding="utf-8")
    out = tmp_path / "out"
    ctx = render(path, out, settings=settings)
    assert ctx.master_size == (1200, 2112)
    m = json.loads((out / "manifest.json").read_text())
    (beat,) = m["beats"]
    master = _probe(Store(settings.store_root).find(beat["clip_sha256"]))
    assert (master["width"], master["height"]) == (1200, 2112)
    assert int(master["nb_frames"]) == 90 + 2 * 2  # 3 s at 30 fps plus the handles
    (dlv,) = m["deliverables"]
    reels = _probe(out / dlv["path"])
    assert (reels["width"], reels["height"], reels["r_frame_rate"]) == (1080, 1920, "30/1")
    assert reels["duration"] == pytest.approx(3.0, abs=0.05)
    with Session(db.make_engine(settings.db_url)) as s:
        row = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).one()
        cand = s.exec(select(db.Candidate).join(db.Shot, db.Candidate.shot_id == db.Shot.id)
                      .where(db.Shot.run_id == ctx.run_id)).one()
    assert (cand.width, cand.height) == (1200, 2112)
    # the channel's crop is the (nearly) whole master, untightened: native or better
    (crop,) = row.params["crops"]
    assert crop["zoom"] == 1.0 and crop["w"] >= 1080 * camera.MOVE_MARGIN - 2 and crop["h"] == 2112
