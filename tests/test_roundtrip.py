"""The editor's round trip: trim one shot, swap two, drop one, in OTIO and in FCP7 XML
(which loses Studio's metadata, so clips map back by their media), then conform and
check the new deliverable's durations with ffprobe and its shot order by its frames."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from sqlmodel import Session, select

from studio import db
from studio.errors import StudioError
from studio.progress import QuietReporter


def _frame(path: Path, t: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(path), "-frames:v", "1",
                          "-vf", "scale=64:36", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(36, 64, 3).astype(np.float32)


def _duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["format"]["duration"])


def _move_voice(tl: otio.schema.Timeline, starts: dict[str, int]) -> None:
    """Lay the voice lines out again as an editor would: each beat's line at a new record
    frame, a dropped beat's line removed."""
    voice = next(t for t in tl.audio_tracks() if t.name == "voice")
    lines = {c.metadata["studio"]["beat_id"]: c for c in voice.find_clips()}
    for _ in range(len(voice)):
        voice.pop()
    end = 0
    for beat, at in sorted(starts.items(), key=lambda x: x[1]):
        clip = lines[beat]
        if at > end:
            voice.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, 30), otio.opentime.RationalTime(at - end, 30))))
        voice.append(clip)
        end = at + round(clip.source_range.duration.value)


def _edit(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """Trim b01 by 15 frames at its tail, swap b02 and b03, drop b04; the voice lines
    follow their shots (6 frames after each new cut)."""
    tl = copy.deepcopy(timeline)
    _move_voice(tl, {"b01-sunrise": 6, "b03-city": 75 + 6, "b02-trail": 165 + 6})
    track = tl.video_tracks()[0]
    clips = list(track)
    b1, b2, b3 = clips[0], clips[1], clips[2]
    sr = b1.source_range
    b1.source_range = otio.opentime.TimeRange(sr.start_time, otio.opentime.RationalTime(sr.duration.value - 15, sr.duration.rate))
    for _ in range(len(track)):
        track.pop()
    for c in (b1, b3, b2):
        track.append(c)
    return tl


@pytest.fixture(scope="module")
def exported(demo_run, manifest_path=None):
    ctx, out = demo_run
    m = json.loads((out / "manifest.json").read_text())
    edit = next(t for t in m["timelines"] if t["kind"] == "edit" and t["format"] == "otio_json")
    return ctx, out, m, otio.adapters.read_from_file(str(out / edit["path"]))


@pytest.mark.parametrize("fmt", ["otio", "fcp7_xml"])
def test_conform_an_edited_timeline(exported, settings, tmp_path: Path, fmt: str) -> None:
    from studio.conform import conform_edit

    ctx, out, m, timeline = exported
    edited = _edit(timeline)
    path = tmp_path / ("edited.otio" if fmt == "otio" else "edited.xml")
    if fmt == "otio":
        otio.adapters.write_to_file(edited, str(path))
    else:
        for c in edited.find_clips():
            c.metadata.pop("studio", None)  # what Premiere's XML would not carry
        otio.adapters.write_to_file(edited, str(path), adapter_name="fcp_xml")
    new_ctx, changes = conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings, reporter=QuietReporter())
    assert changes["order_after"] == ["b01-sunrise", "b03-city", "b02-trail"]
    assert changes["dropped"] == ["b04-product"]
    new = {d["spec"]: tmp_path / "out" / d["path"] for d in new_ctx.deliverables}
    old = {d["spec"]: out / d["path"] for d in m["deliverables"]}
    assert set(new) == {"youtube-1080p", "reels-9x16", "broadcast-ebu-1080p25"}
    yt_new, yt_old = new["youtube-1080p"], old["youtube-1080p"]
    assert abs(_duration(yt_new) - (2.5 + 3 + 3)) <= 1 / 30 + 1e-6
    # shot order: the middle frame of each new segment matches the right old segment best
    old_mid = {"b01-sunrise": 1.25, "b02-trail": 4.5, "b03-city": 7.5}
    # (b02 at 6.0 s: the example's end card covers the last 2 s from 6.5 s)
    new_mid = {"b01-sunrise": 1.25, "b03-city": 4.0, "b02-trail": 6.0}
    for beat, t_new in new_mid.items():
        f = _frame(yt_new, t_new)
        dists = {b: float(np.abs(f - _frame(yt_old, t)).mean()) for b, t in old_mid.items()}
        assert min(dists, key=dists.get) == beat, dists
    # the sound came with the edit: captions follow the moved voice lines, the new
    # deliverable is mastered to its channel again (measured with ebur128 here)
    cues = [c for c in (tmp_path / "out" / next(d for d in new_ctx.deliverables if d["spec"] == "youtube-1080p")
                        ["captions"]["srt"]).read_text().split("\n\n") if c.strip()]
    starts = [c.splitlines()[1].split(" --> ")[0] for c in cues]
    texts = [" ".join(c.splitlines()[2:]) for c in cues]
    assert texts[0].startswith("Every day") and texts[1].startswith("Still ice") and texts[2].startswith("Up the")
    assert starts == ["00:00:00,200", "00:00:02,700", "00:00:05,700"]
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(yt_new), "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    integrated = float(err[err.rfind("Summary:"):].split("I:")[1].split("LUFS")[0])
    assert abs(integrated - -14) <= 0.5
    with Session(db.make_engine(settings.db_url)) as s:
        row = s.exec(select(db.Timeline).where(db.Timeline.run_id == new_ctx.run_id)).one()
        parent = s.get(db.Timeline, row.parent_id)
        assert parent.run_id == ctx.run_id and row.version == parent.version + 1
        assert s.get(db.Run, new_ctx.run_id).settings["conform_of"] == ctx.run_id
    # the conform's manifest names its source run and lists the edit's beats with the source
    # run's selected candidates and keyframes (it used to say "beats": [] and no parent)
    cm = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert cm["conform_of"]["run_id"] == ctx.run_id and cm["conform_of"]["edited"] == str(path.resolve())
    assert cm["conform_of"]["changes"]["dropped"] == ["b04-product"]
    assert [b["id"] for b in cm["beats"]] == ["b01-sunrise", "b03-city", "b02-trail"]
    src = {b["id"]: b for b in m["beats"]}
    for b in cm["beats"]:
        assert b["from_run"] == ctx.run_id
        assert (b["selected"], b["selected_keyframe_sha256"]) == (src[b["id"]]["selected"],
                                                                  src[b["id"]]["selected_keyframe_sha256"])
    assert [b["frames"] for b in cm["beats"]] == changes["durations"]


