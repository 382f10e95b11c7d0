"""The graphics track (supers and end card as Text generator title clips, timelines.graphics)
through the editorial exports: FCPXML writes connected Basic Title ``<title>``s on their
lane and reads them back as the same titles; FCP7 XML writes Text ``<generatoritem>``s; the
EDL stays a picture conform list."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from timelines import fcpxml
from timelines.export import export_all
from timelines.graphics import GRAPHICS_TRACK, TITLE_KIND, graphics_track, read_titles, title_clip

from .test_exports import H, W, _xmllint, build_timeline, read_back

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

RATE = Fraction(24000, 1001)
LOCALE = "fr-FR"
# build_timeline's edit is 144 frames (three 48-frame shots) from 01:00:00:00. The second
# super runs over the cut between the first and second shots, so it hangs from one spine
# item and runs on over the next; accents, an ampersand and newlines (one line per field).
TITLES = [
    {"kind": "super", "beat": "beat1", "field": "beats[0].supers", "start": 12 / RATE, "end": 40 / RATE,
     "text": "Crème brûlée & café\nDès 9 €"},
    {"kind": "super", "beat": "beat2", "field": "beats[1].supers", "start": 44 / RATE, "end": 80 / RATE,
     "text": "Ça se déguste à deux"},
    {"kind": "end_card", "beat": None, "field": "copy", "start": 120 / RATE, "end": 144 / RATE,
     "text": "Acme\nÀ bientôt\nOffre soumise à conditions"},
]
TEXT = {"super beat1": TITLES[0]["text"], "super beat2": TITLES[1]["text"], "end card": TITLES[2]["text"]}


def _with_graphics(tl: otio.schema.Timeline) -> otio.schema.Timeline:
    """The edit as assemble lays it out: V1, then the graphics track, then the audio."""
    titles = [{**t, "start": float(t["start"]), "end": float(t["end"])} for t in TITLES]
    tl.tracks.insert(1, graphics_track(titles, RATE, LOCALE))
    return tl


@pytest.fixture(scope="module")
def edit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("titles")
    tl = _with_graphics(build_timeline(root / "media", RATE))
    paths = export_all(tl, root / "out", "acme_titles", width=W, height=H, rate=RATE)
    return {"tl": tl, "paths": paths}


def _frames(seconds: float) -> int:
    return round(Fraction(seconds).limit_denominator(1_000_000) * RATE)


def _placed(titles: list[dict[str, Any]] | None) -> list[tuple[str, str | None, int, int, str]]:
    """read_titles' answer in frames of the edit (kind, beat, start, end, name)."""
    assert titles is not None, "no graphics track"
    return [(t["kind"], t["beat"], _frames(t["start"]), _frames(t["end"]), t["name"]) for t in titles]


def _expected_frames() -> list[tuple[str, str | None, int, int, str]]:
    names = ["super beat1", "super beat2", "end card"]
    return [(t["kind"], t["beat"], round(t["start"] * RATE), round(t["end"] * RATE), n)
            for t, n in zip(TITLES, names, strict=True)]


# ------------------------------------------------------------------ FCPXML


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint")
@pytest.mark.parametrize("version", fcpxml.SUPPORTED_VERSIONS)
def test_fcpxml_titles_valid_and_placed(version: str, edit: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "edit.fcpxml"
    out.write_text(fcpxml.write_to_string(edit["tl"], version=version, width=W, height=H), encoding="utf-8")
    res = _xmllint(f"FCPXMLv{version.replace('.', '_')}.dtd", out)
    assert res.returncode == 0, res.stderr

    root = ET.parse(out).getroot()
    effects = [e for e in root.iter("effect") if e.get("name") == fcpxml.BASIC_TITLE_NAME]
    assert len(effects) == 1 and effects[0].get("uid") == fcpxml.BASIC_TITLE_UID
    ids = [e.get("id") for e in root.iter() if e.get("id") is not None]
    assert len(ids) == len(set(ids)), ids
    seq = root.find(".//sequence")
    assert seq is not None
    tc_start = fcpxml.parse_time(seq.get("tcStart"))
    spine = seq.find("spine")
    assert spine is not None
    assert spine.find("title") is None  # off the primary storyline
    got = []
    for parent in spine:
        for title in parent.findall("title"):
            assert title.get("ref") == effects[0].get("id")
            assert title.get("lane") == "1"
            # Record time: the parent's place in the sequence, plus the title's offset in the
            # parent's own time (which starts at the parent's start).
            rec = (fcpxml.parse_time(parent.get("offset")) - tc_start
                   + fcpxml.parse_time(title.get("offset")) - fcpxml.parse_time(parent.get("start")))
            dur = fcpxml.parse_time(title.get("duration"))
            runs = title.findall("text/text-style")
            assert len(runs) == 1
            defs = title.findall("text-style-def")
            assert [d.get("id") for d in defs] == [runs[0].get("ref")]
            style = defs[0].find("text-style")
            assert style is not None and style.get("alignment") == "center" and style.get("fontColor") == "1 1 1 1"
            assert style.get("font") and style.get("fontSize")
            md = {m.get("key"): m.get("value") for m in title.findall("metadata/md")}
            assert md["studio.locale"] == LOCALE and md["studio.text"] == runs[0].text
            got.append((md["studio.kind"], title.get("name"), rec * RATE, dur * RATE, runs[0].text))
    want = [(k, n, s, e - s, TEXT[n]) for k, _, s, e, n in _expected_frames()]
    assert sorted(got, key=lambda g: g[2]) == want


def test_fcpxml_round_trip_titles(edit: dict[str, Any]) -> None:
    tl = edit["tl"]
    text = edit["paths"]["fcpxml"].read_text(encoding="utf-8")
    back = fcpxml.read_from_string(text)
    assert _placed(read_titles(back)) == _placed(read_titles(tl)) == _expected_frames()
    # The lane reads as our graphics track, each title as a Text generator with its text
    # and the studio metadata it went out with.
    assert [t.name for t in back.video_tracks()] == ["V1", GRAPHICS_TRACK]
    clips = list(back.video_tracks()[1].find_clips())
    assert [c.name for c in clips] == list(TEXT)
    for clip, orig in zip(clips, tl.video_tracks()[1].find_clips(), strict=True):
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.GeneratorReference) and ref.generator_kind == TITLE_KIND
        assert ref.parameters["text"] == TEXT[clip.name]
        assert fcpxml._plain(clip.metadata["studio"]) == fcpxml._plain(orig.metadata["studio"])
    # What came back from FCPXML goes on to FCP7 XML as Text generators too.
    fcp7 = ET.fromstring(otio.adapters.write_to_string(back, "fcp_xml"))
    assert sorted(_generators(fcp7).values()) == sorted(TEXT.values())


