"""Benchmark: incremental re-render (issue 10). A 30 s, 8-shot spot for three video
channels, rendered three times in fresh `studio render` processes:

    python bench/bench_incremental.py [--reps N] [--quick]

  (1) full     the brief, from an empty store (a fresh STUDIO_HOME each repetition)
  (2) changed  the same brief with one beat's subject changed, same store and --out
  (3) no-op    brief (2) again, same store and --out: --out already holds exactly this

  (a) changed ÷ full       target <= 0.25
  (b) no-op ÷ full         target <= 0.02, or (c) no-op <= 0.5 s

Each run's stage timings and cache counts (reused/made) come from its own `--log-json`
stage events, so the figures say what was recomputed; the bench also counts the ffmpeg and
ffprobe processes each run started (a PATH shim in front of the real ones) and whether it
started a local Ray (a /tmp/ray session folder named after the run's pid). Repetitions are
interleaved (full, changed, no-op, then the next repetition) and medians taken.
--quick: a 10 s spot (still 8 shots), one repetition. Results: a table on stdout and
bench/results/incremental.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ["youtube-1080p", "reels-9x16", "broadcast-ebu-1080p25"]
SUBJECTS = [
    "a hiker on a ridge at sunrise", "a hiker walking with a bottle clipped to her pack",
    "a bottle on a rooftop ledge", "a cyclist crossing a bridge at dawn",
    "a kayak on a still lake", "a runner on a beach at low tide",
    "a tent under the stars", "the bottle, product hero",
]
CHANGED_BEAT = 4  # b05: a shot in the middle, neither the hero nor the first
NARRATION = ["Start early.", "Climb on.", "Stay cold.", "Cross over.",
             "Go quiet.", "Keep going.", "Rest well.", "Aurora."]


def brief(seconds: float, changed: bool) -> dict[str, Any]:
    """8 beats over ``seconds`` (whole frames at 25 and 30 fps), narration, the composer's
    music and effects: a spot like the example's, with more shots."""
    each = round(seconds / 8 * 5) / 5  # multiples of 0.2 s: whole frames at 25 and 30 fps
    durations = [each] * 7 + [round(seconds - 7 * each, 1)]
    beats = []
    for i, (subject, line, dur) in enumerate(zip(SUBJECTS, NARRATION, durations, strict=True)):
        if changed and i == CHANGED_BEAT:
            # The procedural backend paints from keywords (scene template, subject shape) and
            # the seed: a new subject must change them, or the "changed" keyframes come out
            # byte-identical and everything downstream is rightly reused (a lake under a
            # storm sky paints exactly like a still lake). A runner on a ridge: a person, peaks.
            subject = "a runner on a mountain ridge"
        beats.append({"id": f"b{i + 1:02d}", "duration": dur, "subject": subject, "narration": line,
                      "composition": "medium shot, subject left third, copy space right"})
    return {
        "schema": "Brief.1", "project": "bench", "campaign": "incremental",
        "purpose": "incremental re-render benchmark", "channels": CHANNELS, "style_pack": "golden-hour",
        "usage_class": "internal", "locale": "en-GB", "voice": "joe-us", "hero_beat": "b08",
        "music": {"source": "procedural", "mood": "hopeful, warm"}, "effects": {"enabled": True},
        "beats": beats,
    }


