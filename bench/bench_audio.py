"""Benchmark: loudness measurement and mastering speed, and Piper's real-time factor.

    python bench/bench_audio.py [--reps N]

  (a) ``measure`` (ebur128 with true peak) on 60 s of stereo 48 kHz, x real time
  (b) ``master`` -14 LUFS / -1 dBTP, method loudnorm (two-pass loudnorm + limiter +
      verification) and method gain (ebur128 + gain + limiter + verification), x real time
  (c) measure + master together, x real time                      target >= 100x
  (d) Piper (joe-us) model load seconds and real-time factor (synthesis seconds per
      second of speech; < 1 is faster than real time), default and deterministic

Repetitions are interleaved and medians taken (run-to-run noise on small machines is
about ±40%). Results: a table on stdout and bench/results/audio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_audio_master import music_like, write_wav  # noqa: E402

from audio.master import master, measure  # noqa: E402
from audio.tts import PiperBackend  # noqa: E402
from audio.voices import VoiceRegistry  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECONDS = 60.0
TEXT = ("Studio turns a brief into finished video. Every shot is generated, graded and mixed "
        "to the channel's loudness target, then checked against the spec before delivery. "
        "Nothing leaves the building without a record of how it was made.")


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rows: dict[str, list[float]] = {"measure": [], "master-loudnorm": [], "master-gain": []}
    accuracy: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = write_wav(d / "music.wav", music_like(SECONDS), 48000)
        for _ in range(args.reps):  # interleaved
            dt, _m = timed(lambda: measure(src))
            rows["measure"].append(dt)
            for method in ("loudnorm", "gain"):
                dt, r = timed(lambda m=method: master(src, d / f"{m}.wav", target_lufs=-14,
                                                      true_peak=-1, method=m))
                rows[f"master-{method}"].append(dt)
                accuracy[method] = {"integrated": r["output"]["integrated"],
                                    "true_peak": r["output"]["true_peak"], "passes": r["passes"]}
        med = {k: statistics.median(v) for k, v in rows.items()}
        # master() already measures its input; a pipeline that calls measure() first and
        # then master() pays for both, which is what (c) counts.
        combined = {m: med["measure"] + med[f"master-{m}"] for m in ("loudnorm", "gain")}

        entry = VoiceRegistry().get("joe-us")
        load_s, piper = timed(lambda: PiperBackend(entry))
        piper.synthesize("Warm up.", d / "w.wav", beat="warm")  # first run builds onnx caches
        tts: dict[str, dict[str, float]] = {}
        for det in (False, True):
            rtfs, durs = [], []
            for i in range(args.reps):
                r = piper.synthesize(TEXT, d / f"t{i}.wav", beat="bench", deterministic=det)
                rtfs.append(r["rtf"])
                durs.append(r["duration"])
            tts["deterministic" if det else "default"] = {
                "rtf": statistics.median(rtfs), "speech_seconds": statistics.median(durs)}

    print(f"{'what (60 s stereo 48 kHz)':34} {'median s':>9} {'x real time':>12}")
    for k, v in med.items():
        print(f"{k:34} {v:9.3f} {SECONDS / v:12.1f}")
    for m, v in combined.items():
        flag = "ok" if SECONDS / v >= 100 else "BELOW 100x target"
        print(f"{'measure + master-' + m:34} {v:9.3f} {SECONDS / v:12.1f}  {flag}")
    print(f"\nPiper joe-us: load {load_s:.2f} s")
    for k, v in tts.items():
        print(f"  {k:14} RTF {v['rtf']:.3f} ({v['speech_seconds']:.1f} s of speech, "
              f"{1 / v['rtf']:.1f}x real time)")
    for m, a in accuracy.items():
        print(f"  master-{m}: {a['integrated']} LUFS, {a['true_peak']} dBTP, {a['passes']} pass(es)")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "reps": args.reps,
        "signal_seconds": SECONDS,
        "median_seconds": med,
        "x_realtime": {k: SECONDS / v for k, v in med.items()},
        "measure_plus_master_x_realtime": {m: SECONDS / v for m, v in combined.items()},
        "target_x_realtime": 100,
        "accuracy_at_-14_-1": accuracy,
        "piper": {"voice": "joe-us", "load_seconds": load_s, **tts},
    }
    (RESULTS / "audio.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
