"""Stills from their own beats: ``stills:`` maps still channels to beats, a stills-only
brief draws candidates for just the beats its stills use, each banner is cut from its
beat's selected keyframe, and the stills timeline round-trips frame by frame."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import opentimelineio as otio
import pytest
import yaml
from PIL import Image
from sqlmodel import Session, select

from studio import db
from studio.brief import Brief, check_against, load_brief
from studio.errors import StudioError
from studio.progress import QuietReporter
from studio.prompts import planned_beats
from studio.specs import Catalog

from .conftest import EXAMPLE_BRIEF

BANNERS = {"banner-300x250": "b01-sunrise", "banner-728x90": "b03-city"}


def _stills_brief() -> dict[str, Any]:
    """The example's beats (hero b04-product), only the two banners, each from another beat."""
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d.update(channels=list(BANNERS), stills=dict(BANNERS), candidates=2, campaign="stills-only")
    # The framing alone: these stills are compared with conform_still's picture without
    # copy (the copy on stills is tests/test_copy_stills.py's).
    d.pop("copy", None)
    d.pop("end_card", None)  # the end card takes the brief's copy; these are stills only
    for b in d["beats"]:
        b.pop("supers", None)
    return d


def _write(tmp_path: Path, d: dict[str, Any]) -> Path:
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d), encoding="utf-8")
    return p


# ---------------------------------------------------------------------------- the brief


def test_a_stills_value_must_be_a_beat_id(tmp_path: Path) -> None:
    d = _stills_brief()
    d["stills"]["banner-300x250"] = "b9"
    with pytest.raises(StudioError) as e:
        load_brief(_write(tmp_path, d))
    assert e.value.line().startswith(
        f"{tmp_path / 'brief.yaml'}: stills.banner-300x250: 'b9': is not a beat id (use one of: "
        "b01-sunrise, b02-trail, b03-city, b04-product)")


@pytest.mark.parametrize(("channel", "expected"), [
    ("feed-1x1", "stills.feed-1x1: 'feed-1x1' is not one of the brief's channels (banner-300x250, "
                 "banner-728x90, reels-9x16) — add it to channels or remove it from stills"),
    ("reels-9x16", "stills.reels-9x16: 'reels-9x16' is a video channel; stills maps still channels to "
                   "beats — remove it from stills (a video channel shows every beat)"),
])
def test_a_stills_key_must_be_a_still_channel_of_the_brief(tmp_path: Path, channel: str, expected: str) -> None:
    d = _stills_brief()
    d["channels"].append("reels-9x16")
    d["stills"][channel] = "b02-trail"
    path = _write(tmp_path, d)
    brief, base = load_brief(path)
    with pytest.raises(StudioError) as e:
        check_against(brief, Catalog(), base, source=str(path))
    assert f"{path}: {expected}" in [x.line() for x in e.value.errors]


def test_unlisted_still_channels_use_the_hero_beat_else_the_first() -> None:
    d = _stills_brief()
    d["stills"] = {"banner-728x90": "b02-trail"}
    b = Brief.model_validate(d)
    assert b.still_beat("banner-728x90").id == "b02-trail"
    assert b.still_beat("banner-300x250").id == "b04-product"  # hero_beat
    assert Brief.model_validate({**d, "hero_beat": None}).still_beat("banner-300x250").id == "b01-sunrise"


def test_only_the_delivered_beats_are_planned() -> None:
    catalog = Catalog()
    b = Brief.model_validate(_stills_brief())
    banners = [catalog.spec(n) for n in BANNERS]
    assert [x.id for x in planned_beats(b, banners)] == ["b01-sunrise", "b03-city"]
    # unmapped, both come from the hero beat: one beat to generate
    plain = Brief.model_validate({**_stills_brief(), "stills": {}})
    assert [x.id for x in planned_beats(plain, banners)] == ["b04-product"]
    # a video channel shows every beat
    assert len(planned_beats(b, [*banners, catalog.spec("youtube-1080p")])) == 4


