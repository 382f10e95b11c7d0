"""Benchmark: what the grade costs a render, and three channels from one decode.

    python bench/bench_grade.py [--quick] [--reps N] [--style NAME]

The style pack's LUT is applied once per shot in the clips stage (to the keyframe before
the camera move, studio.lut in numpy; or to a video model's master with ffmpeg lut3d);
the conform of a render adds grain and sharpening only. Measures, as ratios within one
run (repetitions interleaved, order rotated, medians):

  (a) time: conform with what a render's conform now applies (grain + sharpen; the LUT
      is in the masters) / the same conform with no finishing (encode alone)
                                                                    target <= 1.7
      also shown, for comparison: the LUT in the conform too (the old place, still
      what conform does when a caller passes ``lut``) / encode alone
  grading once per shot, shown beside the conform it saves the LUT from: the six cuts'
      keyframes graded in numpy (1920x1920 each, what a procedural render pays per
      shot), and the six masters graded with lut3d and re-encoded (the video-model
      path), each / the plain conform
  (b) time: the fused pass / two passes (graded lossless intermediate, then the
      delivery encode of it)                                        target < 1
  (c) time: youtube-1080p + reels-9x16 + broadcast-ebu-1080p25 in one ffmpeg process
      from one decode (``conform_videos``) / three ``conform_video`` runs,
      finishing on in both                                          target <= 0.85

The timeline is bench_conform's: six cuts from six 1920x1920 H.264 masters (cached in
bench/results/media). Wall and CPU seconds (this process and the ffmpeg it waited for)
are both reported: the machine is shared, and CPU time is the steadier of the two.
Results: a table on stdout and bench/results/grade.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_conform import (  # noqa: E402
    RATE,
    RESULTS,
    SIDE,
    cuts,
    make_masters,
    print_ratios,
    timed,
)

from shots.camera import grade_master  # noqa: E402
from studio.lut import apply_lut, load_cube  # noqa: E402
from studio.settings import Settings  # noqa: E402
from studio.specs import Catalog, ChannelSpec  # noqa: E402
from timelines.conform import (  # noqa: E402
    ConformClip,
    VideoJob,
    build_video_command,
    conform_video,
    conform_videos,
    probe,
)

CLIP_CRF, CLIP_PRESET = Settings().clip_crf, Settings().clip_preset  # what masters use
FULL = {"cut_s": 2.0, "reps": 3, "channel_reps": 2}  # 12 s timeline, ≈ 4-5 min
QUICK = {"cut_s": 0.5, "reps": 2, "channel_reps": 1}  # 3 s timeline, ≈ 1 min
CHANNELS = ("youtube-1080p", "reels-9x16", "broadcast-ebu-1080p25")


def finishing(catalog: Catalog, style: str) -> dict[str, Any]:
    """What a render's conform applies: grain and sharpening (the LUT is in the masters)."""
    s = catalog.style(style)
    return {"grain": s.finishing.grain, "sharpen": s.finishing.sharpen}


def style_lut(catalog: Catalog, style: str) -> Path:
    lut = catalog.lut_path(catalog.style(style))
    assert lut is not None, f"style {style} has no LUT"
    return lut


def keyframes(masters: list[Path]) -> list[np.ndarray]:
    """Each master's first frame as float RGB in [0, 1]: stand-ins for the keyframes the
    camera stage grades (the cost of apply_lut does not depend on the picture)."""
    out = []
    for m in masters:
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(m), "-frames:v", "1",
             "-vf", "scale=in_color_matrix=bt709:in_range=tv", "-f", "rawvideo",
             "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
        out.append(np.frombuffer(raw, np.uint8).reshape(SIDE, SIDE, 3).astype(np.float32) / 255)
    return out


def run_grade_keyframes(frames: list[np.ndarray], lut: Path) -> None:
    cube = load_cube(lut)
    for rgb in frames:
        apply_lut(cube, rgb)


def run_grade_masters(masters: list[Path], work: Path, lut: Path) -> None:
    for i, m in enumerate(masters):
        info = probe(m)
        grade_master(m, work / f"graded_master{i}.mp4", lut, rate=Fraction(RATE),
                     frames=int(info["nb_frames"]), crf=CLIP_CRF, preset=CLIP_PRESET)


def run_plain(clips: list[ConformClip], spec: ChannelSpec, out: Path) -> None:
    conform_video(clips, spec, out)


