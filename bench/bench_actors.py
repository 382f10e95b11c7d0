"""Benchmark: Studio's keyframe actor pool on Ray, against doing the same work serially.

    python bench/bench_actors.py [--quick] [--reps N] [--jobs N]

Uses the real stage machinery: ``shots.generate.worker_class`` (the KeyframeWorker actor
with the stage's options) driven through ``ray.util.ActorPool.map_unordered`` exactly as
``generate_candidates`` does, with a mock keyframe backend (``bench/mock_backend.py``)
registered for this process and, through a worker setup hook, for every Ray worker.
Every job goes through the whole worker path: backend, PNG encode, store write, scoring.

Measures, as ratios and differences within one run (repetitions interleaved, medians
taken: run-to-run noise on small machines is about ±40%):

  (a) speed-up: 8 shots of a 1 s generator, serial in-process / pool of 4 warm actors
                                                                   target >= 3.6
  (b) orchestration overhead per shot: a zero-cost generator, 200 jobs through the warm
      pool; wall time per job minus the generator's own time      target <= 5 ms

Ray runs locally on 127.0.0.1 with num_cpus=4 (the work is sleep-bound, so 4 actors
with the stage's default of 1 CPU each fit on a 2-core machine), no dashboard, no usage
stats. Also reported, without targets: actor start-up (a cold pool), the same overhead
for one actor driven one job at a time (the round-trip latency), and the worker's own
per-job cost measured in-process without Ray.
Results: a table on stdout and bench/results/actors.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Read when ray is imported: local Ray on loopback only, and no usage stats (see
# studio/ray_runtime.py).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from shots import backends  # noqa: E402
from shots.generate import KeyframeWorker, worker_class  # noqa: E402
from studio.brief import load_brief  # noqa: E402
from studio.prompts import candidate_seeds, compile_prompt  # noqa: E402
from studio.specs import Catalog  # noqa: E402

RESULTS = BENCH / "results"
EXAMPLE_BRIEF = ROOT / "examples" / "briefs" / "launch.yaml"
SLEEP = "bench-sleep"
TARGET = "mock_backend:SleepBackend"
N_ACTORS = 4
SIZE = 64  # keyframe side: small, so PNG and scoring stay a small part of the per-job cost

FULL = {"reps": 3, "shots": 8, "delay": 1.0, "jobs": 200}
QUICK = {"reps": 1, "shots": 8, "delay": 1.0, "jobs": 60}


# A plain string: the setup hook below is pickled by value into Ray's workers (this file
# runs as __main__, which they cannot import), and takes this value with it.
BENCH_PATH = str(BENCH)


def register_bench_backend() -> None:
    """Make the mock backend loadable by name. Runs in this process and, as Ray's
    ``worker_process_setup_hook``, in every worker before any actor is built there: bench/
    is not a package, so its folder goes on sys.path first."""
    if BENCH_PATH not in sys.path:
        sys.path.insert(0, BENCH_PATH)
    from shots import backends as b

    b.BUILTIN.setdefault(SLEEP, TARGET)


def make_jobs(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` jobs shaped like generate_candidates' (one seed per job, the stage's batch size
    for a backend without a model entry; real prompt records of the example brief), and
    the channel specs the workers score against."""
    brief, _ = load_brief(EXAMPLE_BRIEF)
    catalog = Catalog()
    specs = [catalog.spec(c) for c in brief.channels]
    style = catalog.style(brief.style_pack)
    prompts = {b.id: compile_prompt(brief, b, style, specs) for b in brief.beats}
    seeds = {b.id: candidate_seeds(7, b.id, n) for b in brief.beats}
    jobs = []
    for i in range(n):
        beat = brief.beats[i % len(brief.beats)]
        rec = prompts[beat.id]
        jobs.append({
            "id": f"{beat.id}/{i}", "shot_id": beat.id, "beat_id": beat.id,
            "items": [{"index": i, "seed": seeds[beat.id][i // len(brief.beats)]}],
            "prompt": rec.canonical(), "prompt_hash": rec.hash, "width": SIZE, "height": SIZE,
        })
    return jobs, [s.model_dump(mode="json", by_alias=True) for s in specs]


def _generator_seconds(result: dict[str, Any]) -> float:
    """The backend's own time for one job, as the worker measured it (per item)."""
    return sum(float(it["seconds"]) for it in result["items"])


def run_serial(jobs: list[dict[str, Any]], delay: float, store: str,
               specs: list[dict[str, Any]]) -> dict[str, float]:
    """The same worker code, in this process, one job after another: what the stage would
    cost without Ray."""
    w = KeyframeWorker(SLEEP, {"delay": delay}, store, specs)
    t0 = time.perf_counter()
    gen = [_generator_seconds(w.generate(j)) for j in jobs]
    wall = time.perf_counter() - t0
    return {"wall": wall, "generator": sum(gen)}


def start_pool(n: int, delay: float, store: str, specs: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """n KeyframeWorker actors as the stage makes them; returns when all have loaded their
    backend (the time this takes is the cold-start cost)."""
    import ray

    cls = worker_class()
    t0 = time.perf_counter()
    actors = [cls.remote(SLEEP, {"delay": delay}, store, specs) for _ in range(n)]
    ray.get([a.describe.remote() for a in actors])
    return actors, time.perf_counter() - t0


def run_pool(actors: list[Any], jobs: list[dict[str, Any]]) -> dict[str, float]:
    from ray.util import ActorPool

    pool = ActorPool(actors)
    by_id = {j["id"] for j in jobs}
    t0 = time.perf_counter()
    gen = []
    for res in pool.map_unordered(lambda a, j: a.generate.remote(j), jobs):
        assert res["job"] in by_id
        gen.append(_generator_seconds(res))
    wall = time.perf_counter() - t0
    assert len(gen) == len(jobs)
    return {"wall": wall, "generator": sum(gen)}


def run_round_trips(actor: Any, jobs: list[dict[str, Any]]) -> dict[str, float]:
    """One actor, one job at a time: the latency of a single call through Ray."""
    import ray

    t0 = time.perf_counter()
    gen = [_generator_seconds(ray.get(actor.generate.remote(j))) for j in jobs]
    return {"wall": time.perf_counter() - t0, "generator": sum(gen)}


def kill(actors: list[Any]) -> None:
    import ray

    for a in actors:
        ray.kill(a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition, fewer jobs")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=None, help="jobs for the overhead measurement")
    opts = ap.parse_args()
    cfg = dict(QUICK if opts.quick else FULL)
    if opts.reps:
        cfg["reps"] = opts.reps
    if opts.jobs:
        cfg["jobs"] = opts.jobs

    import ray

    register_bench_backend()
    assert backends.load_backend_class(SLEEP).__name__ == "SleepBackend"
    shot_jobs, specs = make_jobs(cfg["shots"])
    many_jobs, _ = make_jobs(cfg["jobs"])

    store_dir = tempfile.mkdtemp(prefix="bench-actors-store-")
    t_init = time.perf_counter()
    ray.init(num_cpus=N_ACTORS, include_dashboard=False, log_to_driver=False,
             configure_logging=False,
             runtime_env={"worker_process_setup_hook": register_bench_backend})
    init_s = time.perf_counter() - t_init

    reps: list[dict[str, float]] = []
    try:
        for _ in range(cfg["reps"]):
            r: dict[str, float] = {}
            # (a) serial and pooled, interleaved; a fresh pool per repetition so its start-up
            # is measured each time, then the timed run on the warm actors.
            serial = run_serial(shot_jobs, cfg["delay"], store_dir, specs)
            actors, startup = start_pool(N_ACTORS, cfg["delay"], store_dir, specs)
            pooled = run_pool(actors, shot_jobs)
            kill(actors)
            r.update(serial_s=serial["wall"], pool_s=pooled["wall"], pool_startup_s=startup,
                     speedup=serial["wall"] / pooled["wall"],
                     speedup_cold=serial["wall"] / (pooled["wall"] + startup))
            # (b) zero-cost generator: what is left is orchestration.
            local = run_serial(many_jobs, 0.0, store_dir, specs)
            actors, _ = start_pool(N_ACTORS, 0.0, store_dir, specs)
            pooled0 = run_pool(actors, many_jobs)
            one = run_round_trips(actors[0], many_jobs)
            kill(actors)
            n = len(many_jobs)
            r.update(
                overhead_ms=(pooled0["wall"] - pooled0["generator"] / N_ACTORS) / n * 1000,
                pool_per_job_ms=pooled0["wall"] / n * 1000,
                generator_per_job_ms=pooled0["generator"] / n * 1000,
                round_trip_overhead_ms=(one["wall"] - one["generator"]) / n * 1000,
                worker_local_per_job_ms=(local["wall"] - local["generator"]) / n * 1000,
            )
            reps.append(r)
    finally:
        ray.shutdown()
        shutil.rmtree(store_dir, ignore_errors=True)

    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    checks = {
        "speedup": (med["speedup"], ">=", 3.6),
        "overhead_ms": (med["overhead_ms"], "<=", 5.0),
    }
    passed = {k: (v >= t if op == ">=" else v <= t) for k, (v, op, t) in checks.items()}

    rows = [
        ("8 shots x 1 s, serial in-process", f"{med['serial_s']:.2f} s", ""),
        (f"8 shots x 1 s, pool of {N_ACTORS} warm actors", f"{med['pool_s']:.2f} s", ""),
        ("  speed-up", f"{med['speedup']:.2f}x", f">= 3.6  {'PASS' if passed['speedup'] else 'FAIL'}"),
        (f"  pool start-up ({N_ACTORS} actors)", f"{med['pool_startup_s']:.2f} s", ""),
        ("  speed-up incl. start-up", f"{med['speedup_cold']:.2f}x", "(reported)"),
        (f"zero-cost jobs through the pool ({cfg['jobs']})", f"{med['pool_per_job_ms']:.2f} ms/job", ""),
        ("  generator's own time", f"{med['generator_per_job_ms']:.3f} ms/job", ""),
        ("  orchestration overhead", f"{med['overhead_ms']:.2f} ms/job",
         f"<= 5    {'PASS' if passed['overhead_ms'] else 'FAIL'}"),
        ("  one actor, one call at a time", f"{med['round_trip_overhead_ms']:.2f} ms/job", "(reported)"),
        ("  worker path without Ray (PNG, store, score)", f"{med['worker_local_per_job_ms']:.2f} ms/job",
         "(reported)"),
    ]
    print(f"\nStudio actor pool benchmark ({cfg['reps']} reps, medians; ray.init {init_s:.1f} s)")
    for name, value, note in rows:
        print(f"  {name:<48} {value:>14}  {note}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "actors",
        "config": {**cfg, "actors": N_ACTORS, "keyframe_size": SIZE, "ray_num_cpus": N_ACTORS},
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "ray": ray.__version__},
        "medians": med,
        "targets": {k: {"value": v, "op": op, "target": t, "pass": passed[k]}
                    for k, (v, op, t) in checks.items()},
        "reps": reps,
    }
    (RESULTS / "actors.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'actors.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
