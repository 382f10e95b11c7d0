"""Benchmark: Studio's conform against a hand-written ffmpeg command and moviepy 2.2.

    python bench/bench_conform.py [--quick] [--reps N]

Measures, as ratios within one run (repetitions interleaved, medians taken, because
run-to-run noise on small machines is about ±40%):

  (a) time: Studio ``conform_video`` / one hand-written ffmpeg command doing the same
      trims, crops, scales, concat, fps and encode             target <= 1.1
  (b) time: moviepy 2.2 equivalent / Studio                     target >= 3
  (c) peak memory of the whole process tree, 60 s / 10 s timeline target <= 1.3

The timeline is six cuts from six 1920x1920 masters (ffmpeg testsrc2, tinted apart, with
handles) conformed to youtube-1080p. Masters are cached in bench/results/media.
Results: a table on stdout and bench/results/conform.json.
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
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.framing import crop_box  # noqa: E402
from studio.specs import Catalog  # noqa: E402
from timelines.conform import (  # noqa: E402
    ConformClip,
    build_video_command,
    conform_video,
    probe,
)

RESULTS = ROOT / "bench" / "results"
MEDIA = RESULTS / "media"
SIDE = 1920
RATE = 30
HANDLE = 15  # frames of handle either side of every cut (0.5 s)
# Where each shot's subject is: the crops differ from clip to clip.
FOCUS = [(0.5, 0.5), (0.5, 0.3), (0.5, 0.7), (0.4, 0.45), (0.6, 0.55), (0.5, 0.62)]
# youtube-1080p crops of a 1920x1920 master for those focus points (crop_box's answer,
# written out here for the hand-made command; checked against crop_box at run time).
CROPS = [(0, 420), (0, 36), (0, 804), (0, 324), (0, 516), (0, 650)]

FULL = {"cut_s": 5.0, "mem_long_s": 60.0, "mem_short_s": 10.0, "reps": 4, "moviepy_reps": 2}
QUICK = {"cut_s": 1.0, "mem_long_s": 12.0, "mem_short_s": 2.0, "reps": 3, "moviepy_reps": 2}


# ---------------------------------------------------------------------------- media


def make_masters(seconds: float) -> list[Path]:
    """Six 1920x1920 H.264 masters of ``seconds`` (+ handles), like camera-stage output."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    frames = round(seconds * RATE) + 2 * HANDLE
    paths = []
    for i in range(6):
        p = MEDIA / f"master{i}_{frames}f.mp4"
        if not p.exists():
            tmp = p.with_suffix(".tmp.mp4")
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                 "-i", f"testsrc2=s={SIDE}x{SIDE}:r={RATE}",
                 "-vf", f"hue=h={i * 60},format=yuv420p", "-frames:v", str(frames),
                 "-c:v", "libx264", "-preset", "ultrafast", "-crf", "14", "-g", "30",
                 "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                 str(tmp)],
                check=True,
            )
            tmp.rename(p)
        paths.append(p)
    return paths


