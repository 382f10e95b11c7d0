"""Loudness measurement and mastering to a channel's loudness target and true-peak ceiling.

``measure`` reads integrated loudness, loudness range and 4x-oversampled true peak (EBU
R128 / ITU-R BS.1770-4) with the numpy meter in ``audio.loudness`` (``method="numpy"``,
the default), or from ffmpeg's ``ebur128=peak=true`` summary (``method="ebur128"``). The
two agree to about 0.01 LU and 0.02 dB (tests/test_audio_master.py checks it); the numpy
meter takes about a sixth of the time of ffmpeg's, which is what lets measuring and
mastering together run at over 100x real time (bench/bench_audio.py).

``master`` normalises in two passes, because single-pass loudnorm misses its target on
short clips (it has to guess the integrated loudness while it is still reading the file):

1. measure the input with the numpy meter;
2. apply the gain the measurement asks for, as a constant gain, with ffmpeg: ``loudnorm``
   in linear mode fed our measurement (``method="loudnorm"``), or ``volume``
   (``method="gain"``, and whenever loudnorm would not take linear mode), then
   ``alimiter`` below the ceiling. ffmpeg's output comes back as float PCM on a pipe; it
   is metered as it arrives and written to the 24-bit WAV by us, so the verification
   reads exactly the samples that are published and the file is never read back;
3. if that measurement is off the target by more than AIM_TOLERANCE, or a true peak is
   over the ceiling (less TP_GUARD_DB), correct the gain/limit and redo step 2 (at most
   MAX_PASSES in all).

Where the limiter runs: BS.1770 true peak is an inter-sample measure, and a limiter at
48 kHz only sees samples, so the old chain ran ``alimiter`` at 192 kHz (4x oversampled).
That round trip through the resampler cost 3x the CPU of the pass and took the top of
the band with it (0.17 LU off a broadband signal, so the gain missed and a pass was
redone). Since step 3 measures true peak itself, the limiter now runs at the output rate
with LIMIT_MARGIN_DB of headroom for the inter-sample overs it cannot see; the tests'
music overshoots a sample-peak limit by 0.7 dB, and an over that gets through costs one
more pass with the limit lowered by the over. Material that overshoots by much more
(noise, cymbals: 1.9 dB) would need a limit far under the ceiling, i.e. audibly deeper
limiting; its later passes run the limiter 4x oversampled, as the old chain did.

loudnorm refuses linear mode (and silently goes dynamic, the mode that misses on short
clips) when the gain would push the true peak over its TP target, and when the measured
LRA is 0 (it reads 0 as "not measured"; every clip under ~3.5 s has LRA 0). Then the same
constant gain is applied with ``volume`` instead and the limiter does the peak control.

ffmpeg 5.1 quirk: ``loudnorm,aresample`` fails on some WAVs ("Cannot select channel
layout"), so the output rate is set with ``-ar``, never an ``aresample`` after loudnorm.
Every ffmpeg call is an argument list; nothing goes through a shell.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from audio import loudness
from studio import probe
from studio.errors import StageError
from studio.store import atomic_output

FFMPEG = "ffmpeg"
# Integrated loudness gates in 400 ms blocks: shorter input has no measurement.
MIN_SECONDS = 0.4
LU_TOLERANCE = 0.5  # the spec's tolerance on integrated loudness
AIM_TOLERANCE = 0.2  # what master() aims for, so the spec's tolerance is never at risk
# The numpy meter reads true peak within 0.015 dB of ebur128 where 192 kHz is a multiple
# of the rate (both interpolate the same points), and within 0.05 dB at 44.1 kHz (ebur128
# interpolates other points): aim this far under the ceiling so that an independent
# ebur128 check can never read the master over it.
TP_GUARD_DB = 0.05
TP_GUARD_OFF_GRID_DB = 0.1
# Sample-peak limiter threshold below the ceiling: room for the inter-sample overs it
# does not see (0.7 dB on the test music; with 0.3 that music needed a second pass).
LIMIT_MARGIN_DB = 0.8
# Material whose inter-sample overs beat that margin by more than this (noise, cymbals:
# 1.9 dB on the test's noise bursts) would need a sample-peak limit far under the ceiling;
# its later passes run the limiter 4x oversampled instead, a true-peak limiter, as the old
# chain always did, with the old 0.3 dB margin.
OVERSAMPLE_OVER_DB = 0.3
OVERSAMPLE = 4
OVERSAMPLED_MARGIN_DB = 0.3
MAX_PASSES = 5  # apply+verify passes; hard-limited speech needs 3
METHODS = ("numpy", "ebur128")
# What master() measures its input and every pass with. "ebur128" runs ffmpeg's meter on
# the input and on each written pass instead: the baseline bench/bench_audio.py compares
# the numpy meter with (same passes, same decisions, 0.1-LU readings).
METER = "numpy"

_KEYS = ("integrated", "lra", "true_peak", "duration")


def _tidy(m: dict[str, float]) -> dict[str, float]:
    """The public keys, rounded past the meter's accuracy (0.01) to keep records short."""
    return {k: round(m[k], 3) if m[k] != float("-inf") else m[k] for k in _KEYS if k in m}


