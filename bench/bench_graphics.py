"""Benchmark: a spot's graphics (supers, logo bug, end card, burned-in captions) burned in
by Studio's conform against a moviepy 2.2 equivalent, and against the plain conform.

    python bench/bench_graphics.py            # 30 s spot, 3 channels (long: see README)
    python bench/bench_graphics.py --quick    # 9 s spot, 3 channels
    (moviepy: pip install -e '.[bench]', the project's optional ``bench`` extra)

Measures, as ratios within one run (repetitions interleaved, medians taken: run-to-run
noise on small shared machines is about ±40%):

  (a) time: moviepy (ImageClip overlays, CompositeVideoClip, write_videofile) / Studio
      (timelines.graphics.build_graphics + timelines.conform.conform_videos)    target >= 3
  (b) time: Studio with graphics / Studio without (the plain conform)          target <= 1.2

The spot: one beat per 1920x1920 master (bench_conform's cached testsrc2 masters, made
before any timing), a super on every beat but the last, the golden-hour demo brand with a
logo bug (top right, 6% of the safe area, 85% opacity), an end card on the brand colour,
and the captions each channel's spec burns in (reels-9x16 and feed-1x1 do, youtube-1080p
does not), rendered by timelines.captions.render_overlays. Timed for Studio: building the
graphics (reading the masters' frames the supers are fitted over, fitting, PNGs) and the
segmented conform of all three channels, a fresh segment store every time (as the render
stage runs it: timelines.deliver). The captions' PNGs are made once before timing (the
captions stage's work, not the conform's), and moviepy composites the very same PNGs.

moviepy is given ImageClips of Studio's own PNGs rather than TextClips: the layouts fit
copy to a type scale with scrims measured on the picture, which TextClip cannot express,
and with the same pixels the two outputs show the same thing. A TextClip is rasterised
once per clip too, so the per-frame work (the compositing this measures) is the same. The
logo bug is an ImageClip of the bug's PNG (the logo at its size and opacity); fades are
moviepy's CrossFadeIn/CrossFadeOut on each overlay's mask, with Studio's fade times.
Same encoder settings on both: libx264, the spec's preset/CRF/VBV/profile/GOP/pix_fmt
(timelines.conform's own option list, passed to moviepy's ffmpeg_params), 30 fps, the
spec's size, no audio, no grain or sharpening. Results: stdout and
bench/results/graphics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402
from bench_conform import FOCUS, HANDLE, RATE, SIDE, make_masters, timed  # noqa: E402

from studio.brief import Brief  # noqa: E402
from studio.framing import crop_box  # noqa: E402
from studio.specs import Catalog, ChannelSpec  # noqa: E402
from studio.store import Store  # noqa: E402
from timelines.captions import Cue, render_overlays  # noqa: E402
from timelines.conform import ConformClip, VideoJob, _encoder_options, conform_videos, probe  # noqa: E402
from timelines.graphics import FrameReader, build_graphics  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXAMPLE = ROOT / "examples" / "briefs" / "launch.yaml"
SHIPPED = ROOT / "studio" / "data"
SPECS = ["youtube-1080p", "reels-9x16", "feed-1x1"]
PRESET = "veryfast"  # Settings.x264_preset's default
SUPERS = ["Cold from sunrise", "Up the trail", "Into the city", "Keeps it cold", "All day long"]
NARRATION = ["Every day starts somewhere new.", "Up the trail, the sun climbs with you.",
             "Down into the city, still cold.", "Steel that keeps the morning in.",
             "From the desk to the evening out.", "Aurora. Cold all day."]
FULL = {"beat_s": 5.0, "card_s": 3.0, "reps": 2, "moviepy_reps": 1}  # 6 beats: 30 s
QUICK = {"beat_s": 1.5, "card_s": 1.0, "reps": 3, "moviepy_reps": 2}  # 6 beats: 9 s (3 words: 1.5 s to read)


def catalog(work: Path) -> Catalog:
    """The shipped golden-hour pack with its demo brand kit, plus a logo bug."""
    styles = work / "styles"
    styles.mkdir(parents=True, exist_ok=True)
    style = yaml.safe_load((SHIPPED / "styles" / "golden-hour.yaml").read_text())
    style["name"] = "bench-graphics"
    style["finishing"]["lut"] = str((SHIPPED / "luts" / "golden-hour.cube").resolve())
    style["brand"]["logo"]["path"] = str((SHIPPED / "styles" / style["brand"]["logo"]["path"]).resolve())
    style["brand"]["logo_bug"] = {"corner": "top-right", "height": 0.06, "opacity": 0.85}
    (styles / "bench-graphics.yaml").write_text(yaml.safe_dump(style))
    return Catalog(styles_dir=styles)


def brief(beat_s: float, card_s: float) -> Brief:
    d = yaml.safe_load(EXAMPLE.read_text())
    base = d["beats"][0]
    d["beats"] = [{**{k: v for k, v in base.items() if k != "supers"}, "id": f"b{i + 1:02d}", "duration": beat_s,
                   "narration": NARRATION[i]} for i in range(6)]
    for i, words in enumerate(SUPERS):
        d["beats"][i]["supers"] = {"headline": words}
    d.update(hero_beat=None, channels=SPECS, style_pack="bench-graphics", captions=True,
             end_card={"duration": card_s, "background": "brand",
                       "copy": {"headline": "Aurora keeps it cold", "cta": "Shop Aurora"}})
    return Brief.model_validate(d)


def clips_for(masters: list[Path], b: Brief, beat_frames: int) -> list[ConformClip]:
    return [ConformClip(masters[i], HANDLE, beat_frames, Fraction(RATE), SIDE, SIDE, FOCUS[i], beat.id)
            for i, beat in enumerate(b.beats)]


def captions(b: Brief, specs: list[ChannelSpec], work: Path) -> dict[str, list[Any]]:
    """Burned-in captions for the channels that burn them in: a cue per beat (its
    narration, broken into two lines), rendered once by the captions stage's code."""
    out: dict[str, list[Any]] = {}
    t = 0.0
    cues = []
    for n, beat in enumerate(b.beats):
        words = (beat.narration or "").split()
        half = (len(words) + 1) // 2
        cues.append(Cue(n + 1, t, t + beat.duration, (" ".join(words[:half]), " ".join(words[half:])), beat.id))
        t += beat.duration
    for spec in specs:
        if spec.captions_burn_in:
            out[spec.name] = render_overlays(cues, spec, work / "captions" / spec.name)
    return out


