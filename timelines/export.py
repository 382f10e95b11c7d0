"""Editorial exports of a Studio edit: one timeline, every format an editor may ask for.

``export_all`` writes, atomically, beside each other:

* ``STEM.otio``: the edit itself (OpenTimelineIO JSON): keeps everything;
* ``STEM.otioz``: the same bundled with its media (OTIO's zip bundle), for hand-off; only
  with ``otioz=True`` (a brief's ``otioz: true``): it copies every shot master, hundreds of
  MB a run, while the ``.otio`` references them in the store;
* ``STEM.xml``: Final Cut Pro 7 XML (Premiere's supported import), via ``fcp_xml``, with the
  sequence ``<format>`` the adapter leaves empty filled in, and its ``<timecode>``;
* ``STEM.fcpxml``: FCPXML 1.10 (Final Cut Pro, DaVinci Resolve) via our ``studio_fcpxml``;
* ``STEM.edl``: CMX 3600 of the video track (a video conform list) with an ``FCM:`` line.

Every format starts at the timeline's ``global_start_time`` (Studio sets it from the
brief's or channel's ``start_timecode``, 01:00:00:00 by default) and counts drop-frame or
non-drop as ``metadata["studio"]["timecode"]["drop_frame"]`` says (default: drop-frame at
30000/1001 and 60000/1001): the EDL's record side, FCP7's sequence ``<timecode>`` and
FCPXML's ``tcStart``/``tcFormat`` all say the same.

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
from studio.timecode import Timecode, default_drop_frame, drop_frame_allowed, to_label
from timelines import fcpxml

FCPXML_VERSION = "1.10"


def _timebase(rate: Fraction) -> tuple[int, bool]:
    """FCP7 expresses 24000/1001 as timebase 24 with ntsc TRUE."""
    if rate.denominator == 1001:
        return round(rate), True
    if rate.denominator != 1:
        raise ValueError(f"FCP7 XML has no timebase for {rate}")
    return rate.numerator, False


def start_timecode(timeline: otio.schema.Timeline, rate: Fraction,
                   drop_frame: bool | None = None) -> Timecode:
    """Where the timeline starts, as the exports write it: its ``global_start_time`` (0
    when unset) counted drop-frame per ``drop_frame``, else the timeline's
    ``metadata["studio"]["timecode"]["drop_frame"]``, else the rate's default."""
    if drop_frame is None:
        meta = timeline.metadata.get("studio") or {}
        drop_frame = (meta.get("timecode") or {}).get("drop_frame")
    if drop_frame is None:
        drop_frame = default_drop_frame(rate)
    if drop_frame and not drop_frame_allowed(rate):
        raise ValueError(f"drop-frame timecode exists only at 30000/1001 and 60000/1001, not {rate}")
    gst = timeline.global_start_time
    frames = round(gst.rescaled_to(float(rate)).value) if gst is not None else 0
    return Timecode(to_label(frames, rate, drop_frame), frames, Fraction(rate), drop_frame)


def _fcp7_timecode(start: Timecode) -> ET.Element:
    """A sequence ``<timecode>``: rate, label, frame count and DF/NDF, all saying the same
    (the ``fcp_xml`` adapter writes the label non-drop beside a drop-frame count)."""
    timebase, ntsc = _timebase(start.rate)
    tc = ET.Element("timecode")
    r = ET.SubElement(tc, "rate")
    ET.SubElement(r, "timebase").text = str(timebase)
    ET.SubElement(r, "ntsc").text = "TRUE" if ntsc else "FALSE"
    ET.SubElement(tc, "string").text = start.label
    ET.SubElement(tc, "frame").text = str(start.frames)
    ET.SubElement(tc, "displayformat").text = start.display_format
    return tc


def fix_fcp7_format(xml_text: str, *, width: int, height: int, rate: Fraction,
                    start: Timecode | None = None) -> str:
    """Give the sequence the ``<format>`` the ``fcp_xml`` adapter leaves empty, and (with
    ``start``) its ``<timecode>``.

    Premiere and Resolve read the sequence size from
    ``sequence/media/video/format/samplecharacteristics``; without it they fall back to a
    preset (often 720x480).
    """
    root = ET.fromstring(xml_text)
    timebase, ntsc = _timebase(rate)
    for seq in root.iter("sequence"):
        if start is not None:
            old_tc = seq.find("timecode")
            new_tc = _fcp7_timecode(start)
            if old_tc is None:
                seq.append(new_tc)
            else:
                seq.insert(list(seq).index(old_tc), new_tc)
                seq.remove(old_tc)
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