def measure(path: str | Path, *, method: str = "numpy") -> dict[str, float]:
    """Integrated loudness (LUFS), loudness range (LU), true peak (dBTP) and duration (s)
    of a file's first audio stream; ``method`` picks the numpy meter or ffmpeg ebur128."""
    path = Path(path)
    if method not in METHODS:
        raise StageError(f"unknown measurement method {method!r}", stage="master",
                         field="method", fix="use numpy or ebur128")
    if not path.is_file():
        raise StageError("file not found", stage="master", source=str(path), fix="check the path")
    if method == "ebur128":
        return _measure_ebur128(path)
    return _tidy(_meter(path))


def _meter(path: Path) -> dict[str, float]:
    try:
        return loudness.measure_file(path)
    except loudness.MeterError as e:
        raise StageError(str(e), stage="master", source=str(path),
                         fix="check that the input is a readable audio file") from e


def _measure_ebur128(path: Path, extra: bool = False) -> dict[str, float]:
    """ebur128's summary (``studio.probe``: the conform checks deliverables with it too);
    ``extra`` adds what master() needs of an input (the relative gate, for loudnorm; the
    sample rate)."""
    return probe.ebur128(path, extra=extra, stage="master")


class _Wav24:
    """A 24-bit PCM WAV written as the samples arrive; sizes are patched on close."""

    def __init__(self, f: IO[bytes], rate: int, channels: int, mask: int | None) -> None:
        self.f, self.channels, self.frames = f, channels, 0
        block = 3 * channels
        if channels <= 2:
            fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 24)
        else:  # more than two channels: say which (WAVE_FORMAT_EXTENSIBLE), as ffmpeg does
            mask = mask or 0
            fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, 24,
                              22, 24, mask) + b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        f.write(b"RIFF\0\0\0\0WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data\0\0\0\0")
        self.data_at = f.tell()

    # The low three bytes of each little-endian int32, as one 3-byte item: numpy copies
    # these twice as fast as a (n, 4)[:, :3] byte slice.
    _LOW3 = np.dtype({"names": ["b"], "formats": ["V3"], "offsets": [0], "itemsize": 4})

    def write(self, x: np.ndarray) -> None:
        # Round to 24 bits (ffmpeg truncates); the limiter keeps everything under 0 dBFS,
        # the clip is only there so a stray over saturates instead of wrapping around.
        y = x * np.float32(8388608.0)
        np.rint(y, out=y)
        np.clip(y, -8388608, 8388607, out=y)
        q = np.ascontiguousarray(y, dtype="<i4")
        self.f.write(q.view(self._LOW3)["b"].tobytes())
        self.frames += x.shape[0]

    def close(self) -> None:
        size = self.frames * 3 * self.channels
        if size & 1:
            self.f.write(b"\0")  # RIFF chunks are word-aligned
        if self.data_at + size + 8 > 0xFFFFFFFF:
            raise StageError("the master is over 4 GB, more than a WAV can hold", stage="master",
                             fix="master shorter sections")
        end = self.f.tell()
        self.f.seek(4)
        self.f.write(struct.pack("<I", end - 8))
        self.f.seek(self.data_at - 4)
        self.f.write(struct.pack("<I", size))
        self.f.seek(end)