def test_text_generator_on_v1_stays_a_gap(tmp_path: Path) -> None:
    """A title in the first video track is not put in the primary storyline: it keeps its
    place as a gap, so the picture's sync holds."""
    tl = build_timeline(tmp_path / "media", RATE)
    v1 = tl.video_tracks()[0]
    v1.append(title_clip({**TITLES[0], "start": 0.0, "end": float(TITLES[0]["end"] - TITLES[0]["start"])},
                         RATE, LOCALE))
    root = ET.fromstring(fcpxml.write_to_string(tl, width=W, height=H))
    spine = root.find(".//spine")
    assert spine is not None
    assert root.find(".//title") is None
    last = list(spine)[-1]
    assert last.tag == "gap" and last.get("name") == "super beat1"
    assert fcpxml.parse_time(last.get("duration")) == 28 / RATE


def test_reads_titles_final_cut_wrote() -> None:
    """A title as Final Cut Pro writes one (anchored on a gap, lane 2, its own start, bare
    and styled text) reads back at its record time on a graphics track; a lane of other
    clips keeps its V name."""
    doc = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.10">
  <resources>
    <format id="r1" frameDuration="1/25s" width="1920" height="1080"/>
    <asset id="r2" name="a" start="0s" duration="10s" hasVideo="1" format="r1">
      <media-rep kind="original-media" src="file:///tmp/a.mov"/>
    </asset>
    <effect id="r3" name="Basic Title" uid=".../Titles.localized/Bumper:Opener.localized/Basic Title.localized/Basic Title.moti"/>
  </resources>
  <library><event name="e"><project name="p">
    <sequence format="r1" tcStart="3600s" duration="10s">
      <spine>
        <gap name="Gap" offset="3600s" start="3600s" duration="10s">
          <asset-clip ref="r2" lane="1" offset="3600s" name="b-roll" start="0s" duration="2s"/>
          <title ref="r3" lane="2" offset="3602s" name="super b03" start="3600s" duration="3s">
            <text>
              <text-style ref="ts9">Première </text-style><text-style ref="ts10">ligne</text-style>
            </text>
            <text>Deuxième</text>
            <text-style-def id="ts9"><text-style font="Helvetica" fontSize="63"/></text-style-def>
            <text-style-def id="ts10"><text-style font="Helvetica" fontSize="63" bold="1"/></text-style-def>
          </title>
        </gap>
      </spine>
    </sequence>
  </project></event></library>
</fcpxml>
"""
    back = fcpxml.read_from_string(doc)
    assert [t.name for t in back.video_tracks()] == ["V1", "V2", GRAPHICS_TRACK]
    assert read_titles(back) == [{"kind": "super", "beat": "b03", "name": "super b03", "start": 2.0, "end": 5.0}]
    clip = next(iter(back.video_tracks()[2].find_clips()))
    assert clip.media_reference.parameters["text"] == "Première ligne\nDeuxième"
    assert clip.range_in_parent().start_time.to_seconds() == 2.0


# ------------------------------------------------------------------ FCP7 XML and EDL


def _generators(root: ET.Element) -> dict[str, str]:
    """FCP7 XML's Text generators: clip name -> the text of their ``str`` parameter."""
    out = {}
    for item in root.iter("generatoritem"):
        effect = item.find("effect")
        assert effect is not None and effect.findtext("effectid") == TITLE_KIND
        values = [p.findtext("value") for p in effect.iter("parameter") if p.findtext("parameterid") == "str"]
        assert len(values) == 1
        out[item.findtext("name") or ""] = values[0] or ""
    return out


def test_fcp7_xml_text_generators(edit: dict[str, Any]) -> None:
    path = edit["paths"]["fcp7_xml"]
    assert _generators(ET.parse(path).getroot()) == TEXT
    back = read_back("fcp7_xml", path)
    assert _placed(read_titles(back)) == _expected_frames()


def test_edl_is_picture_only(edit: dict[str, Any], tmp_path: Path) -> None:
    """The EDL lists the picture's events, nothing of the graphics: the same events as the
    edit without its graphics track."""
    text = edit["paths"]["edl"].read_text()
    plain = build_timeline(tmp_path / "media", RATE)
    plain.name = edit["tl"].name
    bare = export_all(plain, tmp_path / "out", "acme_titles", width=W, height=H, rate=RATE)["edl"].read_text()

    def events(edl: str) -> list[str]:
        # The media folder differs between the two builds: compare the event lines.
        return [ln for ln in edl.splitlines() if re.match(r"^\d{3}\s", ln)]

    assert events(text) == events(bare)
    assert all(ln.split()[1].startswith("shot") for ln in events(text))
    assert "super" not in text.lower() and "end card" not in text.lower() and "Acme" not in text
