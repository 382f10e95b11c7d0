"""The README demo, checked the way a producer's QC would: every deliverable measured with
ffprobe against its spec, the edit read back with OpenTimelineIO, the records in the
database, and a second render giving byte-identical keyframes."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from sqlmodel import Session, select

from studio import db
from studio.brief import load_brief
from studio.specs import Catalog
from studio.store import sha256_file

from .conftest import EXAMPLE_BRIEF, shared_file

# the example's beats with supers (each a title on the edit's graphics track)
SUPERED = {b.id for b in load_brief(EXAMPLE_BRIEF)[0].beats if b.supers is not None}


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-count_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def manifest(demo_run) -> dict:
    _, out = demo_run
    return json.loads((out / "manifest.json").read_text())


def test_manifest_shape(demo_run, manifest) -> None:
    import jsonschema

    from studio.inspect import manifest_json_schema

    jsonschema.validate(manifest, manifest_json_schema())
    brief, _ = load_brief(EXAMPLE_BRIEF)
    assert [b["id"] for b in manifest["beats"]] == [b.id for b in brief.beats]
    for beat in manifest["beats"]:
        assert len(beat["candidates"]) == brief.candidates
        assert len({c["seed"] for c in beat["candidates"]}) == brief.candidates
        assert beat["selected"] in {c["id"] for c in beat["candidates"]}
        best = max(beat["candidates"], key=lambda c: (c["score"], -c["index"]))
        assert beat["selected"] == best["id"]
        assert beat["selection_reason"]
    assert sorted(d["spec"] for d in manifest["deliverables"]) == sorted(brief.channels)


def test_every_deliverable_matches_its_spec(demo_run, manifest) -> None:
    _, out = demo_run
    catalog = Catalog()
    brief, _ = load_brief(EXAMPLE_BRIEF)
    for d in manifest["deliverables"]:
        spec = catalog.spec(d["spec"])
        path = out / d["path"]
        assert path.is_file()
        assert sha256_file(path) == d["sha256"]
        assert path.stat().st_size == d["size"]
        if spec.max_file_size:
            assert d["size"] <= spec.max_file_size
        info = ffprobe(path)
        v = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (v["width"], v["height"]) == (spec.width, spec.height), d["spec"]
        assert (d["width"], d["height"]) == (spec.width, spec.height)
        if spec.kind == "still":
            assert v["codec_name"] == {"jpeg": "mjpeg", "png": "png"}[spec.codec]
            continue
        assert v["codec_name"] == "h264"
        assert v["profile"].lower() == "high"
        assert v["pix_fmt"] == "yuv420p"
        assert Fraction(v["r_frame_rate"]) == spec.rate
        assert v.get("color_primaries") == "bt709" and v.get("color_transfer") == "bt709"
        assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "N/A")
        frame = 1 / float(spec.rate)
        duration = float(info["format"]["duration"])
        assert abs(duration - brief.total_duration) <= frame + 1e-6, (d["spec"], duration)
        assert abs(int(v["nb_read_frames"]) - round(brief.total_duration * spec.rate)) <= 1


def test_timeline_reads_back_one_clip_per_beat(demo_run, manifest) -> None:
    _, out = demo_run
    edit = next(t for t in manifest["timelines"] if t["kind"] == "edit")
    tl = otio.adapters.read_from_file(str(out / edit["path"]))
    clips = list(tl.video_tracks()[0].find_clips())
    brief, _ = load_brief(EXAMPLE_BRIEF)
    assert [c.name for c in clips] == [b.id for b in brief.beats]
    # Sound rides on its own tracks: a voice line per beat, one music bed, one effects stem.
    sound = {t.name: [c.name for c in t.find_clips()] for t in tl.audio_tracks()}
    assert sound == {"voice": [f"{b.id} voice" for b in brief.beats], "music": ["music bed"],
                     "effects": ["effects"]}
    rate = 30.0
    for clip, beat, mb in zip(clips, brief.beats, manifest["beats"], strict=True):
        assert clip.source_range.duration.to_seconds() == pytest.approx(beat.duration)
        assert clip.source_range.start_time.value == brief.handles  # handles before the cut
        assert clip.media_reference.available_range.duration.value == round(beat.duration * rate) + 2 * brief.handles
        meta = clip.metadata["studio"]
        assert meta["candidate_id"] == mb["selected"]
        assert meta["keyframe_sha256"] == mb["selected_keyframe_sha256"]
        assert [m.name for m in clip.markers] == [beat.id]
        assert Path(clip.media_reference.target_url.removeprefix("file://")).is_file()
    stills = next(t for t in manifest["timelines"] if t["kind"] == "stills")
    st = otio.adapters.read_from_file(str(out / stills["path"]))
    (still,) = st.find_clips()
    assert still.name == brief.hero().id and still.source_range.duration.value == 1


def test_database_traces_every_deliverable(demo_run, settings, manifest) -> None:
    ctx, _ = demo_run
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        run = s.get(db.Run, ctx.run_id)
        assert run.status == "succeeded"
        shots = s.exec(select(db.Shot).where(db.Shot.run_id == run.id)).all()
        assert len(shots) == len(manifest["beats"])
        for shot, mb in zip(sorted(shots, key=lambda x: x.position), manifest["beats"], strict=True):
            cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id == shot.id)).all()
            assert {c.id for c in cands} == {c["id"] for c in mb["candidates"]}
            for c in cands:
                assert c.backend == "procedural" and c.weights_sha256 is None
                assert c.prompt_hash == shot.prompt_hash and len(c.recipe_hash) == 64
                # the brief has 16:9 and 9:16 channels: a square, 1920 plus the camera move's 10%
                assert (c.width, c.height) == ctx.master_size == (2112, 2112)
                assert s.get(db.PromptRecordRow, c.prompt_hash) is not None
                assert s.exec(select(db.Score).where(db.Score.candidate_id == c.id)).one().reason
            ptr = db.current_pointer(s, "selected", f"shot:{shot.id}")
            assert ptr.target_id == mb["selected"]
            render = s.exec(select(db.Render).where(db.Render.shot_id == shot.id)).one()
            assert render.candidate_id == mb["selected"] and render.media_sha256 == mb["clip_sha256"]
        dl = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run.id)).all()
        assert {d.sha256 for d in dl} == {d["sha256"] for d in manifest["deliverables"]}
    engine.dispose()


def test_rerender_gives_identical_keyframes(demo_run, manifest, settings, ray_session, tmp_path: Path) -> None:
    """In a fresh home (an empty store and database, so nothing is reused from the action
    cache) the same brief generates every keyframe again, byte for byte."""
    from studio.pipeline import render
    from studio.settings import Settings

    out = tmp_path / "again"
    fresh = Settings(home=tmp_path / "fresh-home", ray_num_cpus=settings.ray_num_cpus)
    ctx = render(EXAMPLE_BRIEF, out, settings=fresh)
    again = json.loads((out / "manifest.json").read_text())
    first = [[c["keyframe_sha256"] for c in b["candidates"]] for b in manifest["beats"]]
    second = [[c["keyframe_sha256"] for c in b["candidates"]] for b in again["beats"]]
    assert first == second
    assert [b["selected_keyframe_sha256"] for b in manifest["beats"]] == \
        [b["selected_keyframe_sha256"] for b in again["beats"]]
    assert again["run_id"] != manifest["run_id"] and again["version"] == 1
    engine = db.make_engine(fresh.db_url)
    with Session(engine) as s:
        cands = s.exec(select(db.Candidate).join(db.Shot).where(db.Shot.run_id == ctx.run_id)).all()
        assert cands and not any(c.params.get("reused_from") for c in cands)  # all made, none reused
    engine.dispose()


def test_runs_and_show(demo_run, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from studio.cli import main
    from studio.settings import get_settings

    ctx, _ = demo_run
    monkeypatch.setenv("STUDIO_HOME", str(settings.home))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(main, ["runs"])
        assert r.exit_code == 0 and ctx.run_id in r.output and "aurora/spring-launch" in r.output
        r = CliRunner().invoke(main, ["show", ctx.run_id[:12]])
        assert r.exit_code == 0, r.output
        assert "beat b01-sunrise" in r.output and "why: auto: highest score" in r.output
        assert "deliverable youtube-1080p" in r.output
        r = CliRunner().invoke(main, ["show", ctx.run_id, "--json"])
        info = json.loads(r.output)
        assert info["shots"][0]["prompt"]["beat_id"] == "b01-sunrise"
    finally:
        get_settings.cache_clear()


def test_regenerate_recreates_a_candidate_from_its_record(demo_run, settings, manifest, tmp_path: Path) -> None:
    from shots.regenerate import regenerate
    from studio.store import Store

    beat = manifest["beats"][1]
    cand = next(c for c in beat["candidates"] if c["id"] == beat["selected"])
    engine = db.make_engine(settings.db_url)
    res = regenerate(engine, Store(settings.store_root), cand["id"][:14], tmp_path / "again.png")
    assert res["identical"] and res["regenerated_sha256"] == cand["keyframe_sha256"]
    assert sha256_file(tmp_path / "again.png") == cand["keyframe_sha256"]
    # a record that no longer matches what its recipe makes is reported, not hidden
    with Session(engine) as s:
        row = s.get(db.Candidate, cand["id"])
        row.seed += 1
        s.add(row)
        s.commit()
    try:
        assert regenerate(engine, Store(settings.store_root), cand["id"])["identical"] is False
    finally:
        with Session(engine) as s:
            row = s.get(db.Candidate, cand["id"])
            row.seed -= 1
            s.add(row)
            s.commit()
    engine.dispose()


def test_every_run_exports_the_edit_for_editors(demo_run, manifest) -> None:
    _, out = demo_run
    edit = {t["format"]: t for t in manifest["timelines"] if t["kind"] == "edit"}
    assert set(edit) == {"otio_json", "fcp7_xml", "fcpxml", "edl"}  # .otioz only when the brief asks
    for t in edit.values():
        assert sha256_file(out / t["path"]) == t["sha256"]
    fcpxml = out / edit["fcpxml"]["path"]
    tl = otio.adapters.read_from_file(str(fcpxml))
    # the picture on the first video track; the supers and end card as titles on the graphics track
    assert [c.name for c in tl.video_tracks()[0].find_clips()] == [b["id"] for b in manifest["beats"]]
    graphics = [t for t in tl.video_tracks()[1:] if t.name == "graphics"]
    assert len(graphics) == 1 and [c.name for c in graphics[0].find_clips()] == [
        f"super {b['id']}" for b in manifest["beats"] if b["id"] in SUPERED] + ["end card"]
    assert "01:00:00:00" in (out / edit["edl"]["path"]).read_text()
    version = fcpxml.read_text().split('<fcpxml version="', 1)[1].split('"', 1)[0]
    dtd = shared_file("conformance", "fcpxml-dtd", f"FCPXMLv{version.replace('.', '_')}.dtd")
    r = subprocess.run(["xmllint", "--noout", "--dtdvalid", str(dtd), str(fcpxml)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_contact_sheet_shows_every_candidate(demo_run, manifest) -> None:
    from PIL import Image

    from shots.contact import HEADER, LABEL, PAD, SELECTED, TILE

    _, out = demo_run
    sheet = manifest["review"]["contact_sheet"]
    path = out / sheet["path"]
    assert sha256_file(path) == sheet["sha256"]
    im = Image.open(path).convert("RGB")
    beats, cols = len(manifest["beats"]), len(manifest["beats"][0]["candidates"])
    assert im.size == (PAD + cols * (TILE + PAD), PAD + beats * (HEADER + TILE + LABEL + PAD))
    px = im.load()
    for r, beat in enumerate(manifest["beats"]):  # the frame sits around the selected tile only
        sel = next(c["index"] for c in beat["candidates"] if c["id"] == beat["selected"])
        y = PAD + r * (HEADER + TILE + LABEL + PAD) + HEADER - 2
        framed = [px[PAD + c * (TILE + PAD) + TILE // 2, y] == SELECTED for c in range(cols)]
        assert framed == [c == sel for c in range(cols)]


def test_safe_area_preview_per_channel(demo_run, manifest) -> None:
    from PIL import Image

    from shots.contact import SELECTED
    from studio.specs import Catalog

    _, out = demo_run
    for name in load_brief(EXAMPLE_BRIEF)[0].channels:
        spec = Catalog().spec(name)
        entry = manifest["review"][f"safe_area:{name}"]
        im = Image.open(out / entry["path"]).convert("RGB")
        assert abs(im.width / im.height - spec.width / spec.height) < 0.02  # the channel's own frame
        x0, y0, x1, y1 = spec.safe_area.rect(im.width, im.height)
        assert im.getpixel((x0 + (x1 - x0) // 2, y0)) == SELECTED  # the safe edge is drawn


# -- the copy on the delivered files (issue 13) ------------------------------------------
#
# Measured from the delivered files only: frames decoded with ffmpeg, words read by
# Tesseract, the logo found by cross-correlation (tests/ocr.py). The deliverable's record
# (its placements) is used only to choose where to look and at what size the logo is
# drawn. That nothing leaves the safe area is checked against the same deliverables
# rendered without copy (``plain_run``), frame for frame.


@pytest.fixture(scope="session")
def plain_run(demo_run, settings, tmp_path_factory: pytest.TempPathFactory):
    """The example brief without its copy, supers and end card, rendered in the demo's
    home: everything before the conform is reused (same keyframes, clips, mix and
    captions), so only the deliverables are made again, without graphics."""
    import yaml

    from studio.pipeline import render

    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d.pop("copy")
    d.pop("end_card")
    for b in d["beats"]:
        b.pop("supers", None)
    root = tmp_path_factory.mktemp("plain")
    (root / "brief.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    ctx = render(root / "brief.yaml", root / "out", settings=settings)
    return ctx, root / "out"


def _delivered(settings, run_id: str) -> dict[str, db.Deliverable]:
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == run_id)).all()
    engine.dispose()
    return {r.spec: r for r in rows}


def _frame_at(video: Path, t: float, size: tuple[int, int]):
    """The decoded frame shown at ``t`` seconds (RGB): ffmpeg seeks, then decodes on to it."""
    import numpy as np
    from PIL import Image

    res = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.4f}", "-i", str(video), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    w, h = size
    return Image.fromarray(np.frombuffer(res.stdout[: w * h * 3], np.uint8).reshape(h, w, 3))


def _reads(picture, words: str, look: list[tuple[int, int, int, int]], colours: tuple[str, ...]) -> str:
    """What Tesseract reads of ``picture``: the whole of it, then (only while ``words`` are
    not all found, in order) each text colour alone, then the parts ``look`` names (where
    the placement put the text: page segmentation drowns small text in a busy picture)."""
    from tests.ocr import colour_key, ocr, words_in_order

    read = ocr(picture)
    for c in colours:
        if words_in_order(words, read):
            break
        read += "\n" + ocr(colour_key(picture, c, 90))
    for x0, y0, x1, y1 in look:
        if words_in_order(words, read):
            break
        read += "\n" + ocr(picture.crop((max(0, x0 - 8), max(0, y0 - 8), x1 + 8, y1 + 8)))
    return read


def _logo(box: list[int]):
    from PIL import Image

    catalog = Catalog()
    style = catalog.style("golden-hour")
    assert style.brand is not None
    path = style.brand.logo_file(catalog.style_paths["golden-hour"])
    with Image.open(path) as im:
        return im.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)


def _diff(a, b):
    """Per pixel, the largest difference of the two pictures' channels."""
    import numpy as np

    return np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(axis=2)


