"""OTIO adapter ``studio_fcpxml``: writes and reads FCPXML (Final Cut Pro X / DaVinci Resolve).

Why our own: ``otio-fcpx-xml-adapter`` drops transitions and markers and writes
``frameDuration=""`` at 23.976, which neither Final Cut Pro nor Resolve accepts.

What is written (version 1.10 by default; 1.8 to 1.11 are accepted):

* ``<format>`` with width, height and an exact rational ``frameDuration`` (``1001/24000s``);
  every time is an exact rational of seconds (``Ns`` or ``N/Ds``), never a float.
* one ``<asset>`` per media file (keyed by URL), with its available range;
* the first video track as the primary storyline (``<spine>``): ``<asset-clip>`` with
  ``offset`` (record time), ``start`` (source in point, so handles survive) and
  ``duration``; gaps as ``<gap>``; OTIO transitions as ``<transition>`` (FCPXML, like OTIO,
  keeps the clips at their cut points and lays the transition over the cut);
* every other track as connected clips anchored to the spine item under their start:
  audio tracks on lanes -1, -2, ... (one lane per stem), further video tracks on 1, 2, ...;
  the audio role carries the track name (``dialogue.voice``);
* markers (clip, track and stack markers, the latter moved onto the clip under them) as
  ``<marker value=name note=comment>``. FCPXML markers have no colour: colours are lost;
* ``metadata["studio"]`` of clips, assets and the timeline as ``<md key="studio.X">``;
* the sequence's start timecode: ``tcStart`` is the timeline's ``global_start_time`` and
  ``tcFormat`` DF or NDF (drop-frame by default at 30000/1001 and 60000/1001, as
  ``metadata["studio"]["timecode"]["drop_frame"]`` or ``drop_frame=`` say otherwise). As
  in FCP's and Resolve's own files, the spine's offsets count from ``tcStart`` (a one-hour
  start puts the first clip at ``offset="3600s"``); the reader takes it off again.
* titles: a clip of a video track after the first whose media reference is a
  ``GeneratorReference`` of kind ``Text`` (Studio's graphics track, ``timelines.graphics``)
  as a connected ``<title>`` on its lane, using Final Cut Pro's Basic Title (one ``<effect>``
  resource), its text in ``<text><text-style ref="tsN">`` with a ``<text-style-def>`` of its
  own, and its ``metadata["studio"]`` as ``<md>``. The reader turns connected titles back
  into such clips; a lane holding only titles is the track ``graphics``.

Connected clips cannot carry transitions in FCPXML, so transitions off the first video
track are dropped. A Text generator on the first video track stays a gap: a title in the
primary storyline would be picture an NLE cuts with the shots.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from studio.timecode import default_drop_frame, drop_frame_allowed

DEFAULT_VERSION = "1.10"
SUPPORTED_VERSIONS = ("1.8", "1.9", "1.10", "1.11")
# Final Cut Pro's built-in Cross Dissolve.
CROSS_DISSOLVE_UID = "FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"
# Final Cut Pro's built-in Basic Title (a Motion template FCP ships), which our titles use.
BASIC_TITLE_NAME = "Basic Title"
BASIC_TITLE_UID = ".../Titles.localized/Bumper:Opener.localized/Basic Title.localized/Basic Title.moti"
# The generator kind of a title clip (timelines.graphics.TITLE_KIND: FCP7's Text generator).
TITLE_KIND = "Text"
# The track a lane of titles is read back as (timelines.graphics.GRAPHICS_TRACK).
GRAPHICS_TRACK = "graphics"
# The Basic Title's own defaults in FCP: white, centred; the conform draws the real
# supers per channel, so the title only has to show the editor what the text says.
TITLE_FONT = "Helvetica"
TITLE_FONT_SIZE = "63"
TITLE_FONT_COLOR = "1 1 1 1"
# Final Cut Pro's three built-in audio roles; other track names become roles of their own.
ROLE_FOR_TRACK = {"voice": "dialogue", "dialogue": "dialogue", "music": "music",
                  "effects": "effects", "sfx": "effects"}
MD_PREFIX = "studio."
# Well-known frame rates as exact rationals: OTIO keeps rates as floats.
_KNOWN_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                Fraction(30), Fraction(48000, 1001), Fraction(48), Fraction(50),
                Fraction(60000, 1001), Fraction(60)]
_FORMAT_RATE_CODE = {Fraction(24000, 1001): "2398", Fraction(24): "24", Fraction(25): "25",
                     Fraction(30000, 1001): "2997", Fraction(30): "30", Fraction(50): "50",
                     Fraction(60000, 1001): "5994", Fraction(60): "60"}
_STANDARD_SIZES = {(1280, 720): "720p", (1920, 1080): "1080p", (3840, 2160): "2160p"}


# ---------------------------------------------------------------- time helpers

def exact_rate(rate: float | Fraction | str) -> Fraction:
    """A float OTIO rate as the exact rational it stands for (23.976... -> 24000/1001)."""
    if isinstance(rate, Fraction):
        return rate
    if isinstance(rate, str):
        return Fraction(rate)
    for known in _KNOWN_RATES:
        if math.isclose(float(known), rate, rel_tol=0, abs_tol=1e-6):
            return known
    return Fraction(rate).limit_denominator(1001)


def _seconds(rt: otio.opentime.RationalTime) -> Fraction:
    # Values are frame counts in practice; limit_denominator only guards float noise.
    value = Fraction(rt.value).limit_denominator(1_000_000)
    return value / exact_rate(rt.rate)


def format_time(seconds: Fraction, rate: Fraction) -> str:
    """FCPXML time: ``Ns`` when whole, else over the rate's timebase (``1001/24000s``)."""
    if seconds.denominator == 1:
        return f"{seconds.numerator}s"
    scaled = seconds * rate.numerator
    if scaled.denominator == 1:  # on the frame grid: write it the way FCP does
        return f"{scaled.numerator}/{rate.numerator}s"
    return f"{seconds.numerator}/{seconds.denominator}s"


