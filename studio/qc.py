"""The technical QC battery: one call per deliverable, a report of checks against its
channel spec.

``run_qc(path, spec, captions=..., intended=..., palette=...)`` returns a ``QcReport``;
``report.blocked`` says whether a blocking check failed, ``report.write_json`` and
``report.write_html`` write the two reports (atomically). Which checks block and which
only warn comes from the spec's ``qc`` field (``studio.specs.QcPolicy``).

Decode passes for a video deliverable: **two, run at the same time** — one ffmpeg decode
of the picture and one of the sound (``studio.qc_measure``), plus an ffprobe of the
header. The picture pass produces every per-frame figure (levels, black, freeze, the flash
screen, ffmpeg's photosensitivity screen for comparison, palette samples, thumbnails); the
sound pass gives loudness, true peak, LRA, silence, clipping and the exact sample count.
They are two processes rather than one because each hands its samples to numpy through
its own pipe, and on a multi-core machine they overlap. A still is read once with Pillow.

Timecodes are counted from the file's first frame (00:00:00:00) at the file's own rate,
drop-frame at 29.97 and 59.94 as ``studio.timecode`` counts them; every event also has
seconds."""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from studio.errors import StudioError
from studio.qc_colour import delta_e_2000, dominant_colours, hex_to_rgb, rgb_to_lab
from studio.qc_measure import AudioMeasures, VideoMeasures, audio_pass, probe, rate_of, video_pass
from studio.specs import ChannelSpec
from studio.store import atomic_write_text
from studio.timecode import default_drop_frame, to_label
from studio.versioning import schema_string

SCHEMA = schema_string("QcReport")  # QcReport.1
CODE_VERSION = "qc.1"  # what the battery checks and how (the release gate's QC step key)
Status = Literal["pass", "warn", "fail", "skipped"]
# EBU R 103: luma within -1% .. 103% of the 16-235 range (measured on the small picture).
R103 = (math.ceil(16 - 0.01 * 219), math.floor(16 + 1.03 * 219))  # 14, 241
OUT_OF_RANGE_AREA = 0.01  # R 103 tolerates excursions over up to 1% of the picture
PS_FRAMES = 30  # ffmpeg photosensitivity's default window (frames=30)
# Mean |ΔY| (of the legal range) under which a frame repeats the last. A held frame decodes
# to within ~0.02 code values of the last (encoder noise); a slow camera push-in on the
# small picture moves 0.04-0.2 (the example's Reels cut), which 0.002 (0.44 code values)
# took for a freeze; a held frame's noise stays under 0.03 but for the odd frame (0.05). A
# moving shot's quiet frames never last the second a freeze must (qc.freeze_seconds).
FREEZE_MOTION = 0.00027  # 0.06 code values
FREEZE_REFRESH = 0.0023  # 0.5 code values: a held picture's keyframe refresh, at most
_CODEC_NAMES = {"h264": "h264", "hevc": "hevc", "png": "png", "jpeg": "mjpeg"}


@dataclass(frozen=True)
class Span:
    """A stretch the edit means to be black, still or silent (an end card, a fade): events
    of ``checks`` inside it are not reported. Seconds from the file's start."""

    start: float
    end: float
    checks: tuple[str, ...] = ("black", "freeze", "silence")
    note: str = ""


@dataclass
class QcEvent:
    start_s: float
    end_s: float
    start_tc: str
    end_tc: str
    detail: str = ""
    frame: int | None = None  # the first frame, for the report's thumbnail


@dataclass
class QcCheck:
    id: str
    status: Status
    severity: str  # block | warn | skip (from the spec)
    measured: dict[str, Any]
    threshold: dict[str, Any]
    spec_field: str
    finding: str
    fix: str = ""
    events: list[QcEvent] = field(default_factory=list)


