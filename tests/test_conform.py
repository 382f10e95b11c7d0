"""Conform and stills, checked from the outside: ffprobe for the streams and ffmpeg-decoded
pixels for the picture, on small synthetic masters made here."""

from __future__ import annotations

import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.errors import StageError
from studio.specs import Catalog, ChannelSpec
from timelines.conform import ConformClip, build_video_command, conform_still, conform_video, probe

M = 240  # master side: small, square, like the 1920x1920 masters scaled down
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    data = json.loads(out)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = [s for s in data["streams"] if s["codec_type"] == "audio"]
    return {**video, "format": data["format"], "audio": audio}


def decode_rgb(path: Path, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf",
         f"scale={w}:{h}:in_color_matrix=bt709:in_range=tv:flags=area",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).astype(np.float32)


def encode(frames: list[np.ndarray], rate: str, out: Path) -> Path:
    """RGB frames -> a BT.709 H.264 master, the way the camera stage writes them."""
    h, w = frames[0].shape[:2]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-framerate", rate, "-i", "pipe:0", "-vf", "scale=out_color_matrix=bt709:out_range=tv",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p",
         "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", str(out)],
        input=b"".join(f.tobytes() for f in frames), check=True,
    )
    return out


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Solid-colour masters (2 s at 30 fps) and a frame-numbered one."""
    d = tmp_path_factory.mktemp("masters")
    out: dict[str, Path] = {}
    for name, rgb in COLOURS.items():
        frame = np.empty((M, M, 3), np.uint8)
        frame[:] = rgb
        out[name] = encode([frame] * 60, "30", d / f"{name}.mp4")
    # frame index as 8 black/white stripes: survives scaling and colour conversion
    numbered = []
    for i in range(60):
        f = np.zeros((M, M, 3), np.uint8)
        for b in range(8):
            if i >> b & 1:
                f[:, b * 30:(b + 1) * 30] = 235
        numbered.append(f)
    out["numbered"] = encode(numbered, "30", d / "numbered.mp4")
    # a white circle on grey, off centre, on a wide master
    yy, xx = np.mgrid[0:180, 0:320]
    circle = np.full((180, 320, 3), 60, np.uint8)
    circle[(xx - 190) ** 2 + (yy - 90) ** 2 < 50**2] = 255
    out["circle"] = encode([circle] * 20, "30", d / "circle.mp4")
    return out


def clip(path: Path, start: int, frames: int, name: str, *, w: int = M, h: int = M,
         focus: tuple[float, float] = (0.5, 0.5)) -> ConformClip:
    return ConformClip(path, start, frames, Fraction(30), w, h, focus, name)


def small_spec(catalog: Catalog, **update: object) -> ChannelSpec:
    """youtube-1080p's encoder settings at 320x180, for the tests that check pixels."""
    spec = catalog.spec("youtube-1080p")
    return spec.model_copy(update={"name": "test-180p", "width": 320, "height": 180, **update})


def nearest_colour(rgb: np.ndarray) -> str:
    return min(COLOURS, key=lambda c: float(np.abs(np.array(COLOURS[c]) - rgb).sum()))