_TIME_RE = re.compile(r"^\s*(-?\d+)(?:/(\d+))?s\s*$")


def parse_time(text: str | None) -> Fraction:
    if not text:
        return Fraction(0)
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"not an FCPXML time: {text!r}")
    return Fraction(int(m.group(1)), int(m.group(2) or 1))


def _rt(seconds: Fraction, rate: Fraction) -> otio.opentime.RationalTime:
    frames = seconds * rate
    value = float(frames.numerator) if frames.denominator == 1 else float(frames)
    return otio.opentime.RationalTime(value, float(rate))


# ---------------------------------------------------------------- metadata helpers

def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary/AnyVector as dict/list, for json."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value]


def _md_elements(parent: ET.Element, data: dict[str, Any]) -> None:
    """``metadata["studio"]`` as ``<md>``: strings as they are, anything else as JSON
    (``type="json"`` is not in the DTD's md-type list, so the JSON is tagged in the key)."""
    if not data:
        return
    meta = ET.SubElement(parent, "metadata")
    for key, value in data.items():
        if isinstance(value, str):
            ET.SubElement(meta, "md", key=f"{MD_PREFIX}{key}", value=value)
        else:
            ET.SubElement(meta, "md", key=f"{MD_PREFIX}{key}:json",
                          value=json.dumps(_plain(value), sort_keys=True))


