"""Loudness measurement and mastering to a channel's loudness target and true-peak ceiling.

``measure`` reads ffmpeg's ``ebur128=peak=true`` summary (EBU R128 / ITU-R BS.1770:
integrated loudness, loudness range, 4x-oversampled true peak). ``master`` normalises in
two passes, because single-pass loudnorm misses its target on short clips (it has to
guess the integrated loudness while it is still reading the file):

1. measure: ``loudnorm=print_format=json`` over the whole input (``method="loudnorm"``),
   or ``ebur128`` (``method="gain"``, about 5x faster: no 192 kHz resampling);
2. apply the gain the measurement asks for, linearly (``loudnorm`` with ``linear=true``
   and the measured values, which is a constant gain), then a true-peak limiter
   (``alimiter`` run at 192 kHz, i.e. 4x oversampled at 48 kHz, so inter-sample peaks are
   caught) a little below the ceiling;
3. verify with an independent ``ebur128`` pass; if limiting cost more than the tolerance
   in loudness, or resampling put a peak over the ceiling, correct the gain/limit and
   redo step 2 (at most MAX_PASSES times in all).

loudnorm refuses linear mode (and silently goes dynamic, the mode that misses on short
clips) when the gain would push the true peak over its TP target; then the same constant
gain is applied with ``volume`` instead and the limiter does the peak control.

ffmpeg 5.1 quirk: ``loudnorm,aresample`` fails on some WAVs ("Cannot select channel
layout"), so the output rate is set with ``-ar``, never an ``aresample`` after loudnorm.
Every ffmpeg call is an argument list; nothing goes through a shell.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from studio.errors import StageError
from studio.store import atomic_output

FFMPEG = "ffmpeg"
# ebur128's integrated loudness gates in 400 ms blocks: shorter input has no measurement.
MIN_SECONDS = 0.4
LU_TOLERANCE = 0.5  # the spec's tolerance on integrated loudness
AIM_TOLERANCE = 0.2  # what master() aims for, so the spec's tolerance is never at risk
LIMIT_MARGIN_DB = 0.3  # limiter threshold below the ceiling: headroom for the downsampling
MAX_PASSES = 5  # apply+verify passes; hard-limited speech needs 3-4
OVERSAMPLE_RATE = 192000  # where the limiter runs (loudnorm's own internal rate)

_NUM = r"(-?(?:\d+(?:\.\d+)?|inf))"


def _run(args: list[str], what: str) -> str:
    """Run ffmpeg; return its stderr (where filters print their reports)."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " / ".join(proc.stderr.strip().splitlines()[-3:])
        raise StageError(f"ffmpeg failed to {what}: {tail}", stage="master",
                         fix="check that the input is a readable audio file")
    return proc.stderr


def _float(text: str) -> float:
    return float("-inf") if text == "-inf" else float(text)


def measure(path: str | Path) -> dict[str, float]:
    """Integrated loudness (LUFS), loudness range (LU) and true peak (dBTP) of a file."""
    path = Path(path)
    if not path.is_file():
        raise StageError("file not found", stage="master", source=str(path), fix="check the path")
    # framelog=verbose: the per-100 ms lines go to a level we do not print.
    err = _run([FFMPEG, "-hide_banner", "-nostats", "-i", str(path),
                "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=verbose",
                "-f", "null", "-"], f"measure {path.name}")
    summary = err[err.rfind("Summary:"):]
    fields = {
        "integrated": rf"I:\s+{_NUM} LUFS",
        "lra": rf"LRA:\s+{_NUM} LU",
        "true_peak": rf"Peak:\s+{_NUM} dBFS",
    }
    out: dict[str, float] = {}
    for key, pattern in fields.items():
        m = re.search(pattern, summary)
        if not m:
            raise StageError(f"could not read {key} from ebur128's summary", stage="master",
                             source=str(path), fix="check the ffmpeg build has ebur128")
        out[key] = _float(m.group(1))
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if dur:
        h, mnt, s = dur.groups()
        out["duration"] = int(h) * 3600 + int(mnt) * 60 + float(s)
    return out