# ---------------------------------------------------------------------------- the three


def run_studio(clips: list[ConformClip], b: Brief, specs: list[ChannelSpec], cat: Catalog,
               caps: dict[str, list[Any]], out_dir: Path, graphics: bool, res: dict[str, Any]) -> None:
    """The render stage's conform of the three channels (timelines.deliver): the graphics
    built over a shared FrameReader, then one segmented conform with two workers and a
    fresh store (nothing reused). ``res`` gets the overlays each channel had and the
    seconds spent building the graphics."""
    t0 = time.perf_counter()
    frames = FrameReader(clips)
    jobs, shown = [], {}
    for spec in specs:
        overlays: list[Any] = []
        if graphics:
            cap = caps.get(spec.name, [])
            top = min((int(c.box[1]) for c in cap), default=None)
            overlays = [*build_graphics(b, spec, clips, cat, out_dir / "graphics" / spec.name, captions_top=top,
                                        frames=frames), *cap]
        shown[spec.name] = overlays
        jobs.append(VideoJob(spec, out_dir / f"{spec.name}.mp4", overlays=overlays))
    res.update(shown=shown, build_s=time.perf_counter() - t0)
    store = Store(out_dir / "store")
    conform_videos(clips, jobs, preset=PRESET, store=store, workers=min(2, os.cpu_count() or 1))
    shutil.rmtree(out_dir / "store")