def _read_md(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    meta = elem.find("metadata")
    if meta is None:
        return out
    for md in meta.findall("md"):
        key = md.get("key", "")
        if not key.startswith(MD_PREFIX):
            continue
        key = key[len(MD_PREFIX):]
        value = md.get("value", "")
        if key.endswith(":json"):
            out[key[: -len(":json")]] = json.loads(value)
        else:
            out[key] = value
    return out


def _studio(obj: Any) -> dict[str, Any]:
    data = obj.metadata.get("studio") if obj.metadata else None
    return dict(data) if data else {}


# ---------------------------------------------------------------- writing

class _Writer:
    def __init__(self, timeline: otio.schema.Timeline, version: str, width: int, height: int,
                 rate: Fraction, drop_frame: bool) -> None:
        self.tl = timeline
        self.version = version
        self.width = width
        self.height = height
        self.rate = rate
        self.tc_format = "DF" if drop_frame else "NDF"
        # Spine offsets are times of the sequence, whose timeline begins at tcStart.
        gst = timeline.global_start_time
        self.tc_start = (Fraction(round(gst.rescaled_to(float(rate)).value)) / rate
                         if gst is not None else Fraction(0))
        self.resources = ET.Element("resources")
        self.assets: dict[str, str] = {}  # target_url -> asset id
        self.asset_elems: dict[str, ET.Element] = {}
        self._next_id = 1
        self.format_id = self._new_id()
        fmt = ET.SubElement(self.resources, "format", id=self.format_id)
        size = _STANDARD_SIZES.get((width, height))
        code = _FORMAT_RATE_CODE.get(rate)
        if size and code:  # FCP matches its presets by name; custom sizes go unnamed
            fmt.set("name", f"FFVideoFormat{size}{code}")
        fmt.set("frameDuration", format_time(1 / rate, rate))
        fmt.set("width", str(width))
        fmt.set("height", str(height))
        self.dissolve_id: str | None = None
        self.title_effect_id: str | None = None
        self._next_style = 1  # text-style-def ids: ts1, ts2, ... (unique in the document)

    def _new_id(self) -> str:
        rid = f"r{self._next_id}"
        self._next_id += 1
        return rid

    def t(self, seconds: Fraction) -> str:
        return format_time(seconds, self.rate)

    def _dissolve(self) -> str:
        if self.dissolve_id is None:
            self.dissolve_id = self._new_id()
            ET.SubElement(self.resources, "effect", id=self.dissolve_id, name="Cross Dissolve",
                          uid=CROSS_DISSOLVE_UID)
        return self.dissolve_id

    def _title_effect(self) -> str:
        if self.title_effect_id is None:
            self.title_effect_id = self._new_id()
            ET.SubElement(self.resources, "effect", id=self.title_effect_id, name=BASIC_TITLE_NAME,
                          uid=BASIC_TITLE_UID)
        return self.title_effect_id

    def asset_for(self, clip: otio.schema.Clip, is_audio: bool) -> str | None:
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            return None
        url = ref.target_url
        used = clip.source_range or clip.available_range()
        if url in self.assets:
            # Widen the asset so that every use of the file lies inside it.
            elem = self.asset_elems[url]
            start = parse_time(elem.get("start"))
            end = max(start + parse_time(elem.get("duration")), _seconds(used.end_time_exclusive()))
            start = min(start, _seconds(used.start_time))
            elem.set("start", self.t(start))
            elem.set("duration", self.t(end - start))
            return self.assets[url]
        avail = ref.available_range or used
        aid = self._new_id()
        start = min(_seconds(avail.start_time), _seconds(used.start_time))
        end = max(_seconds(avail.end_time_exclusive()), _seconds(used.end_time_exclusive()))
        asset = ET.Element("asset", id=aid, name=Path(url).stem or clip.name,
                           start=self.t(start), duration=self.t(end - start))
        if is_audio:
            asset.set("hasVideo", "0")
            asset.set("hasAudio", "1")
            asset.set("audioSources", "1")  # in 1.8 too, unlike videoSources
        else:
            # OTIO does not say whether a video file has sound; Studio's shots have none.
            asset.set("hasVideo", "1")
            asset.set("format", self.format_id)
            if self.version != "1.8":  # videoSources arrived in 1.9
                asset.set("videoSources", "1")
            asset.set("hasAudio", "1" if _studio(ref).get("has_audio") else "0")
        if self.version == "1.8":
            asset.set("src", url)  # 1.8 predates <media-rep>
        else:
            ET.SubElement(asset, "media-rep", kind="original-media", src=url)
        _md_elements(asset, _studio(ref))
        self.resources.append(asset)
        self.assets[url] = aid
        self.asset_elems[url] = asset
        return aid

    # A spine item: (record start, record end, element, local start of its own time).
    def build(self) -> ET.Element:
        root = ET.Element("fcpxml", version=self.version)
        root.append(self.resources)
        library = ET.SubElement(root, "library")
        event = ET.SubElement(library, "event", name=self.tl.name or "Studio")
        project = ET.SubElement(event, "project", name=self.tl.name or "Studio")
        seq = ET.SubElement(project, "sequence", format=self.format_id, tcStart=self.t(self.tc_start),
                            tcFormat=self.tc_format, audioLayout="stereo", audioRate="48k")
        spine = ET.SubElement(seq, "spine")

        video = [t for t in self.tl.video_tracks()]
        audio = [t for t in self.tl.audio_tracks()]
        primary = video[0] if video else None
        items: list[tuple[Fraction, Fraction, ET.Element, Fraction]] = []
        if primary is not None:
            items = self._spine(spine, primary)
        total = max([_seconds(self.tl.duration())] + [end for _, end, _, _ in items])
        spine_end = items[-1][1] if items else Fraction(0)
        if spine_end < total:
            # Connected clips need something to hang from past the end of the picture.
            gap = ET.SubElement(spine, "gap", name="Gap", offset=self.t(self.tc_start + spine_end), start="0s",
                                duration=self.t(total - spine_end))
            items.append((spine_end, total, gap, Fraction(0)))
        seq.set("duration", self.t(total))

        anchored: list[tuple[int, otio.schema.Track]] = []
        anchored += [(i + 1, tr) for i, tr in enumerate(video[1:])]
        anchored += [(-(i + 1), tr) for i, tr in enumerate(audio)]
        pending: dict[int, list[tuple[Fraction, ET.Element]]] = {}
        for lane, track in anchored:
            for child, rng in _children_in_time(track):
                if not isinstance(child, otio.schema.Clip):
                    continue  # gaps are implicit; transitions cannot be connected
                is_audio = track.kind == otio.schema.TrackKind.Audio
                if not is_audio and _title_text(child) is not None:
                    elem: ET.Element | None = self._title_elem(child)
                else:
                    elem = self._clip_elem(child, is_audio)
                if elem is None:
                    continue
                elem.set("lane", str(lane))
                if is_audio:
                    role = ROLE_FOR_TRACK.get(track.name.lower(), track.name or "dialogue")
                    elem.set("audioRole", role if role == track.name else f"{role}.{track.name}")
                    elem.set("srcEnable", "audio")
                rec = _seconds(rng.start_time)
                idx = _item_at(items, rec)
                r_start, _, _, local = items[idx]
                elem.set("offset", self.t(local + rec - r_start))
                pending.setdefault(idx, []).append((rec, elem))
        # Stack and track markers belong to no clip in FCPXML: move them to the item under them.
        for rec, marker in _record_markers(self.tl, primary):
            if not items:
                break
            idx = _item_at(items, rec[0])
            r_start, _, _, local = items[idx]
            pending.setdefault(idx, []).append(
                (rec[0], _marker_elem(marker, local + rec[0] - r_start, rec[1], self.t)))
        for idx, extra in pending.items():
            elem = items[idx][2]
            _insert_children(elem, [e for _, e in sorted(extra, key=lambda x: x[0])])
        _md_elements(seq, _studio(self.tl))
        return root

    def _clip_elem(self, clip: otio.schema.Clip, is_audio: bool) -> ET.Element | None:
        aid = self.asset_for(clip, is_audio)
        rng = clip.trimmed_range()
        if aid is None:
            return None
        elem = ET.Element("asset-clip", ref=aid, name=clip.name or "",
                          start=self.t(_seconds(rng.start_time)),
                          duration=self.t(_seconds(rng.duration)))
        if not clip.enabled:
            elem.set("enabled", "0")
        if not is_audio:
            elem.set("format", self.format_id)
            elem.set("tcFormat", self.tc_format)
        for m in clip.markers:
            elem.append(_marker_elem(m, _seconds(m.marked_range.start_time),
                                     _seconds(m.marked_range.duration), self.t))
        _md_elements(elem, _studio(clip))
        return elem

    def _title_elem(self, clip: otio.schema.Clip) -> ET.Element:
        """A Text generator clip as a ``<title>`` (Basic Title), children in the DTD's
        order: text, text-style-def, markers, metadata."""
        text = _title_text(clip)
        assert text is not None  # only called for titles
        rng = clip.trimmed_range()
        elem = ET.Element("title", ref=self._title_effect(), name=clip.name or "",
                          start=self.t(_seconds(rng.start_time)), duration=self.t(_seconds(rng.duration)))
        if not clip.enabled:
            elem.set("enabled", "0")
        style = f"ts{self._next_style}"
        self._next_style += 1
        ET.SubElement(ET.SubElement(elem, "text"), "text-style", ref=style).text = text
        ET.SubElement(ET.SubElement(elem, "text-style-def", id=style), "text-style", font=TITLE_FONT,
                      fontSize=TITLE_FONT_SIZE, fontColor=TITLE_FONT_COLOR, alignment="center")
        for m in clip.markers:
            elem.append(_marker_elem(m, _seconds(m.marked_range.start_time),
                                     _seconds(m.marked_range.duration), self.t))
        _md_elements(elem, _studio(clip))
        return elem

    def _spine(self, spine: ET.Element, track: otio.schema.Track
               ) -> list[tuple[Fraction, Fraction, ET.Element, Fraction]]:
        items: list[tuple[Fraction, Fraction, ET.Element, Fraction]] = []
        for child, rng in _children_in_time(track):
            rec = _seconds(rng.start_time)
            dur = _seconds(rng.duration)
            if isinstance(child, otio.schema.Transition):
                # rng is the transition's range around the cut (cut - in_offset, in + out).
                tr = ET.SubElement(spine, "transition", name=child.name or "Cross Dissolve",
                                   offset=self.t(self.tc_start + rec), duration=self.t(dur))
                if child.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve:
                    ET.SubElement(tr, "filter-video", ref=self._dissolve(), name="Cross Dissolve")
                _md_elements(tr, _studio(child))
                continue
            elem = None
            if isinstance(child, otio.schema.Clip):
                elem = self._clip_elem(child, is_audio=False)
            if elem is None:
                # Gaps, and clips without a file (missing, generators, nested stacks) keep
                # their place as gaps so that sync holds.
                elem = ET.Element("gap", name=child.name or "Gap", start="0s",
                                  duration=self.t(dur))
                local = Fraction(0)
            else:
                local = _seconds(child.trimmed_range().start_time)
            elem.set("offset", self.t(self.tc_start + rec))
            # FCPXML lists attributes in no fixed order, but offset first reads like FCP's.
            spine.append(elem)
            items.append((rec, rec + dur, elem, local))
        return items


def _title_text(clip: otio.core.Composable) -> str | None:
    """The text of a title clip (a Text generator), None for anything else."""
    ref = getattr(clip, "media_reference", None)
    if not isinstance(ref, otio.schema.GeneratorReference) or ref.generator_kind != TITLE_KIND:
        return None
    return str((ref.parameters or {}).get("text", ""))


def _children_in_time(track: otio.schema.Track
                      ) -> list[tuple[otio.core.Composable, otio.opentime.TimeRange]]:
    """Children with their range in the track: items by their place, transitions by the
    span they cover around the cut."""
    out = []
    cursor = otio.opentime.RationalTime(0, track.duration().rate)
    for child in track:
        if isinstance(child, otio.schema.Transition):
            # An OTIO transition takes no time in its track: it sits at the cut, the end of
            # the items before it (range_in_parent would already have in_offset removed).
            out.append((child, otio.opentime.TimeRange(cursor - child.in_offset,
                                                       child.in_offset + child.out_offset)))
        else:
            rng = child.range_in_parent()
            out.append((child, rng))
            cursor = rng.end_time_exclusive()
    return out


def _item_at(items: list[tuple[Fraction, Fraction, ET.Element, Fraction]], rec: Fraction) -> int:
    for i, (start, end, _, _) in enumerate(items):
        if start <= rec < end:
            return i
    return len(items) - 1 if rec >= items[-1][0] else 0


def _record_markers(tl: otio.schema.Timeline, primary: otio.schema.Track | None
                    ) -> list[tuple[tuple[Fraction, Fraction], otio.schema.Marker]]:
    out = []
    for m in tl.tracks.markers:
        out.append(((_seconds(m.marked_range.start_time), _seconds(m.marked_range.duration)), m))
    for track in tl.tracks:
        # Track time is record time: tracks start at zero in the stack.
        for m in track.markers:
            out.append(((_seconds(m.marked_range.start_time),
                         _seconds(m.marked_range.duration)), m))
    return out


def _marker_elem(m: otio.schema.Marker, start: Fraction, duration: Fraction, t: Any) -> ET.Element:
    elem = ET.Element("marker", start=t(start), duration=t(duration) if duration else t(Fraction(0)),
                      value=m.name or "Marker")
    note = m.comment or _studio(m).get("note") or ""
    if note:
        elem.set("note", note)
    return elem


_CLIP_ORDER = ("note", "conform-rate", "timeMap", "adjust-crop", "adjust-corners", "adjust-conform",
               "adjust-transform", "adjust-blend", "adjust-stabilization", "adjust-rollingShutter",
               "adjust-360-transform", "adjust-reorient", "adjust-orientation", "adjust-cinematic",
               "adjust-colorConform", "adjust-volume", "adjust-panner", "adjust-loudness",
               "adjust-noiseReduction", "adjust-humReduction", "adjust-EQ",
               "adjust-matchEQ", "adjust-voiceIsolation")


def _insert_children(parent: ET.Element, new: list[ET.Element]) -> None:
    """Put anchored clips and markers where the DTD wants them: after timing/intrinsic
    params, anchored items before markers, both before metadata."""
    kids = list(parent)
    for k in kids:
        parent.remove(k)
    head = [k for k in kids if k.tag in _CLIP_ORDER]
    anchors = [k for k in kids if k.tag == "asset-clip"] + [e for e in new if e.tag != "marker"]
    markers = [k for k in kids if k.tag == "marker"] + [e for e in new if e.tag == "marker"]
    markers.sort(key=lambda e: parse_time(e.get("start")))
    anchors.sort(key=lambda e: (parse_time(e.get("offset")), -int(e.get("lane", "0"))))
    rest = [k for k in kids if k.tag not in _CLIP_ORDER and k.tag not in ("asset-clip", "marker")]
    for k in head + anchors + markers + rest:
        parent.append(k)


def _timeline_rate(tl: otio.schema.Timeline) -> Fraction:
    studio = _studio(tl)
    if "rate" in studio:
        return Fraction(str(studio["rate"]))
    if tl.global_start_time is not None:
        return exact_rate(tl.global_start_time.rate)
    for clip in tl.find_clips():
        return exact_rate(clip.trimmed_range().duration.rate)
    return Fraction(24)


def write_to_string(input_otio: otio.schema.Timeline, version: str = DEFAULT_VERSION,
                    width: int | None = None, height: int | None = None,
                    rate: Fraction | str | None = None, drop_frame: bool | None = None) -> str:
    """FCPXML for a timeline. Size and rate default to ``metadata["studio"]`` (``width``,
    ``height``, ``rate``), then 1920x1080 and the timeline's own rate; ``drop_frame`` to
    ``metadata["studio"]["timecode"]["drop_frame"]``, then DF at 29.97 and 59.94."""
    if not isinstance(input_otio, otio.schema.Timeline):
        raise TypeError("studio_fcpxml writes Timelines only")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"FCPXML version {version} is not one of {SUPPORTED_VERSIONS}")
    studio = _studio(input_otio)
    exact = Fraction(str(rate)) if rate is not None else _timeline_rate(input_otio)
    w = int(width or studio.get("width") or 1920)
    h = int(height or studio.get("height") or 1080)
    if drop_frame is None:
        drop_frame = (studio.get("timecode") or {}).get("drop_frame")
    if drop_frame is None:
        drop_frame = default_drop_frame(exact)
    if drop_frame and not drop_frame_allowed(exact):
        raise ValueError(f"drop-frame timecode exists only at 30000/1001 and 60000/1001, not {exact}")
    root = _Writer(input_otio, version, w, h, exact, bool(drop_frame)).build()
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n{body}\n'


