"""Editorial exports: every format is written, read back, and what survives is compared
with the table in docs/exports.md (the table is parsed, so the doc cannot drift)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import opentimelineio as otio
import pytest

from studio.timecode import Timecode
from timelines import fcpxml
from timelines.export import export_all

from .conftest import shared_file

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "exports.md"
MANIFEST = ROOT / "timelines" / "plugin_manifest.json"
FORMATS = ("otio", "otioz", "fcp7_xml", "fcpxml", "edl")
FEATURES = ("video", "audio_stems", "transitions", "markers", "marker_notes", "marker_colours",
            "clip_metadata", "handles", "exact_rate")
W, H = 1920, 1080
HANDLES = 12
CUT = 48  # frames per clip in the edit
MEDIA_FRAMES = CUT + 2 * HANDLES
AUDIO = {"voice": (0, 100), "music": (0, 3 * CUT), "effects": (30, 40)}  # record start, length

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def _rt(frames: float, rate: Fraction) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, float(rate))


def _tr(start: float, dur: float, rate: Fraction) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_rt(start, rate), _rt(dur, rate))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_media(folder: Path, rate: Fraction) -> tuple[list[Path], dict[str, Path]]:
    """Three tiny H.264 shots at the timeline rate and three sine-tone stems."""
    folder.mkdir(parents=True, exist_ok=True)
    r = f"{rate.numerator}/{rate.denominator}"
    videos = []
    for i in range(3):
        p = folder / f"shot{i + 1}.mp4"
        _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x36:rate={r}", "-frames:v",
                str(MEDIA_FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                "yuv420p", str(p))
        videos.append(p)
    stems = {}
    for i, (name, (_, length)) in enumerate(AUDIO.items()):
        p = folder / f"{name}.wav"
        secs = float(Fraction(length) / rate)
        _ffmpeg("-f", "lavfi", "-i", f"sine=frequency={220 * (i + 1)}:sample_rate=48000",
                "-t", f"{secs:.6f}", str(p))
        stems[name] = p
    return videos, stems


def build_timeline(folder: Path, rate: Fraction) -> otio.schema.Timeline:
    """A Studio-like edit: V1 with three handled clips, a dissolve between 1 and 2, beat
    markers, a review marker on the track, recipe metadata, three audio stems."""
    videos, stems = make_media(folder, rate)
    rs = f"{rate.numerator}/{rate.denominator}"
    tl = otio.schema.Timeline(name="acme_launch_edit")
    # As assemble does: the programme starts at 01:00:00:00 (a drop-frame hour at 29.97).
    tl.global_start_time = _rt(Timecode.parse("01:00:00:00", rate).frames, rate)
    tl.metadata["studio"] = {"run_id": "run_1", "rate": rs, "code_version": "timeline.1"}
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(v1)
    for i, path in enumerate(videos):
        ref = otio.schema.ExternalReference(target_url=path.resolve().as_uri(),
                                            available_range=_tr(0, MEDIA_FRAMES, rate))
        ref.metadata["studio"] = {"sha256": f"{i:064x}", "render_id": f"render_{i}"}
        clip = otio.schema.Clip(name=f"beat{i + 1}", media_reference=ref,
                                source_range=_tr(HANDLES, CUT, rate))
        clip.metadata["studio"] = {
            "beat_id": f"beat{i + 1}", "candidate_id": f"cand_{i}", "seed": 1000 + i,
            "model_id": "procedural/v1", "prompt_hash": f"{i + 7:016x}",
            "recipe_hash": f"{i + 9:016x}", "score": 0.5 + i / 10, "focus": ["product", "logo"],
            "rate": rs,
        }
        beat = otio.schema.Marker(name=f"beat{i + 1}", marked_range=_tr(HANDLES, 0, rate),
                                  color=otio.schema.MarkerColor.GREEN)
        beat.comment = f"narration {i + 1}"
        beat.metadata["studio"] = {"kind": "beat"}
        clip.markers.append(beat)
        v1.append(clip)
        if i == 0:
            v1.append(otio.schema.Transition(
                name="Cross Dissolve", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=_rt(6, rate), out_offset=_rt(6, rate)))
    review = otio.schema.Marker(name="review", marked_range=_tr(CUT + 20, 0, rate),
                                color=otio.schema.MarkerColor.RED)
    review.comment = "tighten the cut"
    v1.markers.append(review)
    for name, (start, length) in AUDIO.items():
        track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
        if start:
            track.append(otio.schema.Gap(source_range=_tr(0, start, rate)))
        ref = otio.schema.ExternalReference(target_url=stems[name].resolve().as_uri(),
                                            available_range=_tr(0, length, rate))
        track.append(otio.schema.Clip(name=name, media_reference=ref,
                                      source_range=_tr(0, length, rate)))
        tl.tracks.append(track)
    return tl


# ------------------------------------------------------------------ what survived

def _frames(rt: otio.opentime.RationalTime, rate: Fraction) -> int:
    return round(rt.rescaled_to(float(rate)).value)


def _base(clip: otio.schema.Clip) -> str:
    """The media file as a CMX reel name (``shot1.mp4`` -> ``shot1mp4``). For EDLs the reel
    is what a conform uses, and OTIO's cmx_3600 reader gives the B side of a dissolve the
    A side's FROM CLIP url."""
    cmx = clip.metadata.get("cmx_3600")
    if cmx and cmx.get("reel"):
        return str(cmx["reel"])
    url = getattr(clip.media_reference, "target_url", "") or ""
    return re.sub(r"[^a-z0-9]", "", Path(url).name.lower())