def shim_bin(where: Path, log: Path) -> Path:
    """ffmpeg and ffprobe wrappers that log each start, then exec the real program."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found on PATH")
        script = where / name
        script.write_text(f'#!/bin/sh\necho {name} >> "{log}"\nexec "{real}" "$@"\n')
        script.chmod(0o755)
    return where


def render(brief_path: Path, out: Path, home: Path, shims: Path, log: Path) -> dict[str, Any]:
    """One `studio render` in a fresh process: wall time, stage events, ffmpeg starts, Ray."""
    log.write_text("")
    env = {**os.environ, "STUDIO_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "studio", "render", str(brief_path), "--out", str(out),
                             "--log-json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"studio render failed ({proc.returncode}):\n{stderr[-4000:]}")
    stages: dict[str, dict[str, Any]] = {}
    starts: dict[str, float] = {}
    for line in stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "stage_start":
            starts[rec["stage"]] = rec["ts"]
        elif rec.get("event") == "stage_done":
            counts = {k: v for k, v in rec.items() if k not in ("ts", "event", "stage")}
            stages[rec["stage"]] = {"s": round(rec["ts"] - starts.get(rec["stage"], rec["ts"]), 3), **counts}
    calls = log.read_text().split()
    manifest = json.loads((out / "manifest.json").read_text())
    picked = {}
    for beat in manifest.get("beats", []):
        sel = beat.get("selected")
        sel_id = sel.get("id") if isinstance(sel, dict) else sel
        keyframes = {c["id"]: c["keyframe_sha256"] for c in beat.get("candidates", [])}
        picked[beat["id"]] = keyframes.get(sel_id)
    ray_dir = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    return {
        "wall_s": round(wall, 3),
        "stages": stages,
        "stages_s": round(sum(s["s"] for s in stages.values()), 3),
        "ffmpeg": calls.count("ffmpeg"), "ffprobe": calls.count("ffprobe"),
        "ray_started": any(ray_dir.glob(f"session_*_{proc.pid}")),
        "stdout": stdout.strip()[-300:],
        # what --out holds afterwards: the picked keyframe per beat, each deliverable's sha256
        "picked_keyframes": picked,
        "deliverables": {d["path"]: d["sha256"] for d in manifest.get("deliverables", [])},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="10 s spot, one repetition")
    args = ap.parse_args()
    seconds, reps = (10.0, 1) if args.quick else (30.0, args.reps)

    tmp = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    calls = tmp / "calls.log"
    shims = shim_bin(tmp / "bin", calls)
    briefs = {}
    for name, changed in (("base", False), ("changed", True)):
        briefs[name] = tmp / f"{name}.yaml"
        briefs[name].write_text(yaml.safe_dump(brief(seconds, changed), sort_keys=False))

    runs: dict[str, list[dict[str, Any]]] = {"full": [], "changed": [], "noop": []}
    for rep in range(reps):
        home, out = tmp / f"home{rep}", tmp / f"out{rep}"  # fresh store per repetition
        for kind, b in (("full", "base"), ("changed", "changed"), ("noop", "changed")):
            r = render(briefs[b], out, home, shims, calls)
            runs[kind].append(r)
            made = {k: v.get("made") for k, v in r["stages"].items() if v.get("made") is not None}
            print(f"rep {rep + 1} {kind:<8} {r['wall_s']:7.2f} s  stages {r['stages_s']:6.2f} s  "
                  f"ffmpeg {r['ffmpeg']:3d}  ffprobe {r['ffprobe']:3d}  ray {'yes' if r['ray_started'] else 'no'}"
                  f"  made {made}", flush=True)

    # A fast re-render is only worth something if it delivers the change: the changed beat's
    # pick must differ and every video deliverable with it; nothing else's pick may move.
    beat = f"b{CHANGED_BEAT + 1:02d}"
    checks = []
    for full, changed in zip(runs["full"], runs["changed"], strict=True):
        moved = sorted(b for b, k in changed["picked_keyframes"].items() if full["picked_keyframes"].get(b) != k)
        before, after = sorted(full["deliverables"].values()), sorted(changed["deliverables"].values())
        checks.append({"picks_changed": moved, "deliverables_changed": len(set(after) - set(before)),
                       "deliverables": len(after)})
    print(f"\nchanged run delivers the change ({beat}): " + "; ".join(
        f"picks changed {c['picks_changed']}, {c['deliverables_changed']}/{c['deliverables']} deliverables new"
        for c in checks))

    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    ratios = [
        ("(a) changed ÷ full", med["changed"] / med["full"], "<=", 0.25),
        ("(b) no-op ÷ full", med["noop"] / med["full"], "<=", 0.02),
        ("(c) no-op seconds", med["noop"], "<=", 0.5),
    ]
    print(f"\n{seconds:.0f} s spot, 8 shots, {len(CHANNELS)} channels, {reps} repetition(s); median wall s: "
          + "  ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"{'ratio':<22} {'value':>7} {'target':>8}  met")
    rows = []
    for name, value, op, target in ratios:
        met = value <= target
        print(f"{name:<22} {value:>7.3f} {op + ' ' + str(target):>8}  {'yes' if met else 'NO'}")
        rows.append({"ratio": name, "value": round(value, 4), "target": f"{op} {target}", "met": met})
    print("\nper-stage seconds (median) and what each run made:")
    names = list(dict.fromkeys(n for v in runs.values() for r in v for n in r["stages"]))
    print(f"{'stage':<12}" + "".join(f"{k:>24}" for k in runs))
    for n in names:
        cells = []
        for v in runs.values():
            secs = [r["stages"][n]["s"] for r in v if n in r["stages"]]
            last = v[-1]["stages"].get(n, {})
            counts = f"r{last.get('reused', '-')}/m{last.get('made', '-')}" if last else "-"
            cells.append(f"{statistics.median(secs):.2f}s {counts}" if secs else "-")
        print(f"{n:<12}" + "".join(f"{c:>24}" for c in cells))

    out_file = ROOT / "bench" / "results" / "incremental.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({
        "spot_seconds": seconds, "shots": 8, "channels": CHANNELS, "reps": reps,
        "changed_beat": f"b{CHANGED_BEAT + 1:02d}", "median_wall_s": med, "ratios": rows,
        "change_delivered": checks, "runs": runs,
    }, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