def _loudnorm_measure(path: Path, target_lufs: float, true_peak: float) -> dict[str, float]:
    err = _run([FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
                "-af", f"loudnorm=I={target_lufs}:TP={true_peak}:LRA=50:print_format=json",
                "-f", "null", "-"], f"measure {path.name} with loudnorm")
    blob = err[err.rfind("{"):err.rfind("}") + 1]
    try:
        data = json.loads(blob)
        return {k: _float(str(data[k])) for k in
                ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")}
    except (ValueError, KeyError) as e:
        raise StageError(f"could not read loudnorm's measurement ({e})", stage="master",
                         source=str(path), fix="check the ffmpeg build has loudnorm") from e


def _apply(src: Path, dst: Path, *, chain: list[str], limit_db: float, sample_rate: int,
           channels: int | None) -> None:
    # alimiter at 192 kHz is a true-peak limiter in effect; latency=true removes its delay,
    # level=false stops it from "auto-levelling" the output back up to 0 dBFS.
    limit = 10 ** (limit_db / 20)
    limiter = f"alimiter=limit={limit:.6f}:attack=1:release=60:level=false:latency=true"
    args = [FFMPEG, "-hide_banner", "-nostats", "-y", "-i", str(src), "-map", "0:a:0",
            "-af", ",".join([*chain, limiter]), "-ar", str(sample_rate)]
    if channels:
        args += ["-ac", str(channels)]
    # 24-bit PCM: no dither noise floor to speak of, and no float overs in the deliverable.
    args += ["-c:a", "pcm_s24le", str(dst)]
    _run(args, f"master {src.name}")


def master(in_path: str | Path, out_path: str | Path, *, target_lufs: float, true_peak: float,
           sample_rate: int = 48000, method: str = "loudnorm",
           channels: int | None = None) -> dict[str, Any]:
    """Normalise ``in_path`` to ``target_lufs`` with true peaks at/below ``true_peak`` and
    write a 24-bit WAV to ``out_path`` (atomically). Returns the input measurement, the
    gain and limit used, and the output measured independently with ebur128."""
    in_path, out_path = Path(in_path), Path(out_path)
    if method not in ("loudnorm", "gain"):
        raise StageError(f"unknown mastering method {method!r}", stage="master",
                         field="method", fix="use loudnorm or gain")
    if not -9 <= true_peak <= 0:
        raise StageError(f"true-peak ceiling {true_peak} dBTP is outside -9..0", stage="master",
                         field="true_peak", fix="use e.g. -1 (streaming) or -2 (broadcast)")
    t0 = time.perf_counter()
    before = measure(in_path)
    if before.get("duration", MIN_SECONDS) < MIN_SECONDS or before["integrated"] <= -70:
        raise StageError(
            "integrated loudness needs at least 0.4 s of audio above the -70 LUFS gate; "
            f"this has {before.get('duration', 0):.2f} s at {before['integrated']} LUFS",
            stage="master", source=str(in_path), fix="master a longer or non-silent clip")
    if method == "loudnorm":
        ln = _loudnorm_measure(in_path, target_lufs, true_peak)
        measured_i, measured_tp = ln["input_i"], ln["input_tp"]
    else:
        ln = {}
        measured_i, measured_tp = before["integrated"], before["true_peak"]
    gain = target_lufs - measured_i
    limit_db = true_peak - LIMIT_MARGIN_DB
    attempts: list[dict[str, float]] = []
    after: dict[str, float] = {}
    normalization = "volume"
    # One temp file beside the output, rewritten by each pass; only the last is published.
    with atomic_output(out_path) as tmp:
        for _ in range(MAX_PASSES):
            # loudnorm's linear mode is exactly this constant gain, and it only takes it
            # when the peaks stay under its TP target; otherwise volume= (module docstring).
            if method == "loudnorm" and not attempts and measured_tp + gain <= true_peak:
                normalization = "loudnorm-linear"
                chain = [
                    f"loudnorm=I={target_lufs}:TP={true_peak}:LRA=50"
                    f":measured_I={ln['input_i']}:measured_TP={ln['input_tp']}"
                    f":measured_LRA={ln['input_lra']}:measured_thresh={ln['input_thresh']}"
                    f":offset={ln['target_offset']}:linear=true:print_format=summary"
                ]
            else:
                if attempts:
                    normalization = "volume"
                chain = [f"aresample={OVERSAMPLE_RATE}", f"volume={gain:.4f}dB"]
            _apply(in_path, tmp, chain=chain, limit_db=limit_db, sample_rate=sample_rate,
                   channels=channels)
            after = measure(tmp)
            attempts.append({"gain_db": gain, "limit_db": limit_db, **after})
            miss = target_lufs - after["integrated"]
            over = after["true_peak"] - true_peak
            if abs(miss) <= AIM_TOLERANCE and over <= 0:
                break
            # Limiting lowers loudness, and each extra dB of gain gains less than 1 LU once
            # the limiter works hard (speech needs ~8 dB into it at -14/-1): step along the
            # secant of loudness against gain, starting from (0 dB, input loudness).
            if len(attempts) == 1:
                prev_gain, prev_i = 0.0, before["integrated"]
            else:
                prev_gain, prev_i = attempts[-2]["gain_db"], attempts[-2]["integrated"]
            slope = (after["integrated"] - prev_i) / (gain - prev_gain) if gain != prev_gain else 1.0
            slope = min(max(slope, 0.2), 1.0)
            gain += miss / slope
            if over > 0:  # a peak over the ceiling after downsampling: lower the limit
                limit_db -= over + 0.1
    return {
        "method": method,
        "normalization": normalization,
        "target_lufs": target_lufs,
        "true_peak_ceiling": true_peak,
        "sample_rate": sample_rate,
        "input": before,
        "loudnorm_measurement": ln,
        "gain_db": round(gain, 3),
        "limit_db": round(limit_db, 3),
        "passes": len(attempts),
        "attempts": attempts,
        "output": after,
        "within_spec": abs(target_lufs - after["integrated"]) <= LU_TOLERANCE
        and after["true_peak"] <= true_peak,
        "seconds": time.perf_counter() - t0,
    }

