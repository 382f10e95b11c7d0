"""Benchmark: the technical QC battery against one plain decode of the same deliverable.

    python bench/bench_qc.py [--reps N] [--quick]

The deliverable: 30 s of 1920×1080 30 fps H.264 High (ffmpeg ``testsrc2``, CRF 20 capped at
8 Mb/s, veryfast, 0.5 s closed GOPs, 2 B-frames: youtube-1080p's encoder settings) with AAC
stereo 48 kHz (a tone with a moving level), BT.709 tagged; made once and cached in
``bench/results/media/``. ``--quick``: 10 s.

  battery   ``studio.qc.run_qc(file, youtube-1080p)`` in this process: ffprobe, the picture
            pass and the sound pass, every check, the report (not written)
  baseline  ``ffmpeg -i FILE -f null -``: one plain decode of picture and sound

Repetitions are interleaved (baseline, battery, baseline, ...) and medians taken: run-to-run
noise on these shared machines is about ±40%. Wall time is the target (battery ÷ baseline
≤ 1.5); CPU time (this process plus its waited-for children) is reported beside it. One
untimed warm-up of each comes first (imports, page cache). Results: a table on stdout and
``bench/results/qc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.qc import run_qc  # noqa: E402
from studio.specs import Catalog  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MEDIA = RESULTS / "media"
TARGET = 1.5


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def make(seconds: int) -> Path:
    out = MEDIA / f"qc-{seconds}s-1080p30.mp4"
    if out.exists():
        return out
    MEDIA.mkdir(parents=True, exist_ok=True)
    tone = "0.31*(0.6+0.4*sin(2*PI*0.25*t))*sin(2*PI*440*t)"
    tmp = out.with_suffix(".tmp.mp4")
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=30:d={seconds}",
        "-f", "lavfi", "-i", f"aevalsrc={tone}|{tone}:s=48000:d={seconds}",
        "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-crf", "20",
        "-maxrate", "8M", "-bufsize", "16M", "-g", "15", "-bf", "2", "-flags", "+cgop",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
        "-c:a", "aac", "-b:a", "384k", "-ar", "48000", "-movflags", "+faststart", str(tmp)], check=True)
    tmp.replace(out)
    return out


def plain(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)


def timed(fn: Any) -> tuple[float, float]:
    c0, t0 = cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10 s deliverable")
    args = ap.parse_args()
    seconds = 10 if args.quick else 30
    path = make(seconds)
    spec = Catalog().spec("youtube-1080p")
    report = run_qc(path, spec)  # warm-up, and the battery must pass on this clean file
    bad = [(c.id, c.finding) for c in report.checks if c.status in ("fail", "warn")]
    if bad:
        print("the clean deliverable does not pass:", bad, file=sys.stderr)
        return 2
    plain(path)
    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "battery": []}
    for i in range(args.reps):
        runs["baseline"].append(timed(lambda: plain(path)))
        runs["battery"].append(timed(lambda: run_qc(path, spec)))
        print(f"rep {i + 1}: baseline {runs['baseline'][-1][0]:.2f} s, battery {runs['battery'][-1][0]:.2f} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    wall = med["battery"][0] / med["baseline"][0]
    cpu_ratio = med["battery"][1] / med["baseline"][1]
    print(f"\n{seconds} s 1080p30 deliverable, {args.reps} interleaved repetitions, medians")
    print(f"{'':<10} {'wall s':>8} {'CPU s':>8}")
    for k, (w, c) in med.items():
        print(f"{k:<10} {w:>8.2f} {c:>8.2f}")
    print(f"battery ÷ baseline: wall {wall:.2f} (target ≤ {TARGET}: {'met' if wall <= TARGET else 'NOT met'}), "
          f"CPU {cpu_ratio:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"seconds": seconds, "reps": args.reps, "runs": runs, "median": med, "ratio_wall": wall,
           "ratio_cpu": cpu_ratio, "target": TARGET, "host": platform.node(), "cpus": os.cpu_count(),
           "load": os.getloadavg()}
    (RESULTS / "qc.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
