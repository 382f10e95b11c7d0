"""Incremental re-render: change one thing at a time in a brief and check, with the plan
and with the run's records, that only the steps that change touches ran.

One brief (three 1.2 s beats, voice, procedural music and effects, two video channels)
is rendered, then changed a step at a time: nothing (up to date: no Ray, no ffmpeg), a
channel spec, the music, the style's LUT, one beat's subject, a person's pick, and a
voice that changed (gated until --regenerate). Each step is planned first (`studio plan`'s
function), then rendered, and the run's per-stage reused/made counts are compared with
what the plan said would run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from studio import db
from studio.progress import QuietReporter

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "briefs"
SHIPPED = Path(__file__).resolve().parent.parent / "studio" / "data"


class _Counts(QuietReporter):
    def __init__(self) -> None:
        super().__init__()
        self.done: dict[str, dict[str, int]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def stage_done(self, stage: str, **counts: Any) -> None:
        self.done[stage] = dict(counts)

    def event(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))


def _brief(path: Path, **changes: Any) -> Path:
    d = yaml.safe_load((EXAMPLE / "launch.yaml").read_text())
    words = {"b01-sunrise": "Sunrise.", "b02-trail": "Trail.", "b03-city": "City."}
    # The example's end card stays; its supers go (1.2 s beats are too short to read them).
    d["beats"] = [{k: v for k, v in dict(b, duration=1.2, narration=words[b["id"]]).items() if k != "supers"}
                  for b in d["beats"] if b["id"] in words]
    d.update(candidates=2, channels=["youtube-1080p", "feed-1x1"], hero_beat="b03-city", handles=0)
    for k, v in changes.items():
        if k == "subject":
            d["beats"][1]["subject"] = v
        else:
            d[k] = v
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def _status(plan: Any) -> dict[tuple[str, str], str]:
    return {(s.stage, s.item): s.status for s in plan.steps}


def _running(plan: Any) -> set[tuple[str, str]]:
    return {(s.stage, s.item) for s in plan.running()}


def _why(plan: Any, stage: str, item: str) -> str:
    return " | ".join(next(s for s in plan.steps if (s.stage, s.item) == (stage, item)).why)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from studio.settings import Settings

    root = tmp_path_factory.mktemp("incremental")
    specs, styles = root / "specs", root / "styles"
    specs.mkdir()
    styles.mkdir()
    settings = Settings(home=root / "home", ray_num_cpus=2, specs_dir=specs, styles_dir=styles)
    return {"root": root, "settings": settings, "specs": specs, "styles": styles}


def test_one_change_at_a_time_reruns_only_what_it_touches(setup: dict[str, Any], ray_session,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import studio.ray_runtime
    from studio.pipeline import Gated, plan, render

    root, settings = setup["root"], setup["settings"]
    brief = _brief(root / "brief.yaml")
    out = root / "out"
    first = _Counts()
    ctx = render(brief, out, settings=settings, reporter=first)
    assert first.done["voice"] == {"reused": 0, "made": 1}
    assert first.done["candidates"] == {"reused": 0, "made": 6}
    assert first.done["conform"] == {"reused": 0, "made": 2}

    # 1. Nothing changed: the plan says every step is current and --out holds it; the
    # render does nothing, with no Ray and no ffmpeg to be had.
    p = plan(brief, settings=settings, out_dir=out)
    assert not p.running() and p.up_to_date and p.up_to_date["run_id"] == ctx.run_id
    with monkeypatch.context() as m:
        m.setenv("PATH", str(root / "no-tools-here"))
        m.setattr(studio.ray_runtime, "ensure_ray", lambda *a, **k: pytest.fail("Ray started"))
        again = _Counts()
        result = render(brief, out, settings=settings, reporter=again)
    assert result.up_to_date["run_id"] == ctx.run_id and again.done == {}
    assert [e for e, _ in again.events] == ["up_to_date"]

    # 2. A channel spec changed (feed-1x1's CRF): that channel's deliverable alone.
    spec = yaml.safe_load((SHIPPED / "specs" / "feed-1x1.yaml").read_text())
    spec["crf"] = 23
    (setup["specs"] / "feed-1x1.yaml").write_text(yaml.safe_dump(spec))
    p = plan(brief, settings=settings, out_dir=out)
    assert _running(p) == {("conform", "feed-1x1")} and not p.up_to_date
    assert "spec.crf: 21 -> 23" in _why(p, "conform", "feed-1x1")
    assert _status(p)[("conform", "feed-1x1")] == "stale"
    counts = _Counts()
    render(brief, out, settings=settings, reporter=counts)
    assert counts.done["conform"] == {"reused": 1, "made": 1}
    assert counts.done["mix"] == {"reused": 3, "made": 0}
    # A reused deliverable names this run's caption files, which exist.
    manifest = json.loads((out / "manifest.json").read_text())
    reused = [d for d in manifest["deliverables"] if d["spec"] == "youtube-1080p"]
    assert reused and all((out / d["captions"][k]).is_file() for d in reused for k in ("srt", "vtt"))
    for stage in ("voice", "music", "clips", "candidates"):
        assert counts.done[stage]["made"] == 0, stage

    # 3. New music (another mood): the music, the mix, each master and each deliverable's mux;
    # no picture is encoded again (every segment reused).
    brief = _brief(root / "brief.yaml", music={"source": "procedural", "mood": "calm, melancholy"})
    p = plan(brief, settings=settings)
    assert ("music", "spot") in _running(p) and "music.mood" in _why(p, "music", "spot")
    assert not {s for s in _running(p) if s[0] in ("voice", "candidates", "clips")}
    counts = _Counts()
    ctx = render(brief, out, settings=settings, reporter=counts)
    assert counts.done["music"] == {"reused": 0, "made": 1}
    assert counts.done["mix"] == {"reused": 0, "made": 3}
    assert counts.done["conform"] == {"reused": 0, "made": 2}
    assert counts.done["clips"]["made"] == 0 and counts.done["voice"]["made"] == 0
    with Session(db.make_engine(settings.db_url)) as s:
        rows = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
        segments = [seg for r in rows for seg in r.params["segments"]]
    assert segments and not any(seg["encoded"] for seg in segments)

    # 4. The style's LUT changed: every shot master is graded again; keyframes stay.
    style = yaml.safe_load((SHIPPED / "styles" / "golden-hour.yaml").read_text())
    style["finishing"]["lut"] = str(SHIPPED / "luts" / "neon-night.cube")
    # The pack's logo path is relative to the pack: the copy points at the shipped file (the
    # example's end card shows it).
    style["brand"]["logo"]["path"] = str(SHIPPED / "styles" / style["brand"]["logo"]["path"])
    (setup["styles"] / "golden-hour.yaml").write_text(yaml.safe_dump(style))
    p = plan(brief, settings=settings)
    assert {s for s in _running(p) if s[0] == "clips"} == {("clips", b) for b in ("b01-sunrise", "b02-trail", "b03-city")}
    assert "lut:" in _why(p, "clips", "b01-sunrise")
    assert not {s for s in _running(p) if s[0] in ("candidates", "voice", "music")}
    counts = _Counts()
    render(brief, out, settings=settings, reporter=counts)
    assert counts.done["clips"] == {"reused": 0, "made": 3}
    assert counts.done["candidates"] == {"reused": 6, "made": 0}
    # the sound is not mixed again for a new picture; each deliverable is made again
    assert counts.done["mix"] == {"reused": 3, "made": 0} and counts.done["conform"] == {"reused": 0, "made": 2}

    # 5. One beat's subject: that beat's candidates and clip only.
    brief = _brief(root / "brief.yaml", music={"source": "procedural", "mood": "calm, melancholy"},
                   subject="a hiker crossing a rope bridge")
    p = plan(brief, settings=settings)
    assert {s for s in _running(p) if s[0] in ("candidates", "clips")} == {
        ("candidates", "b02-trail"), ("clips", "b02-trail")}
    assert "rope bridge" in _why(p, "candidates", "b02-trail")
    counts = _Counts()
    ctx = render(brief, out, settings=settings, reporter=counts)
    assert counts.done["candidates"] == {"reused": 4, "made": 2}
    assert counts.done["clips"] == {"reused": 2, "made": 1}
    assert counts.done["voice"] == {"reused": 1, "made": 0} and counts.done["music"] == {"reused": 1, "made": 0}
    assert counts.done["mix"] == {"reused": 3, "made": 0}
    assert not {st for st in _running(p) if st[0] == "mix"}

    # 6. A person's pick: the picked beat's clip, nothing generated.
    with Session(db.make_engine(settings.db_url)) as s:
        shot = s.exec(select(db.Shot).where(db.Shot.run_id == ctx.run_id, db.Shot.beat_id == "b01-sunrise")).one()
        ptr = s.exec(select(db.Pointer).where(db.Pointer.scope == f"shot:{shot.id}")).all()[-1]
        other = s.exec(select(db.Candidate).where(db.Candidate.shot_id == shot.id,
                                                  db.Candidate.id != ptr.target_id)).first()
    from click.testing import CliRunner

    from studio.cli import main

    monkeypatch.setenv("STUDIO_HOME", str(settings.home))
    res = CliRunner().invoke(main, ["select", ctx.run_id, "b01-sunrise", other.id, "--note", "warmer"])
    assert res.exit_code == 0, res.output
    p = plan(brief, settings=settings)
    assert {s for s in _running(p) if s[0] in ("candidates", "clips")} == {("clips", "b01-sunrise")}
    assert "keyframe" in _why(p, "clips", "b01-sunrise")
    counts = _Counts()
    render(brief, out, settings=settings, reporter=counts)
    assert counts.done["clips"] == {"reused": 2, "made": 1}
    assert counts.done["candidates"] == {"reused": 6, "made": 0}

    # 7. The voice changed since the last run (recorded as another voice; its lines are
    # gone from the cache): generative, so the plan gates it and a render refuses it
    # until --regenerate.
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        run = s.exec(select(db.Run).where(db.Run.status == "succeeded").order_by(db.Run.started_at.desc())).first()
        recipes = dict(run.settings["recipes"])
        voice = recipes["voice"]["spot"]
        s.delete(s.get(db.Action, voice["key"]))
        doc = dict(voice["doc"], voice={**voice["doc"]["voice"], "files": {"model": "0" * 64}})
        recipes["voice"] = {"spot": {"key": voice["key"], "doc": doc}}
        run.settings = {**run.settings, "recipes": recipes}
        s.add(run)
        s.commit()
    p = plan(brief, settings=settings)
    assert _status(p)[("voice", "spot")] == "gated"
    assert "voice.files.model" in _why(p, "voice", "spot")
    with pytest.raises(Gated) as e:
        render(brief, root / "out-gated", settings=settings)
    assert "--regenerate" in str(e.value) and "voice spot" in str(e.value)
    assert not (root / "out-gated").exists()
    counts = _Counts()
    render(brief, root / "out-gated", settings=settings, reporter=counts, regenerate=True)
    assert counts.done["voice"] == {"reused": 0, "made": 1}
    shutil.rmtree(root / "out-gated")
