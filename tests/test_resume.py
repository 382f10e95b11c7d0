"""Resume: a render killed with SIGKILL in the middle of its conform, run again with the
same command, reuses every finished step (reported per stage), records nothing twice,
leaves no partial folder or store temp file, records the killed run as interrupted, and
publishes what a render from nothing publishes, hash for hash where the pipeline is
deterministic (keyframes, shot masters, voice, music, effects and the mixed stems).

(`tests/test_cache.py` kills a render in the middle of its candidates.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from sqlmodel import Session, select

from studio import db
from studio.store import Store

from .conftest import ROOT, render_env, start_render

EXAMPLE = ROOT / "examples" / "briefs"


def _brief(path: Path) -> Path:
    d = yaml.safe_load((EXAMPLE / "launch.yaml").read_text())
    words = {"b01-sunrise": "Sunrise.", "b02-trail": "Trail.", "b03-city": "City."}
    # Without the example's supers and end card: 1.5 s beats are too short to read them.
    d["beats"] = [{k: v for k, v in dict(b, duration=1.5, narration=words[b["id"]]).items() if k != "supers"}
                  for b in d["beats"] if b["id"] in words]
    d.pop("end_card", None)
    d.update(candidates=2, channels=["youtube-1080p", "feed-1x1"], hero_beat="b03-city", handles=0)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def _render(brief: Path, out: Path, home: Path) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out), "--log-json"],
                       capture_output=True, text=True, env=render_env(home), cwd=ROOT, timeout=900,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]


def _deterministic(out: Path) -> dict[str, object]:
    m = json.loads((out / "manifest.json").read_text())
    return {
        "keyframes": [[c["keyframe_sha256"] for c in b["candidates"]] for b in m["beats"]],
        "selected": [b["selected_keyframe_sha256"] for b in m["beats"]],
        "masters": [b["clip_sha256"] for b in m["beats"]],
        "stems": sorted((s["name"], s["sha256"]) for s in m["sound"]["stems"]),
        "music": m["sound"]["music"]["sha256"],
    }


def test_killed_in_the_conform_resumes_reusing_every_finished_step(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    brief = _brief(tmp_path / "brief.yaml")
    pct = re.compile(r"^studio: conform (\d+)%")
    proc, lines = start_render(brief, out, home,
                               lambda ls: any((m := pct.match(x)) and int(m.group(1)) >= 30 for x in ls),
                               what="the conform under way", timeout=600)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()

    events = _render(brief, out, home)
    done = {e["stage"]: e for e in events if e["event"] == "stage_done"}
    for stage, n in (("voice", 1), ("music", 1), ("candidates", 6), ("clips", 3), ("mix", 3)):
        assert (done[stage]["reused"], done[stage]["made"]) == (n, 0), (stage, done[stage])
    assert done["conform"]["reused"] + done["conform"]["made"] == 2

    with Session(db.make_engine(f"sqlite:///{home / 'studio.db'}")) as s:
        killed, again = sorted(s.exec(select(db.Run)).all(), key=lambda r: r.started_at)
        assert (killed.status, again.status) == ("interrupted", "succeeded")
        # Nothing of the resumed run is recorded twice.
        shots = [sh.id for sh in s.exec(select(db.Shot).where(db.Shot.run_id == again.id))]
        cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id.in_(shots))).all()  # type: ignore[attr-defined]
        assert len(cands) == len({(c.shot_id, c.index) for c in cands}) == 6
        renders = s.exec(select(db.Render).where(db.Render.run_id == again.id)).all()
        assert len(renders) == len({r.shot_id for r in renders}) == 3
        dels = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == again.id)).all()
        assert sorted(d.spec for d in dels) == ["feed-1x1", "youtube-1080p"]
        assert not s.exec(select(db.Deliverable).where(db.Deliverable.run_id == killed.id)).all()
    # No partial folder beside the output, no temp file left in the store.
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []
    assert Store(home / "store").temp_files() == []

    # The same brief from nothing, in a home of its own: the same bits where deterministic.
    fresh = tmp_path / "fresh-out"
    _render(brief, fresh, tmp_path / "fresh-home")
    assert _deterministic(out) == _deterministic(fresh)
