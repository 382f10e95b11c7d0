"""The measuring passes behind ``studio.qc``: ffprobe, one decode of the picture, one of the
sound. Everything the checks need per frame or per sample comes out of these; the checks
themselves (``studio.qc``) only compare numbers with the spec.

Picture: ONE ffmpeg process decodes the video stream once, scales it to a small 4:2:0
picture in the file's own range (swscale ``fast_bilinear``: two-tap interpolation between
neighbouring samples, a light low-pass; ``area`` averaging cost a whole extra core-second
per 30 s of 1080p here, a third of the decode, for the same findings on areas larger than a
few pixels — a QC of a single hot pixel needs the full picture), and splits it: one copy goes raw down a pipe to numpy (luma levels,
black, freeze, the flash screen, palette samples, thumbnails), the other through ffmpeg's
``photosensitivity`` filter (bypassed: measure only) whose per-frame metadata goes to a
file. ffmpeg's ``signalstats``, ``blackdetect`` and ``freezedetect`` are not used: measured
on a 30 s 1080p file here, signalstats alone cost 6× a plain decode, while the numpy
measures on the small picture cost a fraction of the decode.

Sound: ONE ffmpeg process decodes the first audio stream once through
``silencedetect`` → ``ebur128=peak=true`` (both report on stderr) and hands the samples on
as float32 to numpy for clipping and the exact sample count. It runs at the same time as
the picture pass (a thread waits on it), so on two cores it costs little wall time."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import StudioError
from studio.qc_flash import FlashScreen

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
SMALL = 320  # longer side of the measured picture
THUMB_EVERY_S = 0.5
PALETTE_EVERY_S = 1.0
CLIP_LEVEL = 10 ** (-0.1 / 20)  # -0.1 dBFS: a lossy codec's ripple around a clipped flat top
CLIP_RUN = 3  # consecutive samples at or over it make one clipped run
_NUM = r"(-?(?:\d+(?:\.\d+)?|inf))"


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's streams and format as JSON."""
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " / ".join(proc.stderr.strip().splitlines()[-2:])
        raise StudioError(f"ffprobe cannot read it ({tail})", fix="pass a media file ffmpeg can open",
                          stage="qc", source=str(path))
    return json.loads(proc.stdout)


def rate_of(stream: dict[str, Any]) -> Fraction:
    for key in ("r_frame_rate", "avg_frame_rate"):
        try:
            r = Fraction(str(stream.get(key, "0/0")))
        except (ValueError, ZeroDivisionError):
            continue
        if r > 0:
            return r
    return Fraction(25)


@dataclass
class VideoMeasures:
    frames: int = 0
    width: int = 0
    height: int = 0
    ymin: list[int] = field(default_factory=list)  # per frame, on the small picture
    ymax: list[int] = field(default_factory=list)
    out_of_range: list[float] = field(default_factory=list)  # fraction of pixels outside legal
    black: list[float] = field(default_factory=list)  # fraction of pixels below the black level
    motion: list[float] = field(default_factory=list)  # mean |ΔY| from the previous frame, 0-1
    flash: FlashScreen | None = None
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> RGB
    palette_samples: list[np.ndarray] = field(default_factory=list)  # RGB pixels
    ps_badness: list[float] = field(default_factory=list)  # ffmpeg photosensitivity, per frame
    ps_frame_badness: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _small_size(w: int, h: int, longer: int) -> tuple[int, int]:
    s = longer / max(w, h)
    return max(8, 2 * round(w * s / 2)), max(8, 2 * round(h * s / 2))