def run_fused(clips: list[ConformClip], spec: ChannelSpec, out: Path,
              fin: dict[str, Any]) -> None:
    conform_video(clips, spec, out, **fin)


def intermediate_command(clips: list[ConformClip], spec: ChannelSpec, inter: Path,
                         fin: dict[str, Any]) -> list[str]:
    """Pass 1 of the two-pass baseline: Studio's own graph (edit + grade), written to a
    lossless x264 intermediate (ultrafast, qp 0: the cheapest lossless codec at hand;
    ffv1 and ProRes cost more to write and read)."""
    cmd = build_video_command(clips, spec, inter, **fin)
    m = cmd.index("-map")
    head = cmd[: m + 2]
    if "-progress" in head:
        i = head.index("-progress")
        del head[i:i + 2]
    return head + ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
                   "-pix_fmt", spec.pix_fmt, "-an", str(inter)]


def run_two_pass(clips: list[ConformClip], spec: ChannelSpec, out: Path, inter: Path,
                 fin: dict[str, Any], frames: int) -> None:
    subprocess.run(intermediate_command(clips, spec, inter, fin), check=True,
                   stdout=subprocess.DEVNULL)
    # Pass 2: the delivery encode of the graded picture, through conform as well (the
    # intermediate is already at the spec's size and rate: crop, scale, fps are no-ops).
    graded = ConformClip(inter, 0, frames, spec.rate, spec.width, spec.height, (0.5, 0.5),
                         "graded")
    conform_video([graded], spec, out)


def run_separate(clips: list[ConformClip], specs: list[ChannelSpec], work: Path,
                 fin: dict[str, Any]) -> None:
    for spec in specs:
        conform_video(clips, spec, work / f"sep_{spec.name}.mp4", **fin)


def run_multi(clips: list[ConformClip], specs: list[ChannelSpec], work: Path,
              fin: dict[str, Any]) -> None:
    conform_videos(clips, [VideoJob(s, work / f"multi_{s.name}.mp4") for s in specs], **fin)