def test_youtube_1080p(catalog: Catalog, masters: dict[str, Path], tmp_path: Path) -> None:
    spec = catalog.spec("youtube-1080p")
    out = tmp_path / "yt.mp4"
    seen: list[float] = []
    res = conform_video(
        [clip(masters["red"], 5, 20, "a"), clip(masters["blue"], 0, 25, "b")],
        spec, out, progress=seen.append,  # default preset: ultrafast would signal Main
    )
    s = ffprobe(out)
    assert (s["width"], s["height"]) == (1920, 1080)
    assert s["r_frame_rate"] == "30/1" and s["codec_name"] == "h264"
    assert s["profile"] == "High" and s["pix_fmt"] == "yuv420p"
    assert (s["color_space"], s["color_primaries"], s["color_transfer"]) == ("bt709",) * 3
    assert s["color_range"] == "tv"
    assert s.get("sample_aspect_ratio", "1:1") == "1:1"
    assert int(s["nb_read_frames"]) == 45
    assert abs(float(s["format"]["duration"]) - 45 / 30) <= 1 / 30
    assert s["audio"] == []
    assert res["frames"] == 45 and res["duration"] == pytest.approx(1.5)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    # ordering and cut point: 20 red then 25 blue
    colours = [nearest_colour(f.mean((0, 1))) for f in decode_rgb(out, 32, 18)]
    assert colours == ["red"] * 20 + ["blue"] * 25
    # the module's own probe agrees with ffprobe
    p = probe(out)
    assert (p["width"], p["height"], p["fps"], p["codec"]) == (1920, 1080, Fraction(30), "h264")
    assert p["sample_aspect_ratio"] in (None, "1:1") and p["has_audio"] is False
    assert p["color_space"] == "bt709" and p["nb_frames"] == 45
    assert not [f for f in tmp_path.iterdir() if f.name != "yt.mp4"], "temp file left behind"


def test_reels_never_stretches(catalog: Catalog, masters: dict[str, Path], tmp_path: Path) -> None:
    spec = catalog.spec("reels-9x16")
    out = tmp_path / "reels.mp4"
    res = conform_video([clip(masters["circle"], 0, 10, "c", w=320, h=180, focus=(190 / 320, 0.5))],
                        spec, out, preset="ultrafast")
    s = ffprobe(out)
    assert (s["width"], s["height"]) == (1080, 1920) and s["r_frame_rate"] == "30/1"
    assert int(s["nb_read_frames"]) == 10
    assert s.get("sample_aspect_ratio", "1:1") == "1:1"
    # the circle must stay a circle: measure its extent in the output
    f = decode_rgb(out, 1080, 1920)[5].mean(-1)
    ys, xs = np.nonzero(f > 160)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width / height - 1.0) < 0.03, (width, height)
    # 100 px of a 180 px tall master in a 1920 tall frame
    assert abs(height - 100 * 1920 / 180) < 0.03 * height
    assert res["crops"][0]["h"] == 180 and res["crops"][0]["clip"] == "c"


def test_broadcast_25_from_30(catalog: Catalog, masters: dict[str, Path], tmp_path: Path) -> None:
    spec = catalog.spec("broadcast-ebu-1080p25")
    out = tmp_path / "ebu.mp4"
    res = conform_video(
        [clip(masters["green"], 10, 30, "g"), clip(masters["red"], 0, 21, "r")],
        spec, out, preset="ultrafast",
    )
    s = ffprobe(out)
    assert s["r_frame_rate"] == "25/1" and (s["width"], s["height"]) == (1920, 1080)
    cut = 51 / 30  # 1.7 s of edit at 30 fps
    n = int(s["nb_read_frames"])
    assert abs(n / 25 - cut) <= 1 / 25 and res["frames"] == n
    assert abs(float(s["format"]["duration"]) - cut) <= 1 / 25
    colours = [nearest_colour(f.mean((0, 1))) for f in decode_rgb(out, 32, 18)]
    for k, c in enumerate(colours):
        t = k / 25  # the cut from green to red is at 1.0 s
        if t < 1.0 - 1 / 60:
            assert c == "green", (k, c)
        elif t > 1.0 + 1 / 60:
            assert c == "red", (k, c)


def test_trims_are_frame_exact(catalog: Catalog, masters: dict[str, Path], tmp_path: Path) -> None:
    spec = small_spec(catalog)
    out = tmp_path / "trim.mp4"
    cuts = [(17, 10), (3, 5), (0, 4), (50, 10), (40, 1), (17, 3)]  # incl. a repeat, 1 frame
    conform_video([clip(masters["numbered"], s, n, f"c{i}") for i, (s, n) in enumerate(cuts)],
                  spec, out, preset="ultrafast")
    frames = decode_rgb(out, 320, 180).mean(-1)
    # the 240 px master is cropped to 240x134 and scaled 4/3: stripe b centred at 40b+20
    got = [sum(1 << b for b in range(8) if f[90, int((30 * b + 15) * 4 / 3)] > 128)
           for f in frames]
    assert got == [s + i for s, n in cuts for i in range(n)]


