"""Benchmark: the segmented conform (per-cut segments in the store, joined by stream copy)
against the single-graph conform.

    python bench/bench_segments.py [--quick]

Measures:

  (m) peak memory of the whole process tree (Python + every ffmpeg it starts), sampled
      from /proc every 10 ms: segmented conform of 48 cuts / of 6 cuts      target <= 1.3
      (one cut per process one at a time, and deliver's setting, DELIVER: two cuts in
      flight, each its own process; and, for
      comparison, the same ratio for the single-graph conform)
  (r) time: re-conform of an 8-cut edit with one shot changed (the other seven segments
      reused from the store) / a full segmented conform of it           lower is better
  (o) time: segmented conform of the whole 48-cut spot from an empty store / the
      single-graph conform of it (the segmented conform's overhead)     reported as is

Masters are testsrc2 (hue-shifted apart) with handles; the spec is youtube-1080p's encoder
settings at a reduced size (--quick: 640x360, cuts of 12 frames). Results: a table on
stdout and bench/results/segments.json (full: ≈ 7 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.specs import Catalog, ChannelSpec  # noqa: E402
from studio.store import Store  # noqa: E402
from timelines.conform import ConformClip, VideoJob, conform_videos  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RATE = 30
HANDLE = 6  # frames of handle either side of every cut
FULL = {"w": 1280, "h": 720, "cut": 30, "reps": 3}
QUICK = {"w": 640, "h": 360, "cut": 12, "reps": 2}
DELIVER = (2, 1)  # (workers, cuts_per_process) as timelines/deliver.py conforms


def spec_for(w: int, h: int) -> ChannelSpec:
    return Catalog().spec("youtube-1080p").model_copy(
        update={"name": f"bench-{h}p", "width": w, "height": h})


def make_masters(d: Path, n: int, w: int, h: int, frames: int, salt: int = 0) -> list[Path]:
    out = []
    for i in range(n):
        p = d / f"m{salt}_{i}.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={w}x{h}:rate={RATE}", "-frames:v", str(frames), "-vf",
             f"hue=h={(37 * i + 101 * salt) % 360}", "-c:v", "libx264", "-preset", "ultrafast",
             "-crf", "18", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries",
             "bt709", "-color_trc", "bt709", str(p)], check=True)
        out.append(p)
    return out


def edit(masters: list[Path], n: int, cut: int, w: int, h: int) -> list[ConformClip]:
    return [ConformClip(masters[i % len(masters)], HANDLE + (i // len(masters)) % 3, cut,
                        Fraction(RATE), w, h, (0.5, 0.5), f"s{i:02d}") for i in range(n)]


# ---------------------------------------------------------------------------- worker


def worker(args: list[str]) -> None:
    """Child process: one conform described by a JSON file (so the parent can sample
    this process tree's memory from the outside)."""
    job = json.loads(Path(args[0]).read_text())
    spec = spec_for(job["w"], job["h"])
    clips = [ConformClip(Path(c["path"]), c["start"], c["frames"], Fraction(RATE), job["w"],
                         job["h"], (0.5, 0.5), c["name"]) for c in job["clips"]]
    store = Store(job["store"]) if job["store"] else None
    t0 = time.perf_counter()
    recs = conform_videos(clips, [VideoJob(spec, Path(job["out"]))], store=store,
                          workers=job["workers"], cuts_per_process=job["cuts_per_process"])
    encoded = sum(s["encoded"] for s in recs[0].get("segments", []))
    print(json.dumps({"frames": recs[0]["frames"], "encoded": encoded,
                      "conform_s": time.perf_counter() - t0}))


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    except OSError:
        pass
    return 0


def run_conform(clips: list[ConformClip], w: int, h: int, out: Path, store: Path | None,
                workers: int = 1, per: int = 1) -> dict[str, Any]:
    """One conform in a fresh process; wall seconds and the tree's peak RSS (sampled)."""
    desc = out.with_suffix(".json")
    desc.write_text(json.dumps({
        "w": w, "h": h, "out": str(out), "store": str(store) if store else None,
        "workers": workers, "cuts_per_process": per, "clips": [{"path": str(c.path), "start": c.start_frame,
                                       "frames": c.frames, "name": c.name} for c in clips]}))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--worker", str(desc)],
                            stdout=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(_rss_kb(p) for p in _tree(proc.pid)))
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"conform worker failed ({proc.returncode})")
    res = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "peak_mb": peak[0] / 1024, **res}


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="640x360, 12-frame cuts")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        worker(ns.worker)
        return
    cfg = QUICK if ns.quick else FULL
    w, h, cut = cfg["w"], cfg["h"], cfg["cut"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-segments-", dir=RESULTS))
    doc: dict[str, Any] = {"mode": "quick" if ns.quick else "full", "size": [w, h],
                           "cut_frames": cut}
    try:
        masters = make_masters(work, 8, w, h, cut + 2 * HANDLE + 3)
        changed = make_masters(work, 1, w, h, cut + 2 * HANDLE + 3, salt=1)[0]
        spot = edit(masters, 48, cut, w, h)
        six = spot[:6]
        eight = spot[:8]

        def fresh() -> Path:
            d = Path(tempfile.mkdtemp(prefix="store-", dir=work))
            return d

        # (m) memory: one cut per process, one process at a time; and the deliver
        # default (DELIVER: two processes at once, one cut each)
        mem: dict[str, dict[str, float]] = {}
        for key, clips, store, (workers, per) in (
                ("segmented_6", six, True, (1, 1)), ("segmented_48", spot, True, (1, 1)),
                ("segmented_6_deliver", six, True, DELIVER),
                ("segmented_48_deliver", spot, True, DELIVER),
                ("single_6", six, False, (1, 1)), ("single_48", spot, False, (1, 1))):
            r = run_conform(clips, w, h, work / f"{key}.mp4", fresh() if store else None,
                            workers, per)
            mem[key] = r
            print(f"  memory {key:16s} peak {r['peak_mb']:7.0f} MB  ({r['wall_s']:.1f} s)",
                  flush=True)
        doc["memory"] = mem

        # (r) one changed shot of 8, and (o) the whole spot, segmented vs single graph
        times: dict[str, list[float]] = {k: [] for k in (
            "full_8", "one_changed_of_8", "full_8_in_process", "one_changed_of_8_in_process",
            "segmented_48", "segmented_48_deliver",
            "single_graph_48")}
        for rep in range(cfg["reps"]):
            store = fresh()
            a = run_conform(eight, w, h, work / "eight.mp4", store, *DELIVER)
            edited = list(eight)
            edited[3] = ConformClip(changed, HANDLE, cut, Fraction(RATE), w, h, (0.5, 0.5), "x")
            b = run_conform(edited, w, h, work / "eight_changed.mp4", store, *DELIVER)
            assert (a["encoded"], b["encoded"]) == (8, 1), (a, b)
            times["full_8"].append(a["wall_s"])
            times["one_changed_of_8"].append(b["wall_s"])
            # the conform call alone, without the worker's Python start and imports
            times["full_8_in_process"].append(a["conform_s"])
            times["one_changed_of_8_in_process"].append(b["conform_s"])
            order = ["segmented_48", "segmented_48_deliver", "single_graph_48"]
            order = order[rep % 3:] + order[:rep % 3]  # rotate: load drifts
            for name in order:
                if name == "segmented_48":
                    r = run_conform(spot, w, h, work / "s48.mp4", fresh())
                elif name == "segmented_48_deliver":
                    r = run_conform(spot, w, h, work / "d48.mp4", fresh(), *DELIVER)
                else:
                    r = run_conform(spot, w, h, work / "g48.mp4", None)
                times[name].append(r["wall_s"])
            print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
        doc["times_s"] = times
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in doc["times_s"].items()}
    mem = doc["memory"]
    ratios = {
        "m_memory_48_over_6_segmented": mem["segmented_48"]["peak_mb"]
        / mem["segmented_6"]["peak_mb"],
        "m_memory_48_over_6_segmented_deliver": mem["segmented_48_deliver"]["peak_mb"]
        / mem["segmented_6_deliver"]["peak_mb"],
        "(info) memory 48/6 single graph": mem["single_48"]["peak_mb"]
        / mem["single_6"]["peak_mb"],
        "r_one_changed_over_full": med["one_changed_of_8"] / med["full_8"],
        "r_one_changed_over_full_in_process": med["one_changed_of_8_in_process"]
        / med["full_8_in_process"],
        "o_segmented_over_single_48": med["segmented_48"] / med["single_graph_48"],
        "o_segmented_deliver_over_single_48": med["segmented_48_deliver"]
        / med["single_graph_48"],
    }
    doc["medians_s"] = med
    doc["ratios"] = ratios
    doc["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "loadavg_after": os.getloadavg()}
    print()
    print(f"segments bench ({doc['mode']}): {w}x{h}, cuts of {cut} frames at {RATE} fps, "
          f"{os.cpu_count()} CPUs")
    for k, v in med.items():
        print(f"{'median ' + k + ', s':40s} {v:8.2f}")
    for k, v in ratios.items():
        print(f"{k:40s} {v:8.2f}")
    (RESULTS / "segments.json").write_text(json.dumps(doc, indent=2))
    print(f"\nwritten {RESULTS / 'segments.json'}")


if __name__ == "__main__":
    main()