def _read_exact(pipe: Any, n: int) -> bytes:
    """Up to ``n`` bytes: less only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        b = pipe.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def video_pass(path: Path, stream: dict[str, Any], rate: Fraction, *, full_range: bool,
               legal: tuple[int, int], black_level: float, chunk: int = 32) -> VideoMeasures:
    """The picture pass. Two raw streams leave the one decode: the luma plane of the
    small picture (SMALL px on its longer side; levels, black, freeze) on stdout, and a
    quarter of that size in R'G'B' (converted by ffmpeg with the BT.709 matrix and the
    file's range; the flash screen, palette and thumbnails) on a second pipe, which a
    thread drains so neither pipe can stall ffmpeg."""
    w, h = _small_size(int(stream["width"]), int(stream["height"]), SMALL)
    rw, rh = _small_size(int(stream["width"]), int(stream["height"]), SMALL // 4)
    fmt = "yuvj420p" if full_range else "yuv420p"
    rng = "pc" if full_range else "tv"
    m = VideoMeasures(width=w, height=h, flash=FlashScreen(rate=float(rate), cell=2))
    thumb_step = max(1, round(float(rate) * THUMB_EVERY_S))
    palette_step = max(1, round(float(rate) * PALETTE_EVERY_S))
    ysize, rsize = w * h, rw * rh * 3
    lo, hi = legal
    rfd, wfd = os.pipe()
    with tempfile.TemporaryDirectory(prefix="studio-qc-") as tmp:
        ps_file = Path(tmp) / "ps.txt"
        graph = (f"[0:v:0]scale={w}:{h}:flags=fast_bilinear,format={fmt},split[a][b];"
                 f"[a]extractplanes=y[luma];"
                 f"[b]scale={rw}:{rh}:flags=area:in_color_matrix=bt709:in_range={rng},format=rgb24,split[rgb][ps];"
                 f"[ps]photosensitivity=bypass=1,metadata=mode=print:file={_escape(ps_file)},nullsink")
        args = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
                "-filter_complex", graph,
                "-map", "[luma]", "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1",
                "-map", "[rgb]", "-fps_mode", "passthrough", "-f", "rawvideo", f"pipe:{wfd}"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(wfd,))
        os.close(wfd)
        err_chunks: list[bytes] = []
        rgb_frames: queue.Queue[bytes] = queue.Queue()
        stderr_reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))  # type: ignore[union-attr]

        def drain_rgb() -> None:
            with os.fdopen(rfd, "rb") as pipe:
                while b := _read_exact(pipe, rsize * chunk):
                    rgb_frames.put(b)
            rgb_frames.put(b"")

        # Both outputs are drained by their own threads: ffmpeg writes them from separate
        # threads in no fixed order, so a reader that waits on one while the other's pipe
        # is full (one small-picture luma frame fills it) would deadlock the decode.
        luma_frames: queue.Queue[bytes] = queue.Queue()

        def drain_luma() -> None:
            assert proc.stdout is not None
            while b := _read_exact(proc.stdout, ysize * chunk):
                luma_frames.put(b)
            luma_frames.put(b"")

        rgb_reader = threading.Thread(target=drain_rgb)
        luma_reader = threading.Thread(target=drain_luma)
        stderr_reader.start()
        rgb_reader.start()
        luma_reader.start()
        prev: np.ndarray | None = None
        pending = b""
        rgb_done = False
        assert proc.stdout is not None
        while True:
            buf = luma_frames.get()
            n = len(buf) // ysize
            if n == 0:
                break
            flat = np.frombuffer(buf[: n * ysize], np.uint8).reshape(n, ysize)
            m.ymin += flat.min(axis=1).tolist()
            m.ymax += flat.max(axis=1).tolist()
            m.out_of_range += (((flat < lo).sum(axis=1) + (flat > hi).sum(axis=1)) / ysize).tolist()
            m.black += ((flat <= black_level).sum(axis=1) / ysize).tolist()
            # Freeze: mean |ΔY| on every other pixel each way (the small picture).
            yq = flat.reshape(n, h, w)[:, ::2, ::2].astype(np.int16)
            first = yq[:1] if prev is None else prev[None]
            d = np.abs(np.diff(np.concatenate([first, yq]), axis=0)).sum(axis=(1, 2))
            m.motion += (d / (yq[0].size * (hi - lo))).tolist()
            prev = yq[-1]
            while len(pending) < n * rsize and not rgb_done:
                more = rgb_frames.get()
                rgb_done = not more
                pending += more
            k = min(n, len(pending) // rsize)
            rgb = np.frombuffer(pending[: k * rsize], np.uint8).reshape(k, rh, rw, 3)
            pending = pending[k * rsize:]
            m.flash.feed(rgb)
            for i in range(k):
                idx = m.frames + i
                if idx % thumb_step == 0:
                    m.thumbs[idx] = rgb[i].copy()
                if idx % palette_step == 0:
                    m.palette_samples.append(rgb[i].reshape(-1, 3).copy())
            m.frames += n
        luma_reader.join()
        proc.stdout.close()
        proc.wait()
        stderr_reader.join()
        rgb_reader.join()
        stderr = b"".join(err_chunks).decode("utf-8", "replace")
        m.errors = [line for line in stderr.splitlines() if line.strip()]
        if proc.returncode != 0 and m.frames == 0:
            raise StudioError(f"ffmpeg could not decode the picture ({' / '.join(m.errors[-2:])})",
                              fix="check the file plays; re-export it", stage="qc", source=str(path))
        if ps_file.exists():
            for line in ps_file.read_text().splitlines():
                if line.startswith("lavfi.photosensitivity.badness="):
                    m.ps_badness.append(float(line.split("=", 1)[1]))
                elif line.startswith("lavfi.photosensitivity.frame-badness="):
                    m.ps_frame_badness.append(float(line.split("=", 1)[1]))
    return m


def _escape(p: Path) -> str:
    """A path inside a filtergraph option: escape what the graph parser reads."""
    return str(p).replace("\\", "\\\\\\\\").replace(":", "\\\\:").replace("'", "\\\\'")


@dataclass
class AudioMeasures:
    rate: int = 0
    channels: int = 0
    samples: int = 0
    integrated: float | None = None
    lra: float | None = None
    true_peak: float | None = None
    silences: list[tuple[float, float]] = field(default_factory=list)
    clip_runs: list[tuple[int, int, int]] = field(default_factory=list)  # start sample, length, channel
    clipped_samples: int = 0
    sample_peak: float = 0.0
    errors: list[str] = field(default_factory=list)


def audio_pass(path: Path, stream: dict[str, Any], *, silence_db: float, silence_s: float) -> AudioMeasures:
    rate, ch = int(stream.get("sample_rate", 48000)), int(stream.get("channels", 2))
    m = AudioMeasures(rate=rate, channels=ch)
    graph = f"silencedetect=n={silence_db}dB:d={silence_s},ebur128=peak=true:framelog=verbose"
    args = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-i", str(path),
            "-map", "0:a:0", "-af", graph, "-f", "f32le", "-ac", str(ch), "-ar", str(rate), "pipe:1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    assert proc.stdout is not None
    carry = np.zeros(ch, np.int64)  # length of the clipped run open at the chunk's end, per channel
    step = rate * ch * 4  # one second of samples per read
    tail = b""
    while True:
        buf = proc.stdout.read(step)
        if not buf:
            break
        buf = tail + buf
        usable = len(buf) - len(buf) % (4 * ch)
        tail = buf[usable:]
        x = np.frombuffer(buf[:usable], np.float32).reshape(-1, ch)
        if x.size:
            m.sample_peak = max(m.sample_peak, float(np.abs(x).max()))
            over = np.abs(x) >= CLIP_LEVEL
            m.clipped_samples += int(over.sum())
            for c in range(ch):
                carry[c] = _runs(over[:, c], m.samples, int(carry[c]), c, m.clip_runs)
        m.samples += x.shape[0]
    for c in range(ch):  # a run still open at the end
        if carry[c] >= CLIP_RUN:
            m.clip_runs.append((m.samples - int(carry[c]), int(carry[c]), c))
    proc.stdout.close()
    proc.wait()
    reader.join()
    err = b"".join(err_chunks).decode("utf-8", "replace")
    m.errors = [line for line in err.splitlines() if "[error]" in line or "[fatal]" in line]
    summary = err[err.rfind("Summary:"):]
    for key, pattern in (("integrated", rf"I:\s+{_NUM} LUFS"), ("lra", rf"LRA:\s+{_NUM} LU"),
                         ("true_peak", rf"Peak:\s+{_NUM} dBFS")):
        hit = re.search(pattern, summary)
        if hit:
            setattr(m, key, float(hit.group(1)))
    starts = [float(s) for s in re.findall(rf"silence_start: {_NUM}", err)]
    ends = [float(e) for e in re.findall(rf"silence_end: {_NUM}", err)]
    dur = m.samples / rate if rate else 0.0
    for i, s in enumerate(starts):
        m.silences.append((max(0.0, s), ends[i] if i < len(ends) else dur))
    return m


def _runs(over: np.ndarray, offset: int, carry: int, channel: int,
          out: list[tuple[int, int, int]]) -> int:
    """Append runs of True of length ≥ CLIP_RUN (start sample, length, channel); a run
    touching the chunk's end is carried. Returns the open run's length."""
    if not over.any():
        if carry >= CLIP_RUN:
            out.append((offset - carry, carry, channel))
        return 0
    padded = np.concatenate([[False], over, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    open_len = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        length = e - s
        start = offset + s
        if s == 0 and carry:
            length += carry
            start -= carry
        if e == len(over):
            open_len = length
            continue
        if length >= CLIP_RUN:
            out.append((start, length, channel))
    if starts[0] != 0 and carry >= CLIP_RUN:
        out.append((offset - carry, carry, channel))
    return open_len
