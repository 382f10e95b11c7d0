"""The action cache (studio.cache, issue 10): keys over content only, hits only when the
store still holds what they name, one row per key however many processes put it; a
second render reuses every candidate and clip, an edited beat is the only one made
again, and a render killed mid-candidates resumes with what it had finished."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select

from studio import db
from studio.cache import ActionCache, key_of
from studio.progress import QuietReporter
from studio.store import Store

from .conftest import ROOT, render_env, start_render

# -- keys -------------------------------------------------------------------------------


def test_key_is_canonical_and_content_only() -> None:
    inputs = {"seed": 7, "prompt": "a" * 64, "size": [64, 64], "backend": {"name": "procedural"}}
    same = {"backend": {"name": "procedural"}, "size": [64, 64], "prompt": "a" * 64, "seed": 7}
    assert key_of("candidates", "generate.1", inputs) == key_of("candidates", "generate.1", same)
    assert key_of("candidates", "generate.1", inputs) != key_of("candidates", "generate.1", {**inputs, "seed": 8})
    assert key_of("candidates", "generate.1", inputs) != key_of("candidates", "generate.1",
                                                                {**inputs, "prompt": "b" * 64})
    assert key_of("candidates", "generate.1", inputs) != key_of("candidates", "generate.2", inputs)
    # where things are and how the work is spread are refused, not hashed
    for name, value in (("store_root", "/tmp/x"), ("pool_size", 4), ("retries", 2)):
        with pytest.raises(ValueError, match=name):
            key_of("candidates", "generate.1", {**inputs, "nested": {name: value}})
    with pytest.raises(TypeError):  # a Path is not JSON: it cannot slip in as a string
        key_of("candidates", "generate.1", {**inputs, "image": Path("/tmp/a.png")})


def _shot(shot_id: str, seeds: list[int], prompt_hash: str = "p" * 64) -> Any:
    from studio.context import ShotPlan

    return ShotPlan(shot_id=shot_id, beat_id="b01", position=0, duration=1.0, frames=24, handles=0,
                    prompt={"subject": "x"}, prompt_hash=prompt_hash, focus=(0.5, 0.5), camera="static", seeds=seeds)


def _keys(shots: list[Any], batch: int = 1, backend_options: dict | None = None) -> dict:
    from shots.generate import candidate_identity, candidate_keys, make_jobs
    from studio.settings import Settings
    from studio.specs import Catalog

    st = Settings()
    spec = Catalog(st.specs_dir, st.styles_dir).spec("youtube-1080p")
    jobs = make_jobs(shots, 64, 64, batch)
    identity = candidate_identity("procedural", backend_options or {}, None)
    return {k[1]: v for k, v in candidate_keys(jobs, identity, [spec], None).items()}


def test_candidate_keys_follow_seed_and_prompt_not_run_or_batching() -> None:
    base = _keys([_shot("shot_run1_b01", [11, 12, 13])])
    # another run's shot id, another batching of a procedural backend: same keys
    assert _keys([_shot("shot_run2_b01", [11, 12, 13])]) == base
    assert _keys([_shot("shot_run1_b01", [11, 12, 13])], batch=3) == base
    assert _keys([_shot("s", [11, 99, 13])])[1] != base[1]
    assert _keys([_shot("s", [11, 99, 13])])[0] == base[0]
    assert _keys([_shot("s", [11, 12, 13], prompt_hash="q" * 64)])[0] != base[0]
    assert _keys([_shot("s", [11, 12, 13])], backend_options={"palette": "warm"})[0] != base[0]


def test_clip_key_leaves_out_the_store_folder() -> None:
    from shots.clips import clip_key

    job = {"store_root": "/a/store", "shot_id": "shot_1", "image": {"sha256": "k" * 64}, "depth": None,
           "move": "push-in", "frames": 48, "handles": 6, "width": 2112, "height": 1188, "rate": "24/1",
           "crf": 12, "preset": "medium", "prompt_hash": "p" * 64, "seed": 3}
    ident = {"camera": "camera.1", "move_margin": 1.1}
    key = clip_key(job, ident)
    assert clip_key({**job, "store_root": "/b/elsewhere", "shot_id": "shot_2"}, ident) == key
    # a procedural move does not read the prompt or seed
    assert clip_key({**job, "seed": 4}, ident) == key
    for change in ({"move": "pan-left"}, {"frames": 49}, {"crf": 18}, {"image": {"sha256": "j" * 64}},
                   {"depth": {"sha256": "d" * 64}}, {"handles": 0}, {"width": 1920}):
        assert clip_key({**job, **change}, ident) != key, change
    assert clip_key(job, {**ident, "camera": "camera.2"}) != key


def test_clip_key_follows_the_luts_content_not_its_path() -> None:
    """The grade is in the shot master: a changed LUT makes the clips again (and through
    their new hashes the conform's segments); the same file elsewhere does not."""
    from shots.clips import clip_key

    job = {"store_root": "/a/store", "shot_id": "shot_1", "image": {"sha256": "k" * 64}, "depth": None,
           "move": "push-in", "frames": 48, "handles": 6, "width": 2112, "height": 1188, "rate": "24/1",
           "crf": 12, "preset": "medium", "prompt_hash": "p" * 64, "seed": 3,
           "lut": {"path": "/styles/luts/golden-hour.cube", "sha256": "a" * 64}}
    for ident in ({"camera": "camera.1", "move_margin": 1.1}, {"model": {"id": "m", "sha256": "w" * 64}}):
        key = clip_key(job, ident)
        assert clip_key({**job, "lut": {"path": "/elsewhere/copy.cube", "sha256": "a" * 64}}, ident) == key
        assert clip_key({**job, "lut": {"path": "/styles/luts/golden-hour.cube", "sha256": "b" * 64}},
                        ident) != key
        assert clip_key({**job, "lut": None}, ident) != key


# -- get / put --------------------------------------------------------------------------


def _engine_with_run(url: str) -> tuple[Any, str]:
    engine = db.make_engine(url)
    db.init_db(engine)
    run_id = db.new_id("run")
    with Session(engine) as s:
        project = db.get_or_create_project(s, "cache")
        bv = db.record_brief(s, project, "c", "0" * 64, {}, "Brief.1", "/dev/null")
        s.add(db.Run(id=run_id, brief_version_id=bv.id))
        s.commit()
    return engine, run_id


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    from .test_migrations import _fresh_pg

    return _fresh_pg(request.getfixturevalue("postgres_url"), tmp_path.name)


def test_get_misses_when_a_store_object_is_gone_and_put_is_idempotent(db_url: str, tmp_path: Path) -> None:
    engine, run_id = _engine_with_run(db_url)
    store = Store(tmp_path / "store")
    cache = ActionCache(engine, store)
    image = store.put_bytes(b"keyframe", ".png")
    depth = store.put_bytes(b"depth", ".png")
    outputs = {"image": image.to_dict(), "depth": depth.to_dict(), "score": {"total": 0.5}}
    key = key_of("candidates", "generate.1", {"seed": 1})
    assert cache.get(key) is None
    assert cache.put(key, "candidates", "generate.1", outputs, run_id, 1.5) is True
    assert cache.put(key, "candidates", "generate.1", {**outputs, "score": {"total": 0.9}}, run_id) is False
    hit = cache.get(key)
    assert hit is not None and hit.outputs == outputs and hit.run_id == run_id and hit.seconds == 1.5
    with Session(engine) as s:
        assert len(s.exec(select(db.Action)).all()) == 1
    store.path(depth).unlink()  # the store was cleaned: make it again
    assert cache.get(key) is None
    engine.dispose()


def _put_many(url: str, store_root: str, run_id: str, keys: list[str], start: Any) -> None:
    engine = db.make_engine(url)
    cache = ActionCache(engine, Store(store_root))
    start.wait()
    for key in keys:
        cache.put(key, "clips", "clips.1", {"n": 1}, run_id)
    engine.dispose()


def test_two_processes_putting_the_same_keys_leave_one_row_each(db_url: str, tmp_path: Path) -> None:
    engine, run_id = _engine_with_run(db_url)
    keys = [key_of("clips", "clips.1", {"i": i}) for i in range(40)]
    mp = multiprocessing.get_context("spawn")
    start = mp.Event()
    procs = [mp.Process(target=_put_many, args=(db_url, str(tmp_path / "store"), run_id, keys, start))
             for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Session(engine) as s:
        rows = s.exec(select(db.Action.key)).all()
    assert sorted(rows) == sorted(keys)
    engine.dispose()


# -- renders ----------------------------------------------------------------------------


class _Counts(QuietReporter):
    def __init__(self) -> None:
        self.done: dict[str, dict[str, Any]] = {}

    def stage_done(self, stage: str, **fields: Any) -> None:
        self.done[stage] = fields


def _brief(path: Path, subjects: list[str], candidates: int = 2) -> Path:
    d = {
        "project": "cache", "campaign": "twice", "purpose": "a spot rendered again",
        "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": candidates,
        "captions": False, "handles": 0, "music": {"source": "none"}, "effects": {"enabled": False},
        "beats": [{"id": f"b0{i + 1}", "duration": 1, "subject": s} for i, s in enumerate(subjects)],
    }
    path.write_text(yaml.safe_dump(d))
    return path


def _rows(settings: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        shots = {sh.id: sh.beat_id for sh in s.exec(select(db.Shot).where(db.Shot.run_id == run_id))}
        cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id.in_(list(shots)))).all()  # type: ignore[attr-defined]
        renders = s.exec(select(db.Render).where(db.Render.run_id == run_id)).all()
        run = s.get(db.Run, run_id)
        cache = run.settings.get("cache")
        out = ([(shots[c.shot_id], c.index, c.media_sha256, c.params.get("reused_from")) for c in cands],
               [(shots[r.shot_id], r.media_sha256, r.params.get("reused_from")) for r in renders])
    engine.dispose()
    return (sorted(out[0]), sorted(out[1])), cache  # type: ignore[return-value]


def test_a_second_render_reuses_everything_and_an_edited_beat_alone_is_made_again(
        tmp_path: Path, ray_session, monkeypatch: pytest.MonkeyPatch) -> None:
    import shots.clips
    import shots.generate
    from studio.pipeline import render
    from studio.settings import Settings

    settings = Settings(home=tmp_path / "home", ray_num_cpus=2)  # a cache of its own
    subjects = ["a hiker on a ridge at sunrise", "a glowing orb over a lake"]
    brief = _brief(tmp_path / "brief.yaml", subjects)
    first = _Counts()
    ctx1 = render(brief, tmp_path / "one", settings=settings, reporter=first)
    assert first.done["candidates"] == {"reused": 0, "made": 4}
    assert first.done["clips"] == {"reused": 0, "made": 2}

    # Everything cached: neither stage may start actors or tasks.
    def no_ray(*a: Any, **k: Any) -> None:
        raise AssertionError("Ray was used for a fully cached stage")

    with monkeypatch.context() as m:
        m.setattr(shots.generate, "plan_resources", no_ray)
        m.setattr(shots.generate, "KeyframePool", no_ray)
        m.setattr(shots.clips, "_render_clips", no_ray)
        second = _Counts()
        ctx2 = render(brief, tmp_path / "two", settings=settings, reporter=second)
    assert second.done["candidates"] == {"reused": 4, "made": 0}
    assert second.done["clips"] == {"reused": 2, "made": 0}
    (c1, r1), cache1 = _rows(settings, ctx1.run_id)
    (c2, r2), cache2 = _rows(settings, ctx2.run_id)
    # mix: the mix and one master; release: the QC report (unsigned: no signing identity in this home)
    made = {"music": 1, "mix": 2, "conform": 1, "candidates": 4, "clips": 2, "release": 1}
    assert cache1 == {k: {"reused": 0, "made": n} for k, n in made.items()}
    assert cache2 == {k: {"reused": n, "made": 0} for k, n in made.items()}
    # its own rows, the same media, each saying which run made it
    assert [c[:3] for c in c2] == [c[:3] for c in c1] and len(c2) == 4
    assert all(c[3] is None for c in c1) and all(c[3] == ctx1.run_id for c in c2)
    assert [r[:2] for r in r2] == [r[:2] for r in r1] and all(r[2] == ctx1.run_id for r in r2)
    m1 = json.loads((tmp_path / "one" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert m2["run_id"] == ctx2.run_id != m1["run_id"]
    for key in ("keyframe_sha256",):
        assert [[c[key] for c in b["candidates"]] for b in m1["beats"]] == \
            [[c[key] for c in b["candidates"]] for b in m2["beats"]]
    assert [b["selected_keyframe_sha256"] for b in m1["beats"]] == \
        [b["selected_keyframe_sha256"] for b in m2["beats"]]

    # One beat's subject changes: only its candidates and its clip are made.
    edited = _brief(tmp_path / "brief.yaml", [subjects[0], "a red kite over the dunes"])
    third = _Counts()
    ctx3 = render(edited, tmp_path / "three", settings=settings, reporter=third)
    assert third.done["candidates"] == {"reused": 2, "made": 2}
    assert third.done["clips"] == {"reused": 1, "made": 1}
    (c3, r3), _ = _rows(settings, ctx3.run_id)
    assert [c[:3] for c in c3 if c[0] == "b01"] == [c[:3] for c in c1 if c[0] == "b01"]
    assert all(c[3] == ctx1.run_id for c in c3 if c[0] == "b01")
    assert all(c[3] is None for c in c3 if c[0] == "b02")
    assert {c[2] for c in c3 if c[0] == "b02"}.isdisjoint(c[2] for c in c1)
    assert [r for r in r3 if r[0] == "b01"] == [r for r in r2 if r[0] == "b01"]
    assert next(r for r in r3 if r[0] == "b02")[2] is None


def test_a_killed_render_resumes_with_the_candidates_it_finished(tmp_path: Path) -> None:
    from studio.settings import Settings

    home, out = tmp_path / "home", tmp_path / "out"
    brief = _brief(tmp_path / "brief.yaml", ["a lighthouse in a storm", "a fox in fresh snow"], candidates=4)
    proc, lines = start_render(
        brief, out, home, lambda ls: sum(ln.startswith("studio: candidates ") and "/8" in ln for ln in ls) >= 2,
        what="two candidates")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    r = subprocess.run([sys.executable, "-m", "studio", "render", str(brief), "--out", str(out), "--log-json"],
                       capture_output=True, text=True, env=render_env(home), cwd=ROOT, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    events = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    (done,) = [e for e in events if e["event"] == "stage_done" and e["stage"] == "candidates"]
    assert done["reused"] >= 2 and done["reused"] + done["made"] == 8, done

    settings = Settings(home=home)
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        killed, again = sorted(s.exec(select(db.Run)).all(), key=lambda x: x.started_at)
        assert again.status == "succeeded"
        shots = [sh.id for sh in s.exec(select(db.Shot).where(db.Shot.run_id == again.id))]
        cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id.in_(shots))).all()  # type: ignore[attr-defined]
        # each candidate of the run recorded once, each image once
        assert len(cands) == 8 and len({(c.shot_id, c.index) for c in cands}) == 8
        assert len({c.media_sha256 for c in cands}) == 8
        reused = [c for c in cands if c.params.get("reused_from")]
        assert len(reused) == done["reused"] and {c.params["reused_from"] for c in reused} == {killed.id}
        assert again.settings["cache"]["candidates"] == {"reused": done["reused"], "made": done["made"]}
    engine.dispose()
