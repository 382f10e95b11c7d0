"""Start timecode and drop-frame: every editorial export says the same.

A spec (or the brief) sets the programme's start timecode and whether it counts
drop-frame; the timeline is stamped by the assemble stage's own code and written by
``export_all``; each file is then read back, as text and through its reader, and the
start and the DF/NDF flag must agree with each other and with an independent count of
drop-frame labels (not studio.timecode's formula)."""

from __future__ import annotations

import itertools
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from studio.brief import Brief, check_against
from studio.errors import ManyErrors
from studio.specs import Catalog, ChannelSpec
from studio.timecode import Timecode, to_frames
from timelines import fcpxml
from timelines.assemble import set_start_timecode
from timelines.export import export_all

from .test_exports import CUT, H, W, build_timeline

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

NTSC = Fraction(30000, 1001)
NTSC60 = Fraction(60000, 1001)
PROGRAMME = 3 * CUT  # frames in build_timeline's picture


# ------------------------------------------------------------- an independent count

def labels(rate: Fraction, drop_frame: bool) -> Iterator[str]:
    """Every label in order from 00:00:00:00, walking the clock digit by digit and leaving
    out the ones drop-frame skips (frames 0-1, at 59.94 0-3, at the top of each minute
    not divisible by ten), as SMPTE ST 12-1 describes them."""
    fps = round(rate)
    skip = {30: 2, 60: 4}[fps] if drop_frame else 0
    sep = ";" if drop_frame else ":"
    for h in range(24):
        for m in range(60):
            for s in range(60):
                for f in range(fps):
                    if skip and s == 0 and f < skip and m % 10 != 0:
                        continue
                    yield f"{h:02d}:{m:02d}:{s:02d}{sep}{f:02d}"


def nth_label(n: int, rate: Fraction, drop_frame: bool) -> str:
    return next(itertools.islice(labels(rate, drop_frame), n, None))


def index_of(label: str, rate: Fraction, drop_frame: bool) -> int:
    return next(i for i, x in enumerate(labels(rate, drop_frame)) if x == label)


def test_the_independent_count_knows_drop_frame() -> None:
    # The classic figures: a drop-frame hour at 29.97 is 107892 frames, and the frame
    # after 00:00:59;29 is 00:01:00;02.
    assert nth_label(107892, NTSC, True) == "01:00:00;00"
    assert nth_label(1800, NTSC, True) == "00:01:00;02"
    assert nth_label(17982, NTSC, True) == "00:10:00;00"
    assert nth_label(215784, NTSC60, True) == "01:00:00;00"
    assert nth_label(90000, Fraction(25), False) == "01:00:00:00"


@pytest.mark.parametrize("n", [0, 1, 1799, 1800, 1801, 17981, 17982, 17983, 107891, 107892, 107999])
def test_labels_match_the_count(n: int) -> None:
    for rate in (NTSC, NTSC60):
        want = nth_label(n, rate, True)
        assert Timecode.parse(want, rate, True).frames == n
        assert Timecode.parse("00:00:00;00", rate, True).label_at(n) == want
    assert Timecode.parse("00:00:00:00", NTSC, False).label_at(n) == nth_label(n, NTSC, False)


# ------------------------------------------------------------- the exports, read back

def _spec(name: str, fps: str, **extra: Any) -> ChannelSpec:
    return ChannelSpec.model_validate({"schema": "ChannelSpec.1", "name": name, "title": name,
                                       "kind": "video", "width": W, "height": H, "fps": fps,
                                       "crf": 20, **extra})


def _brief(channel: str, **extra: Any) -> Brief:
    return Brief.model_validate({
        "project": "acme", "campaign": "launch", "purpose": "timecode test", "channels": [channel],
        "style_pack": "golden-hour",
        "beats": [{"id": "b1", "duration": 2, "subject": "a kettle"}], **extra})


def _export(tmp: Path, spec: ChannelSpec, brief: Brief) -> tuple[otio.schema.Timeline, dict[str, Path]]:
    """build_timeline's edit, stamped by the assemble stage's own code for this spec and
    brief, written by export_all."""
    rate = spec.rate
    tl = build_timeline(tmp / "media", rate)
    set_start_timecode(brief, [spec], rate, tl)
    return tl, export_all(tl, tmp / "out", "edit", width=W, height=H, rate=rate)