def _picture(tl: otio.schema.Timeline, rate: Fraction) -> dict[int, tuple[str, int]]:
    """Record frame -> (file, source frame) outside dissolves: equal for equivalent edits
    (CMX puts a dissolve's cut at its start, OTIO and FCP at its centre)."""
    v1 = tl.video_tracks()[0]
    covered: set[int] = set()
    cursor = otio.opentime.RationalTime(0, float(rate))
    for item in v1:
        if isinstance(item, otio.schema.Transition):
            cut = _frames(cursor, rate)
            covered.update(range(cut - _frames(item.in_offset, rate),
                                 cut + _frames(item.out_offset, rate)))
        else:
            cursor += item.duration()
    picture = {}
    for c in v1.find_clips():
        rec = _frames(c.range_in_parent().start_time, rate)
        src = _frames(c.source_range.start_time, rate)
        for i in range(_frames(c.source_range.duration, rate)):
            if rec + i not in covered:
                picture[rec + i] = (_base(c), src + i)
    return picture


def summarize(tl: otio.schema.Timeline, rate: Fraction) -> dict[str, Any]:
    """The facts the table talks about, in frames of the edit rate, as plain values."""
    v1 = tl.video_tracks()[0]
    clips = [c for c in v1 if isinstance(c, otio.schema.Clip)]
    spans = []
    cursor = otio.opentime.RationalTime(0, float(rate))
    for item in v1:  # a transition sits at the cut: the end of the items before it
        if isinstance(item, otio.schema.Transition):
            cut = _frames(cursor, rate)
            spans.append((cut - _frames(item.in_offset, rate), cut + _frames(item.out_offset, rate)))
        else:
            cursor += item.duration()
    markers: set[tuple[str, int]] = set()
    notes: set[tuple[str, str]] = set()
    colours: dict[str, str] = {}
    placed = []
    for c in clips:
        rec = c.range_in_parent().start_time - c.source_range.start_time
        placed += [(m, rec + m.marked_range.start_time) for m in c.markers]
    placed += [(m, m.marked_range.start_time) for m in list(v1.markers) + list(tl.tracks.markers)]
    for m, at in placed:
        name = m.name.lower()  # cmx_3600 upper-cases marker names
        markers.add((name, _frames(at, rate)))
        notes.add((name, m.comment))
        colours[name] = str(m.color)
    audio = [[(_base(c), _frames(c.range_in_parent().start_time, rate),
               _frames(c.source_range.duration, rate))
              for c in t if isinstance(c, otio.schema.Clip)] for t in tl.audio_tracks()]
    avail = []
    for c in clips:
        ar = c.media_reference.available_range
        avail.append(None if ar is None else (_frames(ar.start_time, rate), _frames(ar.duration, rate)))
    return {
        "video": _picture(tl, rate), "audio_stems": [a for a in audio if a],
        "transitions": spans, "markers": markers, "marker_notes": notes,
        "marker_colours": colours,
        "clip_metadata": [fcpxml._plain(c.metadata.get("studio")) for c in clips],
        "handles": avail,
        "exact_rate": {c.source_range.duration.rate for c in tl.find_clips()},
    }


def observed(original: dict[str, Any], back: dict[str, Any]) -> dict[str, bool]:
    got = {f: original[f] == back[f] for f in FEATURES}
    # Colours are judged on the markers that came through at all (markers has its own row).
    colours = back["marker_colours"]
    got["marker_colours"] = bool(colours) and all(
        original["marker_colours"].get(name) == c for name, c in colours.items())
    return got