# ---------------------------------------------------------------------------- a render


class Totals(QuietReporter):
    def __init__(self) -> None:
        self.totals: dict[str, int | None] = {}

    def stage_start(self, stage: str, total: int | None = None) -> None:
        self.totals[stage] = total


@pytest.fixture(scope="module")
def stills_run(settings, ray_session, tmp_path_factory: pytest.TempPathFactory):
    from studio.pipeline import render

    tmp = tmp_path_factory.mktemp("stills")
    reporter = Totals()
    out = tmp / "out"
    ctx = render(_write(tmp, _stills_brief()), out, settings=settings, reporter=reporter)
    return ctx, out, json.loads((out / "manifest.json").read_text()), reporter.totals


def test_stills_only_brief_makes_candidates_for_its_stills_beats_only(stills_run, settings) -> None:
    ctx, out, m, totals = stills_run
    assert totals == {"prompts": 2, "candidates": 4, "select": 2, "review": 1, "timeline": 1, "conform": 2,
                      "release": 2, "manifest": 1}  # no voice, music, clips, mix or captions
    assert [b["id"] for b in m["beats"]] == ["b01-sunrise", "b03-city"]
    assert all(len(b["candidates"]) == 2 and b["clip_sha256"] is None for b in m["beats"])
    with Session(db.make_engine(settings.db_url)) as s:
        shots = s.exec(select(db.Shot).where(db.Shot.run_id == ctx.run_id)).all()
        assert sorted((x.beat_id, x.kind, x.position) for x in shots) == [
            ("b01-sunrise", "still", 0), ("b03-city", "still", 2)]
        cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id.in_([x.id for x in shots]))).all()
        assert len(cands) == 4
        assert not s.exec(select(db.Render).where(db.Render.run_id == ctx.run_id)).all()
    # the contact sheet has a row per generated beat; previews show each banner's own beat
    from shots.contact import HEADER, LABEL, PAD, TILE

    w, h = ctx.master_size
    with Image.open(out / m["review"]["contact_sheet"]["path"]) as sheet:
        assert sheet.height == PAD + 2 * (HEADER + round(TILE * h / w) + LABEL + PAD)
    assert {k for k in m["review"]} == {"contact_sheet", "safe_area:banner-300x250", "safe_area:banner-728x90"}


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def _conform_from(ctx, settings, beat_id: str, spec_name: str, out: Path) -> Path:
    """The banner cut again from ``beat_id``'s selected keyframe with that shot's own
    focus and subject size, read from the database (not from the stills timeline)."""
    from studio.store import Store
    from timelines.conform import conform_still

    with Session(db.make_engine(settings.db_url)) as s:
        shot = s.exec(select(db.Shot).where(db.Shot.run_id == ctx.run_id, db.Shot.beat_id == beat_id)).one()
        ptr = db.current_pointer(s, "selected", f"shot:{shot.id}")
        cand = s.get(db.Candidate, ptr.target_id)
        prompt = s.get(db.PromptRecordRow, shot.prompt_hash)
    conform_still(Store(settings.store_root).find(cand.media_sha256), (shot.focus_x, shot.focus_y),
                  ctx.catalog.spec(spec_name), out, sharpen=ctx.style.finishing.sharpen,
                  subject_scale=prompt.document["composition"]["subject_scale"])
    return out