# ---------------------------------------------------------------- reading

def read_from_string(input_str: str) -> otio.schema.Timeline:
    root = ET.fromstring(input_str)
    if root.tag != "fcpxml":
        raise ValueError("not an FCPXML document")
    resources = root.find("resources")
    formats: dict[str, ET.Element] = {}
    assets: dict[str, ET.Element] = {}
    effects: dict[str, ET.Element] = {}
    for r in list(resources) if resources is not None else []:
        {"format": formats, "asset": assets, "effect": effects}.get(r.tag, {})[r.get("id", "")] = r
    project = root.find(".//project")
    seq = project.find("sequence") if project is not None else root.find(".//sequence")
    if seq is None:
        raise ValueError("FCPXML has no sequence")
    fmt = formats.get(seq.get("format", ""))
    if fmt is None or not fmt.get("frameDuration"):
        raise ValueError("FCPXML sequence has no format with a frameDuration")
    rate = 1 / parse_time(fmt.get("frameDuration"))

    tl = otio.schema.Timeline(name=(project.get("name") if project is not None else None) or "")
    tc_start = parse_time(seq.get("tcStart"))
    tl.global_start_time = _rt(tc_start, rate)
    studio = _read_md(seq)
    if studio:
        tl.metadata["studio"] = studio
    tl.metadata["fcpxml"] = {"version": root.get("version"), "width": int(fmt.get("width", 0)),
                             "height": int(fmt.get("height", 0)),
                             "rate": f"{rate.numerator}/{rate.denominator}",
                             "tcFormat": seq.get("tcFormat", "NDF")}

    def make_clip(elem: ET.Element) -> otio.schema.Clip:
        asset = assets[elem.get("ref", "")]
        rep = asset.find("media-rep")
        url = rep.get("src") if rep is not None else asset.get("src")
        a_start = parse_time(asset.get("start"))
        ref = otio.schema.ExternalReference(
            target_url=url,
            available_range=otio.opentime.TimeRange(
                _rt(a_start, rate), _rt(parse_time(asset.get("duration")), rate)))
        ref_md = _read_md(asset)
        if ref_md:
            ref.metadata["studio"] = ref_md
        return clip_of(elem, ref)

    def clip_of(elem: ET.Element, ref: otio.core.MediaReference) -> otio.schema.Clip:
        """A story element (``<asset-clip>``, ``<title>``) as a clip of ``ref``: its name,
        source range, enabled flag, studio metadata and markers."""
        clip = otio.schema.Clip(
            name=elem.get("name", ""), media_reference=ref,
            source_range=otio.opentime.TimeRange(_rt(parse_time(elem.get("start")), rate),
                                                 _rt(parse_time(elem.get("duration")), rate)))
        clip.enabled = elem.get("enabled", "1") != "0"
        md = _read_md(elem)
        if md:
            clip.metadata["studio"] = md
        for m in elem.findall("marker"):
            clip.markers.append(_read_marker(m, rate))
        return clip

    def make_title(elem: ET.Element) -> otio.schema.Clip:
        """A ``<title>`` as a clip of a Text generator (what ``timelines.graphics`` writes)."""
        name = elem.get("name", "")
        text = _read_title_text(elem)
        ref = otio.schema.GeneratorReference(name=name, generator_kind=TITLE_KIND, parameters={"text": text})
        # As timelines.graphics.title_clip gives it: what the fcp_xml adapter writes as a
        # Text <generatoritem> (without it, it wants a file and fails on the missing range).
        ref.metadata["fcp_xml"] = {"effecttype": "generator", "mediatype": "video", "effectcategory": "Text",
                                   "parameter": {"parameterid": "str", "name": "Text", "value": text}}
        effect = effects.get(elem.get("ref", ""))
        if effect is not None:
            ref.metadata["fcpxml"] = {"effect": effect.get("name", ""), "uid": effect.get("uid", "")}
        return clip_of(elem, ref)

    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(video)
    spine = seq.find("spine")
    children = list(spine) if spine is not None else []
    # Spine offsets count from tcStart; a writer that counted from zero instead is read
    # as it meant.
    offsets = [parse_time(e.get("offset")) for e in children if e.get("offset") is not None]
    base = tc_start if offsets and min(offsets) >= tc_start else Fraction(0)
    lanes: dict[int, list[tuple[Fraction, ET.Element]]] = {}
    cursor = Fraction(0)
    pending_tr: ET.Element | None = None
    for elem in children:
        if elem.tag == "transition":
            pending_tr = elem
            continue
        if elem.tag not in ("asset-clip", "gap"):
            continue  # other story elements (titles, compound clips) are not ours to read
        offset = parse_time(elem.get("offset")) - base
        duration = parse_time(elem.get("duration"))
        local = parse_time(elem.get("start"))
        if offset > cursor:  # a hole in the storyline is a gap in OTIO
            video.append(otio.schema.Gap(duration=_rt(offset - cursor, rate)))
        if pending_tr is not None:
            video.append(_read_transition(pending_tr, offset, rate, effects, base))
            pending_tr = None
        if elem.tag == "gap":
            item: otio.core.Item = otio.schema.Gap(duration=_rt(duration, rate))
            item.name = elem.get("name", "")
            for m in elem.findall("marker"):
                item.markers.append(_read_marker(m, rate))
        else:
            item = make_clip(elem)
        # Trailing gaps written only to hold connected clips are left out of the track.
        video.append(item)
        cursor = offset + duration
        for sub in elem:
            if sub.tag not in ("asset-clip", "title"):
                continue
            if sub.tag == "title" and int(sub.get("lane", "0")) <= 0:
                continue  # a title is picture: only above the storyline
            rec = offset + parse_time(sub.get("offset")) - local
            lanes.setdefault(int(sub.get("lane", "0")), []).append((rec, sub))
    if video and isinstance(video[-1], otio.schema.Gap) and not video[-1].markers \
            and video[-1].name == "Gap":
        video.pop()

    # Lanes above the spine are further video tracks; below it, audio stems (lane -1 first).
    for lane in sorted(lanes, key=lambda n: (n < 0, abs(n))):
        subs = sorted(lanes[lane], key=lambda x: x[0])
        kind = otio.schema.TrackKind.Video if lane > 0 else otio.schema.TrackKind.Audio
        name = f"V{lane + 1}"
        if lane > 0 and all(sub.tag == "title" for _, sub in subs):
            name = GRAPHICS_TRACK  # a lane of titles reads as Studio's graphics track
        if lane < 0:
            role = subs[0][1].get("audioRole", f"A{-lane}")
            name = role.split(".", 1)[1] if "." in role else role
        track = otio.schema.Track(name=name, kind=kind)
        cursor = Fraction(0)
        for rec, sub in subs:
            if rec > cursor:
                track.append(otio.schema.Gap(duration=_rt(rec - cursor, rate)))
            track.append(make_title(sub) if sub.tag == "title" else make_clip(sub))
            cursor = rec + parse_time(sub.get("duration"))
        tl.tracks.append(track)
    return tl