def doc_table() -> dict[str, dict[str, bool]]:
    """docs/exports.md's table: rows are features (their key in backticks), columns formats;
    a cell is yes or no, then optional words."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| feature"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        rows.append(ln)
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cols = [re.search(r"`(\w+)`", h).group(1) if "`" in h else h for h in header]
    table: dict[str, dict[str, bool]] = {f: {} for f in FORMATS}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        m = re.search(r"`(\w+)`", cells[0])
        if not m:
            continue
        for col, cell in zip(cols[1:], cells[1:], strict=True):
            table[col][m.group(1)] = cell.lower().startswith("yes")
    return table


# ------------------------------------------------------------------ fixtures and tests

@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rate = Fraction(24000, 1001)
    root = tmp_path_factory.mktemp("exports")
    tl = build_timeline(root / "media", rate)
    paths = export_all(tl, root / "out", "acme_launch", width=W, height=H, rate=rate, otioz=True)
    return {"tl": tl, "paths": paths, "rate": rate}


def read_back(fmt: str, path: Path, rate: Fraction | None = None) -> otio.schema.Timeline:
    if fmt == "otio":
        return otio.adapters.read_from_file(str(path))
    if fmt == "otioz":
        return otio.adapters.read_from_file(str(path), adapter_name="otioz")
    if fmt == "fcp7_xml":
        return otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    if fmt == "fcpxml":
        return fcpxml.read_from_string(path.read_text())
    # An EDL does not say its rate: the reader must be told (its default is 24).
    kw = {"rate": float(rate)} if rate is not None else {}
    return otio.adapters.read_from_file(str(path), adapter_name="cmx_3600", **kw)


def test_all_files_written(exported: dict[str, Any]) -> None:
    assert set(exported["paths"]) == set(FORMATS)
    for p in exported["paths"].values():
        assert p.stat().st_size > 0
    assert not list(exported["paths"]["otio"].parent.glob(".*tmp*")), "temp files left behind"


def test_otioz_only_when_asked(exported: dict[str, Any], tmp_path: Path) -> None:
    """The bundle copies every master (hundreds of MB a run): off unless asked for; the
    .otio references the same media where it lies."""
    paths = export_all(exported["tl"], tmp_path, "plain", width=W, height=H, rate=exported["rate"])
    assert set(paths) == set(FORMATS) - {"otioz"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    otioz_size = exported["paths"]["otioz"].stat().st_size
    media = sum(Path(urlparse(c.media_reference.target_url).path).stat().st_size
                for c in exported["tl"].find_clips())
    assert otioz_size > media / 2  # the bundle does carry the media; the .otio does not
    assert paths["otio"].stat().st_size < media / 2


def test_doc_table_matches_what_survives(exported: dict[str, Any]) -> None:
    rate = exported["rate"]
    original = summarize(exported["tl"], rate)
    expected = doc_table()
    got = {}
    for fmt in FORMATS:
        back = summarize(read_back(fmt, exported["paths"][fmt], rate), rate)
        # Exact rate: what a reader gets from the file alone, told nothing.
        back["exact_rate"] = summarize(read_back(fmt, exported["paths"][fmt]), rate)["exact_rate"]
        got[fmt] = observed(original, back)
    assert got == expected


def test_edl_is_video_only_from_one_hour(exported: dict[str, Any]) -> None:
    text = exported["paths"]["edl"].read_text()
    events = [ln.split() for ln in text.splitlines() if re.match(r"^\d{3}\s", ln)]
    assert events and all(ev[2] == "V" for ev in events)
    assert events[0][-2] == "01:00:00:00"
    # The last record out is one hour plus the programme (144 frames at 24 NDF = 6 s).
    assert events[-1][-1] == "01:00:06:00"


def test_fcp7_sequence_format_filled(exported: dict[str, Any]) -> None:
    import xml.etree.ElementTree as ET

    root = ET.parse(exported["paths"]["fcp7_xml"]).getroot()
    sc = root.find(".//sequence/media/video/format/samplecharacteristics")
    assert sc is not None
    assert (sc.findtext("width"), sc.findtext("height")) == (str(W), str(H))
    assert (sc.findtext("rate/timebase"), sc.findtext("rate/ntsc")) == ("24", "TRUE")


def test_fcpxml_details(exported: dict[str, Any]) -> None:
    text = exported["paths"]["fcpxml"].read_text()
    assert 'frameDuration="1001/24000s"' in text
    assert '<fcpxml version="1.10">' in text
    back = fcpxml.read_from_string(text)
    assert [t.name for t in back.audio_tracks()] == list(AUDIO)
    assert back.metadata["studio"] == fcpxml._plain(exported["tl"].metadata["studio"])
    assert back.metadata["fcpxml"]["width"] == W and back.metadata["fcpxml"]["height"] == H
    # Clip metadata keeps its types (seed an int, focus a list), not only its text.
    first = next(iter(back.find_clips()))
    meta = fcpxml._plain(first.metadata["studio"])
    assert meta["seed"] == 1000 and meta["focus"] == ["product", "logo"]


def _xmllint(dtd_name: str, path: Path) -> subprocess.CompletedProcess[str]:
    dtd = shared_file("conformance", "fcpxml-dtd", dtd_name)
    return subprocess.run(["xmllint", "--noout", "--dtdvalid", str(dtd), str(path)],
                          capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint")
@pytest.mark.parametrize("rate", [Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001),
                                  Fraction(30)], ids=str)
def test_fcpxml_valid_against_dtd(rate: Fraction, tmp_path: Path) -> None:
    tl = build_timeline(tmp_path / "media", rate)
    out = tmp_path / "edit.fcpxml"
    out.write_text(fcpxml.write_to_string(tl, width=W, height=H, rate=rate))
    res = _xmllint("FCPXMLv1_10.dtd", out)
    assert res.returncode == 0, res.stderr
    frame = 1 / rate
    assert f'frameDuration="{frame.numerator}/{frame.denominator}s"' in out.read_text() \
        or f'frameDuration="{rate.denominator}/{rate.numerator}s"' in out.read_text()
    back = fcpxml.read_from_string(out.read_text())
    assert back.metadata["fcpxml"]["rate"] == f"{rate.numerator}/{rate.denominator}"
    assert summarize(back, rate)["video"] == summarize(tl, rate)["video"]


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint")
@pytest.mark.parametrize("version", fcpxml.SUPPORTED_VERSIONS)
def test_fcpxml_versions_valid(version: str, exported: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "edit.fcpxml"
    out.write_text(fcpxml.write_to_string(exported["tl"], version=version, width=W, height=H))
    res = _xmllint(f"FCPXMLv{version.replace('.', '_')}.dtd", out)
    assert res.returncode == 0, res.stderr


def test_plugin_manifest_registers_adapter(exported: dict[str, Any]) -> None:
    """OTIO finds studio_fcpxml through the manifest and picks it by suffix."""
    old = os.environ.get("OTIO_PLUGIN_MANIFEST_PATH")
    os.environ["OTIO_PLUGIN_MANIFEST_PATH"] = str(MANIFEST)
    try:
        otio.plugins.ActiveManifest(force_reload=True)
        adapter = otio.adapters.from_name("studio_fcpxml")
        assert "fcpxml" in adapter.suffixes
        path = exported["paths"]["fcpxml"]
        back = otio.adapters.read_from_file(str(path))  # chosen by the .fcpxml suffix
        assert len(list(back.find_clips())) == len(list(exported["tl"].find_clips()))
        text = otio.adapters.write_to_string(exported["tl"], "studio_fcpxml", version="1.9")
        assert '<fcpxml version="1.9">' in text
    finally:
        if old is None:
            os.environ.pop("OTIO_PLUGIN_MANIFEST_PATH", None)
        else:
            os.environ["OTIO_PLUGIN_MANIFEST_PATH"] = old
        otio.plugins.ActiveManifest(force_reload=True)


def test_entry_point_hook_returns_manifest() -> None:
    manifest = fcpxml.plugin_manifest()
    assert [a.name for a in manifest.adapters] == ["studio_fcpxml"]


def test_edl_record_hour_drop_frame() -> None:
    """At 29.97 the adapter writes drop-frame timecode; the hour shift must match it, and
    non-drop rewrites every label (the adapter cannot write NDF 29.97)."""
    from timelines.export import edl_with_timecode

    rate = Fraction(30000, 1001)
    edl = ("TITLE: x\n\n"
           "001  shot1mp4 V     C        00:00:00;12 00:00:01;24 00:00:00;00 00:00:01;12\n")
    df = edl_with_timecode(edl, Timecode.parse("01:00:00;00", rate, True)).splitlines()
    assert df[1] == "FCM: DROP FRAME"
    assert df[-1].split()[-2:] == ["01:00:00;00", "01:00:01;12"]
    ndf = edl_with_timecode(edl, Timecode.parse("01:00:00:00", rate, False)).splitlines()
    assert ndf[1] == "FCM: NON-DROP FRAME"
    assert ndf[-1].split()[-4:] == ["00:00:00:12", "00:00:01:24", "01:00:00:00", "01:00:01:12"]