def _apply(src: Path, dst: Path, *, chain: list[str], limit_db: float, sample_rate: int,
           channels: int | None) -> dict[str, float]:
    """One ffmpeg pass: chain + limiter, output as float WAV on a pipe, metered and
    written to ``dst`` as 24-bit PCM while ffmpeg is still producing it (with METER
    "ebur128": written, then measured by ffmpeg)."""
    # latency=true removes alimiter's delay; level=false stops it from "auto-levelling"
    # the output back up to 0 dBFS.
    limit = max(10 ** (limit_db / 20), 0.0625)  # alimiter's floor (-24 dB)
    limiter = f"alimiter=limit={limit:.6f}:attack=1:release=60:level=false:latency=true"
    args = [FFMPEG, "-nostdin", "-v", "error", "-i", str(src), "-map", "0:a:0",
            "-af", ",".join([*chain, limiter]), "-ar", str(sample_rate)]
    if channels:
        args += ["-ac", str(channels)]
    args += ["-c:a", "pcm_f32le", "-f", "wav", "-"]

    def write_and_meter(out: IO[bytes]) -> dict[str, float]:
        info = loudness.read_wav_header(out)
        with open(dst, "wb") as f:
            wav = _Wav24(f, info.rate, info.channels, info.mask)
            if METER == "numpy":
                result = loudness.meter_stream(out, info, wav.write).result()
            else:
                loudness.read_frames(out, info, wav.write)
                result = {}
            wav.close()
        return result

    result, code, tail = loudness.run_wav_pipe(args, write_and_meter)
    if code != 0 or result is None:
        raise StageError(f"ffmpeg failed to master {src.name}: {tail or 'no audio came out'}",
                         stage="master", fix="check that the input is a readable audio file")
    return result or _measure_ebur128(dst)