def _events(edl: str) -> list[list[str]]:
    return [ln.split() for ln in edl.splitlines() if re.match(r"^\d{3}\s", ln)]


def read_all(paths: dict[str, Path], rate: Fraction) -> dict[str, dict[str, Any]]:
    """Per format: the start frame and DF flag as the file says them, and the start label
    where the format writes one."""
    got: dict[str, dict[str, Any]] = {}

    tl = otio.adapters.read_from_file(str(paths["otio"]))
    tc = tl.metadata["studio"]["timecode"]
    got["otio"] = {"frames": round(tl.global_start_time.value), "label": tc["start"],
                   "drop_frame": tc["drop_frame"]}

    # EDL: the FCM line, the record side, and what OTIO's reader makes of it.
    edl = paths["edl"].read_text()
    fcm = [ln for ln in edl.splitlines() if ln.startswith("FCM:")]
    assert len(fcm) == 1, edl
    events = _events(edl)
    stamps = [tc for ev in events for tc in ev[-4:]]
    seps = {tc[8] for tc in stamps}
    assert len(seps) == 1, f"EDL mixes DF and NDF labels: {stamps}"
    edl_df = fcm[0] == "FCM: DROP FRAME"
    assert edl_df == (seps == {";"}), (fcm, seps)
    back = otio.adapters.read_from_file(str(paths["edl"]), adapter_name="cmx_3600", rate=float(rate))
    v1 = back.video_tracks()[0]
    got["edl"] = {"frames": round(-v1.source_range.start_time.value), "label": events[0][-2],
                  "drop_frame": edl_df, "end": events[-1][-1]}

    # FCP7 XML: the sequence <timecode>, as text and through fcp_xml.
    root = ET.parse(paths["fcp7_xml"]).getroot()
    seq_tc = root.find("./sequence/timecode")
    if seq_tc is None:
        seq_tc = root.find(".//sequence/timecode")
    assert seq_tc is not None
    timebase, ntsc = seq_tc.findtext("rate/timebase"), seq_tc.findtext("rate/ntsc")
    tc_rate = Fraction(int(timebase) * 1000, 1001) if ntsc == "TRUE" else Fraction(int(timebase))
    assert tc_rate == rate
    label = seq_tc.findtext("string")
    df = seq_tc.findtext("displayformat") == "DF"
    assert (";" in label) == df
    assert int(seq_tc.findtext("frame")) == to_frames(label, rate, df)
    fcp7 = otio.adapters.read_from_file(str(paths["fcp7_xml"]), adapter_name="fcp_xml")
    got["fcp7_xml"] = {"frames": int(seq_tc.findtext("frame")), "label": label, "drop_frame": df,
                       "read": round(fcp7.global_start_time.rescaled_to(float(rate)).value)}

    # FCPXML: tcStart (exact seconds) and tcFormat; the spine starts at tcStart.
    froot = ET.parse(paths["fcpxml"]).getroot()
    seq = froot.find(".//sequence")
    start = fcpxml.parse_time(seq.get("tcStart"))
    assert (start * rate).denominator == 1, seq.get("tcStart")
    first = seq.find("spine")[0]
    assert fcpxml.parse_time(first.get("offset")) == start
    clips = [e for e in froot.iter("asset-clip") if e.get("tcFormat")]
    assert {e.get("tcFormat") for e in clips} == {seq.get("tcFormat")}
    fback = fcpxml.read_from_string(paths["fcpxml"].read_text())
    assert [round(c.range_in_parent().start_time.value) for c in fback.video_tracks()[0].find_clips()] \
        == [0, CUT, 2 * CUT]  # record positions count from the start, as before
    got["fcpxml"] = {"frames": int(start * rate), "drop_frame": seq.get("tcFormat") == "DF",
                     "read": round(fback.global_start_time.value)}
    return got


