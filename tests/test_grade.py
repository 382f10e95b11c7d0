"""The grade and the multi-output conform, checked from the outside.

The LUT stage is measured the way conform runs it: 16-bit planar RGB through ffmpeg's
``lut3d`` (tetrahedral), against OpenColorIO's own tetrahedral application of the same
.cube to the same test pattern. Deliverables are read back with ffprobe and ffmpeg."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.errors import StageError
from studio.specs import Catalog, ChannelSpec, Look
from timelines import grade
from timelines.conform import ConformClip, VideoJob, conform_video, conform_videos

STYLES = ("golden-hour", "neon-night", "nordic-cool")
M = 96  # master side: small, so every encode here takes a fraction of a second
RATE = 30


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


# ---------------------------------------------------------------------------- pattern


def make_pattern() -> np.ndarray:
    """256x64 8-bit RGB: 75% colour bars, R/G/B/grey ramps over every code value, a 17³
    lattice of colours (the LUT's own nodes and points between them at 8-bit rounding),
    and seeded random colours for the rest."""
    img = np.zeros((64, 256, 3), np.uint8)
    bars = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191),
            (191, 0, 0), (0, 0, 191), (0, 0, 0)]
    for i, c in enumerate(bars):
        img[0:8, i * 32:(i + 1) * 32] = c
    ramp = np.arange(256, dtype=np.uint8)
    for i, ch in enumerate(([0], [1], [2], [0, 1, 2])):
        img[8 + 2 * i:10 + 2 * i, :, ch] = ramp[None, :, None]
    levels = np.round(np.arange(17) * 255 / 16).astype(np.uint8)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    flat = img[16:36].reshape(-1, 3)
    flat[: len(lattice)] = lattice
    img[16:36] = flat.reshape(20, 256, 3)
    img[36:] = np.random.default_rng(7).integers(0, 256, (28, 256, 3), dtype=np.uint8)
    return img


def ffmpeg_lut3d(cube: Path, rgb8: np.ndarray) -> np.ndarray:
    """``rgb8`` through lut3d as conform applies it (its pixel format and options),
    16-bit planar RGB in and out, so no YUV or 8-bit rounding muddies the comparison."""
    h, w, _ = rgb8.shape
    planes = (rgb8[..., 1], rgb8[..., 2], rgb8[..., 0])  # gbrp order: G, B, R
    raw = b"".join((p.astype("<u2") * 257).tobytes() for p in planes)  # v/255 exactly
    opts = grade.lut3d_options(cube)
    vf = f"format={grade.LUT_PIX_FMT},lut3d=file={opts['file']}:interp={opts['interp']}"
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", grade.LUT_PIX_FMT,
         "-s", f"{w}x{h}", "-i", "pipe:0", "-vf", vf,
         "-f", "rawvideo", "-pix_fmt", grade.LUT_PIX_FMT, "pipe:1"],
        input=raw, capture_output=True, check=True,
    ).stdout
    g, b, r = np.frombuffer(out, "<u2").reshape(3, h, w).astype(np.float64) / 65535
    return np.stack([r, g, b], -1)


@pytest.mark.parametrize("style", STYLES)
def test_lut3d_matches_opencolorio(catalog: Catalog, style: str) -> None:
    cube = catalog.lut_path(catalog.style(style))
    assert cube is not None and cube.is_file()
    assert grade.check_lut(cube) == grade.LUT_SIZE
    pattern = make_pattern()
    ours = ffmpeg_lut3d(cube, pattern)
    ref = grade.ocio_apply(cube, pattern.astype(np.float32) / 255)
    assert ref.shape == pattern.shape and ref.min() >= 0 and ref.max() <= 1
    diff = np.abs(ours - ref).max(axis=(0, 1))
    assert (diff <= 1 / 255).all(), f"{style}: max |ffmpeg - OCIO| per channel {diff * 255}/255"
    # and the look is a look: it moves colours, more than rounding would
    assert np.abs(ref - pattern / 255).mean() > 4 / 255


def test_the_three_looks_differ(catalog: Catalog) -> None:
    grey = np.full((1, 1, 3), 0.5, np.float32)
    out = {s: grade.ocio_apply(catalog.lut_path(catalog.style(s)), grey)[0, 0] for s in STYLES}
    warm, neon, cool = out["golden-hour"], out["neon-night"], out["nordic-cool"]
    assert warm[0] > warm[2] + 0.05  # golden hour: mid grey turns warm
    assert neon[2] > neon[1] + 0.05  # neon night: blue-violet
    assert cool[2] > cool[0] + 0.03  # nordic cool: cool
    black = {s: grade.ocio_apply(catalog.lut_path(catalog.style(s)),
                                 np.zeros((1, 1, 3), np.float32))[0, 0] for s in STYLES}
    assert black["nordic-cool"].min() > 0.04  # matte blacks


@pytest.mark.parametrize("style", STYLES)
def test_shipped_luts_are_baked_from_their_looks(catalog: Catalog, style: str,
                                                 tmp_path: Path) -> None:
    pack = catalog.style(style)
    rec = grade.bake_lut(pack, tmp_path / "rebaked.cube")
    shipped = catalog.lut_path(pack)
    assert shipped is not None and shipped.parent.name == "luts"
    assert (tmp_path / "rebaked.cube").read_bytes() == shipped.read_bytes(), \
        "stale LUT: re-bake with python -m timelines.grade"
    assert rec["ocio_version"].startswith("2.6") and rec["config"] == grade.CONFIG_NAME
    assert rec["format"] == "resolve_cube" and rec["size"] == 33
    assert rec["look"] == pack.finishing.look.model_dump(mode="json")  # type: ignore[union-attr]
    assert any("ACEScct" in t for t in rec["transforms"])
    assert rec["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()


def test_identity_look_bakes_an_identity_3d_lut(tmp_path: Path) -> None:
    cube = tmp_path / "identity.cube"
    rec = grade.bake_lut(Look(), cube, size=17)
    # no crosstalk: the Resolve writer would make a 1D table that lut3d cannot read
    assert rec["format"] == grade.LUT_FORMAT_3D_ONLY and grade.check_lut(cube) == 17
    values = np.loadtxt([ln for ln in cube.read_text().splitlines()
                         if ln and ln[0] in "0123456789.-"])
    n = np.arange(17) / 16
    b, g, r = np.meshgrid(n, n, n, indexing="ij")  # red varies fastest in a .cube
    assert np.abs(values - np.stack([r, g, b], -1).reshape(-1, 3)).max() < 1e-4


# ---------------------------------------------------------------------------- errors


def test_missing_and_corrupt_luts_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(StageError) as e:
        grade.check_lut(tmp_path / "gone.cube")
    assert (e.value.stage, e.value.field) == ("conform", "finishing.lut")
    assert "gone.cube does not exist" in str(e.value) and "timelines.grade" in e.value.fix

    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\n0 0 0\n1 0 zero\n")
    with pytest.raises(StageError) as e:
        grade.check_lut(bad)
    msg = str(e.value)
    assert e.value.field == "finishing.lut" and "bad.cube" in msg
    assert "OpenColorIO says" in msg and "line (3)" in msg and "\n" not in msg

    one_d = tmp_path / "curve.cube"
    one_d.write_text("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    with pytest.raises(StageError, match="not a plain 3D cube"):
        grade.check_lut(one_d)

    other = tmp_path / "look.3dl"
    other.write_text("0 1023\n")
    with pytest.raises(StageError, match="not a .cube file"):
        grade.check_lut(other)


def test_conform_refuses_a_corrupt_lut_before_rendering(masters: dict[str, Path],
                                                        small: ChannelSpec,
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 2\nnot a number\n")
    out = tmp_path / "out" / "x.mp4"
    with pytest.raises(StageError) as e:
        conform_video([clip(masters["bars"], 0, 5)], small, out, lut=bad)
    assert e.value.field == "finishing.lut" and not out.exists()


def test_a_broken_lut_in_a_style_pack_stops_the_run_before_anything_renders(
        tmp_path: Path, settings) -> None:
    import yaml

    from studio.errors import StudioError
    from studio.pipeline import render
    from tests.conftest import EXAMPLE_BRIEF

    styles = tmp_path / "styles"
    styles.mkdir()
    shipped = yaml.safe_load((Path(grade.__file__).parents[1] / "studio" / "data" / "styles"
                              / "golden-hour.yaml").read_text())
    shipped["finishing"]["lut"] = "golden-hour.cube"
    # The logo path is relative to the pack: the copy points at the shipped file, so the
    # broken LUT is the pack's one problem.
    shipped["brand"]["logo"]["path"] = str(Path(grade.__file__).parents[1] / "studio" / "data" / "styles"
                                           / shipped["brand"]["logo"]["path"])
    (styles / "golden-hour.yaml").write_text(yaml.safe_dump(shipped))
    (styles / "golden-hour.cube").write_text("LUT_3D_SIZE 2\nnot a number\n")
    with pytest.raises(StudioError) as e:
        render(EXAMPLE_BRIEF, tmp_path / "out", settings=settings.model_copy(update={"styles_dir": styles}))
    (err,) = e.value.lines()  # the LUT alone: the pack's logo is found
    assert "finishing.lut" in err
    assert err.startswith(f"{styles / 'golden-hour.yaml'}: ") and "is not a readable .cube" in err
    assert "python -m timelines.grade" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- deliverables


def ffprobe(path: Path) -> dict:
    data = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    return {**video, "format": data["format"], "audio": audio}


def encode(frames: list[np.ndarray], out: Path) -> Path:
    """RGB frames -> a BT.709 H.264 master, as the camera stage writes them."""
    h, w = frames[0].shape[:2]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-framerate", str(RATE), "-i", "pipe:0",
         "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-c:v", "libx264",
         "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", "-colorspace", "bt709",
         "-color_primaries", "bt709", "-color_trc", "bt709", str(out)],
        input=b"".join(f.tobytes() for f in frames), check=True)
    return out


def decode_rgb(path: Path) -> np.ndarray:
    info = ffprobe(path)
    w, h = int(info["width"]), int(info["height"])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf",
         "scale=in_color_matrix=bt709:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.float64)


PATCHES = [(200, 60, 40), (40, 180, 70), (50, 70, 200), (128, 128, 128)]


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """1 s masters: four flat colour bands; and a moving ramp (every frame differs)."""
    d = tmp_path_factory.mktemp("grade-masters")
    bars = np.zeros((M, M, 3), np.uint8)
    for i, c in enumerate(PATCHES):
        bars[:, i * M // 4:(i + 1) * M // 4] = c
    xx = np.arange(M)[None, :, None]
    moving = [np.broadcast_to(((xx * 2 + 5 * i) % 256).astype(np.uint8), (M, M, 3)).copy()
              for i in range(RATE)]
    return {"bars": encode([bars] * RATE, d / "bars.mp4"), "moving": encode(moving, d / "moving.mp4")}


@pytest.fixture(scope="module")
def small(catalog: Catalog) -> ChannelSpec:
    """youtube-1080p's encoder settings at 96x54."""
    return catalog.spec("youtube-1080p").model_copy(
        update={"name": "test-54p", "width": M, "height": 54})


def clip(path: Path, start: int, frames: int, name: str = "a") -> ConformClip:
    return ConformClip(path, start, frames, Fraction(RATE), M, M, (0.5, 0.5), name)


def test_graded_deliverable_is_tagged_bt709_and_matches_opencolorio(
        catalog: Catalog, masters: dict[str, Path], small: ChannelSpec, tmp_path: Path) -> None:
    cube = catalog.lut_path(catalog.style("golden-hour"))
    assert cube is not None
    out = tmp_path / "graded.mp4"
    res = conform_video([clip(masters["bars"], 0, 15)], small, out, preset="ultrafast",
                        lut=cube, sharpen=0.3)
    s = ffprobe(out)
    assert (s["color_space"], s["color_transfer"], s["color_primaries"]) == ("bt709",) * 3
    assert s["color_range"] == "tv" and s["pix_fmt"] == "yuv420p"
    assert int(s["nb_read_frames"]) == 15
    assert res["finishing"]["lut"] == str(cube)
    # Through YUV 4:2:0 and x264 the centre of each flat band still lands within a few
    # code values of OpenColorIO's answer: no BT.601 matrix or range slip on the way.
    frame = decode_rgb(out)[7]
    centres = frame[27, [M // 8 + i * M // 4 for i in range(4)]]
    ref = grade.ocio_apply(cube, np.array(PATCHES, np.float32) / 255) * 255
    assert np.abs(centres - ref).max() <= 4, (centres, ref)


def test_identity_lut_keeps_the_picture(masters: dict[str, Path], small: ChannelSpec,
                                        tmp_path: Path) -> None:
    cube = tmp_path / "identity.cube"
    grade.bake_lut(Look(), cube, size=5)
    plain, graded = tmp_path / "plain.mp4", tmp_path / "graded.mp4"
    conform_video([clip(masters["bars"], 0, 5)], small, plain, preset="ultrafast")
    conform_video([clip(masters["bars"], 0, 5)], small, graded, preset="ultrafast", lut=cube)
    a, b = decode_rgb(plain), decode_rgb(graded)
    centres = [M // 8 + i * M // 4 for i in range(4)]
    assert np.abs(a[:, :, centres] - b[:, :, centres]).max() <= 2  # flat areas: as they were
    # band edges pass through RGB 4:4:4 and back to 4:2:0: softened a little, not moved
    assert np.abs(a - b).mean() < 2.0


# ---------------------------------------------------------------------------- one decode


def framemd5(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v",
                          "-f", "framemd5", "-"], capture_output=True, text=True,
                         check=True).stdout
    return [ln.rsplit(",", 1)[-1].strip() for ln in out.splitlines() if not ln.startswith("#")]


def test_one_decode_makes_what_separate_conforms_make(
        catalog: Catalog, masters: dict[str, Path], small: ChannelSpec, tmp_path: Path) -> None:
    cube = catalog.lut_path(catalog.style("neon-night"))
    specs = [
        small,
        # the same framing at 25 fps: shares crop, scale, concat and the LUT before fps
        small.model_copy(update={"name": "test-54p25", "fps": "25", "gop_seconds": 0.48}),
        # another framing altogether
        catalog.spec("reels-9x16").model_copy(update={"name": "test-9x16", "width": 54,
                                                      "height": 96}),
    ]
    clips = [clip(masters["moving"], 3, 12, "a"), clip(masters["bars"], 0, 1, "b"),
             clip(masters["moving"], 20, 8, "c")]
    fin = {"preset": "ultrafast", "lut": cube, "grain": 0.2, "sharpen": 0.3, "threads": 1}
    seen: list[float] = []
    jobs = [VideoJob(s, tmp_path / "multi" / f"{s.name}.mp4") for s in specs]
    results = conform_videos(clips, jobs, progress=seen.append, **fin)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    for spec, job, res in zip(specs, jobs, results, strict=True):
        single = tmp_path / "single" / f"{spec.name}.mp4"
        one = conform_video(clips, spec, single, **fin)
        assert res["frames"] == one["frames"] and res["crops"] == one["crops"]
        assert str(job.out) in res["command"] and not any(".tmp" in a for a in res["command"])
        # x264 with one thread is deterministic: the same frames in, the same bitstream out
        assert framemd5(job.out) == framemd5(single), spec.name
        s = ffprobe(job.out)
        assert int(s["nb_read_frames"]) == res["frames"] == round(21 / 30 * spec.rate)
        assert abs(float(s["format"]["duration"]) - 21 / 30) < 1.5 / float(spec.rate)
        assert (s["width"], s["height"]) == (spec.width, spec.height)
    assert len({c for r in results for c in r["command"] if c.endswith(".mp4")
                and "/multi/" in c}) == 3


def test_multi_output_is_all_or_nothing(catalog: Catalog, masters: dict[str, Path],
                                        small: ChannelSpec, tmp_path: Path) -> None:
    broken = small.model_copy(update={"name": "broken", "profile": "no-such-profile"})
    jobs = [VideoJob(small, tmp_path / "ok.mp4"), VideoJob(broken, tmp_path / "broken.mp4")]
    with pytest.raises(StageError) as e:
        conform_videos([clip(masters["bars"], 0, 5)], jobs, preset="ultrafast")
    assert e.value.stage == "conform" and "broken" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StageError, match="share an output"):
        conform_videos([clip(masters["bars"], 0, 5)],
                       [VideoJob(small, tmp_path / "a.mp4"), VideoJob(small, tmp_path / "a.mp4")])


# ---------------------------------------------------------------------------- overlays, audio


@dataclass
class Box:
    """Duck-typed like timelines.captions.Overlay."""

    path: Path
    x: int
    y: int
    start: float
    end: float


def test_overlay_is_burned_in_its_window_only(masters: dict[str, Path], small: ChannelSpec,
                                              tmp_path: Path) -> None:
    png = tmp_path / "box.png"
    Image.new("RGBA", (16, 8), (255, 255, 255, 255)).save(png)
    out = tmp_path / "captioned.mp4"
    ov = Box(png, 40, 30, 0.2, 0.5)
    conform_video([clip(masters["bars"], 0, 24)], small, out, preset="ultrafast",
                  overlays=[ov], sharpen=0.3)
    frames = decode_rgb(out)
    assert len(frames) == 24  # the main stream sets the length
    inside = frames[:, 32:36, 44:52].mean(axis=(1, 2, 3))
    shown = [i for i, v in enumerate(inside) if v > 240]
    assert shown == list(range(6, 15)), shown  # 0.2 <= t = i/30 < 0.5
    with pytest.raises(StageError, match="overlay"):
        conform_video([clip(masters["bars"], 0, 4)], small, tmp_path / "x.mp4",
                      overlays=[Box(tmp_path / "gone.png", 0, 0, 0, 1)])


def aac(tmp_path: Path, seconds: float, name: str) -> Path:
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:a", "aac", "-b:a", "96k", str(out)], check=True)
    return out


def stream_md5(path: Path) -> str:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a",
                           "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_audio_copy_keeps_the_mastered_stream(masters: dict[str, Path], small: ChannelSpec,
                                              tmp_path: Path) -> None:
    m4a = aac(tmp_path, 0.8, "master.m4a")
    out = tmp_path / "copied.mp4"
    res = conform_video([clip(masters["bars"], 0, 24)], small, out, preset="ultrafast",
                        audio=m4a, audio_copy=True)
    assert "copy" in res["command"] and "atrim" not in " ".join(res["command"])
    (a,) = ffprobe(out)["audio"]
    assert a["codec_name"] == "aac"
    assert stream_md5(out) == stream_md5(m4a)  # the packets, untouched
    with pytest.raises(StageError) as e:
        conform_video([clip(masters["bars"], 0, 24)], small, tmp_path / "x.mp4",
                      audio=aac(tmp_path, 1.5, "long.m4a"), audio_copy=True)
    assert "picture's 0.800 s" in str(e.value) and not (tmp_path / "x.mp4").exists()


# ---------------------------------------------------------------------------- once per shot


@pytest.mark.parametrize("style", STYLES)
def test_numpy_lut_matches_opencolorio(catalog: Catalog, style: str) -> None:
    """studio.lut.apply_lut, which grades every keyframe in the clips stage, against
    OpenColorIO's tetrahedral application of the same file: the test pattern (lattice
    nodes, ramps over every 8-bit code, random colours) and random floats between codes.
    Both run the same tetrahedral sum in float32 and differ only in the order of its
    terms (measured: 2e-7); 1e-5 is a sixth of a 16-bit code value, so any slip of
    tetrahedron, axis order or table layout (errors of 1e-3 and more) fails."""
    from studio.lut import apply_lut, load_cube

    cube = catalog.lut_path(catalog.style(style))
    assert cube is not None
    rng = np.random.default_rng(3)
    for rgb in (make_pattern().astype(np.float32) / 255,
                rng.random((64, 256, 3), dtype=np.float32)):
        ours = apply_lut(load_cube(cube), rgb)
        assert ours.shape == rgb.shape and ours.dtype == np.float32
        assert np.abs(ours - grade.ocio_apply(cube, rgb)).max() < 1e-5


def test_numpy_lut_reads_a_domain_and_refuses_a_short_table(tmp_path: Path) -> None:
    from studio.lut import apply_lut, load_cube

    # an inverting 2³ cube over a [0, 2] domain: 1.0 in is the middle of the domain
    cube = tmp_path / "wide.cube"
    cube.write_text("TITLE \"wide\"\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 2 2 2\nLUT_3D_SIZE 2\n" + "".join(
        f"{1 - r} {1 - g} {1 - b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)))
    got = apply_lut(load_cube(cube), np.array([[1.0, 0.0, 2.0]], np.float32))
    assert np.allclose(got, grade.ocio_apply(cube, np.array([[1.0, 0.0, 2.0]], np.float32)),
                       atol=1e-6)
    assert np.allclose(got, [[0.5, 1.0, 0.0]], atol=1e-6)
    short = tmp_path / "short.cube"
    short.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7)
    with pytest.raises(StageError) as e:
        load_cube(short)
    assert (e.value.stage, e.value.field) == ("clips", "finishing.lut")
    assert "short.cube" in str(e.value) and "7 table rows" in str(e.value)


def _keyframe(path: Path) -> Path:
    bars = np.zeros((M, M, 3), np.uint8)
    for i, c in enumerate(PATCHES):
        bars[:, i * M // 4:(i + 1) * M // 4] = c
    Image.fromarray(bars).save(path)
    return path


def test_graded_master_matches_opencolorio_on_the_keyframe(catalog: Catalog,
                                                           tmp_path: Path) -> None:
    """The clips stage grades once per shot: a camera move over a graded keyframe, and a
    video model's master through lut3d. Decoded, the centre of each flat band is
    OpenColorIO's answer for the keyframe's colour within 2 code values (measured 0.7:
    two 8-bit roundings, 4:2:0 and x264 at CRF 10); the master re-encoded through lut3d
    within 3 (measured 1.4: one more generation). An ungraded master misses by 10+."""
    from shots.camera import grade_master, render_move

    cube = catalog.lut_path(catalog.style("golden-hour"))
    assert cube is not None
    key = _keyframe(tmp_path / "key.png")
    ref = grade.ocio_apply(cube, np.array(PATCHES, np.float32) / 255) * 255
    centres = [M // 8 + i * M // 4 for i in range(4)]
    move = {"move": "static", "rate": Fraction(RATE), "frames": 3, "crf": 10,
            "preset": "ultrafast"}
    params = render_move(key, tmp_path / "graded.mp4", lut=cube, **move)
    assert params["grade"]["lut"] == str(cube) and params["grade"]["applied_to"] == "keyframe"
    assert params["grade"]["lut_sha256"] == hashlib.sha256(cube.read_bytes()).hexdigest()
    graded = decode_rgb(tmp_path / "graded.mp4")[1][M // 2, centres]
    assert np.abs(graded - ref).max() <= 2, (graded, ref)

    plain = render_move(key, tmp_path / "plain.mp4", **move)
    assert plain["grade"] is None
    ungraded = decode_rgb(tmp_path / "plain.mp4")[1][M // 2, centres]
    assert np.abs(ungraded - ref).max() > 10  # the look is not a no-op on these colours

    rec = grade_master(tmp_path / "plain.mp4", tmp_path / "model.mp4", cube,
                       rate=Fraction(RATE), frames=3, crf=10, preset="ultrafast")
    assert rec["applied_to"] == "master" and "lut3d=file=grade.cube" in rec["filter"]
    model = decode_rgb(tmp_path / "model.mp4")
    assert len(model) == 3 and np.abs(model[1][M // 2, centres] - ref).max() <= 3


def test_a_render_grades_the_masters_and_the_conform_runs_no_lut(
        tmp_path: Path, ray_session, catalog: Catalog) -> None:
    """A small render through the pipeline: every shot master says which LUT graded it,
    the deliverable's finishing names that LUT (lineage reads it) and that the clips
    stage applied it, and no segment encode of the conform runs lut3d."""
    import yaml
    from sqlmodel import Session, select

    from studio import db
    from studio.pipeline import render
    from studio.progress import QuietReporter
    from studio.settings import Settings

    settings = Settings(home=tmp_path / "home", ray_num_cpus=2)
    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump({
        "project": "grade", "campaign": "once", "purpose": "graded once per shot",
        "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1,
        "captions": False, "handles": 0, "music": {"source": "none"},
        "effects": {"enabled": False},
        "beats": [{"id": "b01", "duration": 1, "subject": "a hiker on a ridge at sunrise"},
                  {"id": "b02", "duration": 1, "subject": "a glowing orb over a lake"}],
    }))
    ctx = render(brief, tmp_path / "out", settings=settings, reporter=QuietReporter())
    cube = catalog.lut_path(catalog.style("golden-hour"))
    assert cube is not None
    sha = hashlib.sha256(cube.read_bytes()).hexdigest()
    engine = db.make_engine(settings.db_url)
    with Session(engine) as s:
        renders = s.exec(select(db.Render).where(db.Render.run_id == ctx.run_id)).all()
        dlv = s.exec(select(db.Deliverable).where(db.Deliverable.run_id == ctx.run_id)).all()
        renders = [r.params for r in renders]
        dlv = [(d.kind, d.params) for d in dlv]
    engine.dispose()
    assert len(renders) == 2
    assert all(p["grade"]["lut_sha256"] == sha and p["grade"]["applied_to"] == "keyframe"
               for p in renders)
    (kind, params), = [d for d in dlv if d[0] == "video"]
    fin = params["finishing"]
    assert (fin["lut"], fin["lut_sha256"], fin["graded_in"]) == (str(cube), sha, "clips")
    segments = params["segments"]
    assert len(segments) == 2 and all(seg["encoded"] for seg in segments)
    for seg in segments:
        graph = " ".join(seg["command"])
        assert "lut3d" not in graph and "noise=" in graph and "convolution=" in graph
