"""The segmented conform (timelines.conform.conform_segmented), checked from the outside:
ffprobe for the stream's timestamps, keyframes and tags, framemd5 for reused segments,
on small testsrc2 masters made here."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import timelines.conform as conform
from studio.specs import Catalog, ChannelSpec
from studio.store import Store
from timelines.conform import ConformClip, VideoJob, conform_videos

W, H = 320, 240  # masters: small, 4:3, so every spec crops
PRESET = "veryfast"  # the default; ultrafast would signal Main, not the spec's High


@dataclass(frozen=True)
class Overlay:
    path: Path
    x: int
    y: int
    start: float
    end: float


def master(path: Path, hue: int, seconds: float = 1.5, rate: str = "30") -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={W}x{H}:rate={rate}:duration={seconds}", "-vf", f"hue=h={hue}",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
         "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", str(path)],
        check=True)
    return path


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("masters")
    return [master(d / f"m{i}.mp4", 70 * i) for i in range(4)]


def cut(path: Path, start: int, frames: int, name: str, rate: int = 30) -> ConformClip:
    return ConformClip(path, start, frames, Fraction(rate), W, H, (0.5, 0.5), name)


def edit(masters: list[Path]) -> list[ConformClip]:
    # Cut lengths that do not fall on a 25p grid, so the 25p deliverable rounds cut points.
    return [cut(masters[0], 3, 13, "a"), cut(masters[1], 0, 14, "b"),
            cut(masters[2], 5, 11, "c"), cut(masters[3], 2, 16, "d")]


def specs(catalog: Catalog) -> list[ChannelSpec]:
    yt = catalog.spec("youtube-1080p")
    small = {"width": 320, "height": 180}
    return [yt.model_copy(update={"name": "seg-30p", **small}),
            yt.model_copy(update={"name": "seg-25p", "fps": "25", "bframes": 3, **small})]


def packets(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets", "-show_entries",
         "packet=pts,dts,duration,flags", "-of", "json", str(path)],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)["packets"]


def streams(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of",
         "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def framemd5(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f",
                          "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [ln.rsplit(",", 1)[1].strip() for ln in out.splitlines() if ln and ln[0] != "#"]


def decode_gray(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 180, 320).astype(np.float32)


def test_plan_rounds_cuts_to_the_output_grid(catalog: Catalog) -> None:
    """Segments at another rate add up to the single-graph conform's frame count, and each
    starts where the previous one ends (pure arithmetic: no ffmpeg)."""
    p = Path("x.mp4")
    clips = [ConformClip(p, 0, n, Fraction(24000, 1001), W, H, (0.5, 0.5), f"c{n}")
             for n in (1, 7, 13, 2, 29, 1, 1, 40)]
    for fps in ("25", "30000/1001", "60", "24"):
        spec = specs(catalog)[0].model_copy(update={"fps": fps})
        plan = conform._segment_plan(clips, spec)
        _, n_out = conform._timing(clips, spec)
        assert sum(s.frames for s in plan) == n_out
        assert [s.first for s in plan] == [0, *np.cumsum([s.frames for s in plan[:-1]])]
        assert all(abs(s.offset) <= Fraction(1, 2) / spec.rate for s in plan)


def test_concat_listing_durations_sum_to_cut_times() -> None:
    rate = Fraction(30000, 1001)
    segs = [(Path(f"/s/{i}.mp4"), first, n) for i, (first, n) in
            enumerate([(0, 13), (13, 14), (27, 15), (42, 16)])]
    text = conform._concat_listing(segs, rate)
    durs = [int(ln.split()[1][:-2]) for ln in text.splitlines() if ln.startswith("duration")]
    # the demuxer's running sum of durations is each cut's exact time, to the microsecond
    starts = np.cumsum([0, *durs])
    for (_, first, _), start in zip([*segs, (None, 58, 0)], starts, strict=True):
        assert abs(start - float(first / rate) * 1e6) <= 0.5


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def first(masters: list[Path], catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    """One segmented conform of the edit for a 30p and a 25p spec, with AAC audio copied in
    and a caption that spans the first cut."""
    d = tmp_path_factory.mktemp("seg")
    png = d / "box.png"
    Image.new("RGBA", (48, 32), (255, 255, 255, 255)).save(png)
    seconds = float(sum(Fraction(c.frames, 30) for c in edit(masters)))
    m4a = d / "mix.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-ar", "48000",
                    str(m4a)], check=True)
    ov = Overlay(png, 8, 8, 0.3, 0.9)  # the first cut ends at 13/30 = 0.433 s
    store = Store(d / "store")
    jobs = [VideoJob(s, d / f"{s.name}.mp4", audio=m4a, audio_copy=True, overlays=[ov])
            for s in specs(catalog)]
    seen: list[float] = []
    recs = conform_videos(edit(masters), jobs, store=store, preset=PRESET, progress=seen.append)
    return {"dir": d, "store": store, "jobs": jobs, "records": recs, "audio": m4a, "ov": ov,
            "progress": seen}


def test_segmented_stream_is_exact(first: dict[str, Any], masters: list[Path]) -> None:
    clips = edit(masters)
    seconds = sum((Fraction(c.frames, 30) for c in clips), Fraction(0))
    assert first["progress"][-1] == 1.0
    for job, rec in zip(first["jobs"], first["records"], strict=True):
        spec = job.spec
        n = int(seconds * spec.rate + Fraction(1, 2))
        assert rec["frames"] == n and len(rec["segments"]) == 4
        assert all(s["encoded"] for s in rec["segments"])
        data = streams(job.out)
        video = [s for s in data["streams"] if s["codec_type"] == "video"]
        audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
        assert len(video) == 1 and len(audio) == 1 and audio[0]["codec_name"] == "aac"
        (v,) = video
        assert int(v["nb_read_frames"]) == n
        assert Fraction(v["r_frame_rate"]) == spec.rate
        assert float(v["duration"]) == pytest.approx(float(n / spec.rate), abs=1e-6)
        assert (v["color_space"], v["color_primaries"], v["color_transfer"]) == ("bt709",) * 3
        assert v["profile"] == "High" and v["pix_fmt"] == "yuv420p"
        assert (v["width"], v["height"]) == (320, 180)
        check_packets(job.out, n, rec, Fraction(v["time_base"]), spec.rate)


def check_packets(path: Path, n: int, rec: dict[str, Any], time_base: Fraction,
                  rate: Fraction) -> None:
    """n packets, gapless pts on the frame grid, strictly increasing dts, and a keyframe
    where every segment starts."""
    pk = packets(path)
    assert len(pk) == n
    dts = [int(p["dts"]) for p in pk]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False))  # no duplicates
    by_pts = sorted(pk, key=lambda p: int(p["pts"]))
    pts = [int(p["pts"]) for p in by_pts]
    tick = int(by_pts[0]["duration"])
    assert tick * time_base == 1 / rate
    assert pts == [pts[0] + i * tick for i in range(n)]  # no gaps, no duplicates
    keys = {i for i, p in enumerate(by_pts) if "K" in p["flags"]}
    assert {s["first_frame"] for s in rec["segments"]} <= keys
    assert [s["first_frame"] for s in rec["segments"]] == [
        0, *np.cumsum([s["frames"] for s in rec["segments"]][:-1])]


def test_several_cuts_per_process(masters: list[Path], catalog: Catalog, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Cuts grouped into fewer ffmpeg processes (two at once) make the same segments'
    structure: every cut still its own closed-GOP segment."""
    calls: list[list[str]] = []
    real = conform._encode_cuts

    def counting(cuts: list[tuple[ConformClip, list[Any]]], **kw: Any) -> None:
        calls.append([clip.name for clip, _ in cuts])
        real(cuts, **kw)

    monkeypatch.setattr(conform, "_encode_cuts", counting)
    spec = specs(catalog)[1]
    out = tmp_path / "grouped.mp4"
    (rec,) = conform_videos(edit(masters), [VideoJob(spec, out)], store=Store(tmp_path / "s"),
                            preset="ultrafast", workers=2, cuts_per_process=3)
    assert sorted(calls) == [["a", "b", "c"], ["d"]]
    assert [s["encoded"] for s in rec["segments"]] == [True] * 4
    v = streams(out)["streams"][0]
    assert int(v["nb_read_frames"]) == rec["frames"] == 45  # 1.8 s at 25p
    check_packets(out, rec["frames"], rec, Fraction(v["time_base"]), spec.rate)


