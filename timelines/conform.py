"""Conform and encode: one ffmpeg filter graph per deliverable, stills with PIL.

A deliverable is made in a single ffmpeg process: every clip is trimmed, reframed with
``crop_box`` (never stretched), scaled, concatenated, retimed to the channel's rate,
finished (grain and output sharpening; the style pack's LUT is applied once per shot in
the clips stage, or here when a caller passes ``lut``), letterboxed where the spec has
an ``active_aspect``, captions burned in, and encoded in one pass, so frames are decoded once and never touch the disk or Python in between (at
1080p the grade costs about as much as the encode: a separate pass would add a second
encode and decode on top). ``conform_videos`` makes several channels' deliverables in one
process from one decode of every clip.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import ffmpeg
import numpy as np
from PIL import Image, ImageFilter

from studio.copyfit import StillCopy
from studio.errors import StageError
from studio.framing import Crop, crop_box
from studio.specs import ChannelSpec
from studio.store import (
    FILE_MODE,
    MediaRef,
    Store,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    sha256_file,
)
from timelines import grade

CODE_VERSION = "conform.2"  # 2: LUT in 16-bit RGB, 3x3 sharpen, multi-output

GRAIN_MAX_STRENGTH = 12  # ffmpeg `noise` strength at grain = 1 (of 100): visible, not ugly
SHARPEN_AMOUNT = 0.6  # unsharp-mask luma amount per unit of sharpen (sharpen <= 2 -> <= 1.2)
OVERLAY_EPS = 1e-4  # seconds: far below any frame duration, far above float rounding
JPEG_QUALITY = (50, 95)  # binary search range for stills


@dataclass(frozen=True)
class ConformClip:
    """One cut of the edit: ``frames`` frames of ``path`` from ``start_frame`` (in the
    clip's own frames; handles lie outside the range)."""

    path: Path
    start_frame: int
    frames: int
    rate: Fraction
    width: int
    height: int
    focus: tuple[float, float]
    name: str


# ---------------------------------------------------------------------------- helpers


def _rate_str(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def _bits(value: str) -> int:
    """"8M" -> 8_000_000, "384k" -> 384_000, "5000000" -> 5_000_000."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kM]?)", value)
    if not m:
        raise ValueError(f"not a bitrate: {value!r}")
    scale = {"": 1, "k": 1_000, "M": 1_000_000}[m.group(2)]
    return int(float(m.group(1)) * scale)


def _crop_dict(name: str, crop: Crop) -> dict[str, Any]:
    return {"clip": name, "x": crop.x, "y": crop.y, "w": crop.w, "h": crop.h,
            "zoom": crop.zoom, "focus_in_safe": crop.focus_in_safe}


def _timing(clips: list[ConformClip], spec: ChannelSpec) -> tuple[Fraction, int]:
    """Cut duration (exact) and the number of frames ffmpeg's ``fps`` filter makes of it.

    ``fps`` (round=near) rounds the end-of-stream time to the nearest output frame and
    emits every frame before it: round(duration × R), halves up."""
    duration = sum((Fraction(c.frames) / Fraction(c.rate) for c in clips), Fraction(0))
    return duration, math.floor(duration * spec.rate + Fraction(1, 2))


def _check_clips(clips: list[ConformClip], spec: ChannelSpec) -> None:
    where = {"stage": "conform", "field": spec.name}
    if spec.kind != "video":
        raise StageError(f"spec {spec.name} is a {spec.kind} spec, not video",
                         fix="conform stills with conform_still", **where)
    if not clips:
        raise StageError("the edit has no clips", fix="add at least one shot to the timeline",
                         **where)
    for c in clips:
        if c.frames < 1 or c.start_frame < 0:
            raise StageError(
                f"clip {c.name}: source range starts at frame {c.start_frame} "
                f"and lasts {c.frames} frames",
                fix="give every cut a start >= 0 and at least one frame", **where)
        if Fraction(c.rate) <= 0:
            raise StageError(f"clip {c.name}: frame rate {c.rate} is not positive",
                             fix="probe the clip for its rate", **where)
        if not Path(c.path).is_file():
            raise StageError(f"clip {c.name}: {c.path} does not exist",
                             fix="re-render the shot's clip (stage clips)", **where)


# ---------------------------------------------------------------------------- video


@dataclass(frozen=True)
class VideoJob:
    """One deliverable of a multi-output conform: the channel spec, where the file goes,
    its audio, and images to burn in (captions). ``overlays`` are duck-typed: anything
    with ``path`` (a PNG), ``x``, ``y`` (pixels of the output frame) and ``start``,
    ``end`` (seconds of the edit). With ``audio_copy`` the audio is an AAC ``.m4a`` of
    the picture's length, copied into the file untouched."""

    spec: ChannelSpec
    out: Path
    audio: Path | None = None
    overlays: list[Any] = field(default_factory=list)
    audio_copy: bool = False


def _clip_source(clip: ConformClip, seen: dict[tuple[str, str], int]) -> Any:
    """Input and the spec-independent part of a clip's graph: seek and trim. In a
    multi-output conform this stream is decoded once and split for every spec."""
    rate = Fraction(clip.rate)
    input_opts: dict[str, Any] = {}
    if clip.start_frame > 0:
        # Seek the input to half a frame before the cut, so ffmpeg skips decoding the
        # head handle; half a frame of slack keeps the first kept frame exact even if
        # timestamps are rounded. The trim below then counts from the cut's first frame.
        input_opts["ss"] = f"{float((clip.start_frame - Fraction(1, 2)) / rate):.6f}"
    key = (str(clip.path), input_opts.get("ss", ""))
    if key in seen:
        # The same master cut twice at the same point. typed-ffmpeg would merge equal
        # inputs into one, and one decoder feeding two trims buffers the second cut's
        # frames in memory until concat reaches it; a harmless distinct option keeps
        # them separate inputs.
        seen[key] += 1
        input_opts["thread_queue_size"] = 8 + seen[key]
    else:
        seen[key] = 0
    src = ffmpeg.input(str(clip.path), **input_opts)
    v = src.video.trim(start_frame=0, end_frame=clip.frames).setpts(expr="PTS-STARTPTS")
    if clip.frames == 1:
        # concat ends a segment at last pts × n/(n-1) (the mean frame duration), which
        # gives a one-frame cut no duration at all: the next cut would land on it. Add
        # a clone half a frame later so the segment ends exactly one frame in; fps
        # below drops the clone.
        v = v.tpad(stop=1, stop_mode="clone").setpts(
            expr=f"N*{rate.denominator}/({2 * rate.numerator}*TB)")
    return v


def _reframe(v: Any, clip: ConformClip, spec: ChannelSpec, rgb: bool) -> tuple[Any, Crop]:
    """A clip's stream reframed for ``spec``: crop, scale to the active picture (the whole
    frame unless the spec letterboxes; and, with a LUT to apply, straight to the LUT's
    16-bit RGB in the same pass)."""
    width, height = spec.active_size
    crop = crop_box(clip.width, clip.height, spec, clip.focus)
    # 4:2:0 sources crop on the chroma grid: ffmpeg would round odd offsets down anyway,
    # do it here so the reported crop is the one applied.
    crop = Crop(crop.x // 2 * 2, crop.y // 2 * 2, crop.w, crop.h, crop.zoom, crop.focus_in_safe)
    v = v.crop(out_w=crop.w, out_h=crop.h, x=crop.x, y=crop.y)
    if rgb:
        # To the LUT's RGB while scaling, in one pass, with zimg: swscale has no SIMD path
        # from YUV to 16-bit planar RGB and costs about 1.5x as much there and back.
        # Masters are BT.709 limited range (the camera stage writes them so): say so
        # rather than trust the tags. Chroma is centre-sited, as swscale (which made the
        # masters and makes the ungraded path) treats it; zimg's default, left, would
        # shift colour edges by half a chroma sample against the rest of the pipeline.
        v = (v.zscale(w=width, h=height, filter="lanczos", matrixin="709",
                      in_range="limited", out_range="full", chromalin="center")
             .format(pix_fmts=grade.LUT_PIX_FMT))
    else:
        v = v.scale(w=width, h=height, flags="lanczos", out_color_matrix="bt709",
                    out_range="tv")
    return v.setsar(sar="1"), crop


def _encoder_options(spec: ChannelSpec, preset: str, threads: int | None) -> dict[str, Any]:
    rate = spec.rate
    gop = max(1, round(spec.gop_seconds * rate))
    opts: dict[str, Any] = {}
    if spec.codec == "hevc":
        opts["c:v"] = "libx265"
        opts["tag:v"] = "hvc1"  # Apple players refuse the default hev1 tag
        opts["x265-params"] = (f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:"
                               f"bframes={spec.bframes}:log-level=error")
    else:
        opts["c:v"] = "libx264"
        opts["x264-params"] = "open_gop=0"
    opts["preset"] = preset
    if spec.crf is not None:
        opts["crf"] = spec.crf  # quality-targeted; max_bitrate below caps it
    else:
        assert spec.video_bitrate is not None
        opts["b:v"] = spec.video_bitrate
    if spec.max_bitrate:
        opts["maxrate"] = spec.max_bitrate
        opts["bufsize"] = str(2 * _bits(spec.max_bitrate))  # two seconds of VBV at the cap
    if spec.profile:
        opts["profile:v"] = spec.profile
    opts["pix_fmt"] = spec.pix_fmt
    # Fixed, closed GOPs: every gop_seconds a keyframe that nothing references across,
    # so deliverables can be cut and stream-copied at any GOP boundary.
    opts["g"] = gop
    opts["keyint_min"] = gop
    opts["sc_threshold"] = 0
    opts["bf"] = spec.bframes
    opts["flags"] = "+cgop"
    opts["colorspace"] = "bt709"
    opts["color_primaries"] = "bt709"
    opts["color_trc"] = "bt709"
    opts["color_range"] = "tv"
    opts["r"] = _rate_str(rate)
    opts["movflags"] = "+faststart"
    if threads:
        opts["threads"] = threads
    return opts


def _sharpen_kernel(sharpen: float) -> str:
    """A 3x3 unsharp mask, in + a·(in − binomial blur), as integer taps over 256.

    ffmpeg's ``convolution`` runs this with SIMD; its ``unsharp`` (5x5) costs about five
    times as much at 1080p, as much as the whole LUT stage (bench/bench_grade.py)."""
    a = min(sharpen, 2.0) * SHARPEN_AMOUNT
    corner, edge = round(16 * a), round(32 * a)
    centre = 256 + 4 * (corner + edge)  # the taps sum to 256: flat areas keep their level
    taps = [-corner, -edge, -corner, -edge, centre, -edge, -corner, -edge, -corner]
    return " ".join(str(t) for t in taps)


MOTIONS = ("none", "fade", "slide", "scale")
SLIDE_FRACTION = 0.03  # a sliding overlay travels this much of the frame height, easing out
SCALE_FROM = 0.85  # a scaling overlay grows from this fraction of its size, easing out


def overlay_motion(ov: Any) -> tuple[str, float, float]:
    """An overlay's optional motion (duck-typed: ``motion`` "none", "fade", "slide" or
    "scale", ``fade_in``/``fade_out`` seconds; absent means none): (motion, in, out). "none", or no
    ramp at all, is a still image switched on and off, as captions are."""
    motion = getattr(ov, "motion", None) or "none"
    fade_in = float(getattr(ov, "fade_in", 0.0) or 0.0)
    fade_out = float(getattr(ov, "fade_out", 0.0) or 0.0)
    if motion not in MOTIONS or fade_in < 0 or fade_out < 0:
        raise StageError(f"overlay {Path(ov.path).name}: motion {motion!r} with fades {fade_in} s/{fade_out} s",
                         fix=f"use motion {', '.join(MOTIONS)} and fades >= 0 s", stage="conform")
    if motion == "none" or (fade_in == 0 and fade_out == 0):
        return "none", 0.0, 0.0
    return motion, fade_in, fade_out


def _overlay_stream(video: Any, ov: Any, spec: ChannelSpec, origin: float | None = None,
                    span: float | None = None, frames_out: int | None = None) -> Any:
    """``ov`` laid over ``video`` while start <= t < end. With motion, ``origin`` is when the
    overlay first appears in ``video``'s own time (below 0 when it began before a segment)
    and ``span`` its whole time on screen; by default its start and end. ``frames_out`` is
    ``video``'s frame count (a moving overlay's frames must not run past it)."""
    path = Path(ov.path)
    if not path.is_file():
        raise StageError(f"overlay {path} does not exist", fix="re-render the captions",
                         stage="conform", field=spec.name)
    start, end = float(ov.start), float(ov.end)
    if not end > start >= 0:
        raise StageError(f"overlay {path.name}: shown from {start} s to {end} s",
                         fix="give every overlay 0 <= start < end", stage="conform",
                         field=spec.name)
    motion, fade_in, fade_out = overlay_motion(ov)
    # The PNG to the picture's YUV with the picture's matrix (the converter ffmpeg would
    # insert by itself uses BT.601), alpha kept for the blend.
    image = (ffmpeg.input(str(path)).video
             .scale(out_color_matrix="bt709", out_range="tv").format(pix_fmts="yuva420p"))
    # A single image repeats after its one frame (eof_action=repeat) and the main stream
    # sets the length; enable limits it to start <= t < end. Half-open, not between()
    # (both ends in), so back-to-back captions never share a frame; the epsilon absorbs
    # frame times that land a rounding error either side of a cue boundary.
    lo, hi = start - OVERLAY_EPS, end - OVERLAY_EPS
    x, y = str(int(ov.x)), str(int(ov.y))
    if motion != "none":
        origin = start if origin is None else float(origin)
        span = end - start if span is None else float(span)
        rate = spec.rate
        num, den = rate.numerator, rate.denominator
        # The image, decoded once, repeated on the output's frame grid for the overlay's
        # whole time (loop holds the one frame), its alpha ramped by fade in the overlay's
        # own time (from 0: fade takes no negative start), then moved to ``origin``. Times
        # in microseconds rounded down, so each image frame lands on or just before the
        # picture frame it belongs to (overlay takes the latest image frame at or before
        # a picture frame's time). All in this graph: no second encode.
        frames = max(1, math.ceil(span * rate - Fraction(1, 1000)))
        if frames_out is not None:
            # overlay goes on while its second input has frames (the output would run
            # past the picture): none after the picture's last frame, (frames_out-1)/R.
            last = math.floor(frames_out - 1 - origin * rate + Fraction(1, 1000))
            frames = max(1, min(frames, last + 1))
        image = (image.loop(loop=frames - 1, size=1, start=0).settb(expr="AVTB")
                 .setpts(expr=f"floor(N*{den}*1000000/{num})"))
        if fade_in > 0:
            image = image.fade(type="in", start_time=0, duration=fade_in, alpha=True)
        if fade_out > 0:
            image = image.fade(type="out", start_time=max(0.0, span - fade_out), duration=fade_out, alpha=True)
        image = image.setpts(expr=f"PTS+{math.floor(origin * 1_000_000)}")
        if motion == "slide":
            # Up into place as it fades in, down out of it as it fades out, easing out
            # (quadratic); at full opacity it sits at its placed position.
            d = round(SLIDE_FRACTION * spec.height)
            s, e = f"{origin:.6f}", f"{origin + span:.6f}"
            parts = [y]
            if fade_in > 0:
                parts.append(f"{d}*pow(1-clip((t-{s})/{fade_in:.6f},0,1),2)")
            if fade_out > 0:
                parts.append(f"{d}*pow(clip((t-({e}-{fade_out:.6f}))/{fade_out:.6f},0,1),2)")
            y = "+".join(parts)
        elif motion == "scale" and fade_in > 0:
            # Grows about its own centre from SCALE_FROM to full size as it fades in,
            # easing out (quadratic, as slide), and fades out as "fade" does. Sized per
            # image frame n, one per output frame from the overlay's first, in its own
            # time: the same sizes whichever segment a frame falls in. Each side gives up a
            # multiple of 2 px (the width and height a multiple of 4): the centre stays
            # exact and the corner on the 4:2:0 chroma grid (overlay rounds x and y down
            # to even). Full size after the ramp, where scale passes the frame through.
            with Image.open(path) as im:
                w0, h0 = im.size
            shrink = f"{1 - SCALE_FROM:.6f}*pow(1-clip(n/{fade_in * float(rate):.6f},0,1),2)"
            image = image.scale(w=f"{w0}-4*round({w0}*{shrink}/4)", h=f"{h0}-4*round({h0}*{shrink}/4)",
                                eval="frame")
            x, y = f"{x}+({w0}-overlay_w)/2", f"{y}+({h0}-overlay_h)/2"
    return video.overlay(image, x=x, y=y, eof_action="repeat",
                         enable=f"gte(t,{lo:.6f})*lt(t,{hi:.6f})")


def _apply_lut(video: Any, spec: ChannelSpec, lut: Path) -> Any:
    # Back to the spec's YUV with an explicit BT.709 matrix, and pinned there: left to
    # itself ffmpeg may keep RGB on to the next filter and convert with BT.601. Bicubic
    # chroma subsampling, centre-sited, as swscale's default (see _reframe).
    return (video.lut3d(**grade.lut3d_options(lut))
            .zscale(filter="bicubic", matrix="709", in_range="full", out_range="limited",
                    chromal="center")
            .format(pix_fmts=spec.pix_fmt))


def _finish(video: Any, spec: ChannelSpec, lut: Path | None, grain: float, sharpen: float
            ) -> Any:
    """The style pack's finishing (LUT, grain, sharpening) on the concatenated edit.

    It runs before the retime, on the edit's own frames, and fps then only picks
    frames: so specs that frame the edit alike and differ only in rate (youtube 30p,
    EBU 25p) share one finishing pass in conform_videos and still get exactly the frames
    conform_video makes for each, grain included (the same grain on the same picture in
    every channel). A 25p deliverable from a 30p edit pays for finishing 30 frames a
    second; the shared pass in a multi-channel render more than makes up for it."""
    if lut is not None:
        video = _apply_lut(video, spec, lut)
    if grain > 0:
        s = max(1, round(min(grain, 1.0) * GRAIN_MAX_STRENGTH))
        # Temporal (t) uniform (u) grain, mostly in luma as film grain is.
        video = video.noise(c0_strength=s, c0_flags="t+u", c1_strength=s // 3, c1_flags="t+u",
                            c2_strength=s // 3, c2_flags="t+u")
    if sharpen > 0:
        # Luma only (the chroma planes keep the identity matrix and are copied).
        video = video.convolution(_0m=_sharpen_kernel(sharpen), _0rdiv=1 / 256)
    return video


def _matte(video: Any, spec: ChannelSpec) -> Any:
    """The active picture centred in the full frame on black: letterbox or pillarbox bars.

    After the finishing, so the bars stay true black (a LUT or a matte look would lift
    them, grain would speckle them, sharpening would ring into them), in the delivery's
    limited-range YUV (Y 16, Cb/Cr 128). Offsets are even (ChannelSpec.active_size), so
    4:2:0 chroma lines up with the picture's edge."""
    if spec.active_size == (spec.width, spec.height):
        return video
    x0, y0, _, _ = spec.active_rect()
    return (video.format(pix_fmts=spec.pix_fmt)
            .pad(width=spec.width, height=spec.height, x=x0, y=y0, color="black"))


def _burn_in(video: Any, spec: ChannelSpec, overlays: list[Any], frames_out: int | None = None) -> Any:
    """Captions and other overlays, after the finishing (text stays crisp and grain-free)
    and the retime (their times are the deliverable's), then the encoder's format."""
    if overlays:
        # Blend in the delivery's 4:2:0, as overlay's default yuv420 does: pin it.
        video = video.format(pix_fmts=spec.pix_fmt)
    for ov in overlays:
        video = _overlay_stream(video, ov, spec, frames_out=frames_out)
    return video.format(pix_fmts=spec.pix_fmt)


def _audio_output(job: VideoJob, duration: Fraction, n_out: int, opts: dict[str, Any]
                  ) -> Any | None:
    spec, audio = job.spec, job.audio
    if audio is None:
        opts["an"] = True
        return None
    if not Path(audio).is_file():
        raise StageError(f"audio {audio} does not exist", fix="re-run the audio stage",
                         stage="conform", field=spec.name)
    seconds = f"{float(duration):.6f}"
    if job.audio_copy:
        info = _probe_audio(Path(audio), spec)
        picture = float(n_out / spec.rate)
        # One video frame and one AAC frame of slack: both streams end on their own grid.
        slack = float(1 / spec.rate) + 1024 / (info["sample_rate"] or spec.audio_rate)
        if info["codec"] != "aac" or abs(info["duration"] - picture) > slack:
            raise StageError(
                f"audio {Path(audio).name} is {info['codec']}, {info['duration']:.3f} s; "
                f"copying needs AAC of the picture's {picture:.3f} s (± {slack:.3f})",
                fix="encode the master to AAC at the picture's length, or conform with "
                    "audio_copy=False to trim and encode it here",
                stage="conform", field=spec.name)
        # Copied untouched: the mix stage measured this very stream's loudness.
        opts["c:a"] = "copy"
        return ffmpeg.input(str(audio)).audio
    # Exactly the picture's length: cut longer audio, pad shorter with silence.
    a = (ffmpeg.input(str(audio)).audio.atrim(end=seconds).asetpts(expr="PTS-STARTPTS")
         .apad(whole_dur=seconds))
    # -ar rather than an aresample filter (ffmpeg 5.1 snag with some layouts).
    opts.update({"c:a": "aac", "b:a": spec.audio_bitrate, "ar": spec.audio_rate})
    return a


def _probe_audio(path: Path, spec: ChannelSpec) -> dict[str, Any]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=codec_name,sample_rate,duration:format=duration", "-of", "json", str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        data = json.loads(res.stdout)
        stream = data["streams"][0]
        dur = stream.get("duration") or data.get("format", {}).get("duration")
        return {"codec": stream.get("codec_name"), "duration": float(dur),
                "sample_rate": int(stream.get("sample_rate") or 0)}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError,
            TypeError) as e:
        raise StageError(f"cannot probe audio {path}: {e}", fix="re-run the audio stage",
                         stage="conform", field=spec.name) from e


def _build_many(clips: list[ConformClip], jobs: list[VideoJob], outs: list[Path], *,
                preset: str, lut: Path | None, grain: float, sharpen: float,
                threads: int | None) -> tuple[list[str], list[tuple[list[Crop], Fraction, int]]]:
    """One ffmpeg command that makes every job's file (``outs``, in job order) from one
    decode of each clip. Equal stages are shared: typed-ffmpeg merges equal nodes and
    splits a stream that feeds several, so every clip is decoded and trimmed once, and
    specs that frame the edit alike (same crops, size and pixel format) share the scale,
    concat and finishing too; only what differs (retime, burn-ins, encode) is per job."""
    if not jobs:
        raise StageError("no deliverables to conform", fix="pass at least one VideoJob",
                         stage="conform")
    for job in jobs:
        _check_clips(clips, job.spec)
    if len({Path(j.out).resolve() for j in jobs}) < len(jobs):
        raise StageError("two deliverables share an output file",
                         fix="give every job its own out path", stage="conform",
                         field=",".join(j.spec.name for j in jobs))
    if lut is not None:
        grade.check_lut(lut)
    seen: dict[tuple[str, str], int] = {}
    sources = [_clip_source(c, seen) for c in clips]
    outputs: list[Any] = []
    plans: list[tuple[list[Crop], Fraction, int]] = []
    for job, out in zip(jobs, outs, strict=True):
        spec = job.spec
        duration, n_out = _timing(clips, spec)
        streams = []
        crops: list[Crop] = []
        for clip, src in zip(clips, sources, strict=True):
            v, crop = _reframe(src, clip, spec, rgb=lut is not None)
            streams.append(v)
            crops.append(crop)
        if len(streams) > 1:
            video = ffmpeg.filters.concat(*streams, n=len(streams), v=1, a=0).video(0)
        else:
            video = streams[0]
        video = _matte(_finish(video, spec, lut, grain, sharpen), spec)
        # Clips may be cut at another edit rate (30 -> 25): retime once, after the concat.
        video = video.fps(fps=_rate_str(spec.rate))
        video = _burn_in(video, spec, list(job.overlays), n_out)
        opts = _encoder_options(spec, preset, threads)
        audio = _audio_output(job, duration, n_out, opts)
        streams_out = [video] if audio is None else [video, audio]
        outputs.append(ffmpeg.output(*streams_out, filename=str(out), extra_options=opts))
        plans.append((crops, duration, n_out))
    node = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    node = node.global_args(hide_banner=True, stdin=False, loglevel="warning", y=True,
                            progress="pipe:1", stats=False,
                            **({"filter_complex_threads": threads} if threads else {}))
    return node.compile(), plans


def _build(clips: list[ConformClip], spec: ChannelSpec, out: Path, *, preset: str,
           lut: Path | None, grain: float, sharpen: float, audio: Path | None,
           threads: int | None, overlays: Sequence[Any] = (), audio_copy: bool = False
           ) -> tuple[list[str], list[Crop], Fraction, int]:
    job = VideoJob(spec, Path(out), audio, list(overlays), audio_copy)
    cmd, plans = _build_many(clips, [job], [Path(out)], preset=preset, lut=lut, grain=grain,
                             sharpen=sharpen, threads=threads)
    crops, duration, n_out = plans[0]
    return cmd, crops, duration, n_out


def build_video_command(
    clips: list[ConformClip],
    spec: ChannelSpec,
    out: Path,
    *,
    preset: str = "veryfast",
    lut: Path | None = None,
    grain: float = 0.0,
    sharpen: float = 0.0,
    audio: Path | None = None,
    threads: int | None = None,
    overlays: Sequence[Any] = (),
    audio_copy: bool = False,
) -> list[str]:
    """The ffmpeg argument list that makes ``out`` from ``clips`` for ``spec``."""
    cmd, _, _, _ = _build(clips, spec, out, preset=preset, lut=lut, grain=grain,
                          sharpen=sharpen, audio=audio, threads=threads, overlays=overlays,
                          audio_copy=audio_copy)
    return cmd


def build_videos_command(clips: list[ConformClip], jobs: list[VideoJob], *,
                         preset: str = "veryfast", lut: Path | None = None,
                         grain: float = 0.0, sharpen: float = 0.0,
                         threads: int | None = None) -> list[str]:
    """The one ffmpeg argument list that makes every job's file (see conform_videos)."""
    cmd, _ = _build_many(clips, jobs, [Path(j.out) for j in jobs], preset=preset, lut=lut,
                         grain=grain, sharpen=sharpen, threads=threads)
    return cmd


def _drain(pipe: IO[bytes], tail: deque[str]) -> None:
    # stderr on a thread: we read progress from stdout, and a full stderr pipe would
    # otherwise stall ffmpeg.
    for line in iter(pipe.readline, b""):
        tail.append(line.decode("utf-8", "replace").rstrip())


def _run(cmd: list[str], total_frames: int, progress: Callable[[float], None] | None,
         fail: Callable[[str], StageError]) -> None:
    tail: deque[str] = deque(maxlen=30)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as e:
        raise fail(f"cannot start ffmpeg: {e}") from e
    assert proc.stdout is not None and proc.stderr is not None
    reader = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
    reader.start()
    try:
        for raw in proc.stdout:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "frame" and progress is not None and total_frames > 0:
                try:
                    progress(min(int(value) / total_frames, 1.0))
                except ValueError:
                    pass
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=5)
    if rc != 0:
        lines = [ln for ln in tail if ln.strip()][-6:]
        raise fail(f"ffmpeg exited {rc}: " + (" | ".join(lines) or "no message"))
    if progress is not None:
        progress(1.0)


def _fail(names: str) -> Callable[[str], StageError]:
    def fail(what: str) -> StageError:
        return StageError(f"encoding {names} failed: {what}",
                          fix="check the clips and the spec's encoder settings",
                          stage="conform", field=names)
    return fail


def _result(cmd: list[str], tmps: list[Path], outs: list[Path], clips: list[ConformClip],
            plan: tuple[list[Crop], Fraction, int], lut: Path | None, grain: float,
            sharpen: float) -> dict[str, Any]:
    # Record the command as it would be run for the final paths (temp names are incidental).
    names = {str(t): str(o) for t, o in zip(tmps, outs, strict=True)}
    crops, duration, n_out = plan
    return {
        "command": [names.get(a, a) for a in cmd],
        "crops": [_crop_dict(c.name, crop) for c, crop in zip(clips, crops, strict=True)],
        "frames": n_out,
        "duration": float(duration),
        "finishing": {"lut": str(lut) if lut is not None else None, "grain": grain,
                      "sharpen": sharpen},
        "code_version": CODE_VERSION,
    }


def conform_video(
    clips: list[ConformClip],
    spec: ChannelSpec,
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
    preset: str = "veryfast",
    lut: Path | None = None,
    grain: float = 0.0,
    sharpen: float = 0.0,
    audio: Path | None = None,
    threads: int | None = None,
    overlays: Sequence[Any] = (),
    audio_copy: bool = False,
) -> dict[str, Any]:
    """Encode the edit for ``spec`` into ``out`` (atomically: a failure leaves nothing).

    ``lut`` (a 3D .cube, checked before ffmpeg starts), ``grain`` and ``sharpen`` are
    the style pack's finishing, applied in the encode pass; ``overlays`` are burned in
    after them (see VideoJob); ``audio_copy`` copies an AAC master of the picture's
    length instead of trimming and encoding ``audio``."""
    out = Path(out)
    with atomic_output(out) as tmp:
        cmd, crops, duration, n_out = _build(clips, spec, tmp, preset=preset, lut=lut,
                                             grain=grain, sharpen=sharpen, audio=audio,
                                             threads=threads, overlays=overlays,
                                             audio_copy=audio_copy)
        _run(cmd, n_out, progress, _fail(spec.name))
    return _result(cmd, [tmp], [out], clips, (crops, duration, n_out), lut, grain, sharpen)


@contextmanager
def _atomic_outputs(paths: list[Path]) -> Iterator[list[Path]]:
    """Temp files beside every path, renamed into place only if the block succeeds: all
    of the deliverables appear, or none (a rename that fails takes back the earlier ones)."""
    with ExitStack() as stack:
        tmps = [stack.enter_context(_temp_beside(p)) for p in paths]
        yield tmps
        placed: list[Path] = []
        try:
            for tmp, path in zip(tmps, paths, strict=True):
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, path)
                placed.append(path)
        except BaseException:
            for p in placed:
                p.unlink(missing_ok=True)
            raise


@contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def conform_videos(
    clips: list[ConformClip],
    jobs: list[VideoJob],
    *,
    preset: str = "veryfast",
    lut: Path | None = None,
    grain: float = 0.0,
    sharpen: float = 0.0,
    threads: int | None = None,
    progress: Callable[[float], None] | None = None,
    store: Store | None = None,
    workers: int = 1,
    cuts_per_process: int = 1,
) -> list[dict[str, Any]]:
    """Encode the edit for several channel specs in one ffmpeg process: each clip is
    decoded once and split per spec, then reframed, retimed, finished and encoded per
    spec. Each job's file is what conform_video would make for it; all of them appear,
    or none. Returns one record per job, in order; ``progress`` follows the first job.

    With a ``store`` the conform is segmented instead (conform_segmented): one ffmpeg
    process per cut, segments kept in the store and reused, memory independent of the
    number of cuts."""
    if store is not None:
        return conform_segmented(clips, jobs, store, preset=preset, lut=lut, grain=grain,
                                 sharpen=sharpen, threads=threads, workers=workers,
                                 cuts_per_process=cuts_per_process, progress=progress)
    outs = [Path(j.out) for j in jobs]
    names = ",".join(j.spec.name for j in jobs)
    with _atomic_outputs(outs) as tmps:
        cmd, plans = _build_many(clips, jobs, tmps, preset=preset, lut=lut, grain=grain,
                                 sharpen=sharpen, threads=threads)
        _run(cmd, plans[0][2], progress, _fail(names))
    return [_result(cmd, tmps, outs, clips, plan, lut, grain, sharpen) for plan in plans]



# ---------------------------------------------------------------------------- segments
#
# The segmented conform: every deliverable's picture is made of one closed-GOP segment
# per cut (trimmed, reframed, graded, finished, retimed, captions in its time range burned
# in, encoded), kept in the store under a key of everything that decides its frames, then
# joined with the concat demuxer and stream copy, the mastered audio muxed in. One ffmpeg
# process per cut (it decodes the cut once and encodes it for every spec still missing
# it), so memory no longer grows with the number of cuts, and a re-conform after one shot
# changed encodes only that shot's segments.
#
# Cut points are rounded to the output frame grid once, for the whole edit: cut k starts
# at output frame B_k = round(T_k × R) (halves up, the fps filter's rounding), where T_k
# is the exact edit time of the cut. Segment k has B_{k+1} - B_k frames, so the segments
# add up to the single-graph conform's frame count. The edit has no transitions (the
# conform reads clips only; cuts are hard), so there are no transition segments.
#
# Rate control: each segment is encoded on its own, so the spec's VBV (maxrate, bufsize)
# holds per segment; the buffer starts full again at every segment start, which can let a
# cut's first GOP spend up to one buffer more than a single encode would. The GOP grid
# restarts at every cut (an IDR frame starts every segment).

SEGMENT_VERSION = "segment.1"  # bump when a change alters the frames or bytes of a segment
_SEGMENT_INDEX = "segments"  # ROOT/segments/ab/<key>.json -> the segment's object in the store


@dataclass(frozen=True)
class _Segment:
    """One cut's share of a deliverable: ``frames`` output frames starting at output frame
    ``first``; ``offset`` is the cut's start minus that frame's time (within ±½ frame)."""

    index: int
    clip: ConformClip
    first: int
    frames: int
    offset: Fraction


def _segment_plan(clips: list[ConformClip], spec: ChannelSpec) -> list[_Segment]:
    rate = spec.rate
    plan: list[_Segment] = []
    t = Fraction(0)
    b = 0
    for i, c in enumerate(clips):
        t_next = t + Fraction(c.frames) / Fraction(c.rate)
        b_next = math.floor(t_next * rate + Fraction(1, 2))
        if b_next > b:  # a cut shorter than half an output frame leaves no frame of its own
            plan.append(_Segment(i, c, b, b_next - b, t - Fraction(b) / rate))
        t, b = t_next, b_next
    return plan


@lru_cache(maxsize=1)
def _ffmpeg_version() -> str:
    # Part of every segment key: another ffmpeg (another x264) may write other parameter
    # sets, and the concat demuxer needs the same ones in every segment.
    try:
        res = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True,
                             timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise StageError(f"cannot run ffmpeg: {e}", fix="install ffmpeg", stage="conform") from e
    return res.stdout.splitlines()[0] if res.stdout else "unknown"


def _file_sha(path: Path, memo: dict[Path, str]) -> str:
    path = Path(path)
    if path not in memo:
        memo[path] = sha256_file(path)
    return memo[path]


def _overlays_in(seg: _Segment, spec: ChannelSpec, overlays: list[Any]
                 ) -> list[tuple[Any, float, float]]:
    """The overlays shown in the segment, with start and end in the segment's own time
    (clipped to it). The enable window of the single-graph conform is kept: a frame at
    edit time t shows an overlay when start <= t < end (± OVERLAY_EPS)."""
    lo = Fraction(seg.first) / spec.rate
    hi = Fraction(seg.first + seg.frames) / spec.rate
    out = []
    for ov in overlays:
        start, end = float(ov.start), float(ov.end)
        if not end > start >= 0:
            raise StageError(f"overlay {Path(ov.path).name}: shown from {start} s to {end} s",
                             fix="give every overlay 0 <= start < end", stage="conform",
                             field=spec.name)
        # shown on a frame at t when start - eps <= t < end - eps; the segment's frames
        # lie at lo ... hi - 1/R
        if end - OVERLAY_EPS <= float(lo) or start - OVERLAY_EPS > float(hi - 1 / spec.rate):
            continue
        out.append((ov, max(start - float(lo), 0.0), min(end - float(lo), float(hi - lo) + 1.0)))
    return out


def _segment_key(seg: _Segment, spec: ChannelSpec, shown: list[tuple[Any, float, float]], *,
                 preset: str, lut_sha: str | None, grain: float, sharpen: float,
                 threads: int | None, shas: dict[Path, str]) -> str:
    c = seg.clip
    # The spec's picture settings as they reach ffmpeg: the framing (crop and active
    # picture) and the encoder's options; audio, captions rules and names stay out, so a
    # spec differing only in those reuses the segments.
    crop = crop_box(c.width, c.height, spec, c.focus)
    picture = {"crop": [crop.x // 2 * 2, crop.y // 2 * 2, crop.w, crop.h],
               "frame": [spec.width, spec.height], "active": list(spec.active_rect()),
               "encoder": _segment_options(spec, preset, threads)}
    doc = {
        "version": [SEGMENT_VERSION, CODE_VERSION, _ffmpeg_version()],
        "master": _file_sha(c.path, shas), "start": c.start_frame, "frames": c.frames,
        "rate": str(Fraction(c.rate)), "size": [c.width, c.height], "focus": list(c.focus),
        "out": [seg.frames, str(seg.offset)],
        "picture": picture,
        "finishing": {"lut": lut_sha, "grain": grain, "sharpen": sharpen},
        "overlays": [{"png": _file_sha(Path(ov.path), shas), "x": int(ov.x), "y": int(ov.y),
                      "start": round(s, 6), "end": round(e, 6), **_motion_key(ov, seg, spec)}
                     for ov, s, e in shown],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _motion_key(ov: Any, seg: _Segment, spec: ChannelSpec) -> dict[str, Any]:
    """A moving overlay's share of a segment key: its motion, ramps, and where its whole
    time on screen lies in the segment's time (a fade that began in the segment before
    continues here, so its timing decides this segment's frames). Empty for a still one,
    so segments with captions keep the keys they had."""
    motion, fade_in, fade_out = overlay_motion(ov)
    if motion == "none":
        return {}
    origin = float(ov.start) - float(Fraction(seg.first) / spec.rate)
    key = {"motion": motion, "fade_in": fade_in, "fade_out": fade_out, "origin": round(origin, 6),
           "span": round(float(ov.end) - float(ov.start), 6)}
    if motion == "scale":
        key["scale_from"] = SCALE_FROM  # only here: fade's and slide's keys stay as they were
    return key


def _index_path(store: Store, key: str) -> Path:
    return store.root / _SEGMENT_INDEX / key[:2] / f"{key}.json"


def _lookup(store: Store, key: str) -> tuple[Path, dict[str, Any]] | None:
    """The stored segment for a key and its _segment_config (read when it was made),
    or None (never indexed, or its object was pruned)."""
    try:
        entry = json.loads(_index_path(store, key).read_text())
        ref = MediaRef.from_dict(entry)
        params = dict(entry["params"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = store.path(ref)
    return (path, params) if path.is_file() else None


def _segment_stream(src: Any, seg: _Segment, spec: ChannelSpec, lut: Path | None, grain: float,
                    sharpen: float, shown: list[tuple[Any, float, float]]) -> Any:
    """The segment's picture for ``spec``: what _build_many does to the whole edit, done
    to one cut, then pinned to exactly ``seg.frames`` frames on the output grid."""
    v, _ = _reframe(src, seg.clip, spec, rgb=lut is not None)
    v = _matte(_finish(v, spec, lut, grain, sharpen), spec)
    if seg.offset:
        # The cut starts off the output grid (another edit rate): place it there, so fps
        # picks the same source frames the single-graph conform's retime would.
        v = v.setpts(expr=f"PTS+{seg.offset.numerator}/({seg.offset.denominator}*TB)")
    v = v.fps(fps=_rate_str(spec.rate), start_time=0, round="near")
    # Exactly the planned frames: fps may end a frame short or long of the rounded cut
    # point; clone the last frame if short, cut if long.
    v = v.tpad(stop=1, stop_mode="clone").trim(start_frame=0, end_frame=seg.frames)
    if shown:
        v = v.format(pix_fmts=spec.pix_fmt)
    lo = float(Fraction(seg.first) / spec.rate)
    for ov, start, end in shown:
        # Shown from start to end of this segment's time (clipped to it); a moving
        # overlay keeps its own timing: its ramps are placed from where it began in the
        # edit, which may be in an earlier segment (origin < 0).
        motion, fade_in, fade_out = overlay_motion(ov)
        v = _overlay_stream(v, SimpleNamespace(path=ov.path, x=ov.x, y=ov.y, start=start,
                                               end=end, motion=motion, fade_in=fade_in,
                                               fade_out=fade_out), spec,
                            origin=float(ov.start) - lo, span=float(ov.end) - float(ov.start),
                            frames_out=seg.frames)
    return v.format(pix_fmts=spec.pix_fmt)


def _segment_options(spec: ChannelSpec, preset: str, threads: int | None) -> dict[str, Any]:
    opts = _encoder_options(spec, preset, threads)
    opts.pop("movflags", None)  # no faststart rewrite: the final mux writes its own moov
    opts["an"] = True
    # A timescale of the output rate's own grid: every frame lasts a whole number of ticks,
    # so concatenated segments keep exact timestamps.
    opts["video_track_timescale"] = spec.rate.numerator * (1000 if spec.rate.denominator == 1
                                                           else 1)
    return opts


def _encode_cuts(cuts: list[tuple[ConformClip, list[tuple[_Segment, ChannelSpec, Path, list[Any]]]]],
                 *, preset: str, lut: Path | None, grain: float, sharpen: float,
                 threads: int | None) -> list[str]:
    """One ffmpeg process for a few cuts: each cut decoded once and encoded for every
    (segment, spec) of its work list, into that segment's temp file. Returns the command."""
    seen: dict[tuple[str, str], int] = {}
    outputs = []
    for clip, work in cuts:
        src = _clip_source(clip, seen)
        for seg, spec, tmp, shown in work:
            v = _segment_stream(src, seg, spec, lut, grain, sharpen, shown)
            outputs.append(ffmpeg.output(v, filename=str(tmp),
                                         extra_options=_segment_options(spec, preset, threads)))
    specs = sorted({w[1].name for _, work in cuts for w in work})
    node = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    node = node.global_args(hide_banner=True, stdin=False, loglevel="warning", y=True,
                            progress="pipe:1", stats=False,
                            **({"filter_complex_threads": threads} if threads else {}))
    shots = ",".join(c.name for c, _ in cuts)
    cmd = node.compile()
    _run(cmd, 0, None, _fail(f"{','.join(specs)} (shot {shots})"))
    return cmd


SEGMENT_PARAMS = ("codec_name", "profile", "level", "width", "height", "pix_fmt", "time_base",
                  "r_frame_rate", "color_space", "color_primaries", "color_transfer",
                  "color_range", "extradata_hash")


def _segment_params(path: Path, spec: ChannelSpec) -> dict[str, Any]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_data_hash", "sha256",
           "-show_entries", "stream=" + ",".join(SEGMENT_PARAMS), "-of", "json", str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        return dict(json.loads(res.stdout)["streams"][0])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
        raise StageError(f"cannot probe segment {path.name}: {e}",
                         fix="delete the segment index (STORE/segments) and conform again",
                         stage="conform", field=spec.name) from e


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO BMFF boxes in data[start:end]."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = int.from_bytes(data[start:start + 4], "big"), data[start + 4:start + 8]
        head = 8
        if size == 1:
            size, head = int.from_bytes(data[start + 8:start + 16], "big"), 16
        elif size == 0:
            size = end - start
        if size < head or start + size > end:
            return
        yield kind, start + head, start + size
        start += size


def _segment_config(path: Path) -> dict[str, Any]:
    """What the concat demuxer needs equal in every segment, read from the segment's moov
    in Python (an ffprobe per segment costs a process start): the decoder configuration
    record (avcC/hvcC: the SPS and PPS, so profile, level, size, chroma format, bit
    depth and colour tags) and the track's timescale."""
    with open(path, "rb") as f:
        data = f.read()
    moov = next(((a, b) for k, a, b in _mp4_boxes(data) if k == b"moov"), None)
    found: dict[str, Any] = {}
    if moov is not None:
        body = data[moov[0]:moov[1]]
        for tag in (b"avcC", b"hvcC"):
            i = body.find(tag)
            if i >= 4:
                size = int.from_bytes(body[i - 4:i], "big")
                found["codec_config"] = hashlib.sha256(body[i - 4:i - 4 + size]).hexdigest()
        i = body.find(b"mdhd")
        if i >= 0:
            at = i + 4 + (20 if body[i + 4] == 1 else 12)  # version, flags, times
            found["timescale"] = int.from_bytes(body[at:at + 4], "big")
    return found


def _check_segments(segments: list[tuple[Path, dict[str, Any]]], spec: ChannelSpec) -> None:
    """The concat demuxer copies the first segment's parameter sets for all of them:
    every segment must have the same ones (profile, level, size, format, timebase);
    ``segments`` are (path, its _segment_config). On a mismatch ffprobe names what
    differs."""
    paths = [p for p, _ in segments]
    first = segments[0][1]
    for p, other in segments[1:]:
        if other == first and first.get("codec_config"):
            continue
        a, b = _segment_params(paths[0], spec), _segment_params(p, spec)
        a["timescale"], b["timescale"] = first.get("timescale"), other.get("timescale")
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)) or [
            "decoder configuration (SPS/PPS)"]
        raise StageError(
            f"segment {p.name} differs from {paths[0].name} in {', '.join(diff)}; "
            "concatenating them without re-encoding would make an invalid stream",
            fix="delete the segment index (STORE/segments) and conform again",
            stage="conform", field=spec.name)


def _concat_listing(segments: list[tuple[Path, int, int]], rate: Fraction) -> str:
    """An ffconcat script for (path, first output frame, frames) segments.

    Every file gets its duration: left to itself the demuxer takes a segment's length from
    its container, which B-frames' edit list makes a fraction of a frame too long (the
    next segment then starts late, a timestamp gap). Durations are in microseconds, so
    each is the difference of the rounded cut times: the demuxer's running sum then
    lands on every cut's exact time to ±½ µs, far inside half a tick of the timescale."""
    def us(frame: int) -> int:
        return math.floor(Fraction(frame) / rate * 1_000_000 + Fraction(1, 2))

    lines = ["ffconcat version 1.0"]
    for path, first, frames in segments:
        # Absolute: the demuxer reads a relative name against the script's own folder (a
        # temp folder), not the working directory a relative STUDIO_HOME is meant from.
        quoted = str(Path(path).absolute()).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {us(first + frames) - us(first)}us"]
    return "\n".join(lines) + "\n"


def _concat(segments: list[tuple[Path, int, int]], job: VideoJob, out: Path,
            duration: Fraction, n_out: int, listing: Path) -> list[str]:
    """Join the segments with stream copy and mux the deliverable's audio in."""
    spec = job.spec
    listing.write_text(_concat_listing(segments, spec.rate))
    opts: dict[str, Any] = {"c:v": "copy", "movflags": "+faststart"}
    if spec.codec == "hevc":
        opts["tag:v"] = "hvc1"
    video = ffmpeg.input(str(listing), f="concat", extra_options={"safe": 0}).video
    audio = _audio_output(job, duration, n_out, opts)
    streams = [video] if audio is None else [video, audio]
    node = ffmpeg.output(*streams, filename=str(out), extra_options=opts).global_args(
        hide_banner=True, stdin=False, loglevel="warning", y=True, progress="pipe:1",
        stats=False)
    cmd = node.compile()
    _run(cmd, 0, None, _fail(spec.name))
    return cmd


def conform_segmented(
    clips: list[ConformClip],
    jobs: list[VideoJob],
    store: Store,
    *,
    preset: str = "veryfast",
    lut: Path | None = None,
    grain: float = 0.0,
    sharpen: float = 0.0,
    threads: int | None = None,
    workers: int = 1,
    cuts_per_process: int = 1,
    progress: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """conform_videos, made of per-cut segments kept in ``store`` (see the section
    comment). Segments already in the store are reused; missing ones are encoded
    ``cuts_per_process`` cuts to an ffmpeg process (fewer process starts; memory grows
    with it, not with the edit), ``workers`` processes at once. Every record lists its segments: key, object
    and whether this call encoded it. All deliverables appear, or none."""
    if not jobs:
        raise StageError("no deliverables to conform", fix="pass at least one VideoJob",
                         stage="conform")
    for job in jobs:
        _check_clips(clips, job.spec)
        for ov in job.overlays:
            if not Path(ov.path).is_file():
                raise StageError(f"overlay {ov.path} does not exist",
                                 fix="re-render the captions", stage="conform",
                                 field=job.spec.name)
    if len({Path(j.out).resolve() for j in jobs}) < len(jobs):
        raise StageError("two deliverables share an output file",
                         fix="give every job its own out path", stage="conform",
                         field=",".join(j.spec.name for j in jobs))
    lut_sha = None
    if lut is not None:
        grade.check_lut(lut)
        lut_sha = sha256_file(lut)
    shas: dict[Path, str] = {}
    plans: list[list[tuple[_Segment, str, list[Any]]]] = []
    for job in jobs:
        plan = []
        for seg in _segment_plan(clips, job.spec):
            shown = _overlays_in(seg, job.spec, list(job.overlays))
            key = _segment_key(seg, job.spec, shown, preset=preset, lut_sha=lut_sha, grain=grain,
                               sharpen=sharpen, threads=threads, shas=shas)
            plan.append((seg, key, shown))
        plans.append(plan)

    # What is missing, grouped by cut: one process per cut makes all of that cut's segments.
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    missing: dict[int, dict[str, tuple[_Segment, ChannelSpec, list[Any]]]] = {}
    for job, plan in zip(jobs, plans, strict=True):
        for seg, key, shown in plan:
            hit = _lookup(store, key)
            if hit is not None:
                found[key] = hit
            else:
                missing.setdefault(seg.index, {})[key] = (seg, job.spec, shown)
    encoded: dict[str, list[str]] = {}  # key -> the command that encoded it
    total = sum(s.frames for w in missing.values() for s, _, _ in w.values()) or 1
    done = [0]
    lock = threading.Lock()

    def make(group: list[int]) -> None:
        work = {k: w for i in group for k, w in missing[i].items()}
        with ExitStack() as stack:
            writers = {k: stack.enter_context(store.writer(".mp4")) for k in work}
            cmd = _encode_cuts([(clips[i], [(s, spec, writers[k][0], shown)
                                            for k, (s, spec, shown) in missing[i].items()])
                                for i in group],
                               preset=preset, lut=lut, grain=grain, sharpen=sharpen,
                               threads=threads)
        for key, (_, refs) in writers.items():
            path = store.path(refs[0])
            # Read once, here, and kept in the index: a re-conform checks the segments'
            # parameters without opening every one of them again.
            params = _segment_config(path)
            atomic_write_text(_index_path(store, key),
                              json.dumps(refs[0].to_dict() | {"params": params}))
            with lock:
                found[key] = (path, params)
                encoded[key] = cmd
        with lock:
            done[0] += sum(s.frames for s, _, _ in work.values())
            if progress is not None:
                progress(min(done[0] / total, 1.0) * 0.95)

    if missing:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            todo = sorted(missing)
            step = max(1, cuts_per_process)
            for f in [pool.submit(make, todo[i:i + step]) for i in range(0, len(todo), step)]:
                f.result()

    outs = [Path(j.out) for j in jobs]
    records = []
    with _atomic_outputs(outs) as tmps, tempfile.TemporaryDirectory(prefix="concat-") as d:
        for n, (job, plan, tmp, out) in enumerate(zip(jobs, plans, tmps, outs, strict=True)):
            spec = job.spec
            _check_segments([found[key] for _, key, _ in plan], spec)
            duration, n_out = _timing(clips, spec)
            cmd = _concat([(found[key][0], seg.first, seg.frames) for seg, key, _ in plan], job,
                          tmp, duration, n_out, Path(d) / f"{n}.ffconcat")
            crops = [crop_box(c.width, c.height, spec, c.focus) for c in clips]
            crops = [Crop(c.x // 2 * 2, c.y // 2 * 2, c.w, c.h, c.zoom, c.focus_in_safe)
                     for c in crops]
            rec = _result(cmd, [tmp], [out], clips, (crops, duration, n_out), lut, grain,
                          sharpen)
            rec["segments"] = [{"clip": seg.clip.name, "first_frame": seg.first,
                                "frames": seg.frames, "key": key,
                                "sha256": found[key][0].name.split(".")[0],
                                "encoded": key in encoded,
                                # what made the segment (this call's encodes only): the record
                                # of which filters ran on the picture, grade included
                                **({"command": encoded[key]} if key in encoded else {})}
                               for seg, key, _ in plan]
            records.append(rec)
    if progress is not None:
        progress(1.0)
    return records


# ---------------------------------------------------------------------------- probe


def probe(path: Path) -> dict[str, Any]:
    """What ffprobe says about the first video stream and the container."""
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StageError(f"cannot run ffprobe on {path}: {e}", fix="install ffmpeg",
                         stage="conform") from e
    if res.returncode != 0:
        raise StageError(f"ffprobe cannot read {path}: {res.stderr.strip()[-300:]}",
                         fix="re-render the file", stage="conform")
    data = json.loads(res.stdout)
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise StageError(f"{path} has no video stream", fix="re-render the file", stage="conform")

    def num(v: Any, kind: type) -> Any:
        try:
            return kind(v) if v not in (None, "N/A") else None
        except (TypeError, ValueError):
            return None

    fps = None
    for key in ("r_frame_rate", "avg_frame_rate"):
        raw = video.get(key)
        if raw and raw != "0/0":
            fps = Fraction(raw)
            break
    duration = num(fmt.get("duration"), float)
    if duration is None:
        duration = num(video.get("duration"), float)
    return {
        "width": int(video["width"]),
        "height": int(video["height"]),
        "fps": fps,
        "codec": video.get("codec_name"),
        "pix_fmt": video.get("pix_fmt"),
        "duration": duration,
        "nb_frames": num(video.get("nb_frames"), int),
        "size": num(fmt.get("size"), int),
        "profile": video.get("profile"),
        "color_space": video.get("color_space"),
        "color_primaries": video.get("color_primaries"),
        "color_transfer": video.get("color_transfer"),
        "sample_aspect_ratio": video.get("sample_aspect_ratio"),
        "has_audio": any(s.get("codec_type") == "audio" for s in streams),
    }


# ---------------------------------------------------------------------------- stills


def _encode_jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, subsampling=2, progressive=True, optimize=True)
    return buf.getvalue()


def _encode_png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


FIT_MARGIN = 1.25  # the subject's height plus air above and below
FEATHER = 0.12  # of the banner height: how softly the subject band blends into its fill


def _fit_subject(im: Image.Image, focus: tuple[float, float], subject_scale: float,
                 spec: ChannelSpec) -> tuple[Image.Image, dict[str, Any]]:
    """For a frame too short to hold the subject (a 728x90 leaderboard from a square
    master): scale the band that holds the subject to the banner's height, place it so
    the focus keeps its side of the frame within the safe area, and fill the rest with
    the band's own edge colours, feathered. Nothing is stretched."""
    w, h = im.size
    band_h = min(h, max(2, round(subject_scale * FIT_MARGIN * h)))
    y0 = int(min(max(focus[1] * h - band_h / 2, 0), h - band_h))
    bw = max(1, round(w * spec.height / band_h))
    band = im.resize((bw, spec.height), Image.LANCZOS, box=(0, y0, w, y0 + band_h))
    s = spec.safe_area
    # keep the composition's side (subject left, copy right) within the safe area
    cx = (s.left + focus[0] * (1 - s.left - s.right)) * spec.width
    x = int(round(min(max(cx - focus[0] * bw, min(0, spec.width - bw)), max(0, spec.width - bw))))
    arr = np.asarray(band, dtype=np.float32)
    edge = max(1, bw // 20)
    left, right = arr[:, :edge].mean(axis=(0, 1)), arr[:, -edge:].mean(axis=(0, 1))
    t = np.linspace(0.0, 1.0, spec.width, dtype=np.float32)[None, :, None]
    canvas = np.broadcast_to(left * (1 - t) + right * t, (spec.height, spec.width, 3)).copy()
    # feathered paste: alpha ramps at the band's own left and right edges
    fw = max(1, round(FEATHER * spec.height * 2))
    alpha = np.ones(bw, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, min(fw, bw // 2) + 1, dtype=np.float32)[1:]
    if x > 0:
        alpha[:ramp.size] = ramp
    if x + bw < spec.width:
        alpha[bw - ramp.size:] = np.minimum(alpha[bw - ramp.size:], ramp[::-1])
    xs0, xs1 = max(0, x), min(spec.width, x + bw)
    a = alpha[xs0 - x:xs1 - x][None, :, None]
    canvas[:, xs0:xs1] = canvas[:, xs0:xs1] * (1 - a) + arr[:, xs0 - x:xs1 - x] * a
    out = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    info = {"mode": "fit-subject", "band": [0, y0, w, y0 + band_h], "x": x, "band_width": bw}
    return out, info


def _set_copy(im: Image.Image, spec: ChannelSpec, copy: StillCopy) -> tuple[Image.Image, dict[str, Any]]:
    """The copy and logo fitted on the conformed picture itself (contrast and scrims are
    measured on the pixels they go over) and composited onto it; the placement as JSON."""
    from studio import layout

    placement = layout.fit(copy.layout, copy.copy, copy.brand, spec.width, spec.height, spec.safe_rect(),
                           copy.copy_space, channel=spec.name, background=im, style_file=copy.style_file)
    layer = layout.render(placement, None, im.size)
    return layout.composite(im, layer).convert("RGB"), placement.to_dict()


def conform_still(image: Path, focus: tuple[float, float], spec: ChannelSpec, out: Path, *,
                  sharpen: float = 0.0, subject_scale: float | None = None,
                  copy: StillCopy | None = None) -> dict[str, Any]:
    """Reframe ``image`` for a still spec and encode it at the best quality that fits the
    spec's byte limit. With ``subject_scale`` (the subject's height as a fraction of the
    image), a frame too short to show the whole subject fits the subject instead of
    cropping through it. With ``copy`` the brief's copy (one locale's) and the brand's
    logo are set on the picture before it is encoded (after sharpening: type is not
    sharpened), and the placement is returned under ``copy``."""
    where = {"stage": "conform", "field": spec.name}
    if spec.kind != "still":
        raise StageError(f"spec {spec.name} is a {spec.kind} spec, not a still",
                         fix="conform video with conform_video", **where)
    try:
        with Image.open(image) as src:
            src.load()
            im = src.convert("RGB")
    except (OSError, ValueError) as e:
        raise StageError(f"cannot read {image}: {e}", fix="re-render the keyframe", **where) from e
    crop = crop_box(im.width, im.height, spec, focus)
    fit: dict[str, Any] | None = None
    if subject_scale and crop.h < subject_scale * FIT_MARGIN * im.height:
        im, fit = _fit_subject(im, focus, subject_scale, spec)
    else:
        # Resize straight from the crop box (one resampling, no intermediate image).
        im = im.resize((spec.width, spec.height), Image.LANCZOS,
                       box=(crop.x, crop.y, crop.x + crop.w, crop.y + crop.h))
    if sharpen > 0:
        # Mild: downscaling with Lanczos is already crisp; this only restores a little
        # bite lost to small sizes.
        im = im.filter(ImageFilter.UnsharpMask(radius=1.0, percent=round(min(sharpen, 2.0) * 40),
                                               threshold=2))
    placement: dict[str, Any] | None = None
    if copy is not None:
        im, placement = _set_copy(im, spec, copy)
    limit = spec.max_file_size
    crop_info = fit or {k: v for k, v in _crop_dict("", crop).items() if k != "clip"}
    quality: int | None = None
    if spec.codec == "jpeg":
        lo, hi = JPEG_QUALITY
        smallest = _encode_jpeg(im, lo)
        if limit is not None and len(smallest) > limit:
            raise StageError(
                f"the smallest JPEG reached is {len(smallest)} bytes (quality {lo}), "
                f"over the {limit}-byte limit",
                fix="use a simpler image or raise the spec's max_file_size", **where)
        best = (lo, smallest)
        lo += 1
        # File size grows with quality (almost always monotonically): binary search the
        # highest quality that fits.
        while lo <= hi:
            mid = (lo + hi) // 2
            data = _encode_jpeg(im, mid)
            if limit is None or len(data) <= limit:
                best = (mid, data)
                lo = mid + 1
            else:
                hi = mid - 1
        quality, data = best[0], best[1]
        fmt = "jpeg"
    else:
        data = _encode_png(im)
        fmt = "png"
        if limit is not None and len(data) > limit:
            # A 256-colour palette (with dithering) usually shrinks a PNG 2-3x.
            pal = im.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                              dither=Image.Dither.FLOYDSTEINBERG)
            small = _encode_png(pal)
            if len(small) > limit:
                raise StageError(
                    f"the smallest PNG reached is {len(small)} bytes (256-colour palette), "
                    f"over the {limit}-byte limit",
                    fix="use a JPEG spec, a simpler image, or raise the spec's max_file_size",
                    **where)
            data, fmt = small, "png-palette"
    atomic_write_bytes(out, data)
    done = {"quality": quality, "bytes": len(data), "crop": crop_info, "format": fmt,
            "width": spec.width, "height": spec.height, "code_version": CODE_VERSION}
    if copy is not None and placement is not None:
        done["copy"] = {"locale": copy.locale, "layout": copy.layout.name, "placement": placement}
    return done