def _safe_mask(spec, shape: tuple[int, int]):
    import numpy as np

    x0, y0, x1, y1 = spec.safe_rect()
    inside = np.zeros(shape, bool)
    inside[y0:y1, x0:x1] = True
    return inside


def test_banners_read_back_headline_cta_and_logo(demo_run, plain_run, settings) -> None:
    """Every banner: OCR reads the headline and the call to action, the logo is found
    where it was placed, and against the same still without copy nothing changed outside
    the safe area."""
    import numpy as np
    from PIL import Image

    from tests.ocr import find_logo, words_in_order

    brief, _ = load_brief(EXAMPLE_BRIEF)
    assert brief.copy_ is not None
    copy = brief.copy_.for_locale(brief.locale)
    rows, plain = _delivered(settings, demo_run[0].run_id), _delivered(settings, plain_run[0].run_id)
    catalog = Catalog()
    stills = [c for c in brief.channels if catalog.spec(c).kind == "still"]
    assert stills
    for name in stills:
        spec = catalog.spec(name)
        with Image.open(rows[name].path) as im:
            picture = im.convert("RGB")
        with Image.open(plain[name].path) as im:
            bare = im.convert("RGB")
        placement = rows[name].params["copy"]["placement"]
        for role in ("headline", "cta"):
            words = getattr(copy, role)
            placed = next(t for t in placement["texts"] if t["role"] == role)
            read = _reads(picture, words, [(placed.get("button") or placed)["box"]], (placed["colour"],))
            assert words_in_order(words, read), (name, role, read)
        box = placement["logo"]["box"]
        x, y, score = find_logo(picture, _logo(box))
        assert score > 0.9 and abs(x - box[0]) <= 2 and abs(y - box[1]) <= 2, (name, x, y, score, box)
        # Luma, which JPEG keeps at full resolution: a few levels outside are the encoder's.
        diff = np.abs(np.asarray(picture.convert("L"), np.int16) - np.asarray(bare.convert("L"), np.int16))
        inside = _safe_mask(spec, diff.shape)
        assert (diff[inside] > 60).sum() > 0.01 * inside.sum(), name  # the copy is there
        assert diff[~inside].max() <= 20, (name, int(diff[~inside].max()))
        print(f"{name}: logo NCC {score:.3f} at ({x}, {y}); outside the safe area "
              f"{int(diff[~inside].max())} levels at most")