def master(in_path: str | Path, out_path: str | Path, *, target_lufs: float, true_peak: float,
           sample_rate: int = 48000, method: str = "loudnorm",
           channels: int | None = None) -> dict[str, Any]:
    """Normalise ``in_path`` to ``target_lufs`` with true peaks at/below ``true_peak`` and
    write a 24-bit WAV to ``out_path`` (atomically). Returns the input measurement, the
    gain and limit used, and the output as measured (numpy meter) from the very samples
    written."""
    in_path, out_path = Path(in_path), Path(out_path)
    if method not in ("loudnorm", "gain"):
        raise StageError(f"unknown mastering method {method!r}", stage="master",
                         field="method", fix="use loudnorm or gain")
    if not -9 <= true_peak <= 0:
        raise StageError(f"true-peak ceiling {true_peak} dBTP is outside -9..0", stage="master",
                         field="true_peak", fix="use e.g. -1 (streaming) or -2 (broadcast)")
    if not 8000 <= sample_rate <= 384000:
        raise StageError(f"sample rate {sample_rate} Hz is outside 8000..384000", stage="master",
                         field="sample_rate", fix="use e.g. 48000")
    t0 = time.perf_counter()
    if not in_path.is_file():
        raise StageError("file not found", stage="master", source=str(in_path), fix="check the path")
    full = _meter(in_path) if METER == "numpy" else _measure_ebur128(in_path, extra=True)
    before = _tidy(full)
    if before.get("duration", MIN_SECONDS) < MIN_SECONDS or before["integrated"] <= loudness.ABS_GATE:
        raise StageError(
            "integrated loudness needs at least 0.4 s of audio above the -70 LUFS gate; "
            f"this has {before.get('duration', 0):.2f} s at {before['integrated']} LUFS",
            stage="master", source=str(in_path), fix="master a longer or non-silent clip")
    # What loudnorm's first pass would have reported, from our meter (same definitions).
    ln = {"input_i": before["integrated"], "input_tp": before["true_peak"],
          "input_lra": before["lra"], "input_thresh": round(full["threshold"], 3),
          "target_offset": 0.0} if method == "loudnorm" else {}
    gain = target_lufs - before["integrated"]
    limit_db = true_peak - LIMIT_MARGIN_DB
    aim_ceiling = true_peak - (TP_GUARD_DB if 192000 % sample_rate == 0 else TP_GUARD_OFF_GRID_DB)
    attempts: list[dict[str, float]] = []
    after: dict[str, float] = {}
    normalization = "volume"
    oversampled = False
    # One temp file beside the output, rewritten by each pass; only the last is published.
    with atomic_output(out_path) as tmp:
        for _ in range(MAX_PASSES):
            # loudnorm's linear mode is exactly this constant gain, and it only takes it
            # when the peaks stay under its TP target; otherwise volume= (module docstring).
            if method == "loudnorm" and not attempts and _loudnorm_linear_ok(ln, target_lufs,
                                                                             aim_ceiling):
                normalization = "loudnorm-linear"
                chain = [
                    f"loudnorm=I={target_lufs}:TP={true_peak}:LRA=50"
                    f":measured_I={ln['input_i']}:measured_TP={ln['input_tp']}"
                    f":measured_LRA={ln['input_lra']}:measured_thresh={ln['input_thresh']}"
                    f":offset={ln['target_offset']}:linear=true:print_format=none"
                ]
                # Linear mode keeps every peak under the ceiling already; the limiter only
                # stands guard (a sample over the aim cannot happen, its true peak >= it).
                pass_limit = aim_ceiling
            else:
                if attempts:
                    normalization = "volume"
                chain = [f"volume={gain:.4f}dB"]
                rate = sample_rate * (OVERSAMPLE if oversampled else 1)
                if full["rate"] != rate:  # limit at (a multiple of) the delivered rate
                    chain.insert(0, f"aresample={rate}")
                pass_limit = limit_db
            after = _tidy(_apply(in_path, tmp, chain=chain, limit_db=pass_limit,
                                 sample_rate=sample_rate, channels=channels))
            attempts.append({"gain_db": gain, "limit_db": pass_limit,
                             "limiter_rate": sample_rate * (OVERSAMPLE if oversampled else 1),
                             **after})
            miss = target_lufs - after["integrated"]
            over = after["true_peak"] - aim_ceiling
            if abs(miss) <= AIM_TOLERANCE and over <= 0:
                break
            # Limiting lowers loudness, and each extra dB of gain gains less than 1 LU once
            # the limiter works hard (speech needs ~8 dB into it at -14/-1).
            if len(attempts) == 1:
                # One point: the limiter starts to bite at gain g0 (its limit less the input
                # peak) and its loudness loss grows about as (g - g0)^2, so the local slope
                # is 1 - 2 * loss / (g - g0). (The secant from 0 dB, used before, is the
                # average slope and overestimates it: speech took four passes, now three.)
                loss = before["integrated"] + gain - after["integrated"]
                g0 = pass_limit - before["true_peak"]
                slope = 1 - 2 * loss / (gain - g0) if gain - g0 > 1 and loss > 0 else 1.0
            else:  # two points: the secant through the last two
                prev_gain, prev_i = attempts[-2]["gain_db"], attempts[-2]["integrated"]
                slope = ((after["integrated"] - prev_i) / (gain - prev_gain)
                         if gain != prev_gain else 1.0)
            slope = min(max(slope, 0.2), 1.0)
            gain += miss / slope
            if over > OVERSAMPLE_OVER_DB and not oversampled and pass_limit == limit_db:
                oversampled = True  # inter-sample overs a sample-peak limiter cannot hold
                limit_db = true_peak - OVERSAMPLED_MARGIN_DB
            elif over > 0:  # a peak over the ceiling after the limiter: lower the limit
                limit_db -= over + 0.1
    return {
        "method": method,
        "normalization": normalization,
        "target_lufs": target_lufs,
        "true_peak_ceiling": true_peak,
        "sample_rate": sample_rate,
        "input": before,
        "loudnorm_measurement": ln,
        "gain_db": round(attempts[-1]["gain_db"], 3),
        "limit_db": round(attempts[-1]["limit_db"], 3),
        "passes": len(attempts),
        "attempts": attempts,
        "output": after,
        "within_spec": abs(target_lufs - after["integrated"]) <= LU_TOLERANCE
        and after["true_peak"] <= true_peak,
        "seconds": time.perf_counter() - t0,
    }


def _loudnorm_linear_ok(ln: dict[str, float], target_lufs: float, ceiling: float) -> bool:
    """Whether loudnorm will take linear mode with these values (af_loudnorm.c: the peaks
    must stay under TP, and a measured I or LRA of exactly 0 reads as "not measured") and
    accept them at all (its options refuse e.g. an input louder than 0 LUFS)."""
    return (ln["input_tp"] + target_lufs - ln["input_i"] <= ceiling
            and -99 <= ln["input_i"] < 0 and -99 <= ln["input_thresh"] <= 0
            and ln["input_thresh"] != -70 and -99 <= ln["input_tp"] <= 99
            and 0 < ln["input_lra"] <= 50 and -70 <= target_lufs <= -5)
