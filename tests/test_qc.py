"""The technical QC battery (studio.qc, issue 14): synthetic media made by ffmpeg here, one
defect per file, each found with its timecode within one frame; clean media passes; what
the edit intends is not reported; caption problems are found; ffmpeg's photosensitivity
screen is run beside ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.qc import QcReport, Span, parse_captions, run_qc
from studio.specs import ChannelSpec, QcPolicy

ROOT = Path(__file__).resolve().parents[1]
RATE = 25
FRAME = 1 / RATE
SECONDS = 6
AMP = 0.0708  # a 1 kHz stereo tone at this amplitude reads -23.0 LUFS
TONE = f"{AMP}*sin(2*PI*1000*t)"
SPEC_YAML = """schema: ChannelSpec.1
name: qc-test
title: QC test 320x180 25 fps
kind: video
width: 320
height: 180
fps: "25"
crf: 20
loudness_target: -23
true_peak: -1
qc: {block: [loudness, true_peak, levels, clipping, black, freeze, silence, captions]}
"""


def _spec(**qc: object) -> ChannelSpec:
    return ChannelSpec.model_validate({
        "name": "qc-test", "title": "QC test", "kind": "video", "width": 320, "height": 180, "fps": "25",
        "crf": 20, "loudness_target": -23, "true_peak": -1,
        "qc": {"block": ["loudness", "true_peak", "levels", "clipping", "black", "freeze", "silence", "captions"],
               **qc}})


def _make(out: Path, *, video: str = "", audio: str = "", amp: float = AMP, post: str = "",
          tags: tuple[str, str, str] = ("bt709", "bt709", "bt709")) -> Path:
    """A 6 s 320x180 25 fps H.264 + AAC file: testsrc2 (in RGB, so drawn colours are exact)
    converted to BT.709 limited range, and a 1 kHz stereo tone; ``video``/``audio`` add
    filters (the defect)."""
    tone = f"{amp}*sin(2*PI*1000*t)"
    v = f"testsrc2=s=320x180:r={RATE}:d={SECONDS},format=rgb24"
    if video:
        v += f",{video}"
    v += ",scale=out_color_matrix=bt709:out_range=tv,format=yuv420p" + (f",{post}" if post else "")
    a = f"aevalsrc={tone}|{tone}:s=48000:d={SECONDS}" + (f",{audio}" if audio else "")
    prim, trc, space = tags
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a,
                    "-c:v", "libx264", "-preset", "superfast", "-crf", "18", "-g", "25",
                    "-color_primaries", prim, "-color_trc", trc, "-colorspace", space, "-color_range", "tv",
                    "-c:a", "aac", "-b:a", "192k", "-ar", "48000", str(out)], check=True)
    return out


FLASH_ON = "between(n,50,99)*lt(mod(n-50,5),3)"  # 3 frames on, 2 off: 5 Hz from 2.0 s to 4.0 s
FLASH_OFF = "between(n,50,99)*gte(mod(n-50,5),3)"
DEFECTS = {
    "clean": {},
    "black": {"video": "drawbox=c=black:t=fill:enable='between(n,75,124)'"},  # 3.00-5.00 s
    "freeze": {},  # frames 75-124 repeat frame 75: built with a filter_complex in the fixture
    "silence": {"audio": "volume=enable='between(t,3,5)':volume=0"},
    "clipping": {"audio": "volume=enable='between(t,2,2.5)':volume=20,aformat=sample_fmts=s16"},
    "loud": {"amp": AMP * 10 ** (3 / 20)},  # +3 LU
    "flash": {"video": f"drawbox=c=white:t=fill:enable='{FLASH_ON}',drawbox=c=black:t=fill:enable='{FLASH_OFF}'"},
    # Saturated red against a grey of the same relative luminance (0.2126): a red flash only.
    "red": {"video": f"drawbox=c=0xff0000:t=fill:enable='{FLASH_ON}',drawbox=c=0x7f7f7f:t=fill:enable='{FLASH_OFF}'"},
    "tags": {"tags": ("bt470bg", "gamma28", "bt470bg")},
    # Luma pushed 25% up for one second (2.00-3.00 s): superwhites above 235.
    "levels": {"post": "lutyuv=y='min(val*1.25,255)':enable='between(n,50,74)'"},
}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("qc-media")
    out = {}
    for name, kw in DEFECTS.items():
        if name == "freeze":
            # freezeframes takes two inputs: build that one with a filter_complex.
            path = folder / "freeze.mp4"
            src = f"testsrc2=s=320x180:r={RATE}:d={SECONDS},format=rgb24,split[x][y];[x][y]freezeframes=first=75:last=124:replace=75,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[v]"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", src,
                            "-f", "lavfi", "-i", f"aevalsrc={TONE}|{TONE}:s=48000:d={SECONDS}",
                            "-map", "[v]", "-map", "0:a", "-c:v", "libx264", "-preset", "superfast", "-crf", "18",
                            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                            "-color_range", "tv", "-c:a", "aac", "-ar", "48000", str(path)], check=True)
            out[name] = path
            continue
        out[name] = _make(folder / f"{name}.mp4", **kw)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def reports(media: dict[str, Path]) -> dict[str, QcReport]:
    spec = _spec()
    return {name: run_qc(path, spec) for name, path in media.items()}


def _near(seconds: float, want: float) -> bool:
    return abs(seconds - want) <= FRAME + 1e-6


def _failing(report: QcReport) -> set[str]:
    return {c.id for c in report.checks if c.status in ("fail", "warn")}


def test_clean_media_passes_every_check(reports: dict[str, QcReport]) -> None:
    r = reports["clean"]
    assert _failing(r) == set(), [(c.id, c.finding) for c in r.checks if c.status != "pass"]
    assert r.verdict == "pass" and not r.blocked
    assert r.frames == RATE * SECONDS
    assert r.check("loudness").measured["integrated_lufs"] == pytest.approx(-23, abs=0.5)
    assert {c.status for c in r.checks} <= {"pass", "skipped"}


@pytest.mark.parametrize(("name", "check", "start", "end"), [
    ("black", "black", 3.0, 5.0),
    ("freeze", "freeze", 3.0, 5.0),
    ("silence", "silence", 3.0, 5.0),
    ("clipping", "clipping", 2.0, None),
    ("flash", "flash", 2.0, None),
    ("red", "red_flash", 2.0, None),
    ("levels", "levels", 2.0, 3.0),
])
def test_each_defect_is_found_with_its_timecode(reports: dict[str, QcReport], name: str, check: str,
                                                start: float, end: float | None) -> None:
    r = reports[name]
    c = r.check(check)
    assert c.status == "fail", (c.finding, c.measured)
    assert c.events, c.finding
    ev = c.events[0]
    assert _near(ev.start_s, start), (ev, start)
    if end is not None:
        assert _near(ev.end_s, end), (ev, end)
    assert ev.start_tc == f"00:00:{int(ev.start_s):02d}:{round((ev.start_s % 1) * RATE):02d}"
    # The defect is the only thing wrong: no other check but its own (and the general
    # flash a full-screen flash also is) reports a problem.
    allowed = {check, "true_peak", "loudness"} if name == "clipping" else {check}
    assert _failing(r) <= allowed, [(x.id, x.finding) for x in r.checks if x.id in _failing(r) - allowed]
    assert r.blocked


def test_the_red_flash_is_not_a_general_flash(reports: dict[str, QcReport]) -> None:
    # Red against a grey of equal luminance: only the red rule can see it; the white/black
    # flash is both a general flash and (with no saturated red) not a red one.
    assert reports["red"].check("flash").status == "pass"
    assert reports["flash"].check("red_flash").status == "pass"
    assert reports["flash"].check("flash").measured["max_flashes_per_s"] >= 4.5


def test_too_loud_by_three_lu(reports: dict[str, QcReport]) -> None:
    c = reports["loud"].check("loudness")
    assert c.status == "fail"
    assert c.measured["integrated_lufs"] == pytest.approx(-20, abs=0.5)
    assert "+3.0 LU" in c.finding


def test_a_wrong_colour_tag_is_found(reports: dict[str, QcReport]) -> None:
    c = reports["tags"].check("colour")
    assert c.status == "fail"  # colour blocks by default
    assert c.measured["color_primaries"] == "bt470bg"
    assert "color_primaries=bt470bg (spec bt709)" in c.finding
    assert _failing(reports["tags"]) == {"colour"}


def test_intended_spans_are_not_reported(media: dict[str, Path]) -> None:
    spec = _spec()
    r = run_qc(media["black"], spec, intended=[Span(3.0, 5.0, ("black",), "end card")])
    assert r.check("black").status == "pass" and not r.check("black").events
    # Only part of it intended: the rest (1 s) is still reported, from where the span ends.
    r = run_qc(media["black"], spec, intended=[Span(3.0, 4.0, ("black",))])
    ev = r.check("black").events
    assert len(ev) == 1 and _near(ev[0].start_s, 4.0) and _near(ev[0].end_s, 5.0)
    # A span for another check does not hide black.
    r = run_qc(media["black"], spec, intended=[Span(3.0, 5.0, ("silence",))])
    assert r.check("black").status == "fail"


def test_warn_or_skip_comes_from_the_spec(media: dict[str, Path]) -> None:
    r = run_qc(media["loud"], _spec(block=[], warn=["loudness"]))
    assert r.check("loudness").status == "warn" and r.check("loudness").severity == "warn"
    assert not r.blocked and r.verdict == "warn"
    r = run_qc(media["loud"], _spec(block=[], skip=["loudness"]))
    assert r.check("loudness").status == "skipped"
    with pytest.raises(ValueError, match="unknown QC check 'loudnes'"):
        QcPolicy(block=["loudnes"])
    # Shipped specs: broadcast blocks on loudness and levels, web specs warn.
    from studio.specs import Catalog

    cat = Catalog()
    assert cat.spec("broadcast-ebu-1080p25").qc.severity("loudness") == "block"
    assert cat.spec("broadcast-ebu-1080p25").qc.severity("levels") == "block"
    assert cat.spec("youtube-1080p").qc.severity("loudness") == "warn"
    assert ChannelSpec.model_validate({"name": "x", "title": "x", "kind": "video", "width": 64, "height": 64,
                                       "crf": 20}).qc.severity("colour") == "block"


def test_caption_problems_are_found(media: dict[str, Path], tmp_path: Path) -> None:
    good = tmp_path / "good.srt"
    good.write_text("1\n00:00:00,500 --> 00:00:02,500\nA short line.\n\n"
                    "2\n00:00:03,000 --> 00:00:05,000\nAnother one here.\n")
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:00.500 --> 00:00:02.500\nFirst cue.\n\n"
                   "00:00:02.000 --> 00:00:03.000\nOverlap.\n\n"                            # overlap at 2.0
                   "00:00:03.200 --> 00:00:03.600\nThis cue is far too fast to read in time.\n\n"  # short, fast
                   "00:00:05.500 --> 00:00:07.000\nPast the end.\n")                         # past 6 s
    spec = _spec()
    assert run_qc(media["clean"], spec, captions=good).check("captions").status == "pass"
    c = run_qc(media["clean"], spec, captions=bad).check("captions")
    assert c.status == "fail"
    assert c.measured["overlap"] == 1 and c.measured["too_short"] == 1 and c.measured["too_fast"] == 1
    assert c.measured["past_end"] == 1
    starts = [e.start_s for e in c.events]
    assert starts == [2.0, 3.2, 5.5]
    assert "overlaps the previous cue" in c.events[0].detail
    assert len(parse_captions(bad)) == 4


def test_ffmpeg_photosensitivity_comparison_runs(reports: dict[str, QcReport]) -> None:
    flash = reports["flash"].check("flash")
    cmp = flash.measured["ffmpeg_photosensitivity"]
    # ffmpeg's screen sees the same 5 Hz flash: every frame we flag, it flags too; what it
    # flags beyond ours is the tail of its moving average after the flashing stops.
    assert cmp["ours_frames_flagged"] >= 45 and cmp["both"] == cmp["ours_frames_flagged"]
    assert cmp["ffmpeg_max_moving_badness"] > 5
    assert cmp["ffmpeg_only"] == cmp["ffmpeg_only_in_window_tail"]
    assert cmp["ffmpeg_spans"][0][0] == "00:00:02:00"
    assert "photosensitivity filter flags" in flash.finding and "moving average" in flash.finding
    clean = reports["clean"].check("flash").measured["ffmpeg_photosensitivity"]
    assert clean["ours_frames_flagged"] == 0 and clean["ffmpeg_frames_flagged"] == 0


def test_palette_distance(media: dict[str, Path]) -> None:
    spec = _spec()
    r = run_qc(media["red"], spec, palette=["#ff0000", "#7f7f7f", "#000000", "#ffffff", "#00ff00", "#0000ff",
                                             "#ffff00", "#00ffff", "#ff00ff"])
    near = r.check("palette").measured["mean_delta_e2000"]
    far = run_qc(media["red"], spec, palette=["#8b4513", "#556b2f"]).check("palette")
    assert far.measured["mean_delta_e2000"] > near + 10
    assert far.status == "warn"  # palette warns by default


def test_reports_json_and_html(reports: dict[str, QcReport], tmp_path: Path) -> None:
    r = reports["black"]
    doc = json.loads(r.write_json(tmp_path / "qc.json").read_text())
    assert doc["schema"] == "QcReport.1" and doc["verdict"] == "fail" and doc["blocked"] is True
    black = next(c for c in doc["checks"] if c["id"] == "black")
    assert black["events"][0]["start_tc"] == "00:00:03:00"
    page = r.write_html(tmp_path / "qc.html").read_text()
    assert "00:00:03:00" in page and "data:image/png;base64," in page and "Fix:" in page


def test_a_still(tmp_path: Path) -> None:
    from PIL import Image

    from studio.specs import Catalog

    spec = Catalog().spec("banner-300x250")
    ok = tmp_path / "ok.jpg"
    Image.new("RGB", (300, 250), (200, 30, 30)).save(ok, quality=85)
    r = run_qc(ok, spec, palette=["#c81e1e", "#ffffff"])
    assert r.verdict == "pass", [(c.id, c.finding) for c in r.checks]
    wrong = tmp_path / "wrong.png"
    Image.new("RGB", (300, 200), (0, 0, 0)).save(wrong)
    r = run_qc(wrong, spec)
    assert r.check("format").status == "fail" and "height 200 (spec 250)" in r.check("format").finding


def test_cli_exit_status(media: dict[str, Path], tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "qc-test.yaml").write_text(SPEC_YAML)
    env = {**os.environ, "STUDIO_SPECS_DIR": str(specs)}
    run = [sys.executable, "-m", "studio", "qc"]
    ok = subprocess.run([*run, str(media["clean"]), "--spec", "qc-test", "--json"], env=env, cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "pass"
    html = tmp_path / "r.html"
    bad = subprocess.run([*run, str(media["silence"]), "--spec", "qc-test", "--html", str(html)], env=env,
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "silence" in bad.stdout and "00:00:03:00" in bad.stdout and html.is_file()


def test_decode_errors_and_duration_to_the_frame(media: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec()
    r = run_qc(media["clean"], spec, expected_duration=SECONDS)
    assert r.check("duration").status == "pass" and r.check("decode").status == "pass"
    d = run_qc(media["clean"], spec, expected_duration=SECONDS - 0.2).check("duration")
    assert d.status == "fail" and "150 frames, expected 145 (+5)" in d.finding
    # An edit ending between two frames (149.5 of them) is right at either; not at 150 of 147.5.
    assert run_qc(media["clean"], spec, expected_duration=SECONDS - 0.02).check("duration").status == "pass"
    d = run_qc(media["clean"], spec, expected_duration=SECONDS - 0.1).check("duration")
    assert d.status == "fail" and "150 frames, expected 147 or 148 (+2)" in d.finding, d.finding
    # Garbage over part of the picture data: the decoder complains, the check says so.
    broken = tmp_path / "broken.mp4"
    data = bytearray(media["clean"].read_bytes())
    mid = len(data) // 2
    data[mid: mid + 4000] = bytes((i * 97 + 13) % 256 for i in range(4000))
    broken.write_bytes(bytes(data))
    c = run_qc(broken, spec).check("decode")
    assert c.status == "fail" and c.measured["errors"] > 0, c.measured


def _encode(out: Path, graph: str, gop: int) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-filter_complex", graph,
                    "-f", "lavfi", "-i", f"aevalsrc={TONE}|{TONE}:s=48000:d={SECONDS}", "-map", "[v]", "-map", "0:a",
                    "-c:v", "libx264", "-preset", "superfast", "-crf", "18", "-g", str(gop),
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
                    "-c:a", "aac", "-ar", "48000", str(out)], check=True)
    return out


def test_a_slow_push_in_is_not_a_freeze_and_a_held_frame_with_keyframes_is(tmp_path: Path) -> None:
    # A slow push-in (the camera moves of the example's Reels cut: 0.04-0.2 code values of
    # mean change a frame) was taken for a freeze; a held picture whose GOP refreshes every
    # 12 frames (each keyframe decodes 0.07-0.1 code values off) was cut into short pieces.
    src = f"testsrc2=s=640x360:r={RATE}:d=0.04,loop=loop={RATE * SECONDS - 1}:size=1,setpts=N/{RATE}/TB"
    # A soft pattern drifting 1.5 px/s: sub-pixel motion every frame, as a slow move makes.
    move = _encode(tmp_path / "move.mp4", f"nullsrc=s=320x180:r={RATE}:d={SECONDS},"
                   "geq=lum='128+60*sin((X+T*1.5)/20)':cb=128:cr=128,format=yuv420p[v]", 25)
    held = _encode(tmp_path / "held.mp4", f"{src},scale=320x180,format=yuv420p[v]", 12)
    spec = _spec()
    assert run_qc(move, spec).check("freeze").status == "pass"
    c = run_qc(held, spec).check("freeze")
    assert c.status == "fail" and len(c.events) == 1, c.events
    assert c.events[0].start_s == 0 and _near(c.events[0].end_s, SECONDS)


def test_a_profile_the_specs_decoders_play_passes_and_a_higher_one_fails(media: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    # x264's ultrafast preset signals Constrained Baseline (no CABAC, no 8x8 transform):
    # every High decoder plays it. A High stream for a Main spec does not fit.
    fast = tmp_path / "ultrafast.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(media["clean"]), "-c:v", "libx264", "-preset",
                    "ultrafast", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                    "-color_range", "tv", "-c:a", "copy", str(fast)], check=True)
    high = _spec().model_copy(update={"profile": "high"})
    c = run_qc(fast, high).check("format")
    assert c.status == "pass" and c.measured["profile"] == "constrained baseline", (c.finding, c.measured)
    main = _spec().model_copy(update={"profile": "main"})
    assert run_qc(media["clean"], high).check("format").status == "pass"  # testsrc2 at superfast: High
    c = run_qc(media["clean"], main).check("format")
    assert c.status == "fail" and c.finding == "differs from the spec: profile high (spec main)", c.finding