def test_videos_read_back_supers_and_end_card(demo_run, plain_run, settings) -> None:
    """Every video deliverable, at a time inside each super's beat: OCR reads the super;
    in the last second: the end card's headline and call to action, and the logo. Against
    the same frame without graphics, nothing differs outside the safe area by more than
    the encoder's noise (measured on a frame that shows no graphics); the end card fills
    the frame with the brand's colour by design, so outside the safe area it is that
    colour, within the same noise."""
    import numpy as np

    from studio.layout import hex_rgb
    from tests.ocr import find_logo, words_in_order

    brief, _ = load_brief(EXAMPLE_BRIEF)
    assert brief.end_card is not None and brief.copy_ is not None
    catalog = Catalog()
    rows, plain = _delivered(settings, demo_run[0].run_id), _delivered(settings, plain_run[0].run_id)
    videos = [c for c in brief.channels if catalog.spec(c).kind == "video"]
    assert videos
    starts = np.cumsum([0.0] + [b.duration for b in brief.beats])
    total = float(starts[-1])
    card_copy = (brief.end_card.copy_ or brief.copy_).for_locale(brief.locale)
    primary = np.array(hex_rgb(catalog.style("golden-hour").brand.colours.primary), np.int16)
    # 0.4 s before the end card: after the last super, before the card fades in.
    quiet = total - brief.end_card.duration - 0.4
    for name in videos:
        spec = catalog.spec(name)
        video, bare = Path(rows[name].path), Path(plain[name].path)
        overlays = rows[name].params["graphics"]["overlays"]
        size = (spec.width, spec.height)
        inside = _safe_mask(spec, (spec.height, spec.width))
        # Burned-in captions (Reels) speak the narration, whose words the copy shares
        # ("Still ice cold when the city lights come on."): the words are read above the
        # highest caption (the captions' record says where to look), where supers and the
        # end card's copy are set.
        caps = rows[name].params.get("captions", {}).get("boxes") or []
        top = min((b[1] for b in caps), default=spec.height)

        noise = _diff(_frame_at(video, quiet, size), _frame_at(bare, quiet, size))
        assert noise[inside].max() < 60, (name, int(noise[inside].max()))  # nothing shown there
        floor = max(float(noise.max()), 12.0)
        worst = 0.0
        for i, beat in enumerate(brief.beats):
            if beat.supers is None:
                continue
            sup = beat.supers.for_locale(brief.locale)
            t = float(starts[i]) + beat.duration / 2
            frame = _frame_at(video, t, size)
            view = frame.crop((0, 0, spec.width, top))
            (g,) = [g for g in overlays if g["kind"] == "super" and g["beat"] == beat.id]
            boxes = [t_["box"] for t_ in g["placement"]["texts"]]
            for role in ("headline", "subline", "legal"):
                words = getattr(sup, role)
                if words:
                    read = _reads(view, words, boxes, ("#ffffff",))
                    assert words_in_order(words, read), (name, beat.id, role, read)
            d = _diff(frame, _frame_at(bare, t, size))
            assert d[inside].max() > 100, (name, beat.id)  # the super is there
            worst = max(worst, float(d[~inside].max()))
        assert worst < floor + 30, (name, worst, floor)

        t = total - 0.5  # in the last second
        frame = _frame_at(video, t, size)
        (card,) = [g for g in overlays if g["kind"] == "end_card"]
        placement = card["placement"]
        for role in ("headline", "cta"):
            words = getattr(card_copy, role)
            placed = next(t_ for t_ in placement["texts"] if t_["role"] == role)
            read = _reads(frame.crop((0, 0, spec.width, top)), words, [(placed.get("button") or placed)["box"]],
                          (placed["colour"],))
            assert words_in_order(words, read), (name, "end card", role, read)
        box = placement["logo"]["box"]
        x, y, score = find_logo(frame, _logo(box))
        assert score > 0.9 and abs(x - box[0]) <= 2 and abs(y - box[1]) <= 2, (name, x, y, score, box)
        px = np.asarray(frame, np.int16)
        off = np.abs(px - primary).max(axis=2)[~inside]
        assert off.max() < floor + 30, (name, int(off.max()))
        print(f"{name}: noise {int(noise.max())}, outside the safe area with supers {worst:.0f} levels at most, "
              f"end card off its colour by {int(off.max())}; logo NCC {score:.3f} at ({x}, {y})")