def test_caption_across_a_cut_is_burned_in_both_segments(first: dict[str, Any],
                                                         masters: list[Path],
                                                         catalog: Catalog) -> None:
    """The caption from 0.3 s to 0.9 s spans the 30p edit's first cut (0.433 s): the
    frames in its window, on both sides of the cut, carry the white box; none outside."""
    job = first["jobs"][0]
    plain = first["dir"] / "plain.mp4"
    conform_videos(edit(masters), [VideoJob(job.spec, plain)], store=first["store"],
                   preset=PRESET)
    box = (slice(8 + 2, 8 + 30), slice(8 + 2, 8 + 46))
    a, b = decode_gray(job.out), decode_gray(plain)
    shown = [i for i in range(len(a)) if a[i][box].mean() > 230 and b[i][box].mean() < 200]
    assert shown == list(range(9, 27))  # 9/30 = 0.3 s up to, not including, 27/30 = 0.9 s
    outside = [i for i in range(len(a)) if i not in range(9, 27)]
    assert max(float(np.abs(a[i][box] - b[i][box]).mean()) for i in outside) < 8


def test_one_changed_shot_reencodes_one_segment_per_spec(
        first: dict[str, Any], masters: list[Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[tuple[str, int]]] = []
    real = conform._encode_cuts

    def counting(cuts: list[tuple[ConformClip, list[Any]]], **kw: Any) -> None:
        calls.append([(clip.name, len(work)) for clip, work in cuts])
        real(cuts, **kw)

    monkeypatch.setattr(conform, "_encode_cuts", counting)
    changed = master(tmp_path / "changed.mp4", 200)
    clips = edit(masters)
    clips[2] = cut(changed, 5, 11, "c")
    jobs = [VideoJob(j.spec, tmp_path / f"{j.spec.name}.mp4", audio=first["audio"],
                     audio_copy=True, overlays=j.overlays) for j in first["jobs"]]
    recs = conform_videos(clips, jobs, store=first["store"], preset=PRESET)
    # one ffmpeg process, for the changed cut, making its segment for both specs
    assert calls == [[("c", 2)]]
    for job, old_job, rec, old in zip(jobs, first["jobs"], recs, first["records"], strict=True):
        assert [s["encoded"] for s in rec["segments"]] == [False, False, True, False]
        assert [s["key"] for s in rec["segments"]][:2] == [s["key"] for s in old["segments"]][:2]
        new_md5, old_md5 = framemd5(job.out), framemd5(old_job.out)
        assert len(new_md5) == len(old_md5) == rec["frames"]
        c = rec["segments"][2]
        changed_range = range(c["first_frame"], c["first_frame"] + c["frames"])
        for i in range(rec["frames"]):
            if i in changed_range:
                assert new_md5[i] != old_md5[i]
            else:  # unchanged shots: the very same decoded frames
                assert new_md5[i] == old_md5[i]
    # and a third conform of the same edit encodes nothing at all
    calls.clear()
    conform_videos(clips, jobs, store=first["store"], preset=PRESET)
    assert calls == []


def test_graded_segments_match_the_single_graph_conform(masters: list[Path], catalog: Catalog,
                                                        tmp_path: Path) -> None:
    """The grade runs inside every segment's encode: with a LUT (this one inverts), the
    segmented and single-graph conforms decode to the same picture within encoder noise."""
    spec = specs(catalog)[0]
    lut = tmp_path / "invert.cube"
    lut.write_text("LUT_3D_SIZE 2\n" + "".join(
        f"{1 - r} {1 - g} {1 - b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)))
    clips = edit(masters)[:2]
    seg, one = tmp_path / "seg.mp4", tmp_path / "one.mp4"
    conform_videos(clips, [VideoJob(spec, seg)], store=Store(tmp_path / "store"),
                   preset="ultrafast", lut=lut)
    conform_videos(clips, [VideoJob(spec, one)], preset="ultrafast", lut=lut)
    a, b = decode_gray(seg), decode_gray(one)
    assert a.shape == b.shape
    assert float(np.abs(a - b).mean()) < 3
    plain = tmp_path / "plain.mp4"
    conform_videos(clips, [VideoJob(spec, plain)], preset="ultrafast")
    assert float(np.abs(a - decode_gray(plain)).mean()) > 40  # the LUT did apply


def test_mismatched_segment_parameters_are_refused(first: dict[str, Any], catalog: Catalog,
                                                   tmp_path: Path) -> None:
    job = first["jobs"][0]
    seg = first["records"][0]["segments"]
    paths = [first["store"].find(s["sha256"]) for s in seg]
    probed = [(p, conform._segment_config(p)) for p in paths]
    assert probed[0][1]["timescale"] == 30000 and len(probed[0][1]["codec_config"]) == 64
    # what the index kept is what the segments say
    assert [conform._lookup(first["store"], s["key"]) for s in seg] == probed
    other = tmp_path / "other.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:d=0.2",
                    "-c:v", "libx264", "-profile:v", "baseline", str(other)], check=True)
    conform._check_segments(probed, job.spec)  # the real ones agree
    with pytest.raises(conform.StageError, match="differs from .* in .*profile"):
        conform._check_segments([probed[0], (other, conform._segment_config(other))], job.spec)


def test_a_store_given_by_a_relative_path_conforms(masters: list[Path], catalog: Catalog, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """STUDIO_HOME defaults to the relative `.studio` (the README's demo): the concat
    script, written in a temp folder, must name segments by absolute paths."""
    monkeypatch.chdir(tmp_path)
    spec = specs(catalog)[0]
    (rec,) = conform_videos(edit(masters), [VideoJob(spec, Path("rel.mp4"))],
                            store=Store(Path(".studio") / "store"), preset="ultrafast")
    assert int(streams(tmp_path / "rel.mp4")["streams"][0]["nb_read_frames"]) == rec["frames"]