def test_finishing_and_audio(catalog: Catalog, masters: dict[str, Path], tmp_path: Path) -> None:
    spec = small_spec(catalog)
    lut = tmp_path / "identity.cube"
    lut.write_text("LUT_3D_SIZE 2\n" + "".join(
        f"{r} {g} {b}\n" for b in (0, 1) for g in (0, 1) for r in (0, 1)))
    wav = tmp_path / "tone.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                    "-ar", "44100", str(wav)], check=True)
    out = tmp_path / "fin.mp4"
    conform_video([clip(masters["red"], 0, 15, "a"), clip(masters["green"], 0, 15, "b")], spec,
                  out, preset="ultrafast", lut=lut, grain=0.5, sharpen=0.5, audio=wav, threads=2)
    s = ffprobe(out)
    assert int(s["nb_read_frames"]) == 30
    (a,) = s["audio"]
    assert a["codec_name"] == "aac" and int(a["sample_rate"]) == spec.audio_rate
    assert abs(float(a["duration"]) - 1.0) < 1 / 30 + 0.03  # trimmed to the picture (+AAC frame)
    colours = [nearest_colour(f.mean((0, 1))) for f in decode_rgb(out, 32, 18)]
    assert colours == ["red"] * 15 + ["green"] * 15  # the identity LUT keeps the colours


def test_command_is_an_argument_list_with_the_spec_encoding(catalog: Catalog,
                                                           masters: dict[str, Path]) -> None:
    spec = catalog.spec("youtube-1080p")
    cmd = build_video_command([clip(masters["red"], 0, 10, "a")], spec, Path("/x/out.mp4"))
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)
    assert cmd[0] == "ffmpeg" and cmd[-1] == "/x/out.mp4"
    opts = dict(zip(cmd, cmd[1:], strict=False))
    assert opts["-g"] == "15" and opts["-bf"] == "2" and opts["-flags"] == "+cgop"
    assert opts["-crf"] == "20" and opts["-maxrate"] == "8M" and opts["-r"] == "30/1"
    assert opts["-profile:v"] == "high" and opts["-movflags"] == "+faststart"
    assert "-an" in cmd and "-progress" in cmd
    assert "out_color_matrix=bt709" in opts["-filter_complex"]


def test_failed_encode_leaves_nothing_and_names_the_spec(catalog: Catalog, masters: dict[str, Path],
                                                         tmp_path: Path) -> None:
    spec = small_spec(catalog, name="broken-spec", profile="no-such-profile")
    out = tmp_path / "bad.mp4"
    with pytest.raises(StageError) as e:
        conform_video([clip(masters["red"], 0, 5, "a")], spec, out, preset="ultrafast")
    assert e.value.stage == "conform" and e.value.field == "broken-spec"
    assert "broken-spec" in str(e.value) and "ffmpeg" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StageError) as e:
        conform_video([clip(tmp_path / "gone.mp4", 0, 5, "a")], small_spec(catalog), out)
    assert "gone.mp4" in str(e.value) and not out.exists()


# ---------------------------------------------------------------------------- stills


@pytest.fixture(scope="module")
def keyframe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detailed 1024x1024 image (noise over gradients): hard to compress."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:1024, 0:1024].astype(np.float32)
    base = np.stack([xx / 4, yy / 4, (xx + yy) / 8], -1)
    img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    p = tmp_path_factory.mktemp("still") / "key.png"
    Image.fromarray(img).save(p)
    return p


