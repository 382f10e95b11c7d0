"""Real generative models through the whole pipeline: tiny random-weight diffusers
pipelines registered by path, loaded by the real backends inside Ray actors on the CPU,
with every logged setting checked against the records."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from studio import db
from studio.errors import StudioError
from studio.models import ModelRegistry, weights_hash

from .conftest import EXAMPLE_BRIEF


def _brief(tmp_path: Path, **changes) -> Path:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["beats"] = d["beats"][:2]
    for b in d["beats"]:
        # Half-second beats keep the models cheap; they are too short for a voice line.
        b["duration"] = 0.5
        b["narration"] = ""
        b.pop("supers", None)  # too short to read the example's supers (and its end card)
    d.pop("end_card", None)
    d.update(candidates=2, handles=2, channels=["youtube-1080p"], hero_beat=None, usage_class="experiment")
    d.update(changes)
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.fixture(scope="session")
def model_settings(settings, models_dir: Path):
    return settings.model_copy(update={"models_dir": models_dir, "model_device": "cpu"})


@pytest.fixture(scope="session")
def model_run(tmp_path_factory, model_settings, ray_session):
    from studio.pipeline import render

    tmp = tmp_path_factory.mktemp("model-run")
    out = tmp / "out"
    ctx = render(_brief(tmp, keyframe_model="tiny-sd", clip_model="tiny-svd"), out, settings=model_settings)
    return ctx, out


def test_every_logged_setting_matches_the_record(model_run, model_settings, tiny) -> None:
    ctx, out = model_run
    entry = ModelRegistry(model_settings.models_dir).get("tiny-sd")
    manifest = json.loads((out / "manifest.json").read_text())
    engine = db.make_engine(model_settings.db_url)
    with Session(engine) as s:
        shots = s.exec(select(db.Shot).where(db.Shot.run_id == ctx.run_id)).all()
        assert len(shots) == 2
        for shot in shots:
            cands = s.exec(select(db.Candidate).where(db.Candidate.shot_id == shot.id)).all()
            assert sorted(c.index for c in cands) == [0, 1]
            for c in cands:
                p = c.params
                assert (c.backend, c.model_id) == ("diffusers-image", "tiny-sd")
                assert c.weights_sha256 == weights_hash(tiny["sd"])
                assert (c.width, c.height, c.steps) == (entry.width, entry.height, entry.steps)
                assert p["guidance"] == entry.guidance and p["dtype"] == "float32"
                assert p["scheduler"] == "EulerDiscreteScheduler" and p["device"] == "cpu"
                assert p["describe"]["library_versions"]["diffusers"] == "0.42.1"
                assert "torch" in p["describe"]["library_versions"]
                assert p["backend_options"]["model"]["id"] == "tiny-sd"
                assert p["batch_size"] == 2  # both candidates of a beat in one pipeline call
                assert p["batch_seeds"][p["batch_index"]] == c.seed and len(p["batch_seeds"]) == 2
                assert c.gpu_seconds == 0.0 and c.seconds > 0
            render = s.exec(select(db.Render).where(db.Render.shot_id == shot.id)).one()
            assert render.code_version.startswith("diffusers-video")
            assert render.params["describe"]["model_id"] == "tiny-svd"
    engine.dispose()
    video = out / manifest["deliverables"][0]["path"]
    info = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json", str(video)],
                                     capture_output=True, text=True, check=True).stdout)
    assert abs(float(info["format"]["duration"]) - 1.0) <= 1 / 30 + 1e-6


def _regenerate(model_settings, candidate_id: str, **kwargs):
    from shots.regenerate import regenerate
    from studio.store import Store

    engine = db.make_engine(model_settings.db_url)
    try:
        return regenerate(engine, Store(model_settings.store_root), candidate_id, **kwargs)
    finally:
        engine.dispose()


def test_model_candidates_regenerate_identically(model_run, model_settings) -> None:
    ctx, _ = model_run
    cand = next(iter(ctx.selected.values()))
    res = _regenerate(model_settings, cand.candidate_id)
    # Made in a batch of 2 by a 1-CPU Ray actor (one torch thread); regenerated here, in
    # this process, as that same batch on one thread: the same kernels, the same bytes,
    # on any CPU (the one it was made on is the one it is regenerated on).
    assert res["recorded"]["call"] == "generate_batch" and len(res["recorded"]["batch_seeds"]) == 2
    assert res["now"]["batch_seeds"] == res["recorded"]["batch_seeds"]
    assert res["now"]["torch_threads"] == res["recorded"]["torch_threads"] == 1
    assert res["differences"] == [], res
    assert res["verdict"] == "bit-exact" and res["identical"], res


def test_regenerating_under_other_conditions_is_measured_not_passed(model_run, model_settings) -> None:
    ctx, _ = model_run
    cand = next(iter(ctx.selected.values()))
    engine = db.make_engine(model_settings.db_url)
    with Session(engine) as s:
        row = s.get(db.Candidate, cand.candidate_id)
        shot_seeds = sorted(c.seed for c in s.exec(select(db.Candidate).where(db.Candidate.shot_id == row.shot_id)))
        recorded = row.params["conditions"]
    engine.dispose()
    # the record names the whole batch, this candidate's place in it and the machine
    assert sorted(recorded["batch_seeds"]) == shot_seeds
    assert recorded["batch_seeds"][recorded["batch_index"]] == cand.seed
    assert recorded["torch_threads"] == 1 and recorded["call"] == "generate_batch"
    cpu = recorded["cpu"]
    assert {"model", "avx512f", "avx2", "torch_capability"} <= set(cpu)
    import torch

    assert cpu["torch_capability"] == torch.backends.cpu.get_cpu_capability()

    before = torch.get_num_threads()
    res = _regenerate(model_settings, cand.candidate_id, alone=True, threads=2)
    assert torch.get_num_threads() == before  # the thread count is restored afterwards
    rec, now = res["recorded"], res["now"]
    assert (rec["device"], rec["dtype"]) == (now["device"], now["dtype"]) == ("cpu", "float32")
    assert now["batch_seeds"] == [cand.seed] and now["batch_index"] == 0 and now["torch_threads"] == 2
    assert any(d.startswith("batch: recorded generate_batch(") for d in res["differences"]), res
    assert "torch threads: recorded 1, now 2" in res["differences"]
    # Alone and on two threads the kernels may or may not block the same way, depending
    # on the CPU: whichever happened, the report must say so consistently.
    assert res["verdict"] in ("bit-exact", "within-threshold"), res
    assert (res["verdict"] == "bit-exact") == res["identical"]
    if res["identical"]:
        assert res["psnr_db"] is None
    else:
        assert res["psnr_db"] >= res["threshold_db"] == 40.0
        assert res["verdict_text"] == f"within-threshold (PSNR {res['psnr_db']:.1f} dB >= 40)"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"keyframe_model": "flux-dev", "usage_class": "public"},
         "usage_class: model 'flux-dev' is licensed for experiment only, not public use"),
        ({"keyframe_model": "svd-xt"},
         "keyframe_model: model 'svd-xt' is image-to-video, not text-to-image or image-to-image"),
        ({"clip_model": "no-such-model"}, "clip_model: unknown model 'no-such-model'"),
    ],
)
def test_models_refused_before_generation(tmp_path: Path, model_settings, changes, expected) -> None:
    from studio.pipeline import render

    out = tmp_path / "out"
    with pytest.raises(StudioError) as ei:
        render(_brief(tmp_path, **changes), out, settings=model_settings.model_copy(
            update={"home": tmp_path / "home"}))
    assert expected in "\n".join(ei.value.lines())
    assert not out.exists()
    assert not (tmp_path / "home" / "studio.db").exists()  # refused before any record or work


def test_killed_actor_is_retried_and_recorded_once(tmp_path: Path, settings, ray_session) -> None:
    from studio.pipeline import render

    marker = tmp_path / "crashed"
    ctx = render(_brief(tmp_path, usage_class="internal"), tmp_path / "out", settings=settings,
                 backend="tests.crashy_backend:CrashOnceBackend", backend_options={"marker": str(marker)})
    assert marker.exists()  # one worker process really died mid-task
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        rows = s.exec(select(db.Candidate).join(db.Shot).where(db.Shot.run_id == ctx.run_id)).all()
        keys = [(r.shot_id, r.index) for r in rows]
        assert len(keys) == len(set(keys)) == 4
        assert int(marker.read_text()) not in {int(r.worker.rsplit(":", 1)[1]) for r in rows}
    engine.dispose()