CASES = {
    # rate, spec extras, brief extras, expected label, expected DF
    "2997-df": (NTSC, {}, {}, "01:00:00;00", True),
    "5994-df": (NTSC60, {}, {}, "01:00:00;00", True),
    "2997-ndf": (NTSC, {"drop_frame": False}, {}, "01:00:00:00", False),
    "25-control": (Fraction(25), {}, {}, "01:00:00:00", False),
    "2997-brief": (NTSC, {}, {"start_timecode": "00:59:30;00"}, "00:59:30;00", True),
    "2997-brief-ndf": (NTSC, {}, {"start_timecode": "10:00:00:00", "drop_frame": False}, "10:00:00:00", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_export_agrees_on_start_and_drop_frame(case: str, tmp_path: Path) -> None:
    rate, spec_extra, brief_extra, label, df = CASES[case]
    spec = _spec("tc-test", f"{rate.numerator}/{rate.denominator}", **spec_extra)
    _, paths = _export(tmp_path, spec, _brief("tc-test", **brief_extra))
    got = read_all(paths, rate)

    # The expected frame count from the independent walk: the n whose label is `label`.
    n = index_of(label, rate, df)
    h, m, s, _ = (int(x) for x in re.split("[:;]", label))
    for fmt, g in got.items():
        assert g["frames"] == n, (fmt, g)
        assert g["drop_frame"] is df, (fmt, g)
        if "label" in g:
            assert g["label"] == label, (fmt, g)
        if "read" in g:
            assert g["read"] == n, (fmt, g)
    # The record side ends where the programme does, counted the same way.
    assert got["edl"]["end"] == nth_label(n + PROGRAMME, rate, df)
    if df:
        # Drop-frame keeps the label on the clock: within two frames anywhere, 3.6 ms an hour
        # at each ten-minute label (non-drop 29.97 runs 3.6 s an hour late).
        clock_error = abs(float(n / rate) - (3600 * h + 60 * m + s))
        assert clock_error < (0.0037 * (h + 1) if m % 10 == 0 and s == 0 else 2 / 29.97), clock_error


def test_shipped_atsc_spec_is_drop_frame_from_one_hour(tmp_path: Path) -> None:
    spec = Catalog().spec("broadcast-atsc-1080p2997")
    assert spec.timecode.label == "01:00:00;00" and spec.timecode.drop_frame
    _, paths = _export(tmp_path, spec, _brief(spec.name))
    got = read_all(paths, NTSC)
    assert {g["frames"] for g in got.values()} == {107892}
    assert all(g["drop_frame"] for g in got.values())
    assert "FCM: DROP FRAME" in paths["edl"].read_text()
    assert _events(paths["edl"].read_text())[0][-2] == "01:00:00;00"
    assert 'tcFormat="DF"' in paths["fcpxml"].read_text()
    assert "<displayformat>DF</displayformat>" in paths["fcp7_xml"].read_text()


# ------------------------------------------------------------- refused up front

@pytest.mark.parametrize("extra, words", [
    ({"fps": "25", "drop_frame": True}, "drop-frame timecode exists only at 30000/1001 and 60000/1001"),
    ({"fps": "25", "start_timecode": "01:00:00:25"}, "frame 25 does not exist at 25"),
    ({"fps": "30000/1001", "start_timecode": "00:01:00;00"}, "does not exist in drop-frame"),
    ({"fps": "30000/1001", "start_timecode": "01:00:00;00", "drop_frame": False}, "written drop-frame"),
    ({"fps": "30", "start_timecode": "1:00:00:00"}, "is not a timecode"),
])
def test_spec_timecode_refused(extra: dict[str, Any], words: str) -> None:
    fps = extra.pop("fps")
    with pytest.raises(ValueError, match=re.escape(words)):
        _spec("bad", fps, **extra)


def test_brief_timecode_checked_against_the_edit_rate(tmp_path: Path) -> None:
    catalog = Catalog()
    brief = _brief("broadcast-ebu-1080p25", drop_frame=True)
    with pytest.raises(ManyErrors) as ei:
        check_against(brief, catalog, tmp_path, source="b.yaml")
    lines = [e.line() for e in ei.value.errors]
    assert any("drop_frame" in ln and "only at 30000/1001 and 60000/1001" in ln for ln in lines), lines
    skipped = _brief("broadcast-atsc-1080p2997", start_timecode="00:58:00;00")
    with pytest.raises(ManyErrors) as ei:
        check_against(skipped, catalog, tmp_path, source="b.yaml")
    assert "b.yaml: start_timecode: '00:58:00;00' does not exist in drop-frame timecode" in ei.value.line()
    ok = _brief("broadcast-atsc-1080p2997", start_timecode="00:58:00;02")
    assert check_against(ok, catalog, tmp_path, source="b.yaml")