@pytest.mark.parametrize("name", ["banner-300x250", "banner-728x90"])
def test_banners_fit_their_limit(catalog: Catalog, keyframe: Path, tmp_path: Path, name: str) -> None:
    spec = catalog.spec(name)
    out = tmp_path / f"{name}.jpg"
    res = conform_still(keyframe, (0.5, 0.5), spec, out, sharpen=0.5)
    data = out.read_bytes()
    assert len(data) <= spec.max_file_size and res["bytes"] == len(data)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (spec.width, spec.height)
        assert im.info.get("progressive") or im.info.get("progression")
    # a tighter limit forces a lower quality: the highest that fits
    tight = spec.model_copy(update={"max_file_size": len(data) * 2 // 3})
    res2 = conform_still(keyframe, (0.5, 0.5), tight, out)
    assert out.stat().st_size <= tight.max_file_size and 50 <= res2["quality"] < res["quality"]
    with Image.open(keyframe) as src:
        c = res2["crop"]
        im = src.convert("RGB").resize((spec.width, spec.height), Image.LANCZOS,
                                       box=(c["x"], c["y"], c["x"] + c["w"], c["y"] + c["h"]))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=res2["quality"] + 1, subsampling=2, progressive=True,
            optimize=True)
    assert len(buf.getvalue()) > tight.max_file_size  # one step better would not fit


def test_still_limit_too_small(catalog: Catalog, keyframe: Path, tmp_path: Path) -> None:
    spec = catalog.spec("banner-300x250").model_copy(update={"max_file_size": 2000})
    out = tmp_path / "tiny.jpg"
    with pytest.raises(StageError) as e:
        conform_still(keyframe, (0.5, 0.5), spec, out)
    msg = str(e.value)
    assert e.value.stage == "conform" and e.value.field == "banner-300x250"
    assert "smallest" in msg and "2000" in msg
    assert not out.exists()


def test_png_still_and_palette_fallback(catalog: Catalog, keyframe: Path, tmp_path: Path) -> None:
    spec = catalog.spec("social-still-1080")
    out = tmp_path / "s.png"
    res = conform_still(keyframe, (0.5, 0.5), spec, out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (1080, 1080) and im.mode == "RGB"
    assert res["format"] == "png" and res["bytes"] <= spec.max_file_size
    smaller = spec.model_copy(update={"max_file_size": res["bytes"] - 1})
    res2 = conform_still(keyframe, (0.5, 0.5), smaller, out)
    with Image.open(out) as im:
        assert im.mode == "P" and im.size == (1080, 1080)
    assert res2["format"] == "png-palette" and res2["bytes"] < smaller.max_file_size
    with pytest.raises(StageError, match="smallest PNG"):
        conform_still(keyframe, (0.5, 0.5), spec.model_copy(update={"max_file_size": 1000}),
                      tmp_path / "no.png")


def test_leaderboard_fits_the_whole_subject_without_stretching(catalog: Catalog, tmp_path: Path) -> None:
    """728x90 from a square master: a crop would cut through the subject, so the subject
    band is fitted to the banner height, on its composition side, undistorted."""
    size, bar_w, bar_h = 960, 96, 384  # subject: 40% of the frame tall, a 1:4 bar
    img = np.full((size, size, 3), (30, 40, 90), dtype=np.uint8)
    cx, cy = size // 3, size // 2
    img[cy - bar_h // 2:cy + bar_h // 2, cx - bar_w // 2:cx + bar_w // 2] = (250, 200, 40)
    src = tmp_path / "master.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "lb.jpg"
    res = conform_still(src, (1 / 3, 0.5), catalog.spec("banner-728x90"), out, subject_scale=0.4)
    assert res["crop"]["mode"] == "fit-subject"
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert got.shape == (90, 728, 3)
    yellow = (got[..., 0] > 180) & (got[..., 1] > 140) & (got[..., 2] < 120)
    rows, cols = np.nonzero(yellow)
    assert rows.min() > 0 and rows.max() < 89  # the whole subject, with air above and below
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(width / height - bar_w / bar_h) < 0.06  # not stretched
    assert cols.mean() < 728 / 2  # stays on its side: subject left, copy space right
    # without a subject size the old crop path applies (and cuts through the bar)
    res2 = conform_still(src, (1 / 3, 0.5), catalog.spec("banner-728x90"), tmp_path / "c.jpg")
    assert "mode" not in res2["crop"]
