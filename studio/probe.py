"""Measurements of media files that more than one stage reads: the mix masters to a
loudness and the conform reports the loudness of what it delivered, with the same meter.

``ebur128`` is ffmpeg's own EBU R128 meter (``ebur128=peak=true``): integrated loudness,
loudness range and 4x-oversampled true peak of a file's first audio stream. It is the
independent check: the mastering itself meters with numpy (``audio.loudness``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from studio.errors import StageError

FFMPEG = "ffmpeg"
ABS_GATE = -70.0  # LUFS, BS.1770-4 absolute gate (and what silence reads)

_NUM = r"(-?(?:\d+(?:\.\d+)?|inf))"


def _run(args: list[str], what: str, stage: str) -> str:
    """Run ffmpeg; return its stderr (where filters print their reports)."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " / ".join(proc.stderr.strip().splitlines()[-3:])
        raise StageError(f"ffmpeg failed to {what}: {tail}", stage=stage,
                         fix="check that the input is a readable audio file")
    return proc.stderr


def _float(text: str) -> float:
    return float("-inf") if text == "-inf" else float(text)


def ebur128(path: str | Path, *, extra: bool = False, stage: str = "master") -> dict[str, float]:
    """ebur128's summary: ``integrated`` (LUFS), ``lra`` (LU), ``true_peak`` (dBTP) and
    ``duration`` (s); ``extra`` adds what a loudness normaliser needs of an input (the
    relative gate ``threshold``; the sample ``rate``). Errors name ``stage``."""
    path = Path(path)
    if not path.is_file():
        raise StageError("file not found", stage=stage, source=str(path), fix="check the path")
    # framelog=verbose: the per-100 ms lines go to a level we do not print.
    err = _run([FFMPEG, "-hide_banner", "-nostats", "-i", str(path),
                "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=verbose",
                "-f", "null", "-"], f"measure {path.name}", stage)
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
            raise StageError(f"could not read {key} from ebur128's summary", stage=stage,
                             source=str(path), fix="check the ffmpeg build has ebur128")
        out[key] = _float(m.group(1))
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if dur:
        h, mnt, s = dur.groups()
        out["duration"] = int(h) * 3600 + int(mnt) * 60 + float(s)
    if extra:
        gate = re.search(rf"Threshold:\s+{_NUM} LUFS", summary)
        rate = re.search(r"Audio: .*?(\d+) Hz", err)
        out["threshold"] = _float(gate.group(1)) if gate else ABS_GATE
        out["rate"] = float(rate.group(1)) if rate else 48000.0
    return out