@dataclass
class QcReport:
    file: str
    spec: str
    kind: str
    rate: str | None
    frames: int | None
    duration: float | None
    checks: list[QcCheck]
    thumbs: dict[int, Any] = field(default_factory=dict, repr=False)  # frame -> RGB, for HTML
    schema: str = SCHEMA

    @property
    def blocked(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    @property
    def verdict(self) -> str:
        if self.blocked:
            return "fail"
        return "warn" if any(c.status == "warn" for c in self.checks) else "pass"

    def check(self, check_id: str) -> QcCheck:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def to_dict(self) -> dict[str, Any]:
        # Field by field: asdict would deep-copy every thumbnail only to drop them.
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("thumbs", "schema")}
        d["checks"] = [asdict(c) for c in self.checks]
        return {"schema": self.schema, "verdict": self.verdict, "blocked": self.blocked, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    def write_html(self, path: str | Path) -> Path:
        from studio.qc_html import render_html

        atomic_write_text(path, render_html(self))
        return Path(path)


# ----------------------------------------------------------------------------- helpers

class _Clock:
    def __init__(self, rate: Fraction) -> None:
        self.rate = rate
        self.drop = default_drop_frame(rate)

    def frame(self, seconds: float) -> int:
        return round(seconds * self.rate)

    def event(self, start_s: float, end_s: float, detail: str = "") -> QcEvent:
        f0, f1 = self.frame(start_s), self.frame(end_s)
        return QcEvent(round(start_s, 4), round(end_s, 4), to_label(f0, self.rate, self.drop),
                       to_label(f1, self.rate, self.drop), detail, f0)


def _check(check_id: str, spec: ChannelSpec, problem: bool, *, measured: dict[str, Any],
           threshold: dict[str, Any], spec_field: str, finding: str, fix: str = "",
           events: list[QcEvent] | None = None) -> QcCheck:
    severity = spec.qc.severity(check_id)
    status: Status = "pass" if not problem else ("fail" if severity == "block" else "warn")
    return QcCheck(check_id, status, severity, measured, threshold, spec_field, finding,
                   fix if problem else "", events or [])


def _skipped(check_id: str, spec: ChannelSpec, why: str, spec_field: str = "") -> QcCheck:
    return QcCheck(check_id, "skipped", spec.qc.severity(check_id), {}, {}, spec_field, why)


def _outside(start: float, end: float, spans: list[Span], check_id: str, slack: float) -> list[tuple[float, float]]:
    """[start, end) minus the intended spans for ``check_id`` (each widened by ``slack``)."""
    pieces = [(start, end)]
    for sp in spans:
        if check_id not in sp.checks:
            continue
        a, b = sp.start - slack, sp.end + slack
        nxt: list[tuple[float, float]] = []
        for s, e in pieces:
            if e <= a or s >= b:
                nxt.append((s, e))
                continue
            if s < a:
                nxt.append((s, a))
            if e > b:
                nxt.append((b, e))
        pieces = nxt
    return pieces


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Runs of True as (first, last + 1) frame indices."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def _stretches(check_id: str, runs: list[tuple[float, float]], spans: list[Span], min_s: float,
               clock: _Clock) -> list[QcEvent]:
    events = []
    slack = 1 / float(clock.rate)
    for s, e in runs:
        for a, b in _outside(s, e, spans, check_id, slack):
            if b - a >= min_s - 1e-6:
                events.append(clock.event(a, b, f"{b - a:.2f} s"))
    return events


# ----------------------------------------------------------------------------- checks