def cuts(masters: list[Path], cut_frames: int, n: int = 6) -> list[ConformClip]:
    """``n`` cuts of ``cut_frames``; beyond six, masters are reused from later points."""
    return [ConformClip(masters[i % 6], HANDLE + (i // 6) * cut_frames, cut_frames,
                        Fraction(RATE), SIDE, SIDE, FOCUS[i % 6], f"shot{i}")
            for i in range(n)]


# ---------------------------------------------------------------------------- the three


def run_studio(clips: list[ConformClip], out: Path) -> None:
    conform_video(clips, Catalog().spec("youtube-1080p"), out, preset="veryfast")


def hand_command(masters: list[Path], cut_frames: int, out: Path) -> list[str]:
    """The same edit, written by hand as one ffmpeg command (what an editor would type):
    trim by frame numbers from the start of each file, crop, scale, concat, fps, encode."""
    s, e = HANDLE, HANDLE + cut_frames
    graph = ";".join(
        f"[{i}:v]trim=start_frame={s}:end_frame={e},setpts=PTS-STARTPTS,"
        f"crop=1920:1080:{x}:{y},"
        "scale=1920:1080:flags=lanczos:out_color_matrix=bt709:out_range=tv,setsar=1"
        f"[v{i}]"
        for i, (x, y) in enumerate(CROPS)
    ) + ";[v0][v1][v2][v3][v4][v5]concat=n=6:v=1:a=0,fps=30,format=yuv420p[out]"
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(masters[0]), "-i", str(masters[1]), "-i", str(masters[2]),
        "-i", str(masters[3]), "-i", str(masters[4]), "-i", str(masters[5]),
        "-filter_complex", graph, "-map", "[out]",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        "-maxrate", "8M", "-bufsize", "16M", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-bf", "2",
        "-flags", "+cgop", "-x264-params", "open_gop=0",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-r", "30", "-movflags", "+faststart", "-an",
        str(out),
    ]  # fmt: skip


def run_hand(masters: list[Path], cut_frames: int, out: Path) -> None:
    subprocess.run(hand_command(masters, cut_frames, out), check=True)


def run_moviepy(masters: list[Path], cut_frames: int, out: Path) -> None:
    from moviepy import VideoFileClip, concatenate_videoclips

    sources = [VideoFileClip(str(p), audio=False) for p in masters]
    try:
        parts = [
            src.subclipped(HANDLE / RATE, (HANDLE + cut_frames) / RATE)
            .cropped(x1=x, y1=y, width=1920, height=1080)
            .resized((1920, 1080))
            for src, (x, y) in zip(sources, CROPS, strict=True)
        ]
        final = concatenate_videoclips(parts)
        final.write_videofile(
            str(out), fps=RATE, codec="libx264", preset="veryfast", audio=False, logger=None,
            ffmpeg_params=["-crf", "20", "-maxrate", "8M", "-bufsize", "16M",
                           "-profile:v", "high", "-g", "15", "-bf", "2", "-flags", "+cgop",
                           "-colorspace", "bt709", "-color_primaries", "bt709",
                           "-color_trc", "bt709", "-movflags", "+faststart"],
        )
    finally:
        for src in sources:
            src.close()


# ---------------------------------------------------------------------------- memory


def worker(args: list[str]) -> None:
    """Child process: one conform, then report this process's and its children's peaks.

    Python's own peak is read from /proc/self/status (VmHWM), not getrusage: this process
    was started with vfork, and Linux folds the parent's RSS at exec time into the
    child's ru_maxrss, so getrusage(RUSAGE_SELF) would report the bench's own size.
    ffmpeg's RUSAGE_CHILDREN figure carries the same floor (this small worker's size),
    which is far below ffmpeg's own peak, so it is exact."""
    n_cuts, cut_frames, out = int(args[0]), int(args[1]), Path(args[2])
    masters = [Path(p) for p in args[3:]]
    run_studio(cuts(masters, cut_frames, n_cuts), out)
    status = Path("/proc/self/status").read_text()
    me = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:")))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # ffmpeg, in kB
    print(json.dumps({"python_kb": me, "ffmpeg_kb": kids}))


def peak_memory(masters: list[Path], cut_frames: int, out: Path, n_cuts: int = 6
                ) -> dict[str, float]:
    """Peak RSS of a fresh process tree (Python + ffmpeg) running one conform. The tree's
    peak is bounded by the sum of the two peaks; Python sits near its peak the whole
    time ffmpeg runs, so the sum is close."""
    res = subprocess.run(
        [sys.executable, __file__, "--worker", str(n_cuts), str(cut_frames), str(out),
         *map(str, masters)],
        capture_output=True, text=True, check=True,
    )
    d = json.loads(res.stdout.strip().splitlines()[-1])
    return {"python_mb": d["python_kb"] / 1024, "ffmpeg_mb": d["ffmpeg_kb"] / 1024,
            "tree_mb": (d["python_kb"] + d["ffmpeg_kb"]) / 1024}


