"""Benchmark: ``studio where`` and ``studio lineage`` on a database of 10,000+ assets.

    python bench/bench_lineage.py [--runs N] [--reps N] [--no-postgres]

Builds a fresh SQLite database (and a fresh PostgreSQL one, on a throwaway server started
as tests/conftest.py's ``postgres_url`` does, when PostgreSQL is installed) holding
``--runs`` synthetic runs shaped like the example brief's: 8 beats x 8 candidates, a
render per beat, an edit and a stills timeline, 4 video and 2 still deliverables, voice
lines, a music bed, 4 cues, 3 stems and 4 masters (108 assets a run: prompt records,
candidates, renders, timelines, deliverables, audio; 100 runs = 10,800 assets).
Each run's edges are recorded by ``studio.lineage.record_run_edges``, as the runner does.

Then times, repetitions interleaved, medians:

  where(selected candidate)      the deliverables one keyframe is in (a short walk up)
  where(unselected candidate)    none: the walk stops at once
  where(model:procedural)        every deliverable: the walk up from a value every
                                 candidate shares (the worst case)
  where(voice)                   every video deliverable, through lines, stems, mix, masters
  lineage(deliverable)           the whole tree below one deliverable, labels included
  baseline                       a plain indexed single-table lookup (the deliverable by
                                 its sha256), the floor any query pays on this database

Target: every query under 1 s. Results: a table on stdout and bench/results/lineage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
RESULTS = HERE / "results"

import sqlalchemy as sa  # noqa: E402

from studio import db, lineage  # noqa: E402

BEATS, CANDIDATES = 8, 8
VIDEO_SPECS = ("youtube-1080p", "reels-9x16", "tiktok-9x16", "broadcast-ebu-1080p25")
STILL_SPECS = ("banner-300x250", "banner-728x90")


def _sha(*parts: Any) -> str:
    import hashlib

    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def build(engine: sa.Engine, runs: int) -> dict[str, Any]:
    """``runs`` synthetic runs written with bulk inserts; returns counts and sample ids."""
    t = {name: db.SQLModel.metadata.tables[name] for name in db.SQLModel.metadata.tables}
    now = db.now()
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "project", "briefversion", "run", "promptrecord", "shot", "candidate", "render", "timeline",
        "deliverable", "audioasset")}
    rows["project"].append({"id": 1, "code": "bench", "created_at": now})
    for r in range(runs):
        run = f"run_{r:05d}"
        rows["briefversion"].append({"id": r + 1, "project_id": 1, "campaign": f"c{r}", "version": 1,
                                     "sha256": _sha("brief", r), "schema_name": "Brief.1",
                                     "document": {"style_pack": f"style_{r % 5}"}, "source_path": "",
                                     "created_at": now})
        rows["run"].append({"id": run, "brief_version_id": r + 1, "status": "succeeded", "out_dir": "",
                            "code_version": "", "settings": {"backend": "procedural"}, "error": None,
                            "started_at": now, "finished_at": now})
        for b in range(BEATS):
            shot, ph = f"shot_{r}_{b}", _sha("prompt", r, b)
            rows["promptrecord"].append({"hash": ph, "beat_id": f"b{b}", "document": {}, "created_at": now})
            rows["shot"].append({"id": shot, "run_id": run, "beat_id": f"b{b}", "kind": "video", "position": b,
                                 "duration": 2.0, "rate": "30/1", "frames": 60, "handles": 12,
                                 "focus_x": 0.5, "focus_y": 0.5, "prompt_hash": ph})
            for i in range(CANDIDATES):
                rows["candidate"].append({
                    "id": f"cand_{r}_{b}_{i}", "shot_id": shot, "index": i, "seed": r * 1000 + b * 10 + i,
                    "backend": "procedural", "model_id": "procedural", "weights_sha256": None, "steps": None,
                    "width": 1024, "height": 1024, "prompt_hash": ph, "code_version": "x", "recipe_hash": "r",
                    "params": {}, "media_sha256": _sha("kf", r, b, i), "media_ext": ".png",
                    "depth_sha256": None, "worker": "", "attempt": 1, "seconds": 0.0, "gpu_seconds": 0.0,
                    "created_at": now})
            rows["render"].append({"id": f"render_{r}_{b}", "run_id": run, "shot_id": shot,
                                   "candidate_id": f"cand_{r}_{b}_0", "kind": "clip",
                                   "media_sha256": _sha("clip", r, b), "media_ext": ".mp4", "code_version": "x",
                                   "params": {}, "created_at": now})
            rows["audioasset"].append(_audio(f"vl_{r}_{b}", run, "voice-line", f"b{b}", now,
                                             {"text": f"line {r} {b}", "voice": "en_us_amy"}))
        for kind in ("edit", "stills"):
            rows["timeline"].append({"id": f"tl_{r}_{kind}", "run_id": run, "name": kind, "kind": kind,
                                     "version": 1, "parent_id": None, "sha256": _sha("tl", r, kind),
                                     "path": "", "created_at": now})
        for spec in VIDEO_SPECS:
            rows["deliverable"].append(_deliverable(r, run, spec, "video", now, {"finishing": {"lut": None}}))
            rows["audioasset"].append(_audio(f"mst_{r}_{spec}", run, "master", spec, now, {}, spec=spec))
        for spec in STILL_SPECS:
            rows["deliverable"].append(_deliverable(r, run, spec, "still", now,
                                                    {"frame": {"candidate_id": f"cand_{r}_0_0"}}))
        rows["audioasset"].append(_audio(f"bed_{r}", run, "music-bed", "procedural", now,
                                         {"source": "procedural", "track": None, "tempo": 90 + r % 30}))
        for c in range(4):
            rows["audioasset"].append(_audio(f"cue_{r}_{c}", run, "effect-cue", f"cue{c}", now,
                                             {"effect": f"fx_{c}"}))
        for name in ("voice", "music", "effects"):
            rows["audioasset"].append(_audio(f"stem_{r}_{name}", run, "stem", name, now, {}))
    with engine.begin() as conn:
        for name in rows:  # parents first (dict order)
            conn.execute(t[name].insert(), rows[name])
    assets = sum(len(rows[k]) for k in ("promptrecord", "candidate", "render", "timeline", "deliverable",
                                       "audioasset"))
    return {"runs": runs, "assets": assets, "selected": f"cand_{runs // 3}_0_0", "unselected": f"cand_{runs // 3}_3_5",
            "deliverable": f"dlv_{runs // 2}_youtube-1080p",
            "deliverable_sha": _sha("dlv", runs // 2, "youtube-1080p")}


def _audio(aid: str, run: str, kind: str, name: str, now: Any, params: dict[str, Any],
           spec: str | None = None) -> dict[str, Any]:
    return {"id": aid, "run_id": run, "kind": kind, "name": name, "beat_id": None, "spec": spec,
            "sha256": _sha("audio", aid), "start": 0.0, "duration": 1.0, "code_version": "x",
            "params": params, "rights": {}, "created_at": now}


def _deliverable(r: int, run: str, spec: str, kind: str, now: Any, params: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"dlv_{r}_{spec}", "run_id": run, "timeline_id": f"tl_{r}_{'edit' if kind == 'video' else 'stills'}",
            "spec": spec, "kind": kind, "path": f"/out/{r}/{spec}", "sha256": _sha("dlv", r, spec),
            "width": 1920, "height": 1080, "fps": None, "duration": None, "size": 1, "code_version": "x",
            "params": params, "created_at": now}


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(url: str, runs: int, reps: int) -> dict[str, Any]:
    engine = db.make_engine(url)
    db.init_db(engine)
    t0 = time.perf_counter()
    info = build(engine, runs)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    edges = sum(lineage.record_run_edges(engine, f"run_{r:05d}") for r in range(runs))
    recorded = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    n_dlv = runs * (len(VIDEO_SPECS) + len(STILL_SPECS))
    D = db.Deliverable.__table__  # type: ignore[attr-defined]

    def baseline() -> Any:
        with engine.connect() as c:
            return c.execute(sa.select(D).where(D.c.sha256 == info["deliverable_sha"])).all()

    # Check what is timed returns what it should before timing it.
    assert len(lineage.where(engine, info["selected"])["deliverables"]) == len(VIDEO_SPECS) + len(STILL_SPECS)
    assert lineage.where(engine, info["unselected"])["deliverables"] == []
    assert len(lineage.where(engine, "model:procedural")["deliverables"]) == n_dlv
    assert len(lineage.where(engine, "en_us_amy")["deliverables"]) == runs * len(VIDEO_SPECS)
    assert len(baseline()) == 1
    queries: dict[str, Callable[[], Any]] = {
        "baseline (indexed lookup)": baseline,
        "where(selected candidate)": lambda: lineage.where(engine, info["selected"]),
        "where(unselected candidate)": lambda: lineage.where(engine, info["unselected"]),
        "where(model:procedural)": lambda: lineage.where(engine, "model:procedural"),
        "where(voice)": lambda: lineage.where(engine, "en_us_amy"),
        "lineage(deliverable)": lambda: lineage.lineage(engine, info["deliverable"]),
    }
    samples: dict[str, list[float]] = {k: [] for k in queries}
    for _ in range(reps):  # interleaved: each repetition runs every query once
        for name, fn in queries.items():
            samples[name].append(_median_ms(fn, 1))
    engine.dispose()
    ms = {k: statistics.median(v) for k, v in samples.items()}
    base = ms["baseline (indexed lookup)"]
    return {"database": url.split(":", 1)[0], "runs": runs, "assets": info["assets"], "edges": edges,
            "deliverables": n_dlv, "build_s": round(built, 2), "record_edges_s": round(recorded, 2),
            "record_edges_ms_per_run": round(recorded * 1000 / runs, 1),
            "median_ms": {k: round(v, 2) for k, v in ms.items()},
            "x_baseline": {k: round(v / base, 1) for k, v in ms.items()},
            "under_1s": all(v < 1000 for v in ms.values())}


@contextmanager
def postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL server on 127.0.0.1, the tests' own (tests/pgserver.py); None
    where PostgreSQL is not installed."""
    if url := os.environ.get("STUDIO_TEST_POSTGRES_URL"):
        yield url
        return
    from tests.pgserver import pg_bindir, postgres_server

    bindir = pg_bindir()
    if bindir is None:
        yield None
        return
    with postgres_server(bindir, prefix="studio-bench-pg-") as url:
        yield url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100, help="synthetic runs (108 assets each)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(measure(f"sqlite:///{tmp}/bench.db", args.runs, args.reps))
    if not args.no_postgres:
        with postgres() as url:
            if url is None:
                print("PostgreSQL is not installed: SQLite only (scripts/setup.sh --test installs it)")
            else:
                results.append(measure(url, args.runs, args.reps))
    for r in results:
        print(f"\n{r['database']}: {r['runs']} runs, {r['assets']} assets, {r['edges']} edges, "
              f"{r['deliverables']} deliverables; edges recorded in {r['record_edges_s']} s "
              f"({r['record_edges_ms_per_run']} ms a run)")
        print(f"  {'query':<30} {'median ms':>10} {'x baseline':>11}")
        for k, v in r["median_ms"].items():
            print(f"  {k:<30} {v:>10.2f} {r['x_baseline'][k]:>11.1f}")
        print(f"  every query under 1 s: {r['under_1s']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lineage.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