def moviepy_params(spec: ChannelSpec) -> list[str]:
    """Studio's encoder options for ``spec`` as ffmpeg arguments, less the ones
    write_videofile sets itself (codec, preset, pixel format, rate)."""
    opts = _encoder_options(spec, PRESET, None)
    args: list[str] = []
    for k, v in opts.items():
        if k not in ("c:v", "preset", "pix_fmt", "r"):
            args += [f"-{k}", str(v)]
    return args


def run_moviepy(masters: list[Path], b: Brief, beat_frames: int, specs: list[ChannelSpec],
                overlays: dict[str, list[Any]], out_dir: Path) -> None:
    """The same spot in moviepy, channel by channel: each beat's master trimmed, cropped
    round its focus as crop_box says and resized to the spec; concatenated; every
    overlay an ImageClip of the same PNG, placed, timed and faded as Studio's; composited
    and written with the same encoder settings."""
    from moviepy import CompositeVideoClip, ImageClip, VideoFileClip, concatenate_videoclips, vfx

    for spec in specs:
        sources = [VideoFileClip(str(p), audio=False) for p in masters[: len(b.beats)]]
        try:
            parts = []
            for src, focus in zip(sources, FOCUS, strict=True):
                crop = crop_box(SIDE, SIDE, spec, focus)
                parts.append(src.subclipped(HANDLE / RATE, (HANDLE + beat_frames) / RATE)
                             .cropped(x1=crop.x // 2 * 2, y1=crop.y // 2 * 2, width=crop.w, height=crop.h)
                             .resized((spec.width, spec.height)))
            layers: list[Any] = [concatenate_videoclips(parts)]
            for ov in overlays[spec.name]:
                clip = (ImageClip(str(ov.path), transparent=True).with_start(ov.start)
                        .with_duration(ov.end - ov.start).with_position((ov.x, ov.y)))
                fades = []
                if getattr(ov, "fade_in", 0):
                    fades.append(vfx.CrossFadeIn(ov.fade_in))
                if getattr(ov, "fade_out", 0):
                    fades.append(vfx.CrossFadeOut(ov.fade_out))
                layers.append(clip.with_effects(fades) if fades else clip)
            final = CompositeVideoClip(layers, size=(spec.width, spec.height))
            final.write_videofile(str(out_dir / f"{spec.name}.mp4"), fps=RATE, codec="libx264", preset=PRESET,
                                  audio=False, logger=None, pixel_format=spec.pix_fmt,
                                  ffmpeg_params=moviepy_params(spec))
            final.close()
        finally:
            for src in sources:
                src.close()


# ---------------------------------------------------------------------------- main


def check(out_dir: Path, specs: list[ChannelSpec], frames: int) -> dict[str, Any]:
    """Each channel's file: the spec's size, the spot's frames, the encoder's pixel format
    and profile (both sides must make the same spot with the same settings)."""
    got = {}
    for spec in specs:
        info = probe(out_dir / f"{spec.name}.mp4")
        got[spec.name] = {k: info[k] for k in ("width", "height", "nb_frames", "pix_fmt", "profile", "fps")}
        assert (info["width"], info["height"], info["nb_frames"]) == (spec.width, spec.height, frames), (
            spec.name, info)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="9 s spot instead of 30 s")
    ap.add_argument("--reps", type=int, help="Studio repetitions (graphics on and off, interleaved)")
    ap.add_argument("--moviepy-reps", type=int)
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    if args.moviepy_reps is not None:
        cfg["moviepy_reps"] = args.moviepy_reps
    beat_frames = round(cfg["beat_s"] * RATE)
    masters = make_masters(cfg["beat_s"])  # prepared inputs, made (or found cached) before timing
    base = Catalog()
    specs = [base.spec(s) for s in SPECS]
    RESULTS.mkdir(parents=True, exist_ok=True)
    wall: dict[str, list[float]] = {"studio": [], "plain": [], "moviepy": []}
    cpu: dict[str, list[float]] = {"studio": [], "plain": [], "moviepy": []}
    load: list[tuple[str, float]] = [("start", os.getloadavg()[0])]
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        work = Path(tmp)
        cat = catalog(work)
        b = brief(cfg["beat_s"], cfg["card_s"])
        clips = clips_for(masters, b, beat_frames)
        caps = captions(b, specs, work)
        overlays: dict[str, list[Any]] = {}
        res: dict[str, Any] = {}
        build: list[float] = []  # of Studio's time with graphics: building them (fit, frames, PNGs)
        outs = {k: work / k for k in wall}
        for rep in range(cfg["reps"]):
            order = ["studio", "plain"] if rep % 2 == 0 else ["plain", "studio"]
            if rep < cfg["moviepy_reps"]:
                order.append("moviepy")
            for name in order:
                shutil.rmtree(outs[name], ignore_errors=True)
                outs[name].mkdir()
                if name == "moviepy":
                    w, c = timed(run_moviepy, masters, b, beat_frames, specs, overlays, outs[name])
                else:
                    w, c = timed(run_studio, clips, b, specs, cat, caps, outs[name], name == "studio", res)
                    if name == "studio":
                        overlays = res["shown"]
                        build.append(res["build_s"])
                wall[name].append(w)
                cpu[name].append(c)
                load.append((name, os.getloadavg()[0]))
                print(f"rep {rep} {name:8s} wall {w:7.1f} s  cpu {c:7.1f} s  load1 {load[-1][1]:.2f}", flush=True)
        sizes = {k: check(outs[k], specs, round(6 * beat_frames)) for k in wall if wall[k]}
        kinds: dict[str, dict[str, int]] = {}
        for spec_name, ovs in overlays.items():
            for ov in ovs:
                k = getattr(ov, "kind", "caption")
                kinds.setdefault(spec_name, {}).setdefault(k, 0)
                kinds[spec_name][k] += 1
    mw = {k: statistics.median(v) for k, v in wall.items() if v}
    mc = {k: statistics.median(v) for k, v in cpu.items() if v}
    ratios = {"a_moviepy_over_studio_wall": mw["moviepy"] / mw["studio"],
              "a_moviepy_over_studio_cpu": mc["moviepy"] / mc["studio"],
              "b_graphics_over_plain_wall": mw["studio"] / mw["plain"],
              "b_graphics_over_plain_cpu": mc["studio"] / mc["plain"]}
    targets = {"a": (">=", 3.0), "b": ("<=", 1.2)}
    seconds = 6 * cfg["beat_s"]
    print(f"\n{seconds:g} s spot, {len(specs)} channels ({', '.join(SPECS)}), {cfg['reps']} reps "
          f"(moviepy {cfg['moviepy_reps']}); overlays per channel: {json.dumps(kinds)}")
    print(f"{'median seconds':34s} {'wall':>9s} {'cpu':>9s}")
    for name in mw:
        print(f"{name:34s} {mw[name]:9.1f} {mc[name]:9.1f}")
    print(f"{'ratio':34s} {'value':>9s} {'target':>9s}  met")
    for key, value in ratios.items():
        op, target = targets[key[0]]
        ok = value >= target if op == ">=" else value <= target
        print(f"{key:34s} {value:9.2f} {op + str(target):>9s}  {'yes' if ok else 'NO'}")
    print(f"of which building the graphics (median): {statistics.median(build):.1f} s wall")
    print(f"load average (1 min) per run: {', '.join(f'{n} {v:.2f}' for n, v in load)}")
    from importlib.metadata import version

    doc = {"spot_seconds": seconds, "channels": SPECS, "config": cfg, "preset": PRESET, "overlays": kinds,
           "wall_s": wall, "cpu_s": cpu, "medians_wall_s": mw, "medians_cpu_s": mc, "ratios": ratios,
           "graphics_build_wall_s": build,
           "targets": {k: list(v) for k, v in targets.items()}, "load1": load, "outputs": sizes,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
           "moviepy": version("moviepy")}  # moviepy.__version__ says 2.1.2 in the 2.2.1 wheel
    name = "graphics-quick.json" if args.quick else "graphics.json"
    (RESULTS / name).write_text(json.dumps(doc, indent=2, default=str))
    print(f"written {RESULTS / name}")


if __name__ == "__main__":
    main()
