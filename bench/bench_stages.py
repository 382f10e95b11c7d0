"""Benchmark: the per-keyframe and per-spot costs that used to be timed assertions in the
tests (scoring, procedural generation, the procedural composer), as ratios against a
baseline run side by side in the same process.

    python bench/bench_stages.py [--reps N]

  (a) ``score_keyframe`` on a 1920x1920 keyframe  ÷  its PNG encode (``png_bytes``, the
      other post-processing the keyframe actor does per candidate)       target <= 0.5
  (b) procedural ``generate`` at 1920x1920  ÷  its PNG encode             target <= 4
  (c) procedural composer, 30 s bed: x real time (30 s ÷ compose seconds) target >= 15

Targets are the old tests' budgets (scoring 150 ms, a 1920x1920 keyframe 1.5 s, a 30 s
bed under 2 s) restated against the baseline, with the PNG encode at about 0.35-0.6 s on
the 2-core development machine. Each repetition generates a new seed, so nothing is
reused between repetitions. Repetitions are interleaved and medians taken; one untimed warm-up of
each comes first. Results: a table on stdout and bench/results/stages.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _prompt() -> dict[str, Any]:
    from studio.brief import Brief
    from studio.prompts import compile_prompt
    from studio.specs import Catalog

    catalog = Catalog()
    brief = Brief.model_validate({
        "project": "bench", "campaign": "stages", "purpose": "benchmark",
        "channels": ["youtube-1080p", "reels-9x16"], "style_pack": "golden-hour",
        "beats": [{"id": "b01", "duration": 4, "subject": "a runner",
                   "environment": "city street at sunset",
                   "composition": "subject right third, copy space left", "mood": "energetic"}],
    })
    specs = [catalog.spec(n) for n in brief.channels]
    return compile_prompt(brief, brief.beats[0], catalog.style("golden-hour"), specs).canonical()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    from audio import music
    from shots.backends.procedural import ProceduralBackend
    from shots.generate import png_bytes
    from shots.score import score_keyframe
    from studio.specs import Catalog

    prompt = _prompt()
    channels = [Catalog().spec(n) for n in ("youtube-1080p", "reels-9x16")]
    backend = ProceduralBackend()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    image = backend.generate(prompt, 1, 1920, 1920).image

    def timed(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    seeds = iter(range(100, 10_000))
    work = {
        "png": lambda: png_bytes(image),
        "score": lambda: score_keyframe(image, prompt, channels),
        "generate": lambda: backend.generate(prompt, next(seeds), 1920, 1920),
        "compose": lambda: music.compose(music.params_for(["hopeful", "warm"], 7), 30, tmp / "bed.wav"),
    }
    for fn in work.values():  # warm-up: imports, caches, LUTs
        fn()
    runs: dict[str, list[float]] = {k: [] for k in work}
    for _ in range(args.reps):
        for name, fn in work.items():  # interleaved
            runs[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratios = [
        ("(a) score ÷ PNG encode", med["score"] / med["png"], "<=", 0.5),
        ("(b) generate 1920² ÷ PNG encode", med["generate"] / med["png"], "<=", 4.0),
        ("(c) composer, x real time", 30.0 / med["compose"], ">=", 15.0),
    ]
    print(f"{'median seconds':<34} " + "  ".join(f"{k} {v:.3f}" for k, v in med.items()))
    print(f"{'ratio':<34} {'value':>7} {'target':>8}  met")
    rows = []
    for name, value, op, target in ratios:
        met = value <= target if op == "<=" else value >= target
        print(f"{name:<34} {value:>7.2f} {op + ' ' + str(target):>8}  {'yes' if met else 'NO'}")
        rows.append({"ratio": name, "value": round(value, 3), "target": f"{op} {target}", "met": met})
    out = ROOT / "bench" / "results" / "stages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"median_seconds": med, "runs": runs, "ratios": rows, "reps": args.reps},
                              indent=2))


if __name__ == "__main__":
    main()