def _read_title_text(elem: ET.Element) -> str:
    """A title's text: its ``<text>`` blocks one per line, each the words of its styled runs
    (or its bare text); the indentation between elements is no text."""
    blocks = []
    for text in elem.findall("text"):
        runs = text.findall("text-style")
        blocks.append("".join("".join(r.itertext()) for r in runs) if runs else (text.text or ""))
    return "\n".join(blocks)


def _read_transition(elem: ET.Element, cut: Fraction, rate: Fraction,
                     effects: dict[str, ET.Element], base: Fraction = Fraction(0)
                     ) -> otio.schema.Transition:
    start = parse_time(elem.get("offset")) - base
    duration = parse_time(elem.get("duration"))
    fv = elem.find("filter-video")
    effect = effects.get(fv.get("ref", "")) if fv is not None else None
    dissolve = fv is None or (effect is not None and effect.get("uid") == CROSS_DISSOLVE_UID)
    tr = otio.schema.Transition(
        name=elem.get("name", ""),
        transition_type=(otio.schema.TransitionTypes.SMPTE_Dissolve if dissolve
                         else otio.schema.TransitionTypes.Custom),
        in_offset=_rt(cut - start, rate), out_offset=_rt(start + duration - cut, rate))
    md = _read_md(elem)
    if md:
        tr.metadata["studio"] = md
    return tr


def _read_marker(elem: ET.Element, rate: Fraction) -> otio.schema.Marker:
    m = otio.schema.Marker(
        name=elem.get("value", ""),
        marked_range=otio.opentime.TimeRange(_rt(parse_time(elem.get("start")), rate),
                                             _rt(parse_time(elem.get("duration")), rate)))
    m.comment = elem.get("note", "")
    return m


def plugin_manifest() -> otio.plugins.Manifest:
    """Entry-point hook (``opentimelineio.plugins``): OTIO calls this to find the adapter."""
    return otio.plugins.manifest.manifest_from_file(
        str(Path(__file__).with_name("plugin_manifest.json")))