def test_unmappable_clips_are_reported_by_name_and_timecode(exported, settings, tmp_path: Path) -> None:
    from studio.conform import conform_edit

    ctx, _, _, timeline = exported
    edited = copy.deepcopy(timeline)
    stranger = edited.video_tracks()[0][1]
    stranger.metadata.pop("studio")
    stranger.media_reference = otio.schema.ExternalReference(
        target_url="file:///elsewhere/b-roll.mov", available_range=stranger.media_reference.available_range)
    stranger.name = "b-roll"
    path = tmp_path / "edited.otio"
    otio.adapters.write_to_file(edited, str(path))
    with pytest.raises(StudioError) as ei:
        conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings, reporter=QuietReporter())
    assert "clip 'b-roll' at 00:00:03:00 cannot be mapped to a shot of this run" in ei.value.line()
    assert not (tmp_path / "out").exists()


def test_a_still_round_trips_like_a_shot(exported, settings, tmp_path: Path) -> None:
    """A still is a one-frame shot: its timeline exports, and an editor's swap of the hero
    frame for another beat's keyframe conforms the banners again from that frame."""
    from studio.conform import conform_edit
    from studio.store import Store

    ctx, out, m, _ = exported
    stills = {t["format"]: out / t["path"] for t in m["timelines"] if t["kind"] == "stills"}
    assert set(stills) == {"otio_json", "fcp7_xml", "fcpxml", "edl"}  # .otioz only when the brief asks
    tl = otio.adapters.read_from_file(str(stills["otio_json"]))
    clip = tl.video_tracks()[0].find_clips()[0]
    assert clip.source_range.duration.value == 1
    b01 = next(b for b in m["beats"] if b["id"] == "b01-sunrise")
    keyframe = Store(settings.store_root).find(b01["selected_keyframe_sha256"])
    clip.metadata.pop("studio")
    clip.media_reference = otio.schema.ExternalReference(target_url=keyframe.resolve().as_uri(),
                                                         available_range=clip.media_reference.available_range)
    path = tmp_path / "stills.otio"
    otio.adapters.write_to_file(tl, str(path))
    new_ctx, changes = conform_edit(ctx.run_id, path, tmp_path / "out", settings=settings, reporter=QuietReporter())
    assert changes["frame_after"] == b01["selected"]
    new = {d["spec"]: d for d in new_ctx.deliverables}
    old = {d["spec"]: d for d in m["deliverables"]}
    assert set(new) == {"banner-300x250", "banner-728x90"}
    for spec in new:
        assert new[spec]["sha256"] != old[spec]["sha256"]
        assert (new[spec]["width"], new[spec]["height"]) == (old[spec]["width"], old[spec]["height"])
    with Session(db.make_engine(settings.db_url)) as s:
        row = s.exec(select(db.Timeline).where(db.Timeline.run_id == new_ctx.run_id)).one()
        assert row.kind == "stills" and row.version == 2


def test_what_the_conform_does_not_reproduce_is_said() -> None:
    """An editor's dissolve, a gap and a B-roll track: listed with their timecodes (the
    conform warns with each), not dropped in silence."""
    from timelines.roundtrip import not_conformed

    def clip(name: str, frames: int) -> otio.schema.Clip:
        return otio.schema.Clip(name=name, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, 30), otio.opentime.RationalTime(frames, 30)))

    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(clip("b01", 60))
    v1.append(otio.schema.Transition(name="Cross Dissolve", transition_type="SMPTE_Dissolve",
                                     in_offset=otio.opentime.RationalTime(6, 30),
                                     out_offset=otio.opentime.RationalTime(6, 30)))
    v1.append(clip("b02", 60))
    v1.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, 30), otio.opentime.RationalTime(15, 30))))
    v1.append(clip("b03", 30))
    v2 = otio.schema.Track(name="B-roll", kind=otio.schema.TrackKind.Video)
    v2.append(clip("logo", 30))
    tl = otio.schema.Timeline(tracks=[v1, v2])
    notes = not_conformed(list(tl.video_tracks()))
    assert [(n["kind"], n["name"], n.get("at"), n.get("frames")) for n in notes] == [
        ("transition", "Cross Dissolve", "00:00:01:24", 12),  # starts 6 frames before the cut
        ("gap", "gap", "00:00:04:00", 15),
        ("track", "B-roll", None, None),
    ]
    assert notes[0]["what"] == "a SMPTE_Dissolve is conformed as a cut"
    assert not_conformed([otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)]) == []