def rotate(names: list[str], rep: int) -> list[str]:
    k = rep % len(names)
    return names[k:] + names[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 s timeline (about a minute)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions of (a) and (b)")
    ap.add_argument("--style", default="golden-hour", help="style pack whose finishing to use")
    ns = ap.parse_args()
    cfg = dict(QUICK if ns.quick else FULL)
    if ns.reps:
        cfg["reps"] = ns.reps
    catalog = Catalog()
    spec = catalog.spec("youtube-1080p")
    specs = [catalog.spec(n) for n in CHANNELS]
    fin = finishing(catalog, ns.style)
    lut = style_lut(catalog, ns.style)
    cut_frames = round(cfg["cut_s"] * RATE)
    t0 = time.perf_counter()
    masters = make_masters(cfg["cut_s"])
    print(f"masters ready in {time.perf_counter() - t0:.1f} s", flush=True)
    clips = cuts(masters, cut_frames)
    timeline_s = 6 * cut_frames / RATE
    frames = round(timeline_s * spec.rate)

    work = Path(tempfile.mkdtemp(prefix="bench-grade-", dir=RESULTS))
    wall: dict[str, list[float]] = {k: [] for k in ("plain", "fused", "lut_in_conform",
                                                    "two_pass", "separate", "multi",
                                                    "grade_keyframes", "grade_masters")}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    try:
        stills = keyframes(masters)
        for rep in range(cfg["reps"]):
            names = ["plain", "fused", "lut_in_conform", "two_pass", "grade_keyframes",
                     "grade_masters"]
            for name in rotate(names, rep):
                out = work / f"{name}.mp4"
                if name == "plain":
                    w, c = timed(run_plain, clips, spec, out)
                elif name == "fused":
                    w, c = timed(run_fused, clips, spec, out, fin)
                elif name == "lut_in_conform":
                    w, c = timed(run_fused, clips, spec, out, {**fin, "lut": lut})
                elif name == "grade_keyframes":
                    w, c = timed(run_grade_keyframes, stills, lut)
                elif name == "grade_masters":
                    w, c = timed(run_grade_masters, masters, work, lut)
                else:
                    w, c = timed(run_two_pass, clips, spec, out, work / "inter.mkv", fin, frames)
                wall[name].append(w)
                cpu[name].append(c)
                print(f"  rep {rep + 1} {name:9s} {w:7.2f} s wall {c:7.2f} s cpu", flush=True)
        for rep in range(cfg["channel_reps"]):
            for name in rotate(["separate", "multi"], rep):
                fn = run_separate if name == "separate" else run_multi
                w, c = timed(fn, clips, specs, work, fin)
                wall[name].append(w)
                cpu[name].append(c)
                print(f"  rep {rep + 1} {name:9s} {w:7.2f} s wall {c:7.2f} s cpu", flush=True)
        outputs = {p.stem: probe(p) for p in sorted(work.glob("*.mp4"))}
        for stem, p in outputs.items():
            print(f"  {stem:32s} {p['width']}x{p['height']} {p['fps']} fps "
                  f"{p['nb_frames']} frames {p['duration']} s {p['color_primaries']}", flush=True)
        for s in specs:  # one decode or three: the same deliverable
            a, b = outputs[f"sep_{s.name}"], outputs[f"multi_{s.name}"]
            assert (a["nb_frames"], a["width"], a["height"]) == (b["nb_frames"], b["width"],
                                                                b["height"]), (a, b)
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    ratios = {
        "a_fused_over_plain_wall": mw["fused"] / mw["plain"],
        "a_fused_over_plain_cpu": mc["fused"] / mc["plain"],
        "b_fused_over_two_pass_wall": mw["fused"] / mw["two_pass"],
        "b_fused_over_two_pass_cpu": mc["fused"] / mc["two_pass"],
        "c_multi_over_separate_wall": mw["multi"] / mw["separate"],
        "c_multi_over_separate_cpu": mc["multi"] / mc["separate"],
    }
    # No target: what the clips stage pays once per shot, and the old all-in-conform pass.
    shown = {
        "lut_in_conform_over_plain_wall": mw["lut_in_conform"] / mw["plain"],
        "lut_in_conform_over_plain_cpu": mc["lut_in_conform"] / mc["plain"],
        "grade_keyframes_over_plain_wall": mw["grade_keyframes"] / mw["plain"],
        "grade_keyframes_over_plain_cpu": mc["grade_keyframes"] / mc["plain"],
        "grade_masters_over_plain_wall": mw["grade_masters"] / mw["plain"],
        "grade_masters_over_plain_cpu": mc["grade_masters"] / mc["plain"],
    }
    targets = {"a": ("<=", 1.7), "b": ("<", 1.0), "c": ("<=", 0.85)}
    print()
    print(f"grade bench ({'quick' if ns.quick else 'full'}): {timeline_s:.0f} s timeline, "
          f"6 cuts of 1920x1920 masters, style {ns.style} (grain {fin['grain']}, sharpen "
          f"{fin['sharpen']}), {os.cpu_count()} CPUs, {cfg['reps']} reps "
          f"(channels {cfg['channel_reps']}), load after {os.getloadavg()[0]:.1f}")
    print(f"{'median seconds':34s} {'wall':>9s} {'cpu':>9s}")
    for name in wall:
        print(f"{name:34s} {mw[name]:9.2f} {mc[name]:9.2f}")
    print_ratios(ratios, targets)
    print("\nfor comparison (no target): six keyframes graded in numpy, six masters graded "
          "with lut3d\nand re-encoded (video models), the LUT in the conform (the old place)")
    for key, value in shown.items():
        print(f"{key:34s} {value:9.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "mode": "quick" if ns.quick else "full",
        "timeline_seconds": timeline_s,
        "style": ns.style,
        "finishing": {k: str(v) for k, v in fin.items()},
        "channels": list(CHANNELS),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_after": os.getloadavg()},
        "wall_s": wall,
        "cpu_s": cpu,
        "medians_wall_s": mw,
        "medians_cpu_s": mc,
        "ratios": ratios,
        "shown": shown,
        "lut": str(lut),
        "targets": {k: f"{op} {t:g}" for k, (op, t) in targets.items()},
        "outputs": {k: {kk: str(vv) for kk, vv in v.items()} for k, v in outputs.items()},
        "rate": str(Fraction(spec.rate)),
    }
    (RESULTS / "grade.json").write_text(json.dumps(doc, indent=2))
    print(f"\nwritten {RESULTS / 'grade.json'}")


if __name__ == "__main__":
    main()