# ---------------------------------------------------------------------------- main


def frame_hashes(cmd: list[str]) -> list[str]:
    """MD5 of every frame the command's filter graph makes, before the encoder (x264
    with VBV and threads is not bit-exact run to run, so encoded files cannot be
    compared byte for byte)."""
    cmd = list(cmd)
    if "-progress" in cmd:
        i = cmd.index("-progress")
        del cmd[i:i + 2]
    m = cmd.index("-map")
    res = subprocess.run(cmd[: m + 2] + ["-f", "framemd5", "-"], capture_output=True, text=True,
                         check=True)
    return [ln.rsplit(",", 1)[-1].strip() for ln in res.stdout.splitlines()
            if not ln.startswith("#")]


def timed(fn: Any, *args: Any) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of this process plus the children it waited for
    (ffmpeg). CPU time is far steadier than wall time on a contended shared host."""

    def cpu() -> float:
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0, cpu() - c0


OPS = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__}


def print_ratios(ratios: dict[str, float], targets: dict[str, tuple[str, float]]) -> None:
    """The ratio table; a ratio's target is looked up by its key's first letter."""
    print(f"{'ratio':34s} {'value':>9s} {'target':>9s}  met")
    for key, value in ratios.items():
        op, target = targets[key[0]]
        ok = OPS[op](float(value), float(target))
        print(f"{key:34s} {value:9.2f} {op + str(target):>9s}  {'yes' if ok else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short timelines (a couple of minutes)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions of (a)")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        worker(ns.worker)
        return
    cfg = dict(QUICK if ns.quick else FULL)
    if ns.reps:
        cfg["reps"] = ns.reps
    spec = Catalog().spec("youtube-1080p")
    for (x, y), focus in zip(CROPS, FOCUS, strict=True):
        c = crop_box(SIDE, SIDE, spec, focus)
        assert (c.x // 2 * 2, c.y // 2 * 2, c.w, c.h) == (x, y, 1920, 1080), (c, x, y)

    cut_frames = round(cfg["cut_s"] * RATE)
    long_frames = round(cfg["mem_long_s"] / 6 * RATE)
    short_frames = round(cfg["mem_short_s"] / 6 * RATE)
    t0 = time.perf_counter()
    masters = make_masters(max(cfg["cut_s"], cfg["mem_long_s"] / 6))
    print(f"masters ready in {time.perf_counter() - t0:.1f} s: {MEDIA}", flush=True)
    clips = cuts(masters, cut_frames)

    work = Path(tempfile.mkdtemp(prefix="bench-conform-", dir=RESULTS))
    wall: dict[str, list[float]] = {"studio": [], "hand": [], "moviepy": []}
    cpu: dict[str, list[float]] = {"studio": [], "hand": [], "moviepy": []}
    try:
        # Same operations? Compare the frames both graphs hand to the encoder.
        hs = frame_hashes(build_video_command(clips, spec, work / "studio.mp4"))
        hh = frame_hashes(hand_command(masters, cut_frames, work / "hand.mp4"))
        same_frames = hs == hh
        print(f"graphs: studio {len(hs)} frames, hand {len(hh)} frames, "
              f"identical: {same_frames}", flush=True)

        for rep in range(cfg["reps"]):
            order = ["studio", "hand"]
            if rep < cfg["moviepy_reps"]:
                order.append("moviepy")
            order = order[rep % len(order):] + order[: rep % len(order)]  # rotate
            for name in order:
                out = work / f"{name}.mp4"
                if name == "studio":
                    w, c = timed(run_studio, clips, out)
                elif name == "hand":
                    w, c = timed(run_hand, masters, cut_frames, out)
                else:
                    w, c = timed(run_moviepy, masters, cut_frames, out)
                wall[name].append(w)
                cpu[name].append(c)
                print(f"  rep {rep + 1} {name:8s} {w:7.2f} s wall {c:7.2f} s cpu", flush=True)
        probes = {name: probe(work / f"{name}.mp4") for name in ("studio", "hand", "moviepy")}
        for name, p in probes.items():
            print(f"  {name:8s} output: {p['width']}x{p['height']} {p['fps']} fps, "
                  f"{p['nb_frames']} frames, {p['duration']} s", flush=True)

        # (c) duration at a fixed six cuts; and, for information, the short timeline's
        # duration in twice the cuts (ffmpeg keeps every input's decoder until the end).
        # Peak memory barely varies run to run (±1 MB), so one run of each.
        mem: dict[str, dict[str, float]] = {}
        plan = (("short", short_frames, 6), ("long", long_frames, 6),
                ("short_12_cuts", short_frames // 2, 12))
        for key, frames, n_cuts in plan:
            m = peak_memory(masters, frames, work / f"mem_{key}.mp4", n_cuts)
            mem[key] = {**m, "seconds": frames * n_cuts / RATE, "cuts": n_cuts}
            print(f"  memory {key:13s} ({frames * n_cuts / RATE:.0f} s, {n_cuts} cuts): "
                  f"tree {m['tree_mb']:.0f} MB (python {m['python_mb']:.0f}, "
                  f"ffmpeg {m['ffmpeg_mb']:.0f})", flush=True)
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    ratios = {
        "a_studio_over_hand_wall": mw["studio"] / mw["hand"],
        "a_studio_over_hand_cpu": mc["studio"] / mc["hand"],
        "b_moviepy_over_studio_wall": mw["moviepy"] / mw["studio"],
        "b_moviepy_over_studio_cpu": mc["moviepy"] / mc["studio"],
        "c_memory_long_over_short": mem["long"]["tree_mb"] / mem["short"]["tree_mb"],
    }
    targets = {"a": ("<=", 1.1), "b": (">=", 3.0), "c": ("<=", 1.3)}
    mem_cuts = mem["short_12_cuts"]["tree_mb"] / mem["short"]["tree_mb"]
    timeline_s = cut_frames * 6 / RATE
    print()
    print(f"conform bench ({'quick' if ns.quick else 'full'}): {timeline_s:.0f} s timeline, "
          f"6 cuts of 1920x1920 masters -> youtube-1080p, {os.cpu_count()} CPUs, "
          f"{cfg['reps']} reps (moviepy {cfg['moviepy_reps']})")
    print(f"{'median seconds':34s} {'wall':>9s} {'cpu':>9s}")
    for name in ("studio", "hand", "moviepy"):
        print(f"{name:34s} {mw[name]:9.2f} {mc[name]:9.2f}")
    print("peak memory of the process tree")
    for key, m in mem.items():
        label = f"{key} ({m['seconds']:.0f} s, {m['cuts']:.0f} cuts), MB"
        print(f"{label:34s} {m['tree_mb']:9.0f}")
    print_ratios(ratios, targets)
    print(f"{'(info) memory 12 cuts / 6 cuts':34s} {mem_cuts:9.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "mode": "quick" if ns.quick else "full",
        "timeline_seconds": timeline_s,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_after": os.getloadavg()},
        "wall_s": wall,
        "cpu_s": cpu,
        "medians_wall_s": mw,
        "medians_cpu_s": mc,
        "memory_mb": mem,
        "ratios": ratios,
        "targets": {k: f"{op} {t:g}" for k, (op, t) in targets.items()},
        "memory_12_over_6_cuts": mem_cuts,
        "graphs_identical_frames": same_frames,
        "outputs": {k: {kk: str(vv) for kk, vv in v.items()} for k, v in probes.items()},
        "hand_command": hand_command(masters, cut_frames, Path("hand.mp4")),
    }
    (RESULTS / "conform.json").write_text(json.dumps(doc, indent=2))
    print(f"\nwritten {RESULTS / 'conform.json'}")


if __name__ == "__main__":
    main()
