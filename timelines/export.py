"""Editorial exports of a Studio edit: one timeline, every format an editor may ask for.

``export_all`` writes, atomically, beside each other:

* ``STEM.otio``: the edit itself (OpenTimelineIO JSON): keeps everything;
* ``STEM.otioz``: the same bundled with its media (OTIO's zip bundle), for hand-off;
* ``STEM.xml``: Final Cut Pro 7 XML (Premiere's supported import), via ``fcp_xml``, with the
  sequence ``<format>`` the adapter leaves empty filled in;
* ``STEM.fcpxml``: FCPXML 1.10 (Final Cut Pro, DaVinci Resolve) via our ``studio_fcpxml``;
* ``STEM.edl``: CMX 3600 of the video track (a video conform list) with record timecode
  from 01:00:00:00.

What each keeps is in docs/exports.md (checked by tests/test_exports.py).
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from studio.store import atomic_output, atomic_write_text
from timelines import fcpxml

# Broadcast convention: programme starts at 01:00:00:00 on the record side.
EDL_RECORD_START_HOURS = 1
FCPXML_VERSION = "1.10"


def _timebase(rate: Fraction) -> tuple[int, bool]:
    """FCP7 expresses 24000/1001 as timebase 24 with ntsc TRUE."""
    if rate.denominator == 1001:
        return round(rate), True
    if rate.denominator != 1:
        raise ValueError(f"FCP7 XML has no timebase for {rate}")
    return rate.numerator, False


def fix_fcp7_format(xml_text: str, *, width: int, height: int, rate: Fraction) -> str:
    """Give the sequence the ``<format>`` the ``fcp_xml`` adapter leaves empty.

    Premiere and Resolve read the sequence size from
    ``sequence/media/video/format/samplecharacteristics``; without it they fall back to a
    preset (often 720x480).
    """
    root = ET.fromstring(xml_text)
    timebase, ntsc = _timebase(rate)
    for seq in root.iter("sequence"):
        video = seq.find("media/video")
        if video is None:
            media = seq.find("media")
            if media is None:
                media = ET.SubElement(seq, "media")
            video = ET.SubElement(media, "video")
        fmt = video.find("format")
        if fmt is None:
            fmt = ET.Element("format")
            video.insert(0, fmt)  # format comes before the tracks
        for old in list(fmt):
            fmt.remove(old)
        sc = ET.SubElement(fmt, "samplecharacteristics")
        r = ET.SubElement(sc, "rate")
        ET.SubElement(r, "timebase").text = str(timebase)
        ET.SubElement(r, "ntsc").text = "TRUE" if ntsc else "FALSE"
        ET.SubElement(sc, "width").text = str(width)
        ET.SubElement(sc, "height").text = str(height)
        ET.SubElement(sc, "pixelaspectratio").text = "square"
        ET.SubElement(sc, "anamorphic").text = "FALSE"
        ET.SubElement(sc, "fielddominance").text = "none"
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n{body}\n'


_EDL_EVENT = re.compile(
    r"^(?P<head>\d{3,}\s.*?)(?P<rin>\d\d[:;]\d\d[:;]\d\d[:;]\d\d) (?P<rout>\d\d[:;]\d\d[:;]\d\d[:;]\d\d)\s*$")


def shift_edl_record(edl: str, rate: Fraction, hours: int = EDL_RECORD_START_HOURS) -> str:
    """Move every event's record in/out by ``hours``: the ``cmx_3600`` adapter starts the
    record side at 00:00:00:00, conform houses expect 01:00:00:00."""
    r = float(rate)
    out = []
    for line in edl.splitlines():
        m = _EDL_EVENT.match(line)
        if m:
            # At 29.97/59.94 OTIO writes drop-frame (";"): the hour must be a drop-frame
            # hour too, or the record side lands at 01:00:03;18.
            sep = ";" if ";" in m["rin"] else ":"
            shift = otio.opentime.from_timecode(f"{hours:02d}:00:00{sep}00", r)
            rin = otio.opentime.from_timecode(m["rin"], r) + shift
            rout = otio.opentime.from_timecode(m["rout"], r) + shift
            line = (f"{m['head']}{otio.opentime.to_timecode(rin, r)} "
                    f"{otio.opentime.to_timecode(rout, r)}")
        out.append(line)
    return "\n".join(out) + "\n"


def _video_only(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """The first video track alone: an EDL is a picture conform list, and the adapter
    refuses more than one video track or two audio tracks."""
    tl = otio.schema.Timeline(name=timeline.name, global_start_time=timeline.global_start_time)
    tracks = timeline.video_tracks()
    if tracks:
        tl.tracks.append(copy.deepcopy(tracks[0]))
    return tl


def export_all(timeline: otio.schema.Timeline, out_dir: Path, stem: str, *, width: int,
               height: int, rate: Fraction) -> dict[str, Path]:
    """Write every editorial format; returns ``{format: path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "otio": out_dir / f"{stem}.otio",
        "otioz": out_dir / f"{stem}.otioz",
        "fcp7_xml": out_dir / f"{stem}.xml",
        "fcpxml": out_dir / f"{stem}.fcpxml",
        "edl": out_dir / f"{stem}.edl",
    }
    atomic_write_text(paths["otio"], otio.adapters.write_to_string(timeline, "otio_json"))

    # otioz copies the referenced files into the zip; it refuses anything but local files,
    # which is what we want for a hand-off bundle.
    with atomic_output(paths["otioz"]) as tmp:
        tmp.unlink()  # the adapter opens the zip itself
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otioz")

    fcp7 = otio.adapters.write_to_string(timeline, "fcp_xml")
    atomic_write_text(paths["fcp7_xml"],
                      fix_fcp7_format(fcp7, width=width, height=height, rate=rate))

    # Called directly rather than through OTIO's registry so that exports work whether or
    # not the plugin manifest is on OTIO_PLUGIN_MANIFEST_PATH / installed as an entry point.
    atomic_write_text(paths["fcpxml"],
                      fcpxml.write_to_string(timeline, version=FCPXML_VERSION, width=width,
                                             height=height, rate=rate))

    edl = otio.adapters.write_to_string(_video_only(timeline), "cmx_3600", rate=float(rate))
    atomic_write_text(paths["edl"], shift_edl_record(edl, rate))
    return paths
