"""Benchmark: loudness measurement and mastering speed, and Piper's real-time factor.

    python bench/bench_audio.py [--reps N]

Each of (a)-(c) is run twice, side by side: with the numpy meter (audio.loudness, what
Studio uses) and with ffmpeg's ebur128 as the meter (the baseline: ``measure(...,
method="ebur128")``, and ``audio.master.METER = "ebur128"``, which measures master()'s
input and every pass with ebur128; the passes and their ffmpeg filter chains are the same).

  (a) ``measure`` (integrated, LRA, true peak) on 60 s of stereo 48 kHz, x real time
  (b) ``master`` -14 LUFS / -1 dBTP, method loudnorm and method gain (input measurement,
      ffmpeg gain + limiter pass(es), each pass verified), x real time
  (c) measure + master together, x real time                      target >= 100x
  (d) Piper (joe-us) model load seconds and real-time factor (synthesis seconds per
      second of speech; < 1 is faster than real time), default and deterministic

Repetitions are interleaved and medians taken (run-to-run noise on small machines is
about ±40%). Wall time is what the target is about; CPU time (this process plus its
ffmpeg children) is reported beside it because it is steadier on a shared machine, and
wall ÷ CPU below 1 shows the numpy meter overlapping ffmpeg on the second core. One
untimed warm-up call of each comes first (it builds the meter's filter matrices, ~0.1 s
once per process). Results: a table on stdout and bench/results/audio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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

import audio.master as audio_master  # noqa: E402
from audio.master import master, measure  # noqa: E402
from audio.tts import PiperBackend  # noqa: E402
from audio.voices import VoiceRegistry  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECONDS = 60.0
METERS = ("numpy", "ebur128")
TEXT = ("Studio turns a brief into finished video. Every shot is generated, graded and mixed "
        "to the channel's loudness target, then checked against the spec before delivery. "
        "Nothing leaves the building without a record of how it was made.")


def cpu() -> float:
    """CPU seconds of this process and its waited-for children (the ffmpeg processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Any) -> tuple[float, float, Any]:
    """(wall s, CPU s, result)."""
    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, cpu() - c0, out


def run_measure(src: Path, meter: str) -> dict[str, float]:
    return measure(src, method=meter)


def run_master(src: Path, dst: Path, meter: str, method: str) -> dict[str, Any]:
    audio_master.METER = meter
    try:
        return master(src, dst, target_lufs=-14, true_peak=-1, method=method)
    finally:
        audio_master.METER = "numpy"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    keys = [f"{what}:{meter}" for meter in METERS
            for what in ("measure", "master-loudnorm", "master-gain")]
    wall: dict[str, list[float]] = {k: [] for k in keys}
    cpus: dict[str, list[float]] = {k: [] for k in keys}
    accuracy: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = write_wav(d / "music.wav", music_like(SECONDS), 48000)
        for meter in METERS:  # warm-up: filter matrices, BLAS, page cache
            run_measure(src, meter)
            run_master(src, d / "warm.wav", meter, "gain")
        for _ in range(args.reps):  # interleaved
            for meter in METERS:
                dt, ct, m = timed(lambda mt=meter: run_measure(src, mt))
                wall[f"measure:{meter}"].append(dt)
                cpus[f"measure:{meter}"].append(ct)
                accuracy[f"measure:{meter}"] = m
                for method in ("loudnorm", "gain"):
                    dt, ct, r = timed(lambda mt=meter, md=method: run_master(
                        src, d / f"{md}.wav", mt, md))
                    wall[f"master-{method}:{meter}"].append(dt)
                    cpus[f"master-{method}:{meter}"].append(ct)
                    accuracy[f"master-{method}:{meter}"] = {
                        "integrated": r["output"]["integrated"],
                        "true_peak": r["output"]["true_peak"], "passes": r["passes"],
                        "normalization": r["normalization"]}
        med = {k: statistics.median(v) for k, v in wall.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpus.items()}
        # master() already measures its input; a pipeline that calls measure() first and
        # then master() pays for both, which is what (c) counts.
        combined = {f"{m}:{meter}": med[f"measure:{meter}"] + med[f"master-{m}:{meter}"]
                    for meter in METERS for m in ("loudnorm", "gain")}
        combined_cpu = {f"{m}:{meter}": med_cpu[f"measure:{meter}"] + med_cpu[f"master-{m}:{meter}"]
                        for meter in METERS for m in ("loudnorm", "gain")}

        entry = VoiceRegistry().get("joe-us")
        load_s, _, piper = timed(lambda: PiperBackend(entry))
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

    print(f"{'what (60 s stereo 48 kHz)':26}" + "".join(
        f"{'wall s':>9} {'x RT':>7} {'CPU s':>7}  " for _ in METERS))
    print(f"{'':26}" + "".join(f"{'[' + m + ']':>25}  " for m in METERS))
    for what in ("measure", "master-loudnorm", "master-gain"):
        row = "".join(f"{med[f'{what}:{m}']:9.3f} {SECONDS / med[f'{what}:{m}']:7.1f} "
                      f"{med_cpu[f'{what}:{m}']:7.3f}  " for m in METERS)
        print(f"{what:26}{row}")
    for method in ("loudnorm", "gain"):
        row = "".join(f"{combined[f'{method}:{m}']:9.3f} {SECONDS / combined[f'{method}:{m}']:7.1f} "
                      f"{combined_cpu[f'{method}:{m}']:7.3f}  " for m in METERS)
        flag = "ok" if SECONDS / combined[f"{method}:numpy"] >= 100 else "BELOW 100x target"
        print(f"{'measure + master-' + method:26}{row}{flag} (numpy)")
    print(f"\nPiper joe-us: load {load_s:.2f} s")
    for k, v in tts.items():
        print(f"  {k:14} RTF {v['rtf']:.3f} ({v['speech_seconds']:.1f} s of speech, "
              f"{1 / v['rtf']:.1f}x real time)")
    for k, a in accuracy.items():
        print(f"  {k}: {a}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "reps": args.reps,
        "signal_seconds": SECONDS,
        "median_seconds": med,
        "median_cpu_seconds": med_cpu,
        "x_realtime": {k: SECONDS / v for k, v in med.items()},
        "measure_plus_master_x_realtime": {k: SECONDS / v for k, v in combined.items()},
        "measure_plus_master_cpu_seconds": combined_cpu,
        "target_x_realtime": 100,
        "accuracy_at_-14_-1": accuracy,
        "piper": {"voice": "joe-us", "load_seconds": load_s, **tts},
    }
    (RESULTS / "audio.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