def test_each_banner_is_made_from_its_own_beat(stills_run, settings, tmp_path: Path) -> None:
    ctx, out, m, _ = stills_run
    selected = {b["id"]: b["selected_keyframe_sha256"] for b in m["beats"]}
    stills = next(t for t in m["timelines"] if t["kind"] == "stills" and t["format"] == "otio_json")
    clips = list(otio.adapters.read_from_file(str(out / stills["path"])).find_clips())
    assert [(c.name, list(c.metadata["studio"]["channels"])) for c in clips] == [
        ("b01-sunrise", ["banner-300x250"]), ("b03-city", ["banner-728x90"])]
    for dlv in m["deliverables"]:
        beat = BANNERS[dlv["spec"]]
        assert dlv["frame"]["beat_id"] == beat and dlv["frame"]["keyframe_sha256"] == selected[beat]
        got = _decode(out / dlv["path"])
        own = _decode(_conform_from(ctx, settings, beat, dlv["spec"], tmp_path / f"own-{dlv['spec']}.jpg"))
        other_beat = next(b for b in selected if b != beat)
        other = _decode(_conform_from(ctx, settings, other_beat, dlv["spec"], tmp_path / f"other-{dlv['spec']}.jpg"))
        assert np.abs(got - own).mean() < 0.5, dlv["spec"]  # the same picture
        assert np.abs(got - other).mean() > 10 * max(np.abs(got - own).mean(), 0.5), dlv["spec"]


def test_a_stills_frame_swap_remakes_only_its_channels(stills_run, settings, tmp_path: Path) -> None:
    """The editor points the leaderboard's frame at b01's keyframe in a format that drops
    Studio's metadata: clips map back by place, the leaderboard is made again from b01
    with b01's framing, the other banner is untouched."""
    from studio.conform import conform_edit
    from studio.store import Store

    ctx, out, m, _ = stills_run
    stills = next(t for t in m["timelines"] if t["kind"] == "stills" and t["format"] == "otio_json")
    tl = otio.adapters.read_from_file(str(out / stills["path"]))
    b01 = next(b for b in m["beats"] if b["id"] == "b01-sunrise")
    leader = tl.video_tracks()[0][1]
    for clip in tl.video_tracks()[0]:
        clip.metadata.pop("studio")
    leader.media_reference = otio.schema.ExternalReference(
        target_url=Store(settings.store_root).find(b01["selected_keyframe_sha256"]).resolve().as_uri(),
        available_range=leader.media_reference.available_range)
    path = tmp_path / "stills.otio"
    otio.adapters.write_to_file(tl, str(path))
    new_ctx, changes = conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings, reporter=QuietReporter())
    assert [(f["channels"], f["beat_before"], f["beat_after"]) for f in changes["frames"]] == [
        (["banner-300x250"], "b01-sunrise", "b01-sunrise"), (["banner-728x90"], "b03-city", "b01-sunrise")]
    new = {d["spec"]: d for d in new_ctx.deliverables}
    old = {d["spec"]: d for d in m["deliverables"]}
    assert new["banner-300x250"]["sha256"] == old["banner-300x250"]["sha256"]
    assert new["banner-728x90"]["sha256"] != old["banner-728x90"]["sha256"]
    assert new["banner-728x90"]["frame"]["beat_id"] == "b01-sunrise"
    redo = _decode(_conform_from(ctx, settings, "b01-sunrise", "banner-728x90", tmp_path / "redo.jpg"))
    assert np.abs(_decode(tmp_path / "out" / new["banner-728x90"]["path"]) - redo).mean() < 0.5


def test_stills_clips_keep_their_channels_when_reordered(stills_run, settings, tmp_path: Path) -> None:
    """With Studio's metadata kept, a clip is matched by its channels, not its place."""
    from studio.conform import conform_edit

    ctx, out, m, _ = stills_run
    stills = next(t for t in m["timelines"] if t["kind"] == "stills" and t["format"] == "otio_json")
    tl = otio.adapters.read_from_file(str(out / stills["path"]))
    track = tl.video_tracks()[0]
    a, b = copy.deepcopy(track[0]), copy.deepcopy(track[1])
    for _ in range(len(track)):
        track.pop()
    track.extend([b, a])
    path = tmp_path / "swapped.otio"
    otio.adapters.write_to_file(tl, str(path))
    new_ctx, changes = conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings, reporter=QuietReporter())
    assert all(f["before"] == f["after"] for f in changes["frames"])
    assert {d["spec"]: d["sha256"] for d in new_ctx.deliverables} == {d["spec"]: d["sha256"] for d in m["deliverables"]}
