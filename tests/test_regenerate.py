"""`studio regenerate`: the conditions recorded with a candidate, and the verdict.

The procedural backend (pure numpy, batch-independent) makes the candidates here, through
the real worker, in this process, so the checks run in seconds and on any CPU. The
non-bit-exact verdicts are reached by changing the record (never by relying on this
machine's kernels): a stored original one level off gives ``within-threshold``, another
seed gives ``DIFFERENT``. Model candidates made by Ray actors are checked in
test_models_pipeline.py.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session

from shots.generate import KeyframeWorker, png_bytes
from shots.regenerate import PSNR_THRESHOLD_DB, psnr, regenerate
from studio import db
from studio.conditions import cpu_info, torch_threads
from studio.store import Store

PROMPT: dict[str, Any] = {
    "schema": "PromptRecord.1", "positive": "a red bottle on a plinth, studio light",
    "negative": "blurry, text", "palette": ["#12151f", "#d9a37f"], "camera": "push-in",
    "reference_images": [],
}
PROMPT_HASH = "f" * 64
W, H = 96, 54


# ------------------------------------------------------------------------- helpers


def test_psnr_is_infinite_for_equal_pixels_and_48_db_for_one_level_everywhere() -> None:
    a = np.full((4, 5, 3), 100, np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)  # MSE 1: 48.13 dB
    assert psnr(a, np.zeros_like(a)) < PSNR_THRESHOLD_DB


def test_cpu_info_reads_the_model_and_kernel_flags(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n")
    info = cpu_info(fake)
    assert info["model"] == "AMD EPYC 7B13"
    assert (info["avx512f"], info["avx2"]) == (False, True)
    # unreadable (not Linux): the flags are unknown, not absent
    missing = cpu_info(tmp_path / "nope")
    assert missing["avx512f"] is None and missing["avx2"] is None


def test_torch_threads_sets_and_restores_the_count() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    with pytest.raises(RuntimeError), torch_threads(want):
        assert torch.get_num_threads() == want
        raise RuntimeError("restored even when the body fails")
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------ a record


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Any, Store]]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    db.init_db(engine)
    yield engine, Store(tmp_path / "store")
    engine.dispose()


def _record(engine: Any, store: Store, seeds: list[int]) -> list[str]:
    """Candidates made by the real worker (as a Ray actor runs it) and recorded with the
    same params layout as shots.generate._record_outputs."""
    worker = KeyframeWorker("procedural", {}, str(store.root), [])
    job = {"id": "s/0", "items": [{"index": i, "seed": s} for i, s in enumerate(seeds)],
           "prompt": PROMPT, "prompt_hash": PROMPT_HASH, "width": W, "height": H}
    res = worker.generate(job)
    ids = []
    with Session(engine) as s:
        p = db.get_or_create_project(s, "p")
        bv = db.record_brief(s, p, "b", "a" * 64, {"schema": "Brief.1"}, "Brief.1", "/b.yaml")
        run = db.Run(id=db.new_id("run"), brief_version_id=bv.id)
        s.add(run)
        s.add(db.PromptRecordRow(hash=PROMPT_HASH, beat_id="b1", document=PROMPT))
        s.flush()
        shot = db.Shot(id=f"{run.id}-b1", run_id=run.id, beat_id="b1", kind="video", position=0,
                       duration=1.0, rate="30/1", frames=30, handles=0, focus_x=0.5, focus_y=0.5,
                       prompt_hash=PROMPT_HASH)
        s.add(shot)
        s.flush()
        for item in res["items"]:
            cid = db.new_id("cand")
            s.add(db.Candidate(
                id=cid, shot_id=shot.id, index=item["index"], seed=item["seed"], backend="procedural",
                model_id="procedural", width=W, height=H, prompt_hash=PROMPT_HASH,
                code_version=res["code_version"], recipe_hash="r" * 64,
                params={**item["params"], "describe": res["describe"], "backend_options": {},
                        "conditions": item["conditions"]},
                media_sha256=item["image"]["sha256"], media_ext=".png", worker=res["worker"],
            ))
            ids.append(cid)
        s.commit()
    return ids


def _change(engine: Any, cid: str, **fields: Any) -> None:
    with Session(engine) as s:
        row = s.get(db.Candidate, cid)
        for k, v in fields.items():
            setattr(row, k, v)
        s.add(row)
        s.commit()


def test_procedural_candidate_regenerates_bit_exact_with_its_conditions(home) -> None:
    engine, store = home
    ids = _record(engine, store, [11, 12])
    res = regenerate(engine, store, ids[1])
    rec = res["recorded"]
    # no generate_batch on the procedural backend: each seed was its own call
    assert (rec["call"], rec["batch_seeds"], rec["batch_index"]) == ("generate", [12], 0)
    assert (rec["device"], rec["dtype"]) == ("cpu", "uint8")
    assert {"model", "avx512f", "avx2", "torch_capability"} <= set(rec["cpu"])
    assert rec["library_versions"]["numpy"] == np.__version__
    assert res["verdict"] == res["verdict_text"] == "bit-exact" and res["identical"]
    assert res["psnr_db"] is None and res["differences"] == [] and res["notes"] == []


def test_procedural_is_bit_exact_even_when_the_record_names_another_cpu(home) -> None:
    engine, store = home
    (cid,) = _record(engine, store, [5])
    with Session(engine) as s:
        params = dict(s.get(db.Candidate, cid).params)
    other = {**params["conditions"]["cpu"], "model": "Some Other CPU", "avx512f": not cpu_info()["avx512f"]}
    _change(engine, cid, params={**params, "conditions": {**params["conditions"], "cpu": other}})
    res = regenerate(engine, store, cid)
    assert res["verdict"] == "bit-exact", res
    assert any(d.startswith("cpu avx512f: recorded") for d in res["differences"])
    assert any(d.startswith("cpu model: recorded Some Other CPU, now") for d in res["differences"])


def test_a_near_original_is_within_threshold_with_its_psnr(home, tmp_path: Path) -> None:
    engine, store = home
    (cid,) = _record(engine, store, [7])
    with Session(engine) as s:
        sha = s.get(db.Candidate, cid).media_sha256
    with Image.open(store.find(sha)) as im:
        pixels = np.asarray(im.convert("RGB")).copy()
    # what kernel drift looks like: a few pixels one 8-bit level off
    pixels[::7, ::5, 0] ^= 1
    near = store.put_bytes(png_bytes(pixels), ".png")
    _change(engine, cid, media_sha256=near.sha256)
    res = regenerate(engine, store, cid, tmp_path / "again.png")
    assert not res["identical"] and res["verdict"] == "within-threshold"
    with Image.open(tmp_path / "again.png") as im:
        expected = psnr(pixels, np.asarray(im.convert("RGB")))
    assert res["psnr_db"] == pytest.approx(expected) and res["psnr_db"] >= PSNR_THRESHOLD_DB
    assert res["verdict_text"] == f"within-threshold (PSNR {res['psnr_db']:.1f} dB >= 40)"
    # same conditions, different bytes: the report says it cannot blame a condition
    assert res["differences"] == []
    assert any("every recorded condition matches" in n for n in res["notes"])


def test_another_seed_is_different_and_the_cli_exits_1(home, tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from studio.cli import main
    from studio.settings import get_settings

    engine, store = home
    (cid,) = _record(engine, store, [3])
    _change(engine, cid, seed=4)
    res = regenerate(engine, store, cid, tmp_path / "again.png")
    assert res["verdict"] == "DIFFERENT" and not res["identical"]
    assert res["psnr_db"] < PSNR_THRESHOLD_DB
    assert res["verdict_text"] == f"DIFFERENT (PSNR {res['psnr_db']:.1f} dB < 40)"
    assert any("the record's seed 4 differs from its batch entry 3" in n for n in res["notes"])
    assert hashlib.sha256((tmp_path / "again.png").read_bytes()).hexdigest() == res["regenerated_sha256"]

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))  # the fixture's database and store
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(main, ["regenerate", cid[:14]])
        assert r.exit_code == 1, r.output
        assert r.output.startswith(f"{cid}: DIFFERENT (PSNR ")
        assert "  recorded  generate([3]) #0" in r.output and "  now       generate([4]) #0" in r.output
        _change(engine, cid, seed=3)
        r = CliRunner().invoke(main, ["regenerate", cid])
        assert r.exit_code == 0 and r.output.startswith(f"{cid}: bit-exact\n"), r.output
    finally:
        get_settings.cache_clear()


def test_a_record_without_conditions_is_regenerated_alone_and_says_so(home) -> None:
    engine, store = home
    (cid,) = _record(engine, store, [9])
    with Session(engine) as s:
        params = {k: v for k, v in s.get(db.Candidate, cid).params.items() if k != "conditions"}
    _change(engine, cid, params=params)
    res = regenerate(engine, store, cid)
    assert res["verdict"] == "bit-exact"
    assert any("no conditions" in n for n in res["notes"])
    assert res["recorded"]["cpu"] == {} and any(d.startswith("cpu model: recorded unknown") for d in res["differences"])