def _stream(info: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((s for s in info.get("streams", []) if s.get("codec_type") == kind
                 and not s.get("disposition", {}).get("attached_pic")), None)


def _format_checks(path: Path, spec: ChannelSpec, info: dict[str, Any], v: dict[str, Any],
                   rate: Fraction) -> list[QcCheck]:
    out = []
    want = {"codec": _CODEC_NAMES[spec.codec], "width": spec.width, "height": spec.height,
            "fps": str(spec.rate), "pix_fmt": spec.pix_fmt}
    got = {"codec": v.get("codec_name"), "width": v.get("width"), "height": v.get("height"),
           "fps": str(rate), "pix_fmt": v.get("pix_fmt")}
    if spec.profile:  # ffprobe says "High", "Main"; the spec "high", "main"
        want["profile"] = spec.profile.lower()
        got["profile"] = str(v.get("profile", "")).lower()
    avg = v.get("avg_frame_rate", "0/0")
    if avg not in ("0/0", None):
        got["avg_fps"] = str(Fraction(avg))
    wrong = [k for k in want if got[k] != want[k] and not (k == "profile" and _within_profile(got[k], want[k]))]
    if "avg_fps" in got and got["avg_fps"] != got["fps"]:  # average off the nominal: variable rate
        wrong.append("avg_fps (variable frame rate)")
    out.append(_check("format", spec, bool(wrong), measured=got, threshold=want,
                      spec_field="codec, width, height, fps, pix_fmt",
                      finding=("picture format matches the spec" if not wrong else
                               "differs from the spec: " + ", ".join(f"{k} {got.get(k.split()[0])} (spec {want.get(k.split()[0], want['fps'])})" for k in wrong)),
                      fix=f"conform it again to {spec.name}"))
    # Colour tags: BT.709 primaries, transfer and matrix; limited range for yuv420p, full for yuvj.
    full = spec.pix_fmt.startswith("yuvj")
    want_c = {"color_primaries": "bt709", "color_transfer": "bt709", "color_space": "bt709",
              "color_range": "pc" if full else "tv"}
    got_c = {k: v.get(k, "unknown") for k in want_c}
    bad = [k for k in want_c if got_c[k] != want_c[k]]
    out.append(_check("colour", spec, bool(bad), measured=got_c, threshold=want_c, spec_field="color, pix_fmt",
                      finding=("colour tags are BT.709 as the spec says" if not bad else
                               "colour tags differ: " + ", ".join(f"{k}={got_c[k]} (spec {want_c[k]})" for k in bad)),
                      fix="tag the stream BT.709 (-color_primaries bt709 -color_trc bt709 -colorspace bt709 "
                          f"-color_range {want_c['color_range']}); if the picture was made in another space, "
                          "convert it, do not just retag"))
    out.append(_file_size(path, spec, "lower the bitrate or shorten it"))
    return out


# A spec's profile is what its decoders must handle: a stream in a profile those decoders
# also decode passes (x264's fastest presets turn CABAC and 8x8 transforms off and signal
# Main or Constrained Baseline, which every High decoder plays).
_PROFILE_RANK = {"constrained baseline": 0, "baseline": 0, "main": 1, "high": 2, "high 10": 3,
                 "high 4:2:2": 4, "high 4:4:4 predictive": 5, "main 10": 2}


def _within_profile(got: str, want: str) -> bool:
    g, w = _PROFILE_RANK.get(got), _PROFILE_RANK.get(want)
    return g is not None and w is not None and g <= w


def _file_size(path: Path, spec: ChannelSpec, fix: str) -> QcCheck:
    """The file's bytes against the spec's ``max_file_size`` (when it has one)."""
    size = path.stat().st_size
    limit = spec.max_file_size
    return _check("file_size", spec, limit is not None and size > limit, measured={"bytes": size},
                  threshold={"max_bytes": limit}, spec_field="max_file_size",
                  finding=f"{size} bytes" + (f" (limit {limit})" if limit else " (no limit)"), fix=fix)


def _audio_format(spec: ChannelSpec, a: dict[str, Any] | None) -> QcCheck:
    if a is None:
        problem = spec.loudness_target is not None
        return _check("audio_format", spec, problem, measured={"audio": None},
                      threshold={"audio": "required" if problem else "none"}, spec_field="loudness_target",
                      finding="no audio stream" + (" but the spec sets a loudness target" if problem else ""),
                      fix="mux the mix in")
    want = {"codec": "aac", "channels": 2, "channel_layout": "stereo", "sample_rate": spec.audio_rate}
    got = {"codec": a.get("codec_name"), "channels": a.get("channels"),
           "channel_layout": a.get("channel_layout"), "sample_rate": int(a.get("sample_rate", 0))}
    bad = [k for k in want if got[k] != want[k]]
    return _check("audio_format", spec, bool(bad), measured=got, threshold=want,
                  spec_field="audio_rate (AAC-LC stereo as every shipped spec's conform writes it)",
                  finding=("AAC stereo at the spec's rate" if not bad else
                           "differs: " + ", ".join(f"{k} {got[k]} (spec {want[k]})" for k in bad)),
                  fix=f"re-encode the sound as AAC stereo at {spec.audio_rate} Hz")


def _duration(spec: ChannelSpec, frames: int, rate: Fraction, clock: _Clock,
              expected: float | None) -> QcCheck:
    seconds = float(frames / rate)
    measured: dict[str, Any] = {"frames": frames, "seconds": round(seconds, 4),
                                "timecode": to_label(frames, rate, clock.drop)}
    threshold: dict[str, Any] = {"min_s": spec.min_duration, "max_s": spec.max_duration}
    problems = []
    if expected is not None:
        # An edit that ends between two of the file's frames (8.5 s of a 30 fps edit at 25
        # fps is 212.5 frames) is conformed to either: both are right to the frame.
        exact = Fraction(str(expected)) * rate
        allowed = sorted({math.floor(exact), math.ceil(exact)})
        threshold["expected_frames"] = allowed[0] if len(allowed) == 1 else allowed
        if frames not in allowed:
            want = min(allowed, key=lambda n: abs(n - frames))
            problems.append(f"{frames} frames, expected {' or '.join(map(str, allowed))} ({frames - want:+d})")
    if seconds < spec.min_duration:
        problems.append(f"shorter than {spec.min_duration} s")
    if spec.max_duration is not None and seconds > spec.max_duration:
        problems.append(f"longer than {spec.max_duration} s")
    return _check("duration", spec, bool(problems), measured=measured, threshold=threshold,
                  spec_field="min_duration, max_duration", finding="; ".join(problems) or
                  f"{frames} frames ({measured['timecode']})", fix="re-conform from the edit at the right length")


def _decode(spec: ChannelSpec, vm: VideoMeasures, am: AudioMeasures | None) -> QcCheck:
    errors = vm.errors + (am.errors if am else [])
    return _check("decode", spec, bool(errors), measured={"errors": len(errors), "first": errors[:5]},
                  threshold={"errors": 0}, spec_field="(any deliverable)",
                  finding="decodes without errors" if not errors else f"{len(errors)} decode error(s): {errors[0][:160]}",
                  fix="re-encode from the master; check the file was copied whole")


def _picture_checks(spec: ChannelSpec, vm: VideoMeasures, clock: _Clock, intended: list[Span],
                    full_range: bool) -> list[QcCheck]:
    out = []
    rate = float(clock.rate)
    pol = spec.qc
    black_runs = _runs([b >= 0.98 for b in vm.black])
    black = _stretches("black", [(s / rate, e / rate) for s, e in black_runs], intended, pol.black_seconds, clock)
    out.append(_check("black", spec, bool(black), measured={"stretches": len(black)},
                      threshold={"min_seconds": pol.black_seconds, "picture_black_ratio": 0.98,
                                 "pixel_black": "10% of the range"}, spec_field="qc.black_seconds",
                      finding=(f"{len(black)} black stretch(es), first at {black[0].start_tc}" if black
                               else "no black outside what the edit intends"),
                      fix="check the edit there (a missing shot or a gap); mark intended black in the edit",
                      events=black))
    is_black = [b >= 0.98 for b in vm.black]
    frozen_flags = [m < FREEZE_MOTION and not is_black[i] for i, m in enumerate(vm.motion)]
    # A held picture's keyframes (every GOP) decode a little differently from the frame
    # before (0.07-0.1 code values): one such frame between held ones is held too.
    for i in range(1, len(frozen_flags) - 1):
        if (not frozen_flags[i] and frozen_flags[i - 1] and frozen_flags[i + 1]
                and vm.motion[i] < FREEZE_REFRESH and not is_black[i]):
            frozen_flags[i] = True
    # A frame is frozen when it repeats the last; the stretch starts at the repeated frame.
    runs = [(max(0, s - 1), e) for s, e in _runs(frozen_flags)]
    freeze = _stretches("freeze", [(s / rate, e / rate) for s, e in runs], intended, pol.freeze_seconds, clock)
    out.append(_check("freeze", spec, bool(freeze), measured={"stretches": len(freeze)},
                      threshold={"min_seconds": pol.freeze_seconds, "mean_abs_diff": FREEZE_MOTION},
                      spec_field="qc.freeze_seconds",
                      finding=(f"{len(freeze)} frozen stretch(es), first at {freeze[0].start_tc}" if freeze
                               else "no frozen picture outside what the edit intends"),
                      fix="check the shot there (a held frame or a stalled render); mark intended stills in the edit",
                      events=freeze))
    if full_range:
        lo, hi = 0, 255
    else:
        lo, hi = R103
    bad_flags = [x > OUT_OF_RANGE_AREA for x in vm.out_of_range]
    bad_frames = [i for i, b in enumerate(bad_flags) if b]
    lev_events = [clock.event(s / rate, e / rate, f"Y {min(vm.ymin[s:e])}-{max(vm.ymax[s:e])}")
                  for s, e in _runs(bad_flags)]
    out.append(_check("levels", spec, bool(bad_frames),
                      measured={"ymin": min(vm.ymin, default=None), "ymax": max(vm.ymax, default=None),
                                "frames_out_of_range": len(bad_frames)},
                      threshold={"y_range": [lo, hi], "area": OUT_OF_RANGE_AREA,
                                 "rule": "EBU R 103 (-1%..103% of 16-235, over more than 1% of the picture)"},
                      spec_field="pix_fmt (limited range)",
                      finding=(f"luma outside {lo}-{hi} in {len(bad_frames)} frame(s), first at {lev_events[0].start_tc}"
                               if bad_frames else f"luma within {lo}-{hi}"),
                      fix="legalise the grade (soft-clip to 16-235) and re-conform", events=lev_events))
    return out


def _flash_checks(spec: ChannelSpec, vm: VideoMeasures, clock: _Clock) -> list[QcCheck]:
    assert vm.flash is not None
    rate = float(clock.rate)
    out = []
    ours: dict[str, list[tuple[int, int]]] = {}
    for check_id, kind, what in (("flash", "general", "general flashes"), ("red_flash", "red", "red flashes")):
        res = vm.flash.result(kind)
        spans = res["spans"]
        assert isinstance(spans, list)
        ours[check_id] = spans
        events = [clock.event(s / rate, (e + 1) / rate, f"> 3 {what}/s over > 25% of the screen")
                  for s, e in spans]
        out.append(_check(check_id, spec, bool(events),
                          measured={"max_flashes_per_s": res["max_flashes_per_s"], "max_area": res["max_area"],
                                    "cells": res["cells"]},
                          threshold={"flashes_per_s": 3, "area": 0.25,
                                     "transition": "≥ 0.10 relative luminance, darker < 0.80" if kind == "general"
                                     else "saturated red (R/(R+G+B) ≥ 0.8), Δ(R−G−B)×320 > 20"},
                          spec_field="(every channel: ITU-R BT.1702, WCAG 2.3.1)",
                          finding=(f"{what} above the threshold at {events[0].start_tc} ({len(events)} stretch(es))"
                                   if events else f"no {what} above the threshold"),
                          fix="slow the flashing to 3 per second or less, shrink it below a quarter of the "
                              "screen, or lower its contrast; then re-check with an approved analyser",
                          events=events))
    # ffmpeg's photosensitivity filter on the same decoded frames, for comparison. It runs
    # bypassed (measure only) and prints each frame's badness: the frame's own score (the
    # change of colour from the previous frame, cell by cell on its 8x8 grid, normalised to
    # its threshold) plus a weighted moving average of the scores of the last 30 frames (the
    # newest weigh most); at 1 or more the filter would attenuate ("EXCEEDED" in its log).
    # Its first frame is scored against an empty picture, which would flag the whole first
    # window of every file, so the same sum is taken here again without that score.
    fb = np.asarray(vm.ps_frame_badness, np.float64)
    if fb.size:
        fb[0] = 0.0
    window = PS_FRAMES
    weights = np.concatenate([[1.0], (window - np.arange(1, window)) / window])
    moving = np.convolve(fb, weights)[: fb.size]
    vm.ps_badness = moving.tolist()
    theirs = _runs([bool(x >= 1.0) for x in moving])
    mine: set[int] = set()
    our_ends = []
    for s, e in ours["flash"] + ours["red_flash"]:
        mine.update(range(s, e + 1))
        our_ends.append(e)
    theirs_set = {i for s, e in theirs for i in range(s, e)}
    both = len(mine & theirs_set)
    only_theirs = theirs_set - mine
    tail = {i for i in only_theirs if any(0 < i - e <= window for e in our_ends)}
    comparison = {
        "ffmpeg_frames_flagged": len(theirs_set), "ours_frames_flagged": len(mine), "both": both,
        "ffmpeg_only": len(only_theirs), "ffmpeg_only_in_window_tail": len(tail), "ours_only": len(mine - theirs_set),
        "ffmpeg_max_moving_badness": round(float(moving.max()) if moving.size else 0.0, 3),
        "ffmpeg_spans": [[clock.event(s / rate, e / rate).start_tc, clock.event(s / rate, e / rate).end_tc]
                         for s, e in theirs],
    }
    flash = out[0]
    flash.measured["ffmpeg_photosensitivity"] = comparison
    if mine or theirs_set:
        note = (f"; ffmpeg's photosensitivity filter flags {len(theirs_set)} frame(s), ours {len(mine)}, "
                f"{both} in common")
        if tail:
            note += (f"; {len(tail)} of ffmpeg's follow our stretches: its {window}-frame moving average "
                     "stays high after the flashing stops")
        if only_theirs - tail:
            note += (f"; {len(only_theirs - tail)} flagged by ffmpeg alone: it scores any change of colour on "
                     "an 8x8 grid, with no 0.80 darker-image rule, no 25% area rule and no count of opposing "
                     "changes, so fast motion or cuts can raise it")
        if mine - theirs_set:
            note += f"; {len(mine - theirs_set)} flagged by us alone: ffmpeg's score stays under its threshold there"
        flash.finding += note
    return out


def _sound_checks(spec: ChannelSpec, am: AudioMeasures, clock: _Clock, intended: list[Span]) -> list[QcCheck]:
    out = []
    pol = spec.qc
    if spec.loudness_target is None:
        out.append(_skipped("loudness", spec, "the spec sets no loudness target", "loudness_target"))
    else:
        off = None if am.integrated is None else am.integrated - spec.loudness_target
        problem = off is None or abs(off) > pol.loudness_tolerance
        out.append(_check("loudness", spec, problem, measured={"integrated_lufs": am.integrated},
                          threshold={"target_lufs": spec.loudness_target, "tolerance_lu": pol.loudness_tolerance},
                          spec_field="loudness_target",
                          finding=(f"integrated {am.integrated} LUFS, {off:+.1f} LU from the target {spec.loudness_target}"
                                   if off is not None else "no loudness measured"),
                          fix=f"normalise the mix to {spec.loudness_target} LUFS (two-pass loudnorm) and re-mux"))
    if spec.true_peak is None:
        out.append(_skipped("true_peak", spec, "the spec sets no true-peak ceiling", "true_peak"))
    else:
        tp = am.true_peak
        out.append(_check("true_peak", spec, tp is None or tp > spec.true_peak,
                          measured={"true_peak_dbtp": tp}, threshold={"max_dbtp": spec.true_peak},
                          spec_field="true_peak", finding=f"true peak {tp} dBTP (ceiling {spec.true_peak})",
                          fix="limit the mix with a true-peak limiter below the ceiling"))
    out.append(_check("lra", spec, False, measured={"lra_lu": am.lra}, threshold={},
                      spec_field="(information: no shipped spec sets a range)",
                      finding=f"loudness range {am.lra} LU"))
    rate = am.rate or 48000
    sil = _stretches("silence", am.silences, intended, pol.silence_seconds, clock)
    out.append(_check("silence", spec, bool(sil), measured={"stretches": len(sil)},
                      threshold={"below_dbfs": pol.silence_db, "min_seconds": pol.silence_seconds},
                      spec_field="qc.silence_db, qc.silence_seconds",
                      finding=(f"{len(sil)} silent stretch(es), first at {sil[0].start_tc}" if sil
                               else "no silence outside what the edit intends"),
                      fix="check the mix there (a muted stem or a missing line); mark intended silence in the edit",
                      events=sil))
    clip_events = []
    for start, length, ch in sorted(am.clip_runs)[:200]:
        clip_events.append(clock.event(start / rate, (start + length) / rate, f"channel {ch}, {length} samples"))
    clip_events = _merge(clip_events, clock)
    out.append(_check("clipping", spec, bool(am.clip_runs),
                      measured={"runs": len(am.clip_runs), "samples_over": am.clipped_samples,
                                "sample_peak": round(am.sample_peak, 5)},
                      threshold={"level_dbfs": -0.1, "min_run_samples": 3},
                      spec_field="true_peak (a clean master stays below it)",
                      finding=(f"{len(am.clip_runs)} clipped run(s), first at {clip_events[0].start_tc}" if clip_events
                               else "no clipped runs"),
                      fix="remix with headroom; a limiter after the mix, not clipping", events=clip_events))
    return out


def _merge(events: list[QcEvent], clock: _Clock) -> list[QcEvent]:
    """Events closer than a frame become one (clipped runs on both channels, a run every cycle)."""
    out: list[QcEvent] = []
    gap = 1 / float(clock.rate)
    for ev in sorted(events, key=lambda e: e.start_s):
        if out and ev.start_s - out[-1].end_s <= gap:
            last = out[-1]
            if ev.end_s > last.end_s:
                out[-1] = clock.event(last.start_s, ev.end_s, last.detail)
            continue
        out.append(ev)
    return out


def _av_length(spec: ChannelSpec, frames: int, rate: Fraction, am: AudioMeasures | None) -> QcCheck:
    if am is None or not am.rate:
        return _skipped("av_length", spec, "no audio stream")
    video_s = float(frames / rate)
    audio_s = am.samples / am.rate
    diff = audio_s - video_s
    tol = 1 / float(rate)
    return _check("av_length", spec, abs(diff) > tol,
                  measured={"video_s": round(video_s, 4), "audio_s": round(audio_s, 4), "difference_s": round(diff, 4)},
                  threshold={"max_difference_s": round(tol, 4)}, spec_field="fps (one frame)",
                  finding=f"sound {diff:+.3f} s against the picture",
                  fix="trim or pad the mix to the picture's length and re-mux")


# ----------------------------------------------------------------------------- captions

_CUE_RE = re.compile(r"(\d+:)?(\d{1,2}):(\d{2})[.,](\d{3})\s*-->\s*(\d+:)?(\d{1,2}):(\d{2})[.,](\d{3})")


def _ts(h: str | None, m: str, s: str, ms: str) -> float:
    return int((h or "0:")[:-1]) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_captions(path: Path) -> list[tuple[float, float, list[str]]]:
    """Cues of an SRT or WebVTT file: (start, end, lines)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise StudioError(f"cannot be read ({e})", fix="pass a UTF-8 SRT or WebVTT file",
                          stage="qc", source=str(path)) from e
    cues = []
    for block in re.split(r"\r?\n\s*\r?\n", text.strip()):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            m = _CUE_RE.search(line)
            if m:
                g = m.groups()
                body = [re.sub(r"<[^>]+>", "", t).strip() for t in lines[i + 1:] if t.strip()]
                cues.append((_ts(g[0], g[1], g[2], g[3]), _ts(g[4], g[5], g[6], g[7]), body))
                break
    if not cues and text.strip():
        raise StudioError("has no cues (no `00:00:01,000 --> 00:00:02,000` lines)",
                          fix="pass an SRT or WebVTT file", stage="qc", source=str(path))
    return cues


def _captions(spec: ChannelSpec, path: Path, duration: float, clock: _Clock) -> QcCheck:
    rules = spec.captions
    events: list[QcEvent] = []
    cues = parse_captions(path)
    counts = {"overlap": 0, "too_short": 0, "too_fast": 0, "too_many_lines": 0, "line_too_long": 0,
              "past_end": 0}
    prev_end = -math.inf
    for n, (start, end, lines) in enumerate(cues, 1):
        problems = []
        dur = end - start
        chars = sum(len(t) for t in lines)
        if start < prev_end - 1e-6:
            counts["overlap"] += 1
            problems.append(f"overlaps the previous cue by {prev_end - start:.2f} s")
        if dur < rules.min_duration:
            counts["too_short"] += 1
            problems.append(f"{dur:.2f} s on screen (min {rules.min_duration})")
        # To the hundredth: cue times are whole milliseconds in SRT/WebVTT, so a cue timed
        # at exactly the limit reads a hair over it (38 characters in 2.235 s is 17.002/s).
        cps = round(chars / dur, 2) if dur > 0 else math.inf
        if cps > rules.max_cps:
            counts["too_fast"] += 1
            problems.append(f"{cps:.1f} characters/s (max {rules.max_cps})")
        if len(lines) > rules.max_lines:
            counts["too_many_lines"] += 1
            problems.append(f"{len(lines)} lines (max {rules.max_lines})")
        if any(len(t) > rules.max_chars_per_line for t in lines):
            counts["line_too_long"] += 1
            problems.append(f"a line over {rules.max_chars_per_line} characters")
        if end > duration + 1 / float(clock.rate):
            counts["past_end"] += 1
            problems.append(f"ends after the picture ({duration:.2f} s)")
        if problems:
            events.append(clock.event(start, end, f"cue {n}: " + "; ".join(problems)))
        prev_end = max(prev_end, end)
    bad = {k: v for k, v in counts.items() if v}
    return _check("captions", spec, bool(events), measured={"cues": len(cues), **counts},
                  threshold={"min_duration": rules.min_duration, "max_cps": rules.max_cps,
                             "max_lines": rules.max_lines, "max_chars_per_line": rules.max_chars_per_line},
                  spec_field="captions",
                  finding=(f"{len(events)} cue(s) with problems ({', '.join(f'{k} {v}' for k, v in bad.items())}), "
                           f"first at {events[0].start_tc}" if events else f"{len(cues)} cues within the caption rules"),
                  fix="re-time or split those cues (studio's captions stage cuts them to the spec's rules)",
                  events=events)


# ----------------------------------------------------------------------------- palette

def _palette(spec: ChannelSpec, pixels: np.ndarray, palette: list[str] | None) -> QcCheck:
    if not palette:
        return _skipped("palette", spec, "no style pack palette given", "qc.palette_delta_e")
    centres, weights = dominant_colours(pixels)
    pal_lab = rgb_to_lab(np.array([hex_to_rgb(c) for c in palette], np.float64))
    lab = rgb_to_lab(centres)
    d = delta_e_2000(lab[:, None, :], pal_lab[None, :, :]).min(axis=1)
    mean = float((d * weights).sum())
    limit = spec.qc.palette_delta_e
    dominant = ["#" + "".join(f"{int(round(x)):02x}" for x in c) for c in centres]
    return _check("palette", spec, mean > limit,
                  measured={"mean_delta_e2000": round(mean, 2), "dominant": dominant,
                            "weights": [round(float(w), 3) for w in weights],
                            "nearest_delta_e": [round(float(x), 2) for x in d]},
                  threshold={"max_mean_delta_e2000": limit, "palette": palette}, spec_field="qc.palette_delta_e",
                  finding=f"dominant colours are ΔE00 {mean:.1f} from the palette on average (limit {limit})",
                  fix="check the grade (the style pack's LUT) was applied; regenerate off-palette shots")


# ----------------------------------------------------------------------------- entry points

def run_qc(path: str | Path, spec: ChannelSpec, *, captions: Path | None = None,
           intended: list[Span] | None = None, palette: list[str] | None = None,
           expected_duration: float | None = None) -> QcReport:
    """Run the battery on one deliverable against ``spec``. ``intended``: stretches the
    edit means to be black, still or silent; ``palette``: the style pack's colours;
    ``expected_duration``: the edit's length in seconds (checked to the frame)."""
    path = Path(path)
    if not path.is_file():
        raise StudioError("file not found", fix="check the path", stage="qc", source=str(path))
    if spec.kind == "still":
        return _run_still(path, spec, palette)
    info = probe(path)
    v = _stream(info, "video")
    if v is None:
        raise StudioError("has no video stream", fix=f"pass the {spec.name} video deliverable",
                          stage="qc", source=str(path))
    a = _stream(info, "audio")
    rate = rate_of(v)
    clock = _Clock(rate)
    intended = intended or []
    pol = spec.qc
    full_range = v.get("color_range") == "pc" or str(v.get("pix_fmt", "")).startswith("yuvj")
    lo, hi = (0, 255) if full_range else (16, 235)
    legal = (0, 255) if full_range else R103
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(audio_pass, path, a, silence_db=pol.silence_db,
                          silence_s=min(pol.silence_seconds, 0.25)) if a is not None else None
        vm = video_pass(path, v, rate, full_range=full_range, legal=legal,
                        black_level=lo + 0.10 * (hi - lo))
        am = fut.result() if fut is not None else None
    checks = _format_checks(path, spec, info, v, rate)
    checks.append(_audio_format(spec, a))
    checks.append(_duration(spec, vm.frames, rate, clock, expected_duration))
    checks.append(_decode(spec, vm, am))
    checks += _picture_checks(spec, vm, clock, intended, full_range)
    checks += _flash_checks(spec, vm, clock)
    if am is not None:
        checks += _sound_checks(spec, am, clock, intended)
    else:
        for cid in ("loudness", "true_peak", "lra", "silence", "clipping"):
            checks.append(_skipped(cid, spec, "no audio stream"))
    checks.append(_av_length(spec, vm.frames, rate, am))
    duration = float(vm.frames / rate)
    checks.append(_captions(spec, captions, duration, clock) if captions is not None
                  else _skipped("captions", spec, "no caption file given", "captions"))
    samples = np.concatenate(vm.palette_samples) if vm.palette_samples else np.zeros((0, 3), np.uint8)
    checks.append(_palette(spec, samples, palette))
    checks = [c if spec.qc.severity(c.id) != "skip" else _skipped(c.id, spec, "skipped by the spec's qc.skip", "qc.skip")
              for c in checks]
    return QcReport(str(path), spec.name, spec.kind, str(rate), vm.frames, round(duration, 4), checks,
                    thumbs=vm.thumbs)


def _run_still(path: Path, spec: ChannelSpec, palette: list[str] | None) -> QcReport:
    """The reduced battery for a still: size, format, colour, byte limit, palette."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            fmt, size, mode = im.format, im.size, im.mode
            icc = im.info.get("icc_profile")
            srgb_chunk = "srgb" in im.info
            rgb = np.asarray(im.convert("RGB").resize((min(size[0], 160), min(size[1], 160))))
    except (UnidentifiedImageError, OSError) as e:
        raise StudioError(f"is not an image Pillow can read ({e})", fix="pass the still deliverable",
                          stage="qc", source=str(path)) from e
    want_fmt = {"png": "PNG", "jpeg": "JPEG"}[spec.codec]
    got = {"format": fmt, "width": size[0], "height": size[1], "mode": mode}
    want = {"format": want_fmt, "width": spec.width, "height": spec.height, "mode": "RGB"}
    bad = [k for k in want if got[k] != want[k]]
    checks = [_check("format", spec, bool(bad), measured=got, threshold=want, spec_field="codec, width, height",
                     finding=("format and size match the spec" if not bad else
                              "differs: " + ", ".join(f"{k} {got[k]} (spec {want[k]})" for k in bad)),
                     fix=f"export it again to {spec.name}")]
    desc = ""
    if icc:
        try:
            from io import BytesIO

            from PIL import ImageCms

            desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(BytesIO(icc))).strip()
        except (OSError, ImportError, ValueError):
            desc = "unreadable ICC profile"
    colour_ok = not icc or "srgb" in desc.lower()
    checks.append(_check("colour", spec, not colour_ok,
                         measured={"icc_profile": desc or None, "srgb_chunk": srgb_chunk},
                         threshold={"colour": "sRGB (BT.709 primaries): no profile, or an sRGB one"},
                         spec_field="color",
                         finding=("sRGB" if colour_ok else f"tagged {desc!r}, not sRGB"),
                         fix="convert the image to sRGB and embed the sRGB profile (or none)"))
    checks.append(_file_size(path, spec, "lower the JPEG quality or simplify the image"))
    checks.append(_palette(spec, rgb.reshape(-1, 3), palette))
    checks = [c if spec.qc.severity(c.id) != "skip" else _skipped(c.id, spec, "skipped by the spec's qc.skip", "qc.skip")
              for c in checks]
    return QcReport(str(path), spec.name, spec.kind, None, None, None, checks, thumbs={0: rgb})
