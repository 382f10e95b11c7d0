"""`studio select`: a person's pick moves the "selected" pointer, and the next render of
the brief selects the candidate with the picked recipe (issue 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from studio.cli import main
from studio.context import RunContext


def _brief(path: Path, b02_subject: str = "a glowing orb over a lake", campaign: str = "by-hand") -> Path:
    """Two one-second beats, three candidates each, one channel, no sound to speak of:
    about the cheapest render that still has a choice to make."""
    d = {
        "project": "pick", "campaign": campaign, "purpose": "a person picks the keyframe",
        "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 3, "captions": False,
        "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
        "beats": [{"id": "b01", "duration": 1, "subject": "a hiker on a ridge at sunrise"},
                  {"id": "b02", "duration": 1, "subject": b02_subject}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d))
    return path


class _Warnings:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def stage_start(self, *a: Any, **k: Any) -> None: ...
    def advance(self, *a: Any, **k: Any) -> None: ...
    def stage_done(self, *a: Any, **k: Any) -> None: ...
    def event(self, *a: Any, **k: Any) -> None: ...
    def close(self) -> None: ...

    def warn(self, message: str, **fields: Any) -> None:
        if message.startswith("beat "):  # the select stage's (not the silent track's)
            self.warnings.append(message)


@pytest.fixture
def cli(settings) -> Iterator[Any]:
    """`studio ...` in process, against the test settings' home (get_settings is cached:
    cleared on the way in and out)."""
    from studio.settings import get_settings

    def invoke(*args: str, user: str = "rita") -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), env={"STUDIO_HOME": str(settings.home),
                                                              "STUDIO_USER": user})
        finally:
            get_settings.cache_clear()

    yield invoke


def _beat(ctx: RunContext, beat: str) -> tuple[str, list[Any]]:
    shot = next(s for s in ctx.shots if s.beat_id == beat)
    return shot.shot_id, ctx.candidates[shot.shot_id]


def _manifest_beat(out: Path, beat: str) -> dict[str, Any]:
    m = json.loads((out / "manifest.json").read_text())
    return next(b for b in m["beats"] if b["id"] == beat)


def test_a_pick_carries_into_the_next_render(tmp_path: Path, settings, ray_session, cli) -> None:
    from studio.pipeline import render

    brief = _brief(tmp_path / "brief.yaml")
    first = render(brief, tmp_path / "out1", settings=settings)
    picks = {}
    for beat in ("b01", "b02"):
        shot_id, cands = _beat(first, beat)
        top = first.selected[shot_id]
        picks[beat] = next(c for c in cands if c.image.sha256 != top.image.sha256)  # not the top score
        r = cli("select", first.run_id, beat, picks[beat].candidate_id, "--note", f"warmer light on {beat}")
        assert r.exit_code == 0, r.output
        assert f"beat {beat}: {picks[beat].candidate_id}" in r.output and "picked by rita at" in r.output

    rep = _Warnings()
    second = render(brief, tmp_path / "out2", settings=settings, reporter=rep)
    assert not rep.warnings, rep.warnings
    for beat in ("b01", "b02"):
        shot_id, cands = _beat(second, beat)
        sel = second.selected[shot_id]
        # regenerated: a new row with a new id, the same recipe and the same keyframe
        assert sel.candidate_id != picks[beat].candidate_id
        assert sel.record["recipe_hash"] == picks[beat].record["recipe_hash"]
        assert sel.image.sha256 == picks[beat].image.sha256
        m = _manifest_beat(tmp_path / "out2", beat)
        assert m["selected"] == sel.candidate_id
        assert m["selection_reason"].startswith("picked by rita at ")
        assert m["selection_reason"].endswith(f": warmer light on {beat}")
    # the records say so too (`studio show`)
    shown = cli("show", second.run_id)
    assert shown.exit_code == 0 and "why: picked by rita at" in shown.output, shown.output
    # the picked keyframes are other images: the deliverable is another film
    (d1,), (d2,) = first.deliverables, second.deliverables
    assert d1["sha256"] != d2["sha256"]

    # b02 changes: its picked recipe no longer exists. b01's pick (made on the first run)
    # still holds; b02 falls back to the top score, with a warning naming the beat.
    changed = _brief(tmp_path / "brief.yaml", b02_subject="a red kite over a beach")
    rep = _Warnings()
    third = render(changed, tmp_path / "out3", settings=settings, reporter=rep)
    shot_id, _ = _beat(third, "b01")
    assert third.selected[shot_id].record["recipe_hash"] == picks["b01"].record["recipe_hash"]
    shot_id, cands = _beat(third, "b02")
    assert third.selected[shot_id].candidate_id == max(cands, key=lambda c: c.score).candidate_id
    assert _manifest_beat(tmp_path / "out3", "b02")["selection_reason"].startswith("auto: highest score")
    (warning,) = rep.warnings
    assert warning.startswith("beat b02: picked by rita at ") and "selected by score instead" in warning


def test_bad_picks_are_one_line_errors(tmp_path: Path, settings, ray_session, cli) -> None:
    from studio.pipeline import render

    brief = _brief(tmp_path / "brief.yaml", campaign="bad-picks")
    ctx = render(brief, tmp_path / "out", settings=settings, candidates=2)
    _, b01 = _beat(ctx, "b01")
    _, b02 = _beat(ctx, "b02")

    def refused(*args: str) -> str:
        r = cli("select", *args)
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("studio: error: "), r.stderr
        assert "Traceback" not in r.output
        return lines[0]

    line = refused("run_doesnotexist", "b01", b01[0].candidate_id)
    assert "RUN: no run 'run_doesnotexist'" in line and "studio runs" in line
    line = refused(ctx.run_id, "b09", b01[0].candidate_id)
    assert f"BEAT: run {ctx.run_id} has no beat 'b09'" in line and "b01, b02" in line
    line = refused(ctx.run_id, "b01", b02[1].candidate_id)
    assert f"CANDIDATE: '{b02[1].candidate_id}' is not a candidate of beat b01" in line
    assert "(it is a candidate of beat b02)" in line
    for c in b01:  # the beat's candidates, with their scores, to choose from
        assert f"{c.candidate_id} (score {c.score:.3f})" in line

    # nothing moved: the run's pointers are the select stage's
    shown = cli("show", ctx.run_id)
    assert "picked by" not in shown.output