_TC = r"\d\d[:;]\d\d[:;]\d\d[:;]\d\d"
_EDL_EVENT = re.compile(
    rf"^(?P<head>\d{{3,}}\s.*?)(?P<sin>{_TC}) (?P<sout>{_TC}) (?P<rin>{_TC}) (?P<rout>{_TC})\s*$")
_EDL_TC = re.compile(_TC)


def edl_with_timecode(edl: str, start: Timecode) -> str:
    """The ``cmx_3600`` adapter's EDL counted as ``start`` says: record in/out moved to
    start there (the adapter starts at 00:00:00:00), every timecode written drop-frame or
    non-drop to match (the adapter infers DF from the rate and cannot write NDF 29.97),
    and the ``FCM:`` line that tells a conform which, after the title."""
    r = float(start.rate)

    def frames(tc: str) -> int:
        # The adapter's own labels: DF (";") at 29.97/59.94, NDF elsewhere.
        return round(otio.opentime.from_timecode(tc, r).value)

    def label(n: int) -> str:
        return to_label(n, start.rate, start.drop_frame)

    fcm = "FCM: DROP FRAME" if start.drop_frame else "FCM: NON-DROP FRAME"
    out: list[str] = []
    for line in edl.splitlines():
        if line.startswith("FCM:"):
            continue  # ours replaces any the adapter may write
        m = _EDL_EVENT.match(line)
        if m:
            line = (f"{m['head']}{label(frames(m['sin']))} {label(frames(m['sout']))} "
                    f"{label(frames(m['rin']) + start.frames)} {label(frames(m['rout']) + start.frames)}")
        elif line.startswith(("* LOC:", "M2 ")):
            # Source-side times (marker positions, speed changes): same count, no shift.
            line = _EDL_TC.sub(lambda t: label(frames(t[0])), line)
        out.append(line)
        if line.startswith("TITLE:"):
            out.append(fcm)
    if fcm not in out:
        out.insert(0, fcm)
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
               height: int, rate: Fraction, drop_frame: bool | None = None,
               otioz: bool = False) -> dict[str, Path]:
    """Write every editorial format; returns ``{format: path}``. ``drop_frame`` overrides
    the timeline's own (see ``start_timecode``); ``otioz`` adds the media bundle."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = start_timecode(timeline, rate, drop_frame)
    paths = {
        "otio": out_dir / f"{stem}.otio",
        **({"otioz": out_dir / f"{stem}.otioz"} if otioz else {}),
        "fcp7_xml": out_dir / f"{stem}.xml",
        "fcpxml": out_dir / f"{stem}.fcpxml",
        "edl": out_dir / f"{stem}.edl",
    }
    atomic_write_text(paths["otio"], otio.adapters.write_to_string(timeline, "otio_json"))

    if otioz:
        # otioz copies the referenced files into the zip; it refuses anything but local
        # files, which is what we want for a hand-off bundle.
        with atomic_output(paths["otioz"]) as tmp:
            tmp.unlink()  # the adapter opens the zip itself
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otioz")

    fcp7 = otio.adapters.write_to_string(timeline, "fcp_xml")
    atomic_write_text(paths["fcp7_xml"],
                      fix_fcp7_format(fcp7, width=width, height=height, rate=rate, start=start))

    # Called directly rather than through OTIO's registry so that exports work whether or
    # not the plugin manifest is on OTIO_PLUGIN_MANIFEST_PATH / installed as an entry point.
    atomic_write_text(paths["fcpxml"],
                      fcpxml.write_to_string(timeline, version=FCPXML_VERSION, width=width,
                                             height=height, rate=rate,
                                             drop_frame=start.drop_frame))

    edl = otio.adapters.write_to_string(_video_only(timeline), "cmx_3600", rate=float(rate))
    atomic_write_text(paths["edl"], edl_with_timecode(edl, start))
    return paths
